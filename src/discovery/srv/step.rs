//! The SRV step: look `_autodiscover._tcp.DOMAIN` up, order the records, and POST to each
//! target in turn until one answers (a target outside the domain is asked anonymously only,
//! rule 3).

use std::time::Instant;

use url::Url;

use super::order_records;
use crate::code::Code;
use crate::discovery::redirect;
use crate::discovery::steps::{CandidateOutcome, Origin, Steps, failed};
use crate::domain::Domain;
use crate::report::{Outcome, Step};

impl Steps {
    /// The SRV step: look up, order, and try each target in turn until one answers.
    pub(in crate::discovery) async fn srv(&self, name: &str) -> CandidateOutcome {
        let started = Instant::now();
        let looked_up = self.shared.dns.lookup_srv(name).await;
        let mut allowed_ports = vec![443];
        allowed_ports.extend(&self.shared.config.extra_https_ports);
        let ordered = looked_up.and_then(|records| {
            order_records(name, records, &allowed_ports, |n| fastrand::u32(0..=n))
        });
        let records = match ordered {
            Ok(records) => {
                let targets: Vec<String> = records
                    .iter()
                    .map(|r| format!("{}:{}", r.target, r.port))
                    .collect();
                self.record_attempt(
                    Step::Srv,
                    name,
                    started,
                    Outcome::Redirected,
                    None,
                    Some(targets.join(" ")),
                    false,
                );
                records
            }
            Err(err) => {
                self.record_attempt(
                    Step::Srv,
                    name,
                    started,
                    Outcome::Failed,
                    Some(&err),
                    None,
                    false,
                );
                return failed(err.code());
            }
        };
        let mut last = failed(Code::SrvNoUsableTarget);
        for record in records {
            let Ok(host) = Domain::parse(&record.target) else {
                last = failed(Code::RedirectRefused);
                continue;
            };
            let port = if record.port == 443 {
                String::new()
            } else {
                format!(":{}", record.port)
            };
            let Ok(url) = Url::parse(&format!(
                "https://{host}{port}{}",
                redirect::AUTODISCOVER_PATH
            )) else {
                continue;
            };
            if !self.run.hops().visit_start(&url) {
                // The same URL is already another candidate's: it answers for both.
                last = failed(Code::DuplicateTarget);
                continue;
            }
            let origin = Origin::Srv {
                from: name.trim_end_matches('.').to_owned(),
            };
            match self.follow_pox(url, origin).await {
                outcome if outcome.is_failure() => last = outcome,
                done => return done,
            }
        }
        last
    }
}
