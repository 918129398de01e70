//! Autodiscover v2 (JSON) and Exchange Online (Microsoft 365): the v2 step and telling
//! Exchange Online's mailboxes apart.
//!
//! The v2 step asks, anonymously, the domain's own Autodiscover host first:
//! `GET https://autodiscover.DOMAIN/autodiscover/autodiscover.json?Email=ADDRESS&Protocol=EWS`,
//! which Exchange 2016 CU3 and later answer with `{"Protocol": "EWS", "Url": "..."}` (or an
//! `ErrorCode` such as `UserNotFound`) before any password is sent, and which keeps the address
//! on the domain's own servers. Then, only when the domain's MX hosts are Exchange Online's
//! (`*.mail.protection.outlook.com`), so that no other domain's addresses are sent to
//! Microsoft, it GETs `{v2_base}{address}?Protocol=ActiveSync` and reads
//! `{"Protocol": "ActiveSync", "Url": "..."}`; a 404 means the user is unknown there. A
//! mailbox is reported as `office365` when Autodiscover says `MicrosoftOnline`, when the host
//! or the ActiveSync URL is one of Exchange Online's, or when v2 found it: basic
//! authentication is off there (since 1 October 2022), so credentials are never checked.

use std::time::Instant;

use reqwest::Method as HttpMethod;
use serde::Deserialize;
use url::Url;

use super::error::Error;
use super::http::{Fetched, Outgoing};
use super::pox::Settings;
use super::steps::{CandidateOutcome, Found, Steps, failed};
use crate::code::Code;
use crate::domain::Domain;
use crate::report::{Evidence, Outcome, Provider, Step};

/// Where Autodiscover v2 lives. The address and `?Protocol=ActiveSync` are appended.
pub const DEFAULT_V2_BASE: &str =
    "https://outlook.office365.com/autodiscover/autodiscover.json/v1.0/";

/// Whether an MX host is Exchange Online's.
pub fn is_exchange_online_mx(host: &str) -> bool {
    host.ends_with(".mail.protection.outlook.com") || host.ends_with(".mail.protection.outlook.de")
}

/// Whether a host is one of Exchange Online's client endpoints.
pub fn is_exchange_online_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    EXCHANGE_ONLINE_HOSTS.contains(&host.as_str())
        || host.ends_with(".outlook.com") && !host.ends_with(".protection.outlook.com")
}

/// The provider for a found host.
pub fn provider_of(host: &str, settings: Option<&Settings>) -> Provider {
    let activesync_host = settings
        .and_then(|s| s.activesync_url.as_deref())
        .and_then(|u| Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    if settings.is_some_and(|s| s.microsoft_online)
        || is_exchange_online_host(host)
        || activesync_host.is_some_and(|h| is_exchange_online_host(&h))
    {
        Provider::Office365
    } else {
        Provider::Exchange
    }
}

/// The v2 answer.
#[derive(Debug, Deserialize)]
struct V2Answer {
    #[serde(rename = "Protocol")]
    protocol: String,
    #[serde(rename = "Url")]
    url: String,
}

/// The https URL of a 200 v2 answer for `protocol`.
fn v2_url(fetched: &Fetched, protocol: &str) -> Option<Url> {
    if fetched.status.as_u16() != 200 {
        return None;
    }
    let answer = serde_json::from_slice::<V2Answer>(&fetched.body).ok()?;
    if !answer.protocol.eq_ignore_ascii_case(protocol) {
        return None;
    }
    Url::parse(&answer.url)
        .ok()
        .filter(|u| u.scheme() == "https" && u.host_str().is_some())
}

/// The v2 error answer (`{"ErrorCode": "UserNotFound", "ErrorMessage": ...}`).
#[derive(Debug, Deserialize)]
struct V2Error {
    #[serde(rename = "ErrorCode")]
    error_code: String,
}

impl Steps {
    /// The Autodiscover v2 step (see the module docs).
    pub(super) async fn autodiscover_v2(&self) -> CandidateOutcome {
        let own = self.own_v2().await;
        if !own.is_failure() {
            return own;
        }
        match self.exchange_online_v2().await {
            CandidateOutcome::Failed {
                code: Code::NotExchangeOnline,
            } => own,
            other => other,
        }
    }

    /// Asks the domain's own `autodiscover.DOMAIN` for the EWS URL, anonymously.
    async fn own_v2(&self) -> CandidateOutcome {
        let address = self.run.address.to_string();
        let host = format!("autodiscover.{}", self.run.address.domain());
        let Ok(mut url) = Url::parse(&format!("https://{host}{V2_PATH}")) else {
            return failed(Code::RedirectRefused);
        };
        url.query_pairs_mut()
            .append_pair("Email", &address)
            .append_pair("Protocol", "EWS");
        let started = Instant::now();
        let fetched = match self.get_v2(&url, started).await {
            Ok(fetched) => fetched,
            Err(code) => return failed(code),
        };
        let status = fetched.status.as_u16();
        if status == 200
            && let Ok(error) = serde_json::from_slice::<V2Error>(&fetched.body)
        {
            let err = Error::V2Error {
                url: url.to_string(),
                error_code: error.error_code,
            };
            self.record_v2(&url, started, Outcome::Failed, Some(&err), None);
            return failed(err.code());
        }
        let ews_url =
            v2_url(&fetched, "EWS").and_then(|u| Some((Domain::parse(u.host_str()?).ok()?, u)));
        let Some((ews_host, ews_url)) = ews_url else {
            let err = Error::HttpStatus {
                url: url.to_string(),
                status,
            };
            self.record_v2(&url, started, Outcome::Failed, Some(&err), None);
            return failed(if status == 200 {
                Code::V2InvalidJson
            } else {
                err.code()
            });
        };
        let detail = format!("http {status}, EWS at {ews_url}");
        self.record_v2(&url, started, Outcome::Answered, None, Some(detail));
        CandidateOutcome::Found(Box::new(Found {
            confirmed: self.run.is_trusted(&host),
            host: ews_host.as_str().to_owned(),
            evidence: Evidence::Settings,
            settings: Some(Settings {
                ews_url: Some(ews_url.to_string()),
                ..Settings::default()
            }),
            probe: None,
            answered_password: false,
        }))
    }

    /// One anonymous v2 GET; a failure to fetch is recorded here.
    async fn get_v2(&self, url: &Url, started: Instant) -> Result<Fetched, Code> {
        let request = Outgoing {
            method: HttpMethod::GET,
            url,
            body: None,
            credentials: None,
            headers: &[],
        };
        self.shared.http.fetch(request).await.map_err(|err| {
            self.record_v2(url, started, Outcome::Failed, Some(&err), None);
            err.code()
        })
    }

    fn record_v2(
        &self,
        url: &Url,
        started: Instant,
        outcome: Outcome,
        err: Option<&Error>,
        detail: Option<String>,
    ) {
        self.record_attempt(
            Step::AutodiscoverV2,
            url.as_str(),
            started,
            outcome,
            err,
            detail,
            false,
        );
    }

    /// Asks Exchange Online, when the domain's MX records are Exchange Online's.
    async fn exchange_online_v2(&self) -> CandidateOutcome {
        let mx = match self.mx_hosts().await {
            Ok(mx) => mx,
            Err(code) => return failed(code),
        };
        if !mx.iter().any(|host| is_exchange_online_mx(host)) {
            return failed(Code::NotExchangeOnline);
        }
        let address = self.run.address.to_string();
        let mut url = match Url::parse(&self.shared.config.exchange_online_v2_base)
            .and_then(|base| base.join(&address))
        {
            Ok(url) => url,
            Err(_) => return failed(Code::RedirectRefused),
        };
        url.query_pairs_mut().append_pair("Protocol", "ActiveSync");
        let started = Instant::now();
        let fetched = match self.get_v2(&url, started).await {
            Ok(fetched) => fetched,
            Err(code) => return failed(code),
        };
        let status = fetched.status.as_u16();
        let answer = v2_url(&fetched, "ActiveSync");
        let Some(activesync_url) = answer else {
            let err = Error::HttpStatus {
                url: url.to_string(),
                status,
            };
            let code = if status == 200 {
                Code::V2InvalidJson
            } else {
                err.code()
            };
            self.record_v2(&url, started, Outcome::Failed, Some(&err), None);
            return failed(code);
        };
        let detail = Some(format!("http {status}, ActiveSync at {activesync_url}"));
        self.record_v2(&url, started, Outcome::Answered, None, detail);
        let host = activesync_url.host_str().unwrap_or_default().to_owned();
        CandidateOutcome::Found(Box::new(Found {
            confirmed: self.run.is_trusted(&host),
            host,
            evidence: Evidence::Settings,
            settings: Some(Settings {
                activesync_url: Some(activesync_url.to_string()),
                microsoft_online: true,
                ..Settings::default()
            }),
            probe: None,
            answered_password: false,
        }))
    }
}

/// The path of Autodiscover v2 on a domain's own host, in the `?Email=` form.
const V2_PATH: &str = "/autodiscover/autodiscover.json";

const EXCHANGE_ONLINE_HOSTS: &[&str] = &[
    "outlook.office365.com",
    "outlook.office.com",
    "autodiscover-s.outlook.com",
    "autodiscover.outlook.com",
    "outlook.office.de",
    "partner.outlook.cn",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_online_is_recognised() {
        assert!(is_exchange_online_mx(
            "contoso-com.mail.protection.outlook.com"
        ));
        assert!(!is_exchange_online_mx("mx.example.test"));
        assert!(is_exchange_online_host("outlook.office365.com"));
        assert!(is_exchange_online_host("EUR01.outlook.com"));
        assert!(!is_exchange_online_host("mail.example.test"));
        let settings = Settings {
            microsoft_online: true,
            ..Settings::default()
        };
        assert_eq!(
            provider_of("mail.example.test", Some(&settings)),
            Provider::Office365
        );
        assert_eq!(provider_of("mail.example.test", None), Provider::Exchange);
        let settings = Settings {
            activesync_url: Some(
                "https://outlook.office365.com/Microsoft-Server-ActiveSync".into(),
            ),
            ..Settings::default()
        };
        assert_eq!(
            provider_of("mail.example.test", Some(&settings)),
            Provider::Office365
        );
    }
}
