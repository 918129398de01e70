//! Why a discovery failed, decided once, here: the headline failure picked from the race's
//! ends, what the discovery learned besides them and the whole trail; and a typed remedy for
//! every failure class ([`Remedy`]), which each face says in its own words.
//!
//! The rule, in order (the first that holds names the failure):
//! 1. What the race learned besides its ends: a host that needs consent, a domain whose own
//!    Autodiscover names only IMAP/SMTP, an Autodiscover endpoint that wants credentials none
//!    were given for.
//! 2. What the candidates' last codes say: a spent password budget, a refused password
//!    (inconclusive only when a candidate that could have taken it was not reached), modern
//!    authentication only.
//! 3. What the engine already knows for sure stays: consent needed, modern authentication
//!    only, the password refused, the deadline, a move, an IMAP-only domain.
//! 4. A redirect loop or the hop limit anywhere in the trail (`redirect_loop`,
//!    `redirect_limit`), or a chain of redirects that ran until the discovery's password
//!    attempts were spent (`redirect_loop`).
//! 5. DNS facts that doom every candidate: every name failed in DNS with SERVFAIL or a timeout
//!    (`dns_servfail`, `dns_timeout`); the registered domain itself does not exist
//!    (`dns_nxdomain`).
//! 6. Otherwise `not_found`: nothing answered as Autodiscover or ActiveSync.

use super::steps::Findings;
use crate::code::Code;
use crate::domain::Domain;
use crate::report::{Attempt, Failure, Outcome, Remedy, Report, Step};

/// How a discovery ended without a host, before the headline is decided.
pub(super) enum Unfound {
    /// Every candidate failed: each one's last code, with whether it could carry the password.
    Race(Vec<(bool, Code)>),
    /// The discovery ended for a reason of its own (the deadline, a refusal, a redirect).
    Ended(Failure),
}

/// The headline failure of a discovery that found nothing.
pub(super) fn headline(
    unfound: Unfound,
    findings: &Findings,
    had_credentials: bool,
    trail: &[Attempt],
    domain: &Domain,
) -> Failure {
    let failure = match unfound {
        Unfound::Race(ended) => race_failure(&ended, findings, had_credentials),
        Unfound::Ended(failure) => failure,
    };
    refine(failure, trail, domain)
}

/// Sets the report's remedy for its failure, if it failed.
pub(super) fn prescribe(report: &mut Report, domain: &Domain) {
    report.remedy = report
        .error
        .as_ref()
        .map(|failure| remedy(failure.code, report, domain));
}

/// Rules 1 and 2: the failure of a race whose every candidate failed.
fn race_failure(ended: &[(bool, Code)], findings: &Findings, had_credentials: bool) -> Failure {
    if let Some(consent) = &findings.consent {
        return Failure {
            code: Code::NeedsConsent,
            message: format!(
                "{} (outside the domain, from {}) asks for the password; it gets it only with \
                 consent",
                consent.host, consent.from
            ),
        };
    }
    if let Some((url, servers)) = &findings.mail_servers {
        let named: Vec<String> = servers.iter().map(ToString::to_string).collect();
        return Failure {
            code: Code::ImapOnly,
            message: format!(
                "the domain's mail is not Exchange: its Autodiscover ({url}) names {}",
                if named.is_empty() {
                    "IMAP or POP settings".to_owned()
                } else {
                    named.join(", ")
                }
            ),
        };
    }
    if let Some((_, endpoint)) = &findings.endpoint
        && !had_credentials
        && !ended.iter().any(|(_, code)| *code == Code::AuthRejected)
    {
        return Failure {
            code: Code::AuthRequired,
            message: format!(
                "Autodiscover answers at {} but names the server only to the account's \
                 credentials",
                endpoint.url
            ),
        };
    }
    summarise(ended)
}

/// Rule 2: what the candidates' last codes say. A refusal outweighs what the anonymous
/// candidates (Autodiscover v2, the ActiveSync host probes) came to; it is inconclusive only
/// when another candidate that could have taken the password was not reached.
fn summarise(ended: &[(bool, Code)]) -> Failure {
    let codes: Vec<Code> = ended.iter().map(|(_, code)| *code).collect();
    // Nor is a budget that could not be asked: nothing was tried either.
    if codes.contains(&Code::BudgetUnavailable) && !codes.contains(&Code::AuthRejected) {
        return Failure {
            code: Code::BudgetUnavailable,
            message: "the shared password budget did not answer, so no password was sent; \
                      try again shortly"
                .into(),
        };
    }
    // A spent password budget is not a wrong password: nothing was tried (rule 19).
    if codes.contains(&Code::CredentialBudget) && !codes.contains(&Code::AuthRejected) {
        return Failure {
            code: Code::CredentialBudget,
            message: "the password attempts of this account are spent for now; try again later"
                .into(),
        };
    }
    let refused = |c: &Code| matches!(c, Code::AuthRejected | Code::CredentialBudget);
    if codes.iter().any(refused) {
        let with_password = ended.iter().filter(|(carries, _)| *carries);
        if with_password
            .map(|(_, c)| c)
            .all(|c| refused(c) || c.is_absent())
        {
            return Failure {
                code: Code::AuthFailed,
                message: "every Autodiscover endpoint that answered refused the credentials".into(),
            };
        }
        return Failure {
            code: Code::AuthInconclusive,
            message: "some endpoints refused the credentials, others could not be reached".into(),
        };
    }
    if codes.contains(&Code::ModernAuthOnly) {
        return Failure {
            code: Code::ModernAuthOnly,
            message:
                "the server accepts only modern authentication (OAuth); basic authentication is off"
                    .into(),
        };
    }
    Failure {
        code: Code::NotFound,
        message: format!(
            "no candidate found a host ({})",
            codes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Rules 3 to 6: what the whole trail says about a failure.
fn refine(failure: Failure, trail: &[Attempt], domain: &Domain) -> Failure {
    let kept = [
        Code::NeedsConsent,
        Code::ModernAuthOnly,
        Code::AuthFailed,
        Code::AuthInconclusive,
        Code::AuthRequired,
        Code::ActiveSyncMoved,
        Code::ImapOnly,
        Code::Deadline,
        Code::RedirectLoop,
        Code::RedirectLimit,
    ];
    if kept.contains(&failure.code) {
        return failure;
    }
    let hosts = pox_hosts(trail);
    if let Some(looped) = trail
        .iter()
        .find(|a| matches!(a.code, Some(Code::RedirectLoop | Code::RedirectLimit)))
    {
        let code = looped.code.unwrap_or(Code::RedirectLoop);
        return Failure {
            code,
            message: format!(
                "Autodiscover redirects go round ({}): {}",
                hosts.join(" → "),
                looped.detail.as_deref().unwrap_or(code.as_str())
            ),
        };
    }
    // The domain, autodiscover.DOMAIN, and at least one server a redirect led to.
    if failure.code == Code::CredentialBudget && hosts.len() >= 3 {
        return Failure {
            code: Code::RedirectLoop,
            message: format!(
                "Autodiscover redirects from server to server ({}) until the discovery's \
                 password attempts were spent",
                hosts.join(" → ")
            ),
        };
    }
    if matches!(
        failure.code,
        Code::CredentialBudget | Code::BudgetUnavailable
    ) {
        return failure;
    }
    let failed: Vec<Code> = trail
        .iter()
        .filter(|a| a.outcome == Outcome::Failed)
        .filter_map(|a| a.code)
        .collect();
    let only_dns = !failed.is_empty() && failed.iter().all(|c| c.is_dns());
    let answered = trail.iter().any(|a| {
        matches!(a.outcome, Outcome::Answered | Outcome::Redirected) && a.step != Step::Mx
    });
    if only_dns && !answered {
        for (code, what) in [
            (Code::DnsServFail, "its name servers answer SERVFAIL"),
            (Code::DnsTimeout, "its name servers do not answer"),
        ] {
            if failed.contains(&code) {
                return Failure {
                    code,
                    message: format!("DNS fails for {domain}: {what}"),
                };
            }
        }
        let whole_domain = domain.registrable() == Some(domain.as_str());
        if whole_domain && failed.iter().all(|c| *c == Code::DnsNxDomain) {
            return Failure {
                code: Code::DnsNxDomain,
                message: format!("the domain {domain} does not exist (NXDOMAIN)"),
            };
        }
    }
    Failure {
        code: Code::NotFound,
        message: failure.message,
    }
}

/// What the domain's administrator, or the user, can do about a failure with `code`.
fn remedy(code: Code, report: &Report, domain: &Domain) -> Remedy {
    let domain_name = domain.as_str().to_owned();
    match code {
        Code::NeedsConsent => Remedy::AllowHost {
            host: report
                .needs_consent
                .as_ref()
                .map(|c| c.host.clone())
                .unwrap_or_default(),
            domain: domain_name,
        },
        Code::ModernAuthOnly => Remedy::UseOffice365,
        Code::AuthFailed => Remedy::CheckPassword,
        Code::AuthInconclusive => Remedy::CheckPasswordAndRetry,
        Code::AuthRequired => Remedy::GiveCredentials,
        Code::CredentialBudget => Remedy::Wait { minutes: 15 },
        Code::BudgetUnavailable => Remedy::Wait { minutes: 1 },
        Code::ImapOnly => Remedy::UseImap {
            domain: domain_name,
            servers: report.mail_servers.clone(),
        },
        Code::ActiveSyncMoved | Code::MailboxMoved => Remedy::NameNewServer,
        Code::Throttled => Remedy::Wait { minutes: 5 },
        Code::DeviceBlocked
        | Code::DeviceQuarantined
        | Code::UserDisabledForSync
        | Code::MaxDevicesReached
        | Code::AccessDenied
        | Code::PolicyRefused
        | Code::ProvisioningRequired
        | Code::RemoteWipeRequested
        | Code::ProtocolVersionRefused
        | Code::SyncFailed => {
            let sync = report.sync.as_ref();
            Remedy::AskAdministrator {
                code,
                device_id: sync.map(|s| s.device_id.clone()).unwrap_or_default(),
                device_type: sync.map(|s| s.device_type.clone()).unwrap_or_default(),
            }
        }
        Code::RedirectLoop | Code::RedirectLimit => Remedy::FixRedirects {
            hops: pox_hosts(&report.trail),
        },
        Code::DnsServFail | Code::DnsTimeout => Remedy::FixDns {
            domain: domain_name,
        },
        Code::DnsNxDomain => Remedy::CheckAddress {
            domain: domain_name,
        },
        Code::Deadline => Remedy::RetryOrNameServer,
        _ => not_found_remedy(&report.trail, domain),
    }
}

/// For `not_found`: the most telling thing the trail shows, or the general advice.
fn not_found_remedy(trail: &[Attempt], domain: &Domain) -> Remedy {
    let host = format!("autodiscover.{domain}");
    let at = |code: Code| {
        trail
            .iter()
            .any(|a| a.code == Some(code) && a.target.contains(&host))
    };
    if at(Code::Tls) {
        return Remedy::FixCertificate { host };
    }
    if at(Code::ConnectionRefused) || at(Code::Timeout) {
        return Remedy::FixListener {
            host,
            domain: domain.as_str().to_owned(),
        };
    }
    Remedy::PublishAutodiscover {
        domain: domain.as_str().to_owned(),
    }
}

/// The hosts the POX requests went to, in order, each once (at most six).
fn pox_hosts(trail: &[Attempt]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for attempt in trail.iter().filter(|a| a.step == Step::Pox) {
        let host = url::Url::parse(&attempt.target)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        if let Some(host) = host
            && !hosts.contains(&host)
        {
            hosts.push(host);
        }
    }
    hosts.truncate(6);
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_passwords(codes: &[Code]) -> Vec<(bool, Code)> {
        codes.iter().map(|c| (true, *c)).collect()
    }

    #[test]
    fn a_refusal_outweighs_the_anonymous_candidates() {
        let ended = [
            (true, Code::AuthRejected),
            (true, Code::AuthRejected),
            (false, Code::HttpStatus),
            (false, Code::Tls),
        ];
        assert_eq!(summarise(&ended).code, Code::AuthFailed);
        let unreached = [(true, Code::AuthRejected), (true, Code::Timeout)];
        assert_eq!(summarise(&unreached).code, Code::AuthInconclusive);
    }

    #[test]
    fn auth_failure_needs_every_answering_endpoint_to_refuse() {
        assert_eq!(
            summarise(&with_passwords(&[
                Code::AuthRejected,
                Code::DnsNxDomain,
                Code::NoRedirect
            ]))
            .code,
            "auth_failed"
        );
        assert_eq!(
            summarise(&with_passwords(&[
                Code::CredentialBudget,
                Code::DnsNxDomain
            ]))
            .code,
            Code::CredentialBudget,
            "a spent budget is not a wrong password"
        );
        assert_eq!(
            summarise(&with_passwords(&[Code::AuthRejected, Code::Timeout])).code,
            "auth_inconclusive"
        );
        assert_eq!(
            summarise(&with_passwords(&[Code::ModernAuthOnly, Code::Timeout])).code,
            "modern_auth_only"
        );
        assert_eq!(
            summarise(&with_passwords(&[Code::Timeout, Code::DnsNxDomain])).code,
            "not_found"
        );
    }
}
