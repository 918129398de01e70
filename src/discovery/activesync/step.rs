//! ActiveSync as a discovery method: when Autodiscover yields nothing, probe the names a domain
//! typically gives its ActiveSync server (`mail.`, `owa.`, `exchange.`, `webmail.`) and its MX
//! hosts inside the domain, all at once and anonymously. The first that answers as an
//! ActiveSync endpoint (a 200 with the protocol headers, or a 401 challenge at the ActiveSync
//! path) names the host. No password is spent here: verification is a separate, single step.

use tokio::task::JoinSet;
use url::Url;

use super::{CredentialUse, Probe, activesync_url, attempt_for, probe_activesync};
use crate::code::Code;
use crate::discovery::steps::{CandidateOutcome, Found, Steps, failed};
use crate::domain::{Domain, registrable_domain};

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
        let mut last = failed(Code::NotActiveSync);
        while let Some(joined) = set.join_next().await {
            let Ok((probe, url)) = joined else { continue };
            if !probe.outcome.shows_endpoint() {
                last = failed(probe.code);
                continue;
            }
            let host = url.host_str().unwrap_or_default().to_owned();
            return CandidateOutcome::Found(Box::new(Found {
                confirmed: self.run.is_trusted(&host),
                evidence: probe.evidence(),
                host,
                settings: None,
                probe: Some(probe),
                answered_password: false,
            }));
        }
        last
    }

    /// Probes `url` anonymously, or takes the answer another discovery of the pipeline got
    /// ([`super::shared_probes`]); records the requests in the trail either way.
    pub(in crate::discovery) async fn probe_shared(&self, url: &Url) -> Probe {
        let shared = &self.shared;
        let method = self.method;
        let answer = shared
            .probes
            .probe(url.as_str(), || async {
                let mut trail = Vec::new();
                let ports = &shared.config.extra_https_ports;
                let usage = CredentialUse::Anonymous;
                let probe = probe_activesync(&shared.http, url, usage, ports, |request| {
                    trail.push(attempt_for(method, request))
                })
                .await;
                (probe, trail)
            })
            .await;
        for mut attempt in answer.trail {
            if let Some(age) = answer.age {
                attempt.ms = 0;
                attempt.method = method;
                attempt.detail = Some(format!(
                    "{}; the answer another discovery got {:.0} s ago (a host's answer to an anonymous probe is shared for {} s)",
                    attempt.detail.unwrap_or_default(),
                    age.as_secs_f64(),
                    shared.probes.ttl().as_secs()
                ));
            }
            self.run.record(attempt);
        }
        answer.probe
    }

    /// Probes `url` and records every request in the trail.
    pub(in crate::discovery) async fn probe_recorded(
        &self,
        url: &Url,
        credentials: CredentialUse<'_>,
    ) -> Probe {
        let extra_ports = self.shared.config.extra_https_ports.clone();
        let method = self.method;
        probe_activesync(
            &self.shared.http,
            url,
            credentials,
            &extra_ports,
            |request| self.run.record(attempt_for(method, request)),
        )
        .await
    }
}
