//! The one HTTP client and the bounded fetch every HTTP step goes through.
//!
//! The client verifies certificates against Mozilla's roots (webpki-roots) plus the operator's
//! extra roots, never falls back to insecure TLS, ignores environment proxies, follows no
//! redirect on its own (every hop is decided in `redirect.rs`), and resolves names through
//! [`Dns`], which refuses forbidden addresses at connect time. IP-literal URLs bypass a custom
//! resolver, so `fetch` checks them itself. Every body is capped in bytes while it streams, and
//! every request has connect, read and total timeouts (rules 1, 7, 12, 13, 15, 16).

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use rustls::pki_types::CertificateDer;
use secrecy::ExposeSecret;
use url::Url;

use super::dns::Dns;
use super::error::Error;
use super::limits::Limits;
use crate::domain::Credentials;

/// Timeouts of one HTTP step.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Timeouts {
    /// TCP connect (and TLS handshake start). Default: 3 s.
    pub connect: Duration,
    /// Longest silence while reading. Default: 5 s.
    pub read: Duration,
    /// One whole request. Default: 8 s.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT,
            read: DEFAULT_READ,
            request: DEFAULT_REQUEST,
        }
    }
}

/// Wire ports: where "https" and "http" connect. 443 and 80 in production; tests that cannot
/// bind them point these at their fakes. URLs keep their logical form everywhere else.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Ports {
    /// The port used for https URLs without an explicit port. Default: 443.
    pub https: u16,
    /// The port used for http URLs without an explicit port. Default: 80.
    pub http: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            https: 443,
            http: 80,
        }
    }
}

/// Settings of the HTTP client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Timeouts per request.
    pub timeouts: Timeouts,
    /// Wire ports.
    pub ports: Ports,
    /// Largest body read, in bytes. Default: 256 KiB.
    pub max_body_bytes: usize,
    /// Extra trusted root certificates (DER), on top of the public roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// How long an idle connection is kept for reuse. Short, because a batch touches
    /// thousands of hosts once each: kept longer, their idle TLS connections hold hundreds of
    /// MiB (`exdisco bench`, 100,000 queued addresses: 30 s -> 201 MiB, 250 ms -> 121 MiB,
    /// 100 ms -> 81 MiB). The requests of one discovery to one host follow each other at
    /// once and still share a connection. Default: 100 ms.
    pub pool_idle: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeouts: Timeouts::default(),
            ports: Ports::default(),
            max_body_bytes: DEFAULT_MAX_BODY,
            extra_roots: Vec::new(),
            user_agent: format!("exdisco/{}", env!("CARGO_PKG_VERSION")),
            pool_idle: Duration::from_millis(100),
        }
    }
}

/// A request to send.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// GET or POST.
    pub method: Method,
    /// The logical URL.
    pub url: &'a Url,
    /// A body with its content type, for POST.
    pub body: Option<Body<'a>>,
    /// Basic credentials; only ever passed for trusted https hosts.
    pub credentials: Option<&'a Credentials>,
    /// More request headers (ActiveSync commands: `MS-ASProtocolVersion`, `X-MS-PolicyKey`).
    pub headers: &'a [(&'static str, String)],
}

/// A request body.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// `text/xml; charset=utf-8`.
    Xml(&'a str),
    /// `application/x-www-form-urlencoded`, already encoded.
    Form(&'a str),
    /// `application/vnd.ms-sync.wbxml` ([MS-ASHTTP] 2.2.1.1.2.4).
    Wbxml(&'a [u8]),
}

/// A received answer with its body read under the cap.
#[derive(Debug)]
pub struct Fetched {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// The HTTP client of a process. Cheap to clone.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    dns: Dns,
    limits: Limits,
    config: Arc<HttpConfig>,
}

impl Http {
    /// Builds the client.
    pub fn new(config: HttpConfig, dns: Dns, limits: Limits) -> Result<Self, Error> {
        let setup = |reason: String| Error::Setup {
            what: "http client",
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in &config.extra_roots {
            roots
                .add(root.clone())
                .map_err(|e| setup(format!("extra root: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(
                HeaderValue::from_str(&config.user_agent)
                    .unwrap_or(HeaderValue::from_static("exdisco")),
            )
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeouts.connect)
            .read_timeout(config.timeouts.read)
            .timeout(config.timeouts.request)
            .pool_idle_timeout(config.pool_idle)
            .dns_resolver(Arc::new(dns.clone()))
            .build()
            .map_err(|e| setup(e.to_string()))?;
        Ok(Self {
            client,
            dns,
            limits,
            config: Arc::new(config),
        })
    }

    /// Sends `request` and reads the answer under the byte cap.
    pub async fn fetch(&self, request: Outgoing<'_>) -> Result<Fetched, Error> {
        let url = request.url;
        let host = url.host_str().ok_or_else(|| Error::RedirectRefused {
            url: url.to_string(),
            reason: "no host",
        })?;
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host() {
            self.check_ip_literal(url)?;
        }
        if request.credentials.is_some() && url.scheme() != "https" {
            // Unreachable through the pipeline; kept as a last line of defence (rule 1).
            return Err(Error::CredentialsWithheld {
                url: url.to_string(),
            });
        }
        let _permit = self.limits.acquire_host(host).await;
        let build = || {
            let mut builder = self
                .client
                .request(request.method.clone(), self.wire_url(url));
            match request.body {
                Some(Body::Xml(xml)) => {
                    builder = builder
                        .header(CONTENT_TYPE, "text/xml; charset=utf-8")
                        .body(xml.to_owned());
                }
                Some(Body::Form(form)) => {
                    builder = builder
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(form.to_owned());
                }
                Some(Body::Wbxml(bytes)) => {
                    builder = builder
                        .header(CONTENT_TYPE, "application/vnd.ms-sync.wbxml")
                        .body(bytes.to_vec());
                }
                None => {}
            }
            for (name, value) in request.headers {
                builder = builder.header(*name, value);
            }
            if let Some(credentials) = request.credentials {
                builder = builder.basic_auth(
                    &credentials.username,
                    Some(credentials.password.expose_secret()),
                );
            }
            builder
        };
        // A pooled connection the server closed as we reused it fails before any answer; an
        // idempotent request is sent once more on a new connection (RFC 9110, 9.2.2), as
        // browsers do. Nothing else is retried.
        let mut response = match build().send().await {
            Err(err) if request.method.is_idempotent() && closed_before_answer(&err) => {
                build().send().await
            }
            sent => sent,
        }
        .map_err(|e| classify(url, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = self.config.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(Error::BodyTooLarge {
                url: url.to_string(),
                limit,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(url, e))? {
            if body.len() + chunk.len() > limit {
                return Err(Error::BodyTooLarge {
                    url: url.to_string(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }

    /// The limiters requests go through.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The HTTPS ports besides 443 that targets may name (the configured wire port counts).
    pub fn ports(&self) -> Ports {
        self.config.ports
    }

    fn wire_url(&self, url: &Url) -> Url {
        let mut wire = url.clone();
        if url.port().is_none() {
            let port = match url.scheme() {
                "https" => self.config.ports.https,
                _ => self.config.ports.http,
            };
            if Some(port) != url.port_or_known_default() {
                // Setting a port on an http(s) URL with a host cannot fail.
                let _ = wire.set_port(Some(port));
            }
        }
        wire
    }

    fn check_ip_literal(&self, url: &Url) -> Result<(), Error> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.into(),
            Some(url::Host::Ipv6(ip)) => ip.into(),
            _ => return Ok(()),
        };
        if self.dns.policy().permits(ip) {
            Ok(())
        } else {
            Err(Error::ForbiddenAddress {
                host: url.host_str().unwrap_or_default().to_owned(),
                ip,
            })
        }
    }
}

/// Maps a reqwest error to a step error by walking its source chain.
/// Whether an established connection was closed before any byte of the answer came (a stale
/// pooled connection), rather than a failed connect, a refusal, a timeout or a TLS failure.
fn closed_before_answer(err: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(client) = current.downcast_ref::<hyper_util::client::legacy::Error>()
            && client.is_connect()
        {
            return false;
        }
        if let Some(hyper) = current.downcast_ref::<hyper::Error>() {
            let closed = || {
                std::error::Error::source(hyper)
                    .and_then(|e| e.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| {
                        matches!(
                            io.kind(),
                            ErrorKind::UnexpectedEof
                                | ErrorKind::ConnectionReset
                                | ErrorKind::BrokenPipe
                        )
                    })
            };
            return hyper.is_incomplete_message() || closed();
        }
        source = current.source();
    }
    false
}

fn classify(url: &Url, err: reqwest::Error) -> Error {
    let url_text = url.to_string();
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    while let Some(current) = source {
        if let Some(ours) = current.downcast_ref::<Error>() {
            if let Error::ForbiddenAddress { host, ip } = ours {
                return Error::ForbiddenAddress {
                    host: host.clone(),
                    ip: *ip,
                };
            }
            if ours.code().is_dns() {
                return match ours {
                    Error::DnsNxDomain { name } => Error::DnsNxDomain { name: name.clone() },
                    Error::DnsNoRecords { name } => Error::DnsNoRecords { name: name.clone() },
                    Error::DnsServFail { name } => Error::DnsServFail { name: name.clone() },
                    Error::DnsTimeout { name } => Error::DnsTimeout { name: name.clone() },
                    _ => Error::Connect {
                        url: url_text,
                        source: Box::new(err),
                    },
                };
            }
        }
        if current.downcast_ref::<rustls::Error>().is_some() {
            return Error::Tls {
                url: url_text,
                source: Box::new(err),
            };
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Error::ConnectionRefused { url: url_text };
            }
            // `io::Error::source` skips the wrapped error itself; descend into it.
            if let Some(inner) = io.get_ref() {
                source = Some(inner as &(dyn StdError + 'static));
                continue;
            }
        }
        source = current.source();
    }
    if err.is_timeout() {
        Error::Timeout { url: url_text }
    } else if err.is_connect() {
        Error::Connect {
            url: url_text,
            source: Box::new(err),
        }
    } else {
        Error::Request {
            url: url_text,
            source: Box::new(err),
        }
    }
}

const DEFAULT_CONNECT: Duration = Duration::from_secs(3);
const DEFAULT_READ: Duration = Duration::from_secs(5);
const DEFAULT_REQUEST: Duration = Duration::from_secs(8);
const DEFAULT_MAX_BODY: usize = 256 * 1024;
