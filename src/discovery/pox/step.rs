//! The POX step: POST the request body, anonymously first. A 401 from a trusted host that
//! offers Basic is answered once with credentials (when given and the budgets allow); a 401
//! from an untrusted host never is (rule 5). A 200 is parsed; `redirectUrl` and 30x answers are
//! checked by `redirect.rs` and re-POSTed, and never extend trust (rule 4); `redirectAddr` ends
//! the candidate and restarts the discovery with the new address. When the Outlook schema gets
//! no usable answer, the same URL is asked once in the mobilesync schema.

use std::sync::atomic::Ordering;

use reqwest::{Method as HttpMethod, StatusCode};
use url::Url;

use super::{Answer, Schema, Settings};
use crate::code::Code;
use crate::discovery::activesync;
use crate::discovery::challenge::Challenge;
use crate::discovery::error::Error;
use crate::discovery::http::Fetched;
use crate::discovery::limits::Budget;
use crate::discovery::steps::{CandidateOutcome, Found, Origin, Steps, failed, location};
use crate::domain::{Credentials, Domain, EmailAddress};
use crate::report::{Attempt, AutodiscoverEndpoint, Evidence, Outcome, Step};

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
    Failed(Code),
}

impl PostResult {
    /// Whether an answer to the password proves it right: an Autodiscover answer that names
    /// something (settings, IMAP only, a redirect). Not an error answer, nor a 200 that is not
    /// Autodiscover at all (mailcow answers a wrong password with an empty 200).
    fn accepts_password(&self) -> bool {
        matches!(
            self,
            Self::Answer {
                answer: Answer::Settings(_)
                    | Answer::NotExchange { .. }
                    | Answer::RedirectAddr(_)
                    | Answer::RedirectUrl(_),
                authenticated: true,
            }
        )
    }
}

impl Steps {
    /// POSTs to `start` and follows its redirects. Trust is never extended by a redirect: a
    /// target outside the domain's registrable domain is asked anonymously and, when it wants
    /// credentials, named as needing consent (rule 4). When the Outlook schema gets no usable
    /// answer (Z-Push answers it with 500, mailcow with IMAP settings, some servers with 601),
    /// the same URL is asked once in the mobilesync schema.
    pub(in crate::discovery) async fn follow_pox(
        &self,
        start: Url,
        mut origin: Origin,
    ) -> CandidateOutcome {
        let mut url = start;
        let mut schema = self.shared.config.schema;
        let mut answered_password = false;
        loop {
            let host = url.host_str().unwrap_or_default().to_owned();
            let trusted = self.run.is_trusted(&host);
            let result = self.post(&url, trusted, schema, answered_password).await;
            if let PostResult::Answer {
                answer: Answer::NotExchange { servers, .. },
                ..
            } = &result
                && self.run.trust.speaks_for_domain(&host)
            {
                // Kept for the report: only the domain's own answer may say where its mail
                // is, or a redirect could send the platform's IMAP connector anywhere.
                let mut findings = self.run.findings();
                findings
                    .mail_servers
                    .get_or_insert_with(|| (url.to_string(), servers.clone()));
            }
            if schema == Schema::Outlook && wants_mobilesync(&result) {
                schema = Schema::MobileSync;
                answered_password = matches!(
                    result,
                    PostResult::Answer {
                        authenticated: true,
                        ..
                    }
                );
                continue;
            }
            let next = match result {
                PostResult::Answer {
                    answer: Answer::Settings(settings),
                    authenticated,
                } => {
                    return self.settings_found(&url, settings, trusted, authenticated, &origin);
                }
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
                } => return failed(Code::PoxNotExchange),
                PostResult::Answer {
                    answer: Answer::Error { .. },
                    ..
                } => return failed(Code::PoxError),
                PostResult::AuthRequired => {
                    return self.auth_required(&url, &host, trusted, &origin).await;
                }
                PostResult::Status(_) => return failed(Code::HttpStatus),
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
                    // Another URL: it is asked anonymously first, whatever this one answered.
                    answered_password = false;
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
        let probe = self.probe_shared(&activesync).await;
        if !probe.outcome.shows_endpoint() {
            return CandidateOutcome::Endpoint(endpoint);
        }
        CandidateOutcome::Found(Box::new(Found {
            host: host.to_owned(),
            evidence: probe.evidence(),
            confirmed: trusted,
            settings: None,
            probe: Some(probe),
            answered_password: false,
        }))
    }

    /// POSTs `schema`'s body to `url`: anonymously first, then with the password after a
    /// trusted host's Basic challenge. `answered_password`: this URL challenged and then
    /// answered the password moments ago (the other schema's round), so the password goes
    /// at once, without asking anonymously again.
    async fn post(
        &self,
        url: &Url,
        trusted: bool,
        schema: Schema,
        answered_password: bool,
    ) -> PostResult {
        let body = self.run.body(schema);
        if answered_password
            && trusted
            && let Some(credentials) = self.run.credentials.as_ref()
        {
            return self.post_with_password(url, body, credentials).await;
        }
        let sends_no_password = self.run.credentials.is_none() || !trusted;
        if sends_no_password && self.remembered_challenge(url) {
            return self.withhold_or_end(url);
        }
        let fetched = match self.send_pox(url, body, None).await {
            Ok(fetched) => fetched,
            Err(code) => return PostResult::Failed(code),
        };
        if fetched.status != StatusCode::UNAUTHORIZED {
            return self.read_post_answer(url, fetched, false);
        }
        // Challenged before the body counts: the URL's answer to anyone without a password.
        self.shared.challenges.insert(url.as_str(), ());
        let Some(credentials) = self.run.credentials.as_ref() else {
            return PostResult::AuthRequired;
        };
        let challenge = Challenge::parse(&fetched.headers);
        if !trusted {
            // Rule 5: an untrusted host's challenge never gets credentials.
            return self.withhold_or_end(url);
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
        self.post_with_password(url, body, credentials).await
    }

    /// POSTs `body` to `url` with the password, within the discovery's and the account's
    /// budgets (rule 19).
    async fn post_with_password(
        &self,
        url: &Url,
        body: &str,
        credentials: &Credentials,
    ) -> PostResult {
        let _turn = self.run.credential_gate.acquire().await;
        let charged = match self.take_credential_attempt(url, credentials).await {
            Ok(charged) => charged,
            Err(err) => {
                self.record_refusal(Step::Pox, url.as_str(), &err);
                return PostResult::Failed(err.code());
            }
        };
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
            Ok(fetched) => {
                let result = self.read_post_answer(url, fetched, true);
                if result.accepts_password() {
                    self.password_accepted(
                        url.host_str().unwrap_or_default(),
                        credentials,
                        charged,
                    )
                    .await;
                }
                result
            }
            Err(code) => PostResult::Failed(code),
        }
    }

    /// Whether another discovery's anonymous POST to `url` was answered 401 lately (a
    /// hoster's Autodiscover, for each of its customer domains): then none is sent, and the
    /// trail says whose answer it was.
    fn remembered_challenge(&self, url: &Url) -> bool {
        let Some(((), age)) = self.shared.challenges.get(url.as_str()) else {
            return false;
        };
        let err = Error::AuthRequired {
            url: url.to_string(),
        };
        self.run.record(Attempt {
            step: Step::Pox,
            method: self.method,
            target: url.to_string(),
            outcome: Outcome::Answered,
            code: Some(err.code()),
            detail: Some(format!(
                "{err}: http 401 to another discovery's anonymous POST {:.0} s ago (shared for {} s), not asked again",
                age.as_secs_f64(),
                self.shared.challenges.ttl().as_secs()
            )),
            authenticated: false,
            ms: 0,
            start_ms: 0,
        });
        true
    }

    /// A 401 that gets no password: none was given, or the host is not trusted (rule 5).
    fn withhold_or_end(&self, url: &Url) -> PostResult {
        if self.run.credentials.is_some() {
            self.record_refusal(
                Step::Pox,
                url.as_str(),
                &Error::CredentialsWithheld {
                    url: url.to_string(),
                },
            );
        }
        PostResult::AuthRequired
    }

    async fn send_pox(
        &self,
        url: &Url,
        body: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Fetched, Code> {
        self.send_body(Step::Pox, HttpMethod::POST, url, Some(body), credentials)
            .await
    }

    /// Takes one credentialed attempt from the discovery's and the account's budgets; a
    /// password a host speaking for the domain accepted lately spends neither
    /// ([`crate::discovery::Limits`]). Returns whether it was charged.
    async fn take_credential_attempt(
        &self,
        url: &Url,
        credentials: &Credentials,
    ) -> Result<bool, Error> {
        let limits = &self.shared.limits;
        if limits.is_accepted(credentials).await {
            return Ok(false);
        }
        let cap = limits.config().credential_attempts_per_discovery;
        let spent = self.run.credential_attempts.fetch_add(1, Ordering::SeqCst);
        let budget = if spent >= cap {
            Budget::Spent
        } else {
            limits.charge_account(credentials).await
        };
        match budget {
            Budget::Granted => Ok(true),
            Budget::Spent => Err(Error::CredentialBudget {
                url: url.to_string(),
            }),
            Budget::Unavailable => Err(Error::BudgetUnavailable {
                url: url.to_string(),
            }),
        }
    }

    /// A host speaking for the domain answered the password with an Autodiscover answer: the
    /// password is right, so the attempt it was charged gives the discovery's budget back and
    /// the account's budget no longer counts it (the schema fallback and the verification
    /// that follow it are never refused for lack of budget).
    async fn password_accepted(&self, host: &str, credentials: &Credentials, charged: bool) {
        if !self.run.trust.speaks_for_domain(host) {
            return;
        }
        self.shared.limits.password_accepted(credentials).await;
        if charged {
            self.run.credential_attempts.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn read_post_answer(&self, url: &Url, fetched: Fetched, authenticated: bool) -> PostResult {
        match fetched.status.as_u16() {
            200 => match super::parse_answer(&fetched.body) {
                Ok(answer) => {
                    let err = match &answer {
                        Answer::Error { code, .. } => Some(Error::PoxError {
                            url: url.to_string(),
                            error_code: code.clone(),
                        }),
                        Answer::NotExchange { protocols, .. } => Some(Error::PoxNotExchange {
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
                        super::ParseError::Doctype => Error::PoxDoctype {
                            url: url.to_string(),
                        },
                        super::ParseError::Invalid { position, reason } => Error::PoxParse {
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
                None => PostResult::Failed(Code::NoRedirect),
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
        answered_password: bool,
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
                answered_password,
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
