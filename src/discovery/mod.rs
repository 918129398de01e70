//! The discovery pipeline: from an email address to the Exchange host that serves it.
//!
//! # Steps
//! 1. The address is validated once, at the edge (`EmailAddress::parse`, rule 10). An explicit
//!    host skips everything below ([`Pipeline::known_host`]).
//! 2. `candidates.rs` lists the candidates in the protocol's preference order ([MS-OXDSCLI]
//!    3.1.5): POX POST to `https://DOMAIN/...`, to `https://autodiscover.DOMAIN/...`, the
//!    plain-HTTP redirect GET, and DNS SRV `_autodiscover._tcp.DOMAIN` (RFC 2782 order).
//! 3. The candidates run concurrently in a `JoinSet`, in three waves: the two POX URLs at
//!    once; the plain-HTTP redirect and SRV when both have failed or after
//!    `second_wave_delay`; Autodiscover v2 and the ActiveSync host probes when every
//!    Autodiscover candidate has failed or after `fallback_delay` (`steps.rs` runs each one:
//!    POSTs, redirects checked by `redirect.rs`, credentials only where `trust.rs` allows).
//! 4. The preference order decides: the most preferred candidate that has not failed for good
//!    wins as soon as it answers. Once a less preferred candidate has answered, the more
//!    preferred ones still pending get a short patience ([`PreferenceWait`], proportional to
//!    how long the answer took); then they are cancelled, so a black hole costs almost nothing.
//! 5. A `redirectAddr` answer restarts the race for the new address (same hop budget, same
//!    trail). The whole discovery runs under one deadline.
//!
//! Every attempt lands in the trail of the [`Report`], found or not.

pub mod activesync;
mod address_policy;
mod candidates;
mod challenge;
mod diagnosis;
mod dns;
mod error;
mod http;
mod limits;
mod memo;
mod online;
pub mod pox;
mod race;
mod redirect;
mod settings;
pub mod srv;
mod steps;
mod trust;
mod verify;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::{OnceCell, Semaphore};
use tracing::Instrument;
use url::Url;

// What callers name: the configuration's types, the error, the fetch the flow reuses.
pub use dns::DnsConfig;
pub use error::Error;
pub use http::{Body, Fetched, Http, HttpConfig, Outgoing, Ports, Timeouts};
pub use limits::{Budget, Limits, LimitsConfig};
pub use pox::Schema;
pub use race::PreferenceWait;
pub use settings::{Settings, read_certificates};

use self::address_policy::AddressPolicy;
use self::dns::Dns;
pub use self::online::DEFAULT_V2_BASE;
use self::trust::Trust;

use self::activesync::shared_probes::SharedProbes;
use self::activesync::{CredentialUse, Probe};
use self::diagnosis::Unfound;
use self::memo::Memo;
use self::race::RaceEnd;
use self::redirect::Hops;
use self::steps::{Findings, Found, RunState, Steps};
use crate::code::Code;
use crate::domain::{Credentials, Domain, EmailAddress, registrable_domain};
use crate::report::{Attempt, Evidence, Failure, Method, Provider, Report};

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
    /// The Autodiscover v2 base URL of Exchange Online. Default: [`DEFAULT_V2_BASE`].
    pub exchange_online_v2_base: String,
    /// Probe the found host's ActiveSync endpoint (anonymously) to confirm it. Default: true.
    pub confirm_activesync: bool,
    /// How long the second-wave candidates (the plain-HTTP redirect and the SRV lookup) wait
    /// for the two POX URLs before they start anyway; they start at once when both have
    /// failed. Default: 200 ms.
    pub second_wave_delay: Duration,
    /// How long the fallback candidates (Autodiscover v2 and the ActiveSync host probes) wait
    /// for Autodiscover to answer before they start anyway; they start at once when every
    /// Autodiscover candidate has failed. Default: 500 ms.
    pub fallback_delay: Duration,
    /// Run the candidates one after another, as most clients do, instead of at once. Only for
    /// measuring what concurrency buys (`exdisco bench`). Default: false.
    pub sequential: bool,
    /// How long a host's answers to anonymous requests are shared with the pipeline's other
    /// discoveries: the ActiveSync probe of a found host (Exchange Online's, for every
    /// tenant) and a 401 to an anonymous Autodiscover POST (a hoster's, for every customer
    /// domain). Zero: every discovery asks. Default: 10 min.
    pub shared_answer_ttl: Duration,
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
            exchange_online_v2_base: DEFAULT_V2_BASE.to_owned(),
            confirm_activesync: true,
            sequential: false,
            shared_answer_ttl: Duration::from_secs(600),
            second_wave_delay: Duration::from_millis(200),
            fallback_delay: Duration::from_millis(500),
        }
    }
}

/// The discovery pipeline. Build one per process and share it: it holds the HTTP client, the
/// resolver and the limiters. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

/// Autodiscover URLs whose anonymous 401 is remembered at most.
const CHALLENGES_HELD: usize = 4096;

/// What every candidate of every discovery shares.
pub(crate) struct Shared {
    config: Config,
    http: Http,
    dns: Dns,
    limits: Limits,
    probes: SharedProbes,
    challenges: Memo<()>,
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
                probes: SharedProbes::new(self.config.shared_answer_ttl),
                challenges: Memo::new(self.config.shared_answer_ttl, CHALLENGES_HELD),
                config: self.config,
                http,
                dns,
                limits,
            }),
        })
    }
}

impl Pipeline {
    /// A pipeline from the settings the configuration file and the command line's flags
    /// write ([`Settings`], `[discovery]`): the one type the file, the flags and the library
    /// share. [`Config`] is what they resolve to (the CA files read), for callers that tune
    /// what the file does not name (timeouts of each step, the waves' delays).
    pub fn from_settings(settings: &Settings) -> Result<Self, Error> {
        let config = settings.pipeline_config().map_err(|err| Error::Setup {
            what: "discovery settings",
            reason: err.to_string(),
        })?;
        Self::builder(config).build()
    }

    /// Starts building a pipeline from `config`.
    pub fn builder(config: Config) -> PipelineBuilder {
        PipelineBuilder {
            config,
            limits: None,
        }
    }

    /// The report for a host already known for `address`, without discovery: named by the
    /// caller (`exchange_server_host`, `--host`) or remembered from an earlier discovery.
    /// With `credentials`, they are checked there ([`Pipeline::verify`]). Fails only when the
    /// host is not a valid host name.
    pub async fn known_host(
        &self,
        address: &EmailAddress,
        known: KnownHost,
        credentials: Option<&Credentials>,
    ) -> Result<Report, Error> {
        self.known_host_with_consent(address, known, credentials, &[])
            .await
    }

    /// [`Pipeline::known_host`] with the caller's consent for the hosts in `consented`: a
    /// `451` move to one of them takes the credentials along.
    pub async fn known_host_with_consent(
        &self,
        address: &EmailAddress,
        known: KnownHost,
        credentials: Option<&Credentials>,
        consented: &[String],
    ) -> Result<Report, Error> {
        let host = Domain::parse(&known.host)?;
        let mut report = Report::empty(address.to_string());
        report.provider = Some(
            known
                .provider
                .unwrap_or_else(|| online::provider_of(host.as_str(), None)),
        );
        report.exchange_server_host = Some(host.as_str().to_owned());
        report.method = Some(known.method);
        report.activesync_url = known.activesync_url.filter(|u| !u.is_empty());
        report.confirmed = true;
        report.evidence = Some(Evidence::Explicit);
        if let Some(credentials) = credentials {
            self.verify_with_consent(&mut report, credentials, consented)
                .await;
        }
        Ok(report)
    }

    /// Discovers the Exchange host for `address`. Never fails as a call: a discovery that
    /// finds nothing returns a report with `error` set and the full trail. The found host's
    /// ActiveSync endpoint is probed anonymously to confirm it (`Config::confirm_activesync`).
    pub async fn discover(
        &self,
        address: &EmailAddress,
        credentials: Option<&Credentials>,
    ) -> Report {
        self.discover_with_consent(address, credentials, &[]).await
    }

    /// [`Pipeline::discover`] with the caller's consent: the hosts in `consented` (outside the
    /// domain, named by an earlier report's `needs_consent`) may receive the credentials in
    /// this discovery, as the operator's trusted hosts do in every one.
    pub async fn discover_with_consent(
        &self,
        address: &EmailAddress,
        credentials: Option<&Credentials>,
        consented: &[String],
    ) -> Report {
        let confirm = self.shared.config.confirm_activesync;
        let span = tracing::info_span!("discover", domain = %address.domain());
        self.discover_inner(address, credentials, consented, confirm)
            .instrument(span)
            .await
    }

    /// Discovers the host, then checks the credentials there ([`Pipeline::verify`]).
    pub async fn discover_and_verify(
        &self,
        address: &EmailAddress,
        credentials: &Credentials,
    ) -> Report {
        self.discover_and_verify_with_consent(address, credentials, &[])
            .await
    }

    /// [`Pipeline::discover_and_verify`] with the caller's consent for the hosts in
    /// `consented` (see [`Pipeline::discover_with_consent`]).
    pub async fn discover_and_verify_with_consent(
        &self,
        address: &EmailAddress,
        credentials: &Credentials,
        consented: &[String],
    ) -> Report {
        let span = tracing::info_span!("discover", domain = %address.domain());
        let mut report = self
            .discover_inner(address, Some(credentials), consented, false)
            .instrument(span)
            .await;
        self.verify_with_consent(&mut report, credentials, consented)
            .await;
        report
    }

    /// The HTTP client, for other calls that must follow the same rules (the Microsoft token
    /// endpoint).
    pub fn http(&self) -> &Http {
        &self.shared.http
    }

    /// Probes one ActiveSync URL, as `exdisco probe` does: the operator named it, so it is
    /// trusted with the credentials. Returns the classified probe and its trail.
    pub async fn probe(
        &self,
        url: &Url,
        credentials: Option<&Credentials>,
    ) -> (Probe, Vec<Attempt>) {
        // The operator named this host; a 451 keeps the credentials inside its registrable
        // domain (rule 4).
        let named = url.host_str().unwrap_or_default().to_owned();
        let trusted = move |host: &str| {
            host == named
                || registrable_domain(host).is_some_and(|r| Some(r) == registrable_domain(&named))
        };
        let usage = match credentials {
            Some(credentials) => CredentialUse::Basic {
                credentials,
                trusted: &trusted,
            },
            None => CredentialUse::Anonymous,
        };
        let mut trail = Vec::new();
        let ports = &self.shared.config.extra_https_ports;
        let probe = activesync::probe_activesync(&self.shared.http, url, usage, ports, |request| {
            trail.push(activesync::attempt_for(Method::Explicit, request))
        })
        .await;
        (probe, trail)
    }

    async fn discover_inner(
        &self,
        address: &EmailAddress,
        credentials: Option<&Credentials>,
        consented: &[String],
        confirm: bool,
    ) -> Report {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.shared.config.deadline;
        let context = RunContext::new(&self.shared.config, consented);
        let had_credentials = credentials.is_some();
        context.hops().visit_address(&address.to_string());
        let mut current = address.clone();
        let mut credentials = credentials.cloned();
        let end = loop {
            let steps = self.steps(&context, &current, credentials.clone(), Method::Explicit);
            let raced =
                tokio::time::timeout_at(deadline, self.race(steps.run.clone(), started)).await;
            match raced {
                Ok(RaceEnd::RedirectAddr {
                    address: next,
                    trusted,
                }) => {
                    if let Err(err) = context.hops().hop_to_address(&next.to_string()) {
                        break Err(Unfound::Ended(Failure {
                            code: err.code(),
                            message: err.to_string(),
                        }));
                    }
                    if !trusted && next.domain().registrable() != current.domain().registrable() {
                        // Rule 4: an untrusted answer cannot send our credentials elsewhere.
                        credentials = None;
                    }
                    current = next;
                }
                Ok(RaceEnd::Found { rank_method, found }) => {
                    let refused = context.findings().credentials_refused;
                    if had_credentials && refused && !found.answered_password {
                        // A trusted Autodiscover endpoint refused the password: a host named
                        // anonymously (a probe, Autodiscover v2) does not make it right.
                        break Err(Unfound::Ended(Failure {
                            code: Code::AuthFailed,
                            message: format!(
                                "the domain's Autodiscover server refused the credentials \
                                 ({} was named without them)",
                                found.host
                            ),
                        }));
                    }
                    break Ok((rank_method, found, steps));
                }
                Ok(RaceEnd::AllFailed { codes }) => break Err(Unfound::Race(codes)),
                Err(_elapsed) => {
                    break Err(Unfound::Ended(Failure {
                        code: Code::Deadline,
                        message: Error::Deadline.to_string(),
                    }));
                }
            }
        };
        let mut report = Report::empty(address.to_string());
        report.redirected_email = (current != *address).then(|| current.to_string());
        let mut unfound = None;
        match end {
            Ok((method, mut found, steps)) => {
                if confirm && found.probe.is_none() {
                    let steps = Steps { method, ..steps };
                    found.probe = self.confirm(&steps, &found, deadline).await;
                }
                let settings = found.settings.unwrap_or_default();
                report.provider = Some(online::provider_of(&found.host, Some(&settings)));
                if found.evidence == Evidence::Settings {
                    report.ttl_seconds = Some(u64::from(settings.ttl_hours.unwrap_or(1)) * 3600);
                }
                report.exchange_server_host = Some(found.host);
                report.method = Some(method);
                report.confirmed = found.confirmed;
                report.evidence = Some(found.evidence);
                report.activesync_url = settings.activesync_url.or_else(|| {
                    let probe = found
                        .probe
                        .as_ref()
                        .filter(|p| p.outcome.shows_endpoint())?;
                    Some(probe.url.clone())
                });
                report.ews_url = settings.ews_url;
                report.activesync = found.probe;
            }
            Err(end) => unfound = Some(end),
        }
        report.trail = context.take_trail();
        {
            let findings = context.findings();
            if let Some(unfound) = unfound {
                let (trail, domain) = (&report.trail, current.domain());
                let failure =
                    diagnosis::headline(unfound, &findings, had_credentials, trail, domain);
                report.error = Some(failure);
            }
            report.autodiscover_endpoint = findings.endpoint.as_ref().map(|(_, e)| e.clone());
            if report.exchange_server_host.is_none()
                && let Some((_, servers)) = &findings.mail_servers
            {
                report.mail_servers = servers.clone();
            }
            report.needs_consent = findings.consent.clone();
        }
        if report.needs_consent.as_ref().map(|c| &c.host) == report.exchange_server_host.as_ref() {
            // A host that needs consent is never confirmed.
            report.confirmed = false;
        }
        report.seconds = started.elapsed().as_secs_f64();
        diagnosis::prescribe(&mut report, current.domain());
        report
    }

    /// Probes the found host's ActiveSync endpoint anonymously, within the deadline.
    async fn confirm(
        &self,
        steps: &Steps,
        found: &Found,
        deadline: tokio::time::Instant,
    ) -> Option<Probe> {
        let url = found
            .settings
            .as_ref()
            .and_then(|s| s.activesync_url.as_deref())
            .and_then(|u| Url::parse(u).ok())
            .filter(|u| u.scheme() == "https")
            .or_else(|| activesync::activesync_url(&found.host))?;
        tokio::time::timeout_at(deadline, steps.probe_shared(&url))
            .await
            .ok()
    }

    fn steps(
        &self,
        context: &RunContext,
        address: &EmailAddress,
        credentials: Option<Credentials>,
        method: Method,
    ) -> Steps {
        let config = &self.shared.config;
        let run = Arc::new(RunState {
            schema: config.schema,
            body: pox::request_body(config.schema, &address.to_string()),
            other_body: std::sync::OnceLock::new(),
            trust: Trust::new(address.domain(), &config.trusted_hosts, &context.consented),
            address: address.clone(),
            credentials,
            hops: context.hops.clone(),
            trail: context.trail.clone(),
            credential_attempts: context.credential_attempts.clone(),
            credential_gate: context.credential_gate.clone(),
            mx: OnceCell::new(),
            findings: context.findings.clone(),
            started: context.started,
        });
        Steps {
            shared: self.shared.clone(),
            run,
            method,
        }
    }
}

/// A host known for an address before any discovery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KnownHost {
    /// The host name.
    pub host: String,
    /// How it was found: [`Method::Explicit`] when the caller names it.
    pub method: Method,
    /// Its ActiveSync URL, when known.
    pub activesync_url: Option<String>,
    /// Its provider, when known (otherwise told by its name).
    pub provider: Option<Provider>,
}

impl KnownHost {
    /// A host the caller names.
    pub fn explicit(host: &str) -> Self {
        Self {
            host: host.trim().to_owned(),
            method: Method::Explicit,
            activesync_url: None,
            provider: None,
        }
    }

    /// A host an earlier discovery found by `method`.
    pub fn remembered(
        host: &str,
        method: Method,
        activesync_url: Option<String>,
        provider: Provider,
    ) -> Self {
        Self {
            host: host.to_owned(),
            method,
            activesync_url,
            provider: Some(provider),
        }
    }
}

/// What one discovery shares across its address redirects: the hop budget, the trail, the
/// credential budget, the caller's consent and what was learned besides the answer.
struct RunContext {
    hops: Arc<Mutex<Hops>>,
    trail: Arc<Mutex<Vec<Attempt>>>,
    credential_attempts: Arc<AtomicU32>,
    credential_gate: Arc<Semaphore>,
    consented: Vec<String>,
    findings: Arc<Mutex<Findings>>,
    started: Instant,
}

impl RunContext {
    fn new(config: &Config, consented: &[String]) -> Self {
        Self {
            started: Instant::now(),
            hops: Arc::new(Mutex::new(Hops::new(config.max_redirects))),
            trail: Arc::new(Mutex::new(Vec::new())),
            credential_attempts: Arc::new(AtomicU32::new(0)),
            credential_gate: Arc::new(Semaphore::new(1)),
            consented: consented.to_vec(),
            findings: Arc::new(Mutex::new(Findings::default())),
        }
    }

    fn findings(&self) -> std::sync::MutexGuard<'_, Findings> {
        self.findings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hops(&self) -> std::sync::MutexGuard<'_, Hops> {
        self.hops.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_trail(&self) -> Vec<Attempt> {
        std::mem::take(&mut *self.trail.lock().unwrap_or_else(|e| e.into_inner()))
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
