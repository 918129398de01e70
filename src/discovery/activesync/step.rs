//! ActiveSync as a discovery method: when Autodiscover yields nothing, probe the names a domain
//! typically gives its ActiveSync server (`mail.`, `owa.`, `exchange.`, `webmail.`) and its MX
//! hosts inside the domain, all at once and anonymously. The first that answers as an
//! ActiveSync endpoint (a 200 with the protocol headers, or a 401 challenge at the ActiveSync
//! path) names the host. No password is spent here: verification is a separate, single step.

use std::time::Instant;

use reqwest::StatusCode;
use tokio::task::JoinSet;
use url::Url;

use super::{CredentialUse, Probe, ProbeOutcome, activesync_url, probe_activesync};
use crate::discovery::error::Error;
use crate::discovery::steps::{CandidateOutcome, Found, Steps, failed};
use crate::domain::{Domain, registrable_domain};
use crate::report::{Evidence, Outcome, Step};

impl Steps {
    /// Probes `hosts` and the MX hosts inside the domain.
    pub(in crate::discovery) async fn activesync_hosts(
        &self,
        mut hosts: Vec<String>,
    ) -> CandidateOutcome {
        let registrable = self.run.address.domain().registrable().map(str::to_owned);
        if let Ok(mx) = self.mx_hosts().await {
            for host in mx {
                if registrable_domain(&host).map(str::to_owned) == registrable
                    && !hosts.contains(&host)
                {
                    hosts.push(host);
                }
            }
        }
        let mut set = JoinSet::new();
        for host in hosts {
            let Some(url) = Domain::parse(&host)
                .ok()
                .and_then(|h| activesync_url(h.as_str()))
            else {
                continue;
            };
            let steps = self.clone();
            set.spawn(async move {
                (
                    steps.probe_recorded(&url, CredentialUse::Anonymous).await,
                    url,
                )
            });
        }
        let mut last = failed("not_activesync");
        while let Some(joined) = set.join_next().await {
            let Ok((probe, url)) = joined else { continue };
            if !probe.outcome.shows_endpoint() {
                last = failed(probe.code);
                continue;
            }
            let host = url.host_str().unwrap_or_default().to_owned();
            return CandidateOutcome::Found(Found {
                confirmed: self.run.is_trusted(&host),
                evidence: if probe.outcome == ProbeOutcome::Confirmed {
                    Evidence::ActiveSync
                } else {
                    Evidence::AuthRequired
                },
                host,
                settings: None,
                probe: Some(probe),
            });
        }
        last
    }

    /// Probes `url` and records every request in the trail.
    pub(in crate::discovery) async fn probe_recorded(
        &self,
        url: &Url,
        credentials: CredentialUse<'_>,
    ) -> Probe {
        let extra_ports = self.shared.config.extra_https_ports.clone();
        probe_activesync(
            &self.shared.http,
            url,
            credentials,
            &extra_ports,
            |url, result, authenticated, ms| {
                let started = Instant::now() - std::time::Duration::from_millis(ms);
                match result {
                    Ok(status) => {
                        let outcome = match status {
                            StatusCode::OK => Outcome::Answered,
                            StatusCode::UNAUTHORIZED if !authenticated => Outcome::Answered,
                            _ => Outcome::Failed,
                        };
                        let err = match status {
                            StatusCode::UNAUTHORIZED if authenticated => {
                                Some(Error::AuthRejected {
                                    url: url.to_string(),
                                })
                            }
                            StatusCode::UNAUTHORIZED => Some(Error::AuthRequired {
                                url: url.to_string(),
                            }),
                            StatusCode::OK => None,
                            other => Some(Error::HttpStatus {
                                url: url.to_string(),
                                status: other.as_u16(),
                            }),
                        };
                        let detail = Some(format!("http {}", status.as_u16()));
                        self.record_attempt(
                            Step::ActiveSync,
                            url.as_str(),
                            started,
                            outcome,
                            err.as_ref(),
                            detail,
                            authenticated,
                        );
                    }
                    Err(err) => {
                        self.record_attempt(
                            Step::ActiveSync,
                            url.as_str(),
                            started,
                            Outcome::Failed,
                            Some(err),
                            None,
                            authenticated,
                        );
                    }
                }
            },
        )
        .await
    }
}
