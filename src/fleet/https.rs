//! The fake Autodiscover fleet: one listener on 127.0.0.1 that speaks TLS (certificate chosen
//! by SNI) and plain HTTP on the same port, routing by host name. Hosts can answer through a
//! handler, hang forever (a black hole), or present a bad certificate. Every request is
//! recorded for assertions. Stops on drop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;

use super::tls::{CertKind, TestCa};

use std::sync::atomic::{AtomicU64, Ordering};

/// TLS handshakes completed by every fleet of the process.
static HANDSHAKES: AtomicU64 = AtomicU64::new(0);

/// TLS handshakes the fleets of this process have completed so far.
pub fn handshakes() -> u64 {
    HANDSHAKES.load(Ordering::Relaxed)
}

/// One request as the fleet saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub host: String,
    pub method: String,
    pub path: String,
    pub tls: bool,
    pub authorization: Option<String>,
    pub body: String,
    /// The query string (ActiveSync commands: `Cmd=...&DeviceId=...`).
    pub query: String,
    /// Every request header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as sent (WBXML is binary).
    pub raw_body: Vec<u8>,
}

impl Seen {
    /// The first value of request header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether this was an Autodiscover request (not an ActiveSync probe).
    pub fn is_autodiscover(&self) -> bool {
        self.path.to_ascii_lowercase().starts_with("/autodiscover/")
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    pub hang: bool,
    pub chunked: bool,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            hang: false,
            chunked: false,
        }
    }

    pub fn xml(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            ..Self::status(200)
        }
        .header("Content-Type", "text/xml; charset=utf-8")
    }

    /// A whole recorded answer (`HTTP/1.1 STATUS ...`, headers, a blank line, the body), as
    /// the `.http` files in `fixtures/` hold them. `Content-Length`, `Connection` and
    /// `Transfer-Encoding` are left to the server.
    pub fn recorded(raw: &[u8]) -> Self {
        // The head is text; the body is kept as recorded (WBXML is binary).
        let split = |separator: &[u8]| {
            raw.windows(separator.len())
                .position(|w| w == separator)
                .map(|at| (&raw[..at], &raw[at + separator.len()..]))
        };
        let (head, body) = split(b"\r\n\r\n")
            .or_else(|| split(b"\n\n"))
            .unwrap_or((raw, &[]));
        let head = String::from_utf8_lossy(head);
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .expect("a recorded answer starts with a status line");
        let mut reply = Self {
            body: body.to_vec(),
            ..Self::status(status)
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let skip = ["content-length", "connection", "transfer-encoding"];
            if !skip.contains(&name.trim().to_ascii_lowercase().as_str()) {
                reply = reply.header(name.trim(), value.trim());
            }
        }
        reply
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Self::status(status).header("Location", location)
    }

    pub fn hang() -> Self {
        Self {
            hang: true,
            ..Self::status(200)
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

#[derive(Clone)]
struct HostSpec {
    handler: Handler,
    black_hole: bool,
}

struct State {
    hosts: HashMap<String, HostSpec>,
    suffixes: Vec<(String, HostSpec)>,
    certs: HashMap<String, Arc<CertifiedKey>>,
    seen: Vec<Seen>,
    recording: bool,
    requests: u64,
    ca: Arc<TestCa>,
}

impl State {
    /// The certificate of `host`, made on first use.
    fn certificate(&mut self, host: &str) -> Arc<CertifiedKey> {
        if let Some(key) = self.certs.get(host) {
            return key.clone();
        }
        let key = self.ca.certified_key(host, CertKind::Valid);
        self.certs.insert(host.to_owned(), key.clone());
        key
    }

    fn spec(&self, host: &str) -> Option<HostSpec> {
        self.hosts.get(host).cloned().or_else(|| {
            self.suffixes
                .iter()
                .find(|(suffix, _)| host.ends_with(suffix.as_str()))
                .map(|(_, spec)| spec.clone())
        })
    }
}

/// The fleet.
pub struct Fleet {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    ca: Arc<TestCa>,
    task: JoinHandle<()>,
}

impl Fleet {
    pub async fn start(ca: Arc<TestCa>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("fleet setup");
        let addr = listener.local_addr().expect("fleet setup");
        let state = Arc::new(Mutex::new(State {
            hosts: HashMap::new(),
            suffixes: Vec::new(),
            certs: HashMap::new(),
            seen: Vec::new(),
            recording: true,
            requests: 0,
            ca: ca.clone(),
        }));
        let accept_state = state.clone();
        // One server configuration for every connection; certificates come by SNI. No session
        // resumption: every handshake is a full one, in the tests and in the bench's limit.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("fleet setup")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SniResolver {
                state: state.clone(),
            }));
        tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        tls.send_tls13_tickets = 0;
        let tls = Arc::new(tls);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                // As real servers do: without it, an answer written in two pieces waits for
                // the client's delayed ACK (Nagle), and a request now and then takes 20 ms more.
                let _ = stream.set_nodelay(true);
                let (state, tls) = (accept_state.clone(), tls.clone());
                tokio::spawn(async move { serve_connection(stream, state, tls).await });
            }
        });
        Self {
            addr,
            state,
            ca,
            task,
        }
    }

    /// `host` answers through `handler` with a valid certificate.
    pub fn host(
        &self,
        host: &str,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> &Self {
        self.host_with_cert(host, CertKind::Valid, handler)
    }

    /// `host` answers through `handler` with a certificate of `kind`.
    pub fn host_with_cert(
        &self,
        host: &str,
        cert: CertKind,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> &Self {
        let key = self.ca.certified_key(host, cert);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.certs.insert(host.to_owned(), key);
        state.hosts.insert(
            host.to_owned(),
            HostSpec {
                handler: Arc::new(handler),
                black_hole: false,
            },
        );
        self
    }

    /// Every host under `suffix` answers through `handler`, with a valid certificate made on
    /// first use.
    pub fn hosts_under(
        &self,
        suffix: &str,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> &Self {
        let spec = HostSpec {
            handler: Arc::new(handler),
            black_hole: false,
        };
        self.state
            .lock()
            .expect("fleet setup")
            .suffixes
            .push((format!(".{suffix}"), spec));
        self
    }

    /// Makes the certificates of `hosts` now rather than on their first handshake, as real
    /// servers have theirs before anyone connects (for benchmarks: minting is not serving).
    pub fn prepare_certificates(&self, hosts: impl IntoIterator<Item = String>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for host in hosts {
            state.certificate(&host.to_ascii_lowercase());
        }
    }

    /// `host` accepts TCP and never answers, on TLS and plain HTTP alike.
    pub fn black_hole(&self, host: &str) -> &Self {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let handler: Handler = Arc::new(|_| Reply::hang());
        state.hosts.insert(
            host.to_owned(),
            HostSpec {
                handler,
                black_hole: true,
            },
        );
        self
    }

    /// Whether requests are kept for [`Fleet::seen`] (on by default; off for benchmarks).
    pub fn set_recording(&self, on: bool) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recording = on;
    }

    /// Requests answered so far, recorded or not.
    pub fn requests(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .clone()
    }

    /// Autodiscover requests seen for `host`.
    pub fn autodiscover_seen_by(&self, host: &str) -> Vec<Seen> {
        self.seen_by(host)
            .into_iter()
            .filter(Seen::is_autodiscover)
            .collect()
    }

    /// Requests seen for `host`.
    pub fn seen_by(&self, host: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.host == host).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct SniResolver {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.certs.contains_key(&name) {
            state.spec(&name)?;
        }
        Some(state.certificate(&name))
    }
}

async fn serve_connection(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    tls: Arc<rustls::ServerConfig>,
) {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.unwrap_or(0) == 0 {
        return;
    }
    if first[0] != 0x16 {
        serve_http(TokioIo::new(stream), false, state).await;
        return;
    }
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let Ok(start) = acceptor.await else { return };
    let sni = start
        .client_hello()
        .server_name()
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let black_hole = state
        .lock()
        .expect("fleet setup")
        .hosts
        .get(&sni)
        .is_some_and(|h| h.black_hole);
    if black_hole {
        // Accept TCP, never finish the handshake.
        std::future::pending::<()>().await;
    }
    let Ok(tls) = start.into_stream(tls).await else {
        return;
    };
    HANDSHAKES.fetch_add(1, Ordering::Relaxed);
    serve_http(TokioIo::new(tls), true, state).await;
}

async fn serve_http<IO>(io: TokioIo<IO>, tls: bool, state: Arc<Mutex<State>>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(respond(request, tls, state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

async fn respond(
    request: Request<Incoming>,
    tls: bool,
    state: Arc<Mutex<State>>,
) -> Response<ReplyBody> {
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase())
        .unwrap_or_default();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let authorization = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        host: host.clone(),
        method,
        path,
        tls,
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
        query,
        headers,
        raw_body: body.to_vec(),
    };
    let handler = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests += 1;
        if state.recording && state.seen.len() < 200_000 {
            state.seen.push(seen.clone());
        }
        state.spec(&host).map(|h| h.handler)
    };
    let reply = match handler {
        Some(handler) => handler(&seen),
        None => Reply::status(404),
    };
    if reply.hang {
        std::future::pending::<()>().await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let body = ReplyBody {
        chunks: split(reply.body, reply.chunked),
        known_length: !reply.chunked,
    };
    response.body(body).expect("fleet setup")
}

fn split(body: Vec<u8>, chunked: bool) -> Vec<Bytes> {
    if !chunked {
        return vec![Bytes::from(body)];
    }
    body.chunks(16 * 1024).map(Bytes::copy_from_slice).collect()
}

/// A body served whole (with a length) or in chunks (without one).
pub struct ReplyBody {
    chunks: Vec<Bytes>,
    known_length: bool,
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        let chunk = self.chunks.remove(0);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.known_length {
            hyper::body::SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            hyper::body::SizeHint::default()
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }
}
