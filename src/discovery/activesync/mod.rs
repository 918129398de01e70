//! The Exchange ActiveSync probe: `OPTIONS /Microsoft-Server-ActiveSync` ([MS-ASHTTP] 2.2.4,
//! 2.2.2 for 451) and the classification of what it answers.
//!
//! Order of one probe:
//! 1. OPTIONS anonymously. Its challenge says what the endpoint accepts, so a password never
//!    goes to a server that would not take it (Bearer only) or that is not trusted.
//! 2. With credentials, and only for a trusted https host whose challenge offers Basic, OPTIONS
//!    once more with Basic credentials: that answer is the definitive one.
//! 3. A 451 with `X-MS-Location` (the mailbox moved) is followed to its https target, at most
//!    [`MAX_MOVES`] times. The credentials follow only to a target the caller's trust check
//!    accepts; elsewhere the target is asked anonymously (rule 4). Real Exchange sends 451
//!    only after authentication ([MS-ASHTTP] 3.1.5.2.2), so an anonymous probe proves an
//!    endpoint, never a mailbox.
//!
//! A 200 counts as ActiveSync only with both `MS-ASProtocolVersions` and
//! `MS-ASProtocolCommands`; a 200 without them (a web page) is `not_activesync`.

use std::time::Instant;

use reqwest::header::HeaderMap;
use reqwest::{Method as HttpMethod, StatusCode};
use url::Url;

use super::challenge::Challenge;
use super::error::Error;
use super::http::{Http, Outgoing};
use super::redirect::{self, TargetRules};
use crate::code::Code;
use crate::discovery::limits::Budget;
use crate::domain::Credentials;
use crate::report::{Attempt, Method, Outcome, Step};
pub use crate::report::{Probe, ProbeOutcome};

/// The ActiveSync path.
pub const ACTIVESYNC_PATH: &str = "/Microsoft-Server-ActiveSync";

/// How many 451 moves one probe follows.
pub const MAX_MOVES: u32 = 3;

/// What a probe may do with credentials.
#[derive(Clone, Copy)]
pub enum CredentialUse<'a> {
    /// Never send credentials.
    Anonymous,
    /// Credentials exist but this host may not have them: a challenge is answered with
    /// `credentials_withheld`.
    Withheld,
    /// Send these after a Basic challenge, if the host is trusted.
    Basic {
        /// The credentials.
        credentials: &'a Credentials,
        /// Whether a host may receive them (asked for the first URL and every 451 target).
        trusted: &'a (dyn Fn(&str) -> bool + Sync),
    },
}

impl std::fmt::Debug for CredentialUse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Anonymous => "Anonymous",
            Self::Withheld => "Withheld",
            Self::Basic { .. } => "Basic",
        })
    }
}

/// The trail entry for one probe request.
pub fn attempt_for(method: Method, request: ProbeRequest<'_>) -> Attempt {
    let outcome = match request.outcome {
        ProbeOutcome::Confirmed | ProbeOutcome::AuthRequired => Outcome::Answered,
        ProbeOutcome::Moved => Outcome::Redirected,
        _ => Outcome::Failed,
    };
    let detail = match (request.error, request.status) {
        (Some(err), _) => err.to_string(),
        (None, Some(status)) => format!("http {status}"),
        (None, None) => String::new(),
    };
    Attempt {
        step: Step::ActiveSync,
        method,
        target: request.url.to_string(),
        outcome,
        code: (request.outcome != ProbeOutcome::Confirmed).then_some(request.code),
        detail: Some(detail),
        authenticated: request.authenticated,
        ms: request.ms,
        start_ms: 0,
    }
}

/// The ActiveSync URL of `host` (no port: the wire port comes from the configuration).
pub fn activesync_url(host: &str) -> Option<Url> {
    Url::parse(&format!("https://{host}{ACTIVESYNC_PATH}")).ok()
}

/// One probe request as it ended, classified: what the trail records.
#[derive(Debug)]
pub struct ProbeRequest<'a> {
    /// The URL.
    pub url: &'a Url,
    /// The classified answer of this request.
    pub outcome: ProbeOutcome,
    /// Its code (the outcome's, or the network failure's).
    pub code: Code,
    /// The HTTP status, if any.
    pub status: Option<u16>,
    /// The network failure, if any.
    pub error: Option<&'a Error>,
    /// Whether credentials were sent.
    pub authenticated: bool,
    /// Milliseconds.
    pub ms: u64,
}

/// Probes `url`; every request is passed to `record`, classified, as it ends.
pub async fn probe_activesync(
    http: &Http,
    url: &Url,
    credentials: CredentialUse<'_>,
    extra_https_ports: &[u16],
    mut record: impl FnMut(ProbeRequest<'_>),
) -> Probe {
    let started = Instant::now();
    let mut url = url.clone();
    let mut moves = Vec::new();
    loop {
        let usage = match credentials {
            CredentialUse::Basic { trusted, .. }
                if !trusted(url.host_str().unwrap_or_default()) =>
            {
                CredentialUse::Withheld
            }
            other => other,
        };
        let mut probe = probe_once(http, &url, usage, &mut record).await;
        probe.report.ms = started.elapsed().as_millis() as u64;
        let Some(location) = probe.moved_to.take() else {
            probe.report.moves = moves;
            return probe.report;
        };
        let rules = TargetRules {
            extra_https_ports,
            autodiscover_path: false,
        };
        let next = match redirect::check_target(&url, &location, rules) {
            Ok(next) if moves.len() < MAX_MOVES as usize && !moves.contains(&next.to_string()) => {
                next
            }
            Ok(_) | Err(_) => {
                let mut report = probe.report;
                report.outcome = ProbeOutcome::Moved;
                report.code = ProbeOutcome::Moved.code();
                report.moves = moves;
                return report;
            }
        };
        moves.push(next.to_string());
        url = next;
    }
}

/// One request's classified answer, and where a 451 points.
struct Classified {
    report: Probe,
    moved_to: Option<String>,
}

impl Classified {
    fn withheld(mut self, code: Code) -> Self {
        self.report.outcome = ProbeOutcome::CredentialsWithheld;
        self.report.code = code;
        self
    }
}

async fn probe_once(
    http: &Http,
    url: &Url,
    credentials: CredentialUse<'_>,
    record: &mut impl FnMut(ProbeRequest<'_>),
) -> Classified {
    let (status, headers) = match send(http, url, None, record).await {
        Ok(answer) => answer,
        Err(classified) => return classified,
    };
    let anonymous = classify(url, status, &headers, false);
    let credentials = match credentials {
        CredentialUse::Anonymous => return anonymous,
        CredentialUse::Withheld => None,
        CredentialUse::Basic { credentials, .. } => Some(credentials),
    };
    let challenge = Challenge::parse(&headers);
    if status != StatusCode::UNAUTHORIZED
        || anonymous.report.outcome == ProbeOutcome::ModernAuthOnly
    {
        // Moved, forbidden, modern only, or an endpoint that does not ask: no password.
        return anonymous;
    }
    if !challenge.basic {
        return anonymous;
    }
    let Some(credentials) = credentials.filter(|_| url.scheme() == "https") else {
        return anonymous.withheld(ProbeOutcome::CredentialsWithheld.code());
    };
    match http.limits().try_account_attempt(credentials).await {
        Budget::Granted => {}
        Budget::Spent => return anonymous.withheld(Code::CredentialBudget),
        Budget::Unavailable => return anonymous.withheld(Code::BudgetUnavailable),
    }
    match send(http, url, Some(credentials), record).await {
        Ok((status, headers)) => classify(url, status, &headers, true),
        Err(classified) => classified,
    }
}

/// Sends one OPTIONS request and records it, classified.
async fn send(
    http: &Http,
    url: &Url,
    credentials: Option<&Credentials>,
    record: &mut impl FnMut(ProbeRequest<'_>),
) -> Result<(StatusCode, HeaderMap), Classified> {
    let started = Instant::now();
    let request = Outgoing {
        method: HttpMethod::OPTIONS,
        url,
        body: None,
        credentials,
        headers: &[],
    };
    let result = http.fetch(request).await;
    let ms = started.elapsed().as_millis() as u64;
    let authenticated = credentials.is_some();
    match result {
        Ok(fetched) => {
            let classified = classify(url, fetched.status, &fetched.headers, authenticated);
            record(ProbeRequest {
                url,
                outcome: classified.report.outcome,
                code: classified.report.code,
                status: Some(fetched.status.as_u16()),
                error: None,
                authenticated,
                ms,
            });
            Ok((fetched.status, fetched.headers))
        }
        Err(err) => {
            let mut classified = unreachable(url, &err);
            classified.report.authenticated = authenticated;
            record(ProbeRequest {
                url,
                outcome: ProbeOutcome::Unreachable,
                code: err.code(),
                status: None,
                error: Some(&err),
                authenticated,
                ms,
            });
            Err(classified)
        }
    }
}

/// Classifies one answer. Pure, so that every header shape can be unit-tested.
fn classify(url: &Url, status: StatusCode, headers: &HeaderMap, authenticated: bool) -> Classified {
    let versions = header_list(headers, "ms-asprotocolversions");
    let commands = header_list(headers, "ms-asprotocolcommands");
    let mut moved_to = None;
    let outcome = match status.as_u16() {
        200 if !versions.is_empty() && !commands.is_empty() => ProbeOutcome::Confirmed,
        200 => ProbeOutcome::NotActiveSync,
        401 => {
            let challenge = Challenge::parse(headers);
            if (challenge.bearer && !challenge.basic) || is_modern_only(headers) {
                ProbeOutcome::ModernAuthOnly
            } else if authenticated {
                ProbeOutcome::CredentialsRefused
            } else if challenge.basic || challenge.other {
                ProbeOutcome::AuthRequired
            } else {
                ProbeOutcome::NotActiveSync
            }
        }
        403 => ProbeOutcome::Forbidden,
        451 => {
            moved_to = header_text(headers, "x-ms-location");
            ProbeOutcome::Moved
        }
        500..=599 => ProbeOutcome::ServerError,
        _ => ProbeOutcome::NotActiveSync,
    };
    Classified {
        report: Probe {
            url: url.to_string(),
            outcome,
            code: outcome.code(),
            status: Some(status.as_u16()),
            versions,
            commands,
            server_build: header_text(headers, "ms-server-activesync"),
            authenticated,
            moves: Vec::new(),
            ms: 0,
        },
        moved_to,
    }
}

fn unreachable(url: &Url, err: &Error) -> Classified {
    Classified {
        report: Probe::not_sent(url, ProbeOutcome::Unreachable, err.code()),
        moved_to: None,
    }
}

/// Exchange Online's hints that basic authentication is off, beyond a Bearer-only challenge.
fn is_modern_only(headers: &HeaderMap) -> bool {
    ["x-ms-diagnostics", "ms-diagnostics-public"]
        .iter()
        .any(|name| {
            header_text(headers, name).is_some_and(|value| {
                let value = value.to_ascii_lowercase();
                value.contains("basic authentication") && value.contains("disabled")
                    || value.contains("oauth")
            })
        })
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) mod shared_probes;
mod step;
pub mod sync;
pub mod wbxml;

#[cfg(test)]
mod tests;
