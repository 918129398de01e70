//! The steps of one candidate, each recorded in the trail as it ends, and the state they share.
//!
//! This file holds the POX step: POST the request body, anonymously first. A 401 from a
//! trusted host that offers Basic is answered once with credentials (when given and the budgets
//! allow); a 401 from an untrusted host never is (rule 5). A 200 is parsed; `redirectUrl` and
//! 30x answers are checked by `redirect.rs` and re-POSTed; `redirectAddr` ends the candidate
//! and restarts the discovery with the new address. The other steps live with their protocol:
//! the plain-HTTP redirect in `redirect.rs`, SRV in `srv.rs`, Autodiscover v2 in `online.rs`,
//! the ActiveSync host probes in `activesync/step.rs`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method as HttpMethod, StatusCode};
use tokio::sync::{OnceCell, Semaphore};
use tracing::{Instrument, debug};
use url::Url;

use super::Shared;
use super::activesync::{self, CredentialUse, Probe};
use super::candidates::{Candidate, Start};
use super::challenge::Challenge;
use super::error::Error;
use super::http::{Body, Fetched, Outgoing};
use super::pox::{self, Answer, Schema, Settings};
use super::redirect::{self, Hops, TargetRules};
use super::trust::Trust;
use crate::domain::{Credentials, Domain, EmailAddress};
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
        code: &'static str,
    },
}

impl CandidateOutcome {
    /// Whether the candidate is over without a host or a new address.
    pub fn is_failure(&self) -> bool {
        self.failure_code().is_some()
    }

    /// The code of a failed candidate: its last failure's, or `auth_required` for an
    /// endpoint that named no host.
    pub fn failure_code(&self) -> Option<&'static str> {
        match self {
            Self::Failed { code } => Some(code),
            Self::Endpoint(_) => Some("auth_required"),
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
    fn consent(&self, host: &str) -> Option<ConsentNeeded> {
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
    pub mx: OnceCell<Result<Vec<String>, &'static str>>,
    /// What the discovery learned besides its answer, shared across address redirects.
    pub findings: Arc<Mutex<Findings>>,
}

impl RunState {
    pub(super) fn record(&self, attempt: Attempt) {
        debug!(
            step = ?attempt.step,
            target = %attempt.target,
            outcome = ?attempt.outcome,
            code = attempt.code.unwrap_or(""),
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
    pub(super) async fn mx_hosts(&self) -> Result<Vec<String>, &'static str> {
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

/// What one POST came to.
enum PostResult {
    /// A parsed answer; `authenticated` when it answered our credentials.
    Answer {
        answer: Answer,
        authenticated: bool,
    },
    Redirect(String),
    AuthRequired,
    /// An HTTP status that is not an answer (already in the trail).
    Status(u16),
    Failed(&'static str),
}

impl Steps {
    /// POSTs to `start` and follows its redirects. Trust is never extended by a redirect: a
    /// target outside the domain's registrable domain is asked anonymously and, when it wants
    /// credentials, named as needing consent (rule 4). When the Outlook schema gets no usable
    /// answer (Z-Push answers it with 500, mailcow with IMAP settings, some servers with 601),
    /// the same URL is asked once in the mobilesync schema.
    pub(super) async fn follow_pox(&self, start: Url, mut origin: Origin) -> CandidateOutcome {
        let mut url = start;
        let mut schema = self.shared.config.schema;
        loop {
            let host = url.host_str().unwrap_or_default().to_owned();
            let trusted = self.run.is_trusted(&host);
            let result = self.post(&url, trusted, schema).await;
            if schema == Schema::Outlook && wants_mobilesync(&result) {
                schema = Schema::MobileSync;
                continue;
            }
            let next = match result {
                PostResult::Answer {
                    answer: Answer::Settings(settings),
                    ..
                } => return self.settings_found(&url, settings, trusted, &origin),
                PostResult::Answer {
                    answer: Answer::RedirectAddr(address),
                    authenticated,
                } => return self.redirect_addr(&url, &address, trusted && authenticated),
                PostResult::Answer {
                    answer: Answer::RedirectUrl(location),
                    ..
                }
                | PostResult::Redirect(location) => location,
                PostResult::Answer {
                    answer: Answer::NotExchange { .. },
                    ..
                } => return failed("pox_not_exchange"),
                PostResult::Answer {
                    answer: Answer::Error { .. },
                    ..
                } => return failed("pox_error"),
                PostResult::AuthRequired => {
                    return self.auth_required(&url, &host, trusted, &origin).await;
                }
                PostResult::Status(_) => return failed("http_status"),
                PostResult::Failed(code) => return failed(code),
            };
            match self.hop(&url, &next) {
                Ok(target) => {
                    // The target is reached by a redirect, whatever reached this URL; the
                    // reason counts only if the target is outside the trust set.
                    origin = Origin::Redirect {
                        from: url.to_string(),
                        reason: "redirect_outside_domain",
                    };
                    url = target;
                }
                Err(err) => {
                    self.record_refusal(Step::Pox, &next, &err);
                    return failed(err.code());
                }
            }
        }
    }

    /// A 401 the candidate cannot pass. An endpoint outside the domain that asks for a
    /// password is named as needing consent. A host reached through SRV or a redirect is a
    /// named server, so its ActiveSync endpoint is asked (anonymously) whether it serves
    /// mailboxes; the domain's own Autodiscover URLs are only endpoints.
    async fn auth_required(
        &self,
        url: &Url,
        host: &str,
        trusted: bool,
        origin: &Origin,
    ) -> CandidateOutcome {
        if !trusted && let Some(consent) = origin.consent(host) {
            self.run.needs_consent(consent);
        }
        let endpoint = AutodiscoverEndpoint {
            url: url.to_string(),
            requires_auth: true,
            trusted,
        };
        // The domain's own URLs are only endpoints; so is a redirect target outside the
        // domain, which must not outrank a trusted answer. An SRV target, or a redirect target
        // inside the domain, is a named server: ask whether it serves mailboxes.
        let named_server = match origin {
            Origin::Start => false,
            Origin::Redirect { .. } => trusted,
            Origin::Srv { .. } => true,
        };
        if !named_server {
            return CandidateOutcome::Endpoint(endpoint);
        }
        let Some(activesync) = activesync::activesync_url(host) else {
            return CandidateOutcome::Endpoint(endpoint);
        };
        let probe = self
            .probe_recorded(&activesync, CredentialUse::Anonymous)
            .await;
        if !probe.outcome.shows_endpoint() {
            return CandidateOutcome::Endpoint(endpoint);
        }
        CandidateOutcome::Found(Box::new(Found {
            host: host.to_owned(),
            evidence: probe.evidence(),
            confirmed: trusted,
            settings: None,
            probe: Some(probe),
        }))
    }

    pub(super) fn hop(&self, from: &Url, location: &str) -> Result<Url, Error> {
        let rules = TargetRules {
            extra_https_ports: &self.shared.config.extra_https_ports,
            autodiscover_path: true,
        };
        let target = redirect::check_target(from, location, rules)?;
        self.run.hops().hop_to_url(&target)?;
        Ok(target)
    }

    async fn post(&self, url: &Url, trusted: bool, schema: Schema) -> PostResult {
        let body = self.run.body(schema);
        let fetched = match self.send_pox(url, body, None).await {
            Ok(fetched) => fetched,
            Err(code) => return PostResult::Failed(code),
        };
        if fetched.status != StatusCode::UNAUTHORIZED {
            return self.read_post_answer(url, fetched, false);
        }
        let Some(credentials) = self.run.credentials.as_ref() else {
            return PostResult::AuthRequired;
        };
        let challenge = Challenge::parse(&fetched.headers);
        if !trusted {
            // Rule 5: an untrusted host's challenge never gets credentials.
            self.record_refusal(
                Step::Pox,
                url.as_str(),
                &Error::CredentialsWithheld {
                    url: url.to_string(),
                },
            );
            return PostResult::AuthRequired;
        }
        if challenge.bearer && !challenge.basic {
            let err = Error::ModernAuthOnly {
                url: url.to_string(),
            };
            self.record_refusal(Step::Pox, url.as_str(), &err);
            return PostResult::Failed(err.code());
        }
        if !challenge.basic {
            // Only NTLM/Negotiate: the endpoint exists; we do not speak those schemes.
            return PostResult::AuthRequired;
        }
        let _turn = self.run.credential_gate.acquire().await;
        if let Err(err) = self.take_credential_attempt(url, credentials) {
            self.record_refusal(Step::Pox, url.as_str(), &err);
            return PostResult::Failed(err.code());
        }
        match self.send_pox(url, body, Some(credentials)).await {
            Ok(fetched) if fetched.status == StatusCode::UNAUTHORIZED => {
                self.run.findings().credentials_refused = true;
                PostResult::Failed(
                    Error::AuthRejected {
                        url: url.to_string(),
                    }
                    .code(),
                )
            }
            Ok(fetched) => self.read_post_answer(url, fetched, true),
            Err(code) => PostResult::Failed(code),
        }
    }

    async fn send_pox(
        &self,
        url: &Url,
        body: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Fetched, &'static str> {
        self.send_body(Step::Pox, HttpMethod::POST, url, Some(body), credentials)
            .await
    }

    fn take_credential_attempt(&self, url: &Url, credentials: &Credentials) -> Result<(), Error> {
        let cap = self
            .shared
            .limits
            .config()
            .credential_attempts_per_discovery;
        let spent = self.run.credential_attempts.fetch_add(1, Ordering::SeqCst);
        if spent >= cap
            || !self
                .shared
                .limits
                .try_account_attempt(&credentials.username)
        {
            return Err(Error::CredentialBudget {
                url: url.to_string(),
            });
        }
        Ok(())
    }

    fn read_post_answer(&self, url: &Url, fetched: Fetched, authenticated: bool) -> PostResult {
        match fetched.status.as_u16() {
            200 => match pox::parse_answer(&fetched.body) {
                Ok(answer) => {
                    let err = match &answer {
                        Answer::Error { code, .. } => Some(Error::PoxError {
                            url: url.to_string(),
                            error_code: code.clone(),
                        }),
                        Answer::NotExchange { protocols } => Some(Error::PoxNotExchange {
                            url: url.to_string(),
                            protocols: protocols.clone(),
                        }),
                        _ => None,
                    };
                    if let Some(err) = &err {
                        self.amend_last(url, Outcome::Failed, Some(err));
                    }
                    PostResult::Answer {
                        answer,
                        authenticated,
                    }
                }
                Err(parse) => {
                    let err = match parse {
                        pox::ParseError::Doctype => Error::PoxDoctype {
                            url: url.to_string(),
                        },
                        pox::ParseError::Invalid { position, reason } => Error::PoxParse {
                            url: url.to_string(),
                            position,
                            reason,
                        },
                    };
                    self.amend_last(url, Outcome::Failed, Some(&err));
                    PostResult::Failed(err.code())
                }
            },
            301 | 302 | 303 | 307 | 308 => match location(&fetched.headers) {
                Some(location) => PostResult::Redirect(location),
                None => PostResult::Failed("no_redirect"),
            },
            status => {
                let err = Error::HttpStatus {
                    url: url.to_string(),
                    status,
                };
                self.amend_last(url, Outcome::Failed, Some(&err));
                PostResult::Status(status)
            }
        }
    }

    fn settings_found(
        &self,
        url: &Url,
        settings: Settings,
        trusted: bool,
        origin: &Origin,
    ) -> CandidateOutcome {
        if !trusted && let Some(consent) = origin.consent(url.host_str().unwrap_or_default()) {
            self.run.needs_consent(consent);
        }
        let host = pick_host(&settings);
        match host {
            Some(host) => CandidateOutcome::Found(Box::new(Found {
                host,
                evidence: Evidence::Settings,
                confirmed: trusted,
                settings: Some(settings),
                probe: None,
            })),
            None => {
                let err = Error::PoxNoSettings {
                    url: url.to_string(),
                };
                self.amend_last(url, Outcome::Failed, Some(&err));
                failed(err.code())
            }
        }
    }

    fn redirect_addr(&self, url: &Url, address: &str, trusted: bool) -> CandidateOutcome {
        match EmailAddress::parse(address) {
            Ok(address) => {
                self.amend_last(url, Outcome::Redirected, None);
                CandidateOutcome::RedirectAddr { address, trusted }
            }
            Err(_) => {
                let err = Error::RedirectRefused {
                    url: url.to_string(),
                    reason: "invalid redirect address",
                };
                self.amend_last(url, Outcome::Failed, Some(&err));
                failed(err.code())
            }
        }
    }

    /// Sends one request without a body and records it; returns the answer or the failure
    /// code.
    pub(super) async fn send(
        &self,
        step: Step,
        method: HttpMethod,
        url: &Url,
        credentials: Option<&Credentials>,
    ) -> Result<Fetched, &'static str> {
        self.send_body(step, method, url, None, credentials).await
    }

    /// Sends one request with an optional XML body and records it.
    async fn send_body(
        &self,
        step: Step,
        method: HttpMethod,
        url: &Url,
        xml: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<Fetched, &'static str> {
        let started = Instant::now();
        let body = xml.map(Body::Xml);
        let request = Outgoing {
            method,
            url,
            body,
            credentials,
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

/// The host a settings answer names: the external `EXPR` server first, then `EXHTTP`'s
/// (Exchange 2013+), then the hosts of the EWS and ActiveSync URLs, then an `EXCH` server that
/// is a host name (modern Exchange puts a mailbox GUID there).
fn pick_host(settings: &Settings) -> Option<String> {
    let url_host = |url: &Option<String>| {
        url.as_deref()
            .and_then(|u| Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
    };
    [
        settings.expr_server.clone(),
        settings.exhttp_server.clone(),
        url_host(&settings.ews_url),
        url_host(&settings.activesync_url),
        settings.exch_server.clone(),
    ]
    .into_iter()
    .flatten()
    .find_map(|candidate| {
        Domain::parse(&candidate)
            .ok()
            .map(|d| d.as_str().to_owned())
    })
}

/// Whether an Outlook-schema answer says "ask me in the mobilesync schema": Z-Push answers the
/// Outlook schema with 500, mailcow with IMAP settings, others with error 601 (schema not
/// available).
fn wants_mobilesync(result: &PostResult) -> bool {
    match result {
        PostResult::Status(status) => *status >= 500,
        PostResult::Answer {
            answer: Answer::NotExchange { .. },
            ..
        } => true,
        PostResult::Answer {
            answer: Answer::Error { code, .. },
            ..
        } => code == "601",
        _ => false,
    }
}

pub(super) fn location(headers: &HeaderMap) -> Option<String> {
    headers.get(LOCATION)?.to_str().ok().map(str::to_owned)
}

pub(super) fn failed(code: &'static str) -> CandidateOutcome {
    CandidateOutcome::Failed { code }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expr_server_is_preferred_over_guid_exch() {
        let settings = Settings {
            exch_server: Some("3a1c0f4e@example.test".into()),
            expr_server: Some("mail.example.test".into()),
            ..Settings::default()
        };
        assert_eq!(pick_host(&settings).as_deref(), Some("mail.example.test"));
        let settings = Settings {
            exch_server: Some("3a1c0f4e@example.test".into()),
            ews_url: Some("https://ews.example.test/EWS/Exchange.asmx".into()),
            ..Settings::default()
        };
        assert_eq!(pick_host(&settings).as_deref(), Some("ews.example.test"));
    }
}
