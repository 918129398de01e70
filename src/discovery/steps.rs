//! The steps of one candidate, each recorded in the trail as it ends, and the state they share:
//! what a candidate came to, how a URL was reached (its [`Origin`]), what a discovery learned
//! besides its answer ([`Findings`]), and sending and recording one request. The steps live
//! with their protocol: the POX POST in `pox/step.rs`, the plain-HTTP redirect in
//! `redirect.rs`, SRV in `srv.rs`, Autodiscover v2 in `online.rs`, the ActiveSync host probes
//! in `activesync/step.rs`.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::Method as HttpMethod;
use reqwest::header::{HeaderMap, LOCATION};
use tokio::sync::{OnceCell, Semaphore};
use tracing::{Instrument, debug};
use url::Url;

use super::Shared;
use super::activesync::Probe;
use super::candidates::{Candidate, Start};
use super::error::Error;
use super::http::{Body, Fetched, Outgoing};
use super::pox::{self, Schema, Settings};
use super::redirect::{self, Hops, TargetRules};
use super::trust::Trust;
use crate::code::Code;
use crate::domain::{Credentials, EmailAddress};
use crate::report::{
    Attempt, AutodiscoverEndpoint, ConsentNeeded, Evidence, Method, Outcome, Step,
};

/// What one candidate came to.
#[derive(Debug)]
pub enum CandidateOutcome {
    /// A host was found.
    Found(Box<Found>),
    /// The answer redirected to another address: the discovery restarts with it.
    RedirectAddr {
        /// The new address.
        address: EmailAddress,
        /// Whether a trusted host sent the redirect (rule 4).
        trusted: bool,
    },
    /// An Autodiscover endpoint answered without naming a host (a 401 it cannot pass): it
    /// counts as a failure in the race, so that it cancels nothing, and is kept for the report.
    Endpoint(AutodiscoverEndpoint),
    /// The candidate failed for good.
    Failed {
        /// The code of the last failure.
        code: Code,
    },
}

impl CandidateOutcome {
    /// Whether the candidate is over without a host or a new address.
    pub fn is_failure(&self) -> bool {
        self.failure_code().is_some()
    }

    /// The code of a failed candidate: its last failure's, or `auth_required` for an
    /// endpoint that named no host.
    pub fn failure_code(&self) -> Option<Code> {
        match self {
            Self::Failed { code } => Some(*code),
            Self::Endpoint(_) => Some(Code::AuthRequired),
            Self::Found(_) | Self::RedirectAddr { .. } => None,
        }
    }
}

/// How a POX URL was reached: where its trust comes from and what to say when it would need
/// consent.
#[derive(Debug, Clone)]
pub(super) enum Origin {
    /// One of the domain's own candidate URLs.
    Start,
    /// A redirect (`reason` names which kind) from the URL `from`.
    Redirect {
        /// The URL that redirected.
        from: String,
        /// The consent reason code.
        reason: &'static str,
    },
    /// An SRV record of the name `from`.
    Srv {
        /// The SRV name.
        from: String,
    },
}

impl Origin {
    /// What to say when the host reached this way would need consent.
    pub(super) fn consent(&self, host: &str) -> Option<ConsentNeeded> {
        let (reason, from) = match self {
            Self::Start => return None,
            Self::Redirect { from, reason } => (*reason, from),
            Self::Srv { from } => ("srv_target_outside_domain", from),
        };
        Some(ConsentNeeded {
            host: host.to_owned(),
            reason,
            from: from.clone(),
        })
    }
}

/// What one discovery learned besides its answer, shared across address redirects.
#[derive(Debug, Default)]
pub struct Findings {
    /// The most preferred Autodiscover endpoint that named no host, with its method.
    pub endpoint: Option<(Method, AutodiscoverEndpoint)>,
    /// The first host that would need consent.
    pub consent: Option<ConsentNeeded>,
    /// A trusted Autodiscover endpoint refused the credentials (401 to them).
    pub credentials_refused: bool,
    /// The IMAP, POP3 and SMTP servers the domain's own Autodiscover named instead of an
    /// Exchange server (the first such answer).
    pub mail_servers: Option<(String, Vec<crate::report::MailServer>)>,
}

/// A host found by one candidate.
#[derive(Debug, Clone)]
pub struct Found {
    /// The host.
    pub host: String,
    /// How strong the evidence is.
    pub evidence: Evidence,
    /// Whether the answering host was trusted.
    pub confirmed: bool,
    /// The settings, for a full answer.
    pub settings: Option<Settings>,
    /// The ActiveSync probe that found the host, for the ActiveSync method.
    pub probe: Option<Probe>,
    /// Whether the answer came to our password (a POX answer after the challenge): only such
    /// an answer can stand against a trusted endpoint's refusal of the password.
    pub answered_password: bool,
}

/// The state of one discovery run for one address, shared by its candidates.
pub struct RunState {
    /// The address being discovered.
    pub address: EmailAddress,
    /// The configured request schema.
    pub schema: Schema,
    /// The request body in the configured schema.
    pub body: String,
    /// The body in the other schema, made when an answer asks for it (see `follow_pox`).
    pub other_body: std::sync::OnceLock<String>,
    /// Credentials, if any.
    pub credentials: Option<Credentials>,
    /// The trust set (fixed for the run: no redirect extends it).
    pub trust: Trust,
    /// Hops and visited sets, shared across address redirects.
    pub hops: Arc<Mutex<Hops>>,
    /// The trail, shared across address redirects.
    pub trail: Arc<Mutex<Vec<Attempt>>>,
    /// Credentialed attempts spent, shared across address redirects.
    pub credential_attempts: Arc<AtomicU32>,
    /// Serialises credentialed attempts.
    pub credential_gate: Arc<Semaphore>,
    /// The domain's MX hosts, looked up once per run by whichever step needs them first.
    pub mx: OnceCell<Result<Vec<String>, Code>>,
    /// What the discovery learned besides its answer, shared across address redirects.
    pub findings: Arc<Mutex<Findings>>,
    /// When the discovery started: attempts are placed on its timeline.
    pub started: Instant,
}

impl RunState {
    pub(super) fn record(&self, mut attempt: Attempt) {
        let now = self.started.elapsed().as_millis() as u64;
        attempt.start_ms = now.saturating_sub(attempt.ms);
        debug!(
            step = ?attempt.step,
            target = %attempt.target,
            outcome = ?attempt.outcome,
            code = attempt.code.map_or("", Code::as_str),
            ms = attempt.ms,
            "attempt finished"
        );
        self.trail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(attempt);
    }

    /// The request body in `schema`.
    pub(super) fn body(&self, schema: Schema) -> &str {
        if schema == self.schema {
            return &self.body;
        }
        self.other_body
            .get_or_init(|| pox::request_body(schema, &self.address.to_string()))
    }

    pub(super) fn is_trusted(&self, host: &str) -> bool {
        self.trust.is_trusted(host)
    }

    pub(super) fn hops(&self) -> std::sync::MutexGuard<'_, Hops> {
        self.hops.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn findings(&self) -> std::sync::MutexGuard<'_, Findings> {
        self.findings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a host that would need consent (the first one is reported).
    pub(super) fn needs_consent(&self, consent: ConsentNeeded) {
        let mut findings = self.findings();
        if findings.consent.is_none() {
            findings.consent = Some(consent);
        }
    }
}

impl Steps {
    /// The domain's MX hosts, looked up once per run and recorded in the trail.
    pub(super) async fn mx_hosts(&self) -> Result<Vec<String>, Code> {
        self.run
            .mx
            .get_or_init(|| async {
                let domain = self.run.address.domain().as_str().to_owned();
                let started = Instant::now();
                match self.shared.dns.lookup_mx(&domain).await {
                    Ok(hosts) => {
                        let detail = Some(hosts.join(" "));
                        self.record_attempt(
                            Step::Mx,
                            &domain,
                            started,
                            Outcome::Answered,
                            None,
                            detail,
                            false,
                        );
                        Ok(hosts)
                    }
                    Err(err) => {
                        self.record_attempt(
                            Step::Mx,
                            &domain,
                            started,
                            Outcome::Failed,
                            Some(&err),
                            None,
                            false,
                        );
                        Err(err.code())
                    }
                }
            })
            .await
            .clone()
    }
}

/// Runs one candidate to its end.
pub async fn run_candidate(
    shared: Arc<Shared>,
    run: Arc<RunState>,
    candidate: Candidate,
) -> CandidateOutcome {
    let span = tracing::debug_span!("step", kind = candidate.method.as_str(), target = %candidate.target());
    let steps = Steps {
        shared,
        run,
        method: candidate.method,
    };
    async move {
        let outcome = match candidate.start {
            Start::Pox(url) => steps.follow_pox(url, Origin::Start).await,
            Start::HttpRedirect(url) => steps.http_redirect(url).await,
            Start::Srv(name) => steps.srv(&name).await,
            Start::AutodiscoverV2 => steps.autodiscover_v2().await,
            Start::ActiveSync(hosts) => steps.activesync_hosts(hosts).await,
        };
        if let CandidateOutcome::Endpoint(endpoint) = &outcome {
            let mut findings = steps.run.findings();
            if findings
                .endpoint
                .as_ref()
                .is_none_or(|(method, _)| steps.method < *method)
            {
                findings.endpoint = Some((steps.method, endpoint.clone()));
            }
        }
        outcome
    }
    .instrument(span)
    .await
}

/// The steps of one candidate: what they share and which method they serve.
#[derive(Clone)]
pub(super) struct Steps {
    pub(super) shared: Arc<Shared>,
    pub(super) run: Arc<RunState>,
    pub(super) method: Method,
}

impl Steps {
    pub(super) fn hop(&self, from: &Url, location: &str) -> Result<Url, Error> {
        let rules = TargetRules {
            extra_https_ports: &self.shared.config.extra_https_ports,
            autodiscover_path: true,
        };
        let target = redirect::check_target(from, location, rules)?;
        self.run.hops().hop_to_url(&target)?;
        Ok(target)
    }

    /// Sends one request without a body and records it; returns the answer or the failure
    /// code.
    pub(super) async fn send(
        &self,
        step: Step,
        method: HttpMethod,
        url: &Url,
        credentials: Option<&Credentials>,
    ) -> Result<Fetched, Code> {
        self.send_body(step, method, url, None, credentials).await
    }

    /// Sends one request with an optional XML body and records it.
    pub(super) async fn send_body(
        &self,
        step: Step,
        method: HttpMethod,
        url: &Url,
        xml: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<Fetched, Code> {
        let started = Instant::now();
        let body = xml.map(Body::Xml);
        let request = Outgoing {
            method,
            url,
            body,
            credentials,
            headers: &[],
        };
        match self.shared.http.fetch(request).await {
            Ok(fetched) => {
                let outcome = match fetched.status.as_u16() {
                    200 => Outcome::Answered,
                    301 | 302 | 303 | 307 | 308 => Outcome::Redirected,
                    401 if credentials.is_none() => Outcome::Answered,
                    _ => Outcome::Failed,
                };
                let err = match fetched.status.as_u16() {
                    401 if credentials.is_some() => Some(Error::AuthRejected {
                        url: url.to_string(),
                    }),
                    401 => Some(Error::AuthRequired {
                        url: url.to_string(),
                    }),
                    _ => None,
                };
                let detail = Some(format!("http {}", fetched.status.as_u16()));
                self.record_attempt(
                    step,
                    url.as_str(),
                    started,
                    outcome,
                    err.as_ref(),
                    detail,
                    credentials.is_some(),
                );
                Ok(fetched)
            }
            Err(err) => {
                self.record_attempt(
                    step,
                    url.as_str(),
                    started,
                    Outcome::Failed,
                    Some(&err),
                    None,
                    credentials.is_some(),
                );
                Err(err.code())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_attempt(
        &self,
        step: Step,
        target: &str,
        started: Instant,
        outcome: Outcome,
        err: Option<&Error>,
        detail: Option<String>,
        authenticated: bool,
    ) {
        self.run.record(Attempt {
            step,
            method: self.method,
            target: target.to_owned(),
            outcome,
            code: err.map(Error::code),
            detail: err.map(ToString::to_string).or(detail),
            authenticated,
            ms: started.elapsed().as_millis() as u64,
            start_ms: 0,
        });
    }

    pub(super) fn record_refusal(&self, step: Step, target: &str, err: &Error) {
        self.record_attempt(
            step,
            target,
            Instant::now(),
            Outcome::Refused,
            Some(err),
            None,
            false,
        );
    }

    /// Rewrites the outcome of this candidate's last attempt at `url` once its body is read.
    pub(super) fn amend_last(&self, url: &Url, outcome: Outcome, err: Option<&Error>) {
        let mut trail = self.run.trail.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = trail
            .iter_mut()
            .rev()
            .find(|a| a.method == self.method && a.target == url.as_str())
        {
            last.outcome = outcome;
            if let Some(err) = err {
                last.code = Some(err.code());
                last.detail = Some(err.to_string());
            }
        }
    }
}

pub(super) fn location(headers: &HeaderMap) -> Option<String> {
    headers.get(LOCATION)?.to_str().ok().map(str::to_owned)
}

pub(super) fn failed(code: Code) -> CandidateOutcome {
    CandidateOutcome::Failed { code }
}
