//! The discovery pipeline: from an email address to the Exchange host that serves it.
//!
//! # Steps
//! 1. The address is validated once, at the edge (`EmailAddress::parse`, rule 10). An explicit
//!    host skips everything below ([`Pipeline::explicit_host`]).
//! 2. `candidates.rs` lists the candidates in the protocol's preference order ([MS-OXDSCLI]
//!    3.1.5): POX POST to `https://DOMAIN/...`, to `https://autodiscover.DOMAIN/...`, the
//!    plain-HTTP redirect GET, and DNS SRV `_autodiscover._tcp.DOMAIN` (RFC 2782 order).
//! 3. All candidates start at once in a `JoinSet` (`steps.rs` runs each one: POSTs,
//!    redirects checked by `redirect.rs`, credentials only where `trust.rs` allows).
//! 4. The preference order decides: the most preferred candidate that has not failed for good
//!    wins as soon as it answers. Once a less preferred candidate has answered, the more
//!    preferred ones still pending get a short patience ([`PreferenceWait`], proportional to
//!    how long the answer took); then they are cancelled, so a black hole costs almost nothing.
//! 5. A `redirectAddr` answer restarts the race for the new address (same hop budget, same
//!    trail). The whole discovery runs under one deadline.
//!
//! Every attempt lands in the trail of the [`Report`], found or not.

mod address_policy;
mod candidates;
mod challenge;
mod dns;
mod error;
mod http;
mod limits;
pub mod pox;
mod race;
mod redirect;
pub mod srv;
mod steps;
mod trust;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::Semaphore;
use tracing::Instrument;

pub use address_policy::{AddressPolicy, is_non_public};
pub use candidates::{Candidate, Start, candidates_for};
pub use challenge::Challenge;
pub use dns::{Dns, DnsConfig};
pub use error::Error;
pub use http::{Http, HttpConfig, Ports, Timeouts};
pub use limits::{Limits, LimitsConfig};
pub use pox::Schema;
pub use redirect::{AUTODISCOVER_PATH, is_autodiscover_path};
pub use trust::{BUILT_IN_TRUSTED_HOSTS, Trust};

pub use self::race::PreferenceWait;
use self::race::{RaceEnd, summarise_failure};
use self::redirect::Hops;
use self::steps::RunState;
use crate::domain::{Credentials, Domain, EmailAddress};
use crate::report::{Evidence, Failure, Method, Report};

/// Settings of the discovery pipeline. Every field has a documented default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// DNS settings (name servers, query timeout).
    pub dns: DnsConfig,
    /// HTTP settings (timeouts, wire ports, body cap, extra roots).
    pub http: HttpConfig,
    /// Rate, concurrency and credential limits.
    pub limits: LimitsConfig,
    /// Networks that may be reached although not public. Default: none.
    pub allow_nets: Vec<IpNet>,
    /// Hosts trusted with credentials for every domain, besides the built-in Exchange Online
    /// hosts. Default: none.
    pub trusted_hosts: Vec<String>,
    /// HTTPS ports besides 443 that SRV records and redirects may name. Default: none.
    pub extra_https_ports: Vec<u16>,
    /// Redirect hops per discovery (URLs and addresses together). Default: 10.
    pub max_redirects: u32,
    /// The overall deadline of one discovery. Default: 20 s.
    pub deadline: Duration,
    /// The request schema. Default: Outlook.
    pub schema: Schema,
    /// How long preferred candidates may still answer once a less preferred one has.
    pub preference_wait: PreferenceWait,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            dns: DnsConfig::default(),
            http: HttpConfig::default(),
            limits: LimitsConfig::default(),
            allow_nets: Vec::new(),
            trusted_hosts: Vec::new(),
            extra_https_ports: Vec::new(),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            deadline: DEFAULT_DEADLINE,
            schema: Schema::default(),
            preference_wait: PreferenceWait::default(),
        }
    }
}

/// The discovery pipeline. Build one per process and share it: it holds the HTTP client, the
/// resolver and the limiters. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

/// What every candidate of every discovery shares.
pub(crate) struct Shared {
    config: Config,
    http: Http,
    dns: Dns,
    limits: Limits,
}

/// Builds a [`Pipeline`].
#[must_use]
pub struct PipelineBuilder {
    config: Config,
    limits: Option<Limits>,
}

impl PipelineBuilder {
    /// Shares rate limiters with other pipelines of the process.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Builds the resolver, the client and the limiters.
    pub fn build(self) -> Result<Pipeline, Error> {
        let policy = Arc::new(AddressPolicy::new(self.config.allow_nets.clone()));
        let dns = Dns::new(&self.config.dns, policy)?;
        let limits = self
            .limits
            .unwrap_or_else(|| Limits::new(self.config.limits.clone()));
        let http = Http::new(self.config.http.clone(), dns.clone(), limits.clone())?;
        Ok(Pipeline {
            shared: Arc::new(Shared {
                config: self.config,
                http,
                dns,
                limits,
            }),
        })
    }
}

impl Pipeline {
    /// Starts building a pipeline from `config`.
    pub fn builder(config: Config) -> PipelineBuilder {
        PipelineBuilder {
            config,
            limits: None,
        }
    }

    /// The report for a host the caller named: validated, no network traffic.
    pub fn explicit_host(address: &EmailAddress, host: &str) -> Result<Report, Error> {
        let host = Domain::parse(host)?;
        Ok(Report {
            email: address.to_string(),
            exchange_server_host: Some(host.as_str().to_owned()),
            method: Some(Method::Explicit),
            confirmed: true,
            evidence: Some(Evidence::Explicit),
            activesync_url: None,
            ews_url: None,
            redirected_email: None,
            ttl_seconds: None,
            trail: Vec::new(),
            seconds: 0.0,
            error: None,
        })
    }

    /// Discovers the Exchange host for `address`. Never fails as a call: a discovery that
    /// finds nothing returns a report with `error` set and the full trail.
    pub async fn discover(
        &self,
        address: &EmailAddress,
        credentials: Option<&Credentials>,
    ) -> Report {
        let span = tracing::info_span!("discover", domain = %address.domain());
        self.discover_inner(address, credentials)
            .instrument(span)
            .await
    }

    async fn discover_inner(
        &self,
        address: &EmailAddress,
        credentials: Option<&Credentials>,
    ) -> Report {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.shared.config.deadline;
        let hops = Arc::new(Mutex::new(Hops::new(self.shared.config.max_redirects)));
        let trail = Arc::new(Mutex::new(Vec::new()));
        let credential_attempts = Arc::new(AtomicU32::new(0));
        let credential_gate = Arc::new(Semaphore::new(1));
        hops.lock()
            .unwrap_or_else(|e| e.into_inner())
            .visit_address(&address.to_string());
        let mut current = address.clone();
        let mut credentials = credentials.cloned();
        let end = loop {
            let run = Arc::new(RunState {
                body: pox::request_body(self.shared.config.schema, &current.to_string()),
                trust: Mutex::new(Trust::new(
                    current.domain(),
                    &self.shared.config.trusted_hosts,
                )),
                address: current.clone(),
                credentials: credentials.clone(),
                hops: hops.clone(),
                trail: trail.clone(),
                credential_attempts: credential_attempts.clone(),
                credential_gate: credential_gate.clone(),
            });
            let raced = tokio::time::timeout_at(deadline, self.race(run, started)).await;
            match raced {
                Ok(RaceEnd::RedirectAddr {
                    address: next,
                    trusted,
                }) => {
                    let hop = hops
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .hop_to_address(&next.to_string());
                    if let Err(err) = hop {
                        break Err(Failure {
                            code: err.code(),
                            message: err.to_string(),
                        });
                    }
                    if !trusted && next.domain().registrable() != current.domain().registrable() {
                        // Rule 4: an untrusted answer cannot send our credentials elsewhere.
                        credentials = None;
                    }
                    current = next;
                }
                Ok(RaceEnd::Found { rank_method, found }) => break Ok((rank_method, found)),
                Ok(RaceEnd::AllFailed { codes }) => break Err(summarise_failure(&codes)),
                Err(_elapsed) => {
                    break Err(Failure {
                        code: "deadline",
                        message: Error::Deadline.to_string(),
                    });
                }
            }
        };
        let trail = std::mem::take(&mut *trail.lock().unwrap_or_else(|e| e.into_inner()));
        let seconds = started.elapsed().as_secs_f64();
        let redirected_email = (current != *address).then(|| current.to_string());
        match end {
            Ok((method, found)) => {
                let settings = found.settings.unwrap_or_default();
                let has_settings = found.evidence == Evidence::Settings;
                Report {
                    email: address.to_string(),
                    exchange_server_host: Some(found.host),
                    method: Some(method),
                    confirmed: found.confirmed,
                    evidence: Some(found.evidence),
                    activesync_url: settings.activesync_url,
                    ews_url: settings.ews_url,
                    redirected_email,
                    ttl_seconds: has_settings
                        .then(|| u64::from(settings.ttl_hours.unwrap_or(1)) * 3600),
                    trail,
                    seconds,
                    error: None,
                }
            }
            Err(failure) => Report {
                email: address.to_string(),
                exchange_server_host: None,
                method: None,
                confirmed: false,
                evidence: None,
                activesync_url: None,
                ews_url: None,
                redirected_email,
                ttl_seconds: None,
                trail,
                seconds,
                error: Some(failure),
            },
        }
    }
}

/// Discovers the Exchange host for `address` with a default pipeline: the system's name
/// servers, public roots, no private targets. Build a [`Pipeline`] once instead when
/// discovering more than one address.
///
/// ```no_run
/// # async fn run() -> Result<(), exdisco::discovery::Error> {
/// let report = exdisco::discover("alice@example.com", None).await?;
/// match &report.exchange_server_host {
///     Some(host) => println!("{host} via {:?}", report.method),
///     None => println!("not found: {:?}", report.error),
/// }
/// for attempt in &report.trail {
///     println!("{:?} {} {:?} {:?}", attempt.step, attempt.target, attempt.outcome, attempt.code);
/// }
/// # Ok(()) }
/// ```
pub async fn discover(address: &str, credentials: Option<&Credentials>) -> Result<Report, Error> {
    let address = EmailAddress::parse(address)?;
    let pipeline = Pipeline::builder(Config::default()).build()?;
    Ok(pipeline.discover(&address, credentials).await)
}

const DEFAULT_MAX_REDIRECTS: u32 = 10;
const DEFAULT_DEADLINE: Duration = Duration::from_secs(20);
