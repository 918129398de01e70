//! Why a discovery failed, said so that the person who must fix it can act: the headline
//! failure picked from the whole trail, not only from the candidates' last codes, and a remedy
//! for every failure class.
//!
//! The rule, in order (the first that holds names the failure):
//! 1. What the engine already knows for sure stays: consent needed, modern authentication
//!    only, the password refused, the deadline.
//! 2. A redirect loop or the hop limit anywhere in the trail (`redirect_loop`,
//!    `redirect_limit`), or a chain of redirects that ran until the discovery's password
//!    attempts were spent (`redirect_loop`).
//! 3. DNS facts that doom every candidate: every name failed in DNS with SERVFAIL or a timeout
//!    (`dns_servfail`, `dns_timeout`); the registered domain itself does not exist
//!    (`dns_nxdomain`).
//! 4. Otherwise `not_found`: nothing answered as Autodiscover or ActiveSync.

use crate::code::Code;
use crate::domain::Domain;
use crate::report::{Attempt, Failure, Outcome, Report, Step};

/// Sets the report's headline failure (when it failed) and its remedy.
pub fn diagnose(report: &mut Report, domain: &Domain) {
    let Some(failure) = report.error.take() else {
        return;
    };
    let failure = headline(failure, &report.trail, domain);
    report.remedy = Some(remedy(&failure, report, domain));
    report.error = Some(failure);
}

fn headline(failure: Failure, trail: &[Attempt], domain: &Domain) -> Failure {
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
    if let Some(looped) = trail
        .iter()
        .find(|a| matches!(a.code, Some(Code::RedirectLoop | Code::RedirectLimit)))
    {
        let code = looped.code.unwrap_or(Code::RedirectLoop);
        return Failure {
            code,
            message: format!(
                "Autodiscover redirects go round ({}): {}",
                hops(trail),
                looped.detail.as_deref().unwrap_or(code.as_str())
            ),
        };
    }
    // The domain, autodiscover.DOMAIN, and at least one server a redirect led to.
    if failure.code == Code::CredentialBudget && pox_hosts(trail).len() >= 3 {
        return Failure {
            code: Code::RedirectLoop,
            message: format!(
                "Autodiscover redirects from server to server ({}) until the discovery's \
                 password attempts were spent",
                hops(trail)
            ),
        };
    }
    if failure.code == Code::CredentialBudget {
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

/// What the domain's administrator, or the user, can do about `failure`.
fn remedy(failure: &Failure, report: &Report, domain: &Domain) -> String {
    let trail = &report.trail;
    match failure.code {
        Code::NeedsConsent => match &report.needs_consent {
            Some(consent) => format!(
                "{} is outside {domain}: allow it only if the mail is hosted there (--trust-host {}, \
                 or settings.consented_autodiscover_host in the API); otherwise give the server \
                 (--host, exchange_server_host)",
                consent.host, consent.host
            ),
            None => "allow the host named, or give the server".to_owned(),
        },
        Code::ModernAuthOnly => "the mailbox is on Exchange Online, where basic authentication \
             is off: use provider office365 (OAuth)"
            .to_owned(),
        Code::AuthFailed => "the mail server refused the password: check the username (often \
             the full address, or DOMAIN\\user) and the password"
            .to_owned(),
        Code::AuthInconclusive => "some servers refused the password and others could not be \
             reached: check the password, then try again"
            .to_owned(),
        Code::AuthRequired => "Autodiscover names the server only to the account's credentials: \
             run again with --username and a password"
            .to_owned(),
        Code::ImapOnly => {
            let servers: Vec<String> = report
                .mail_servers
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                "{domain} is an IMAP/SMTP mailbox, not Exchange: connect it with an IMAP \
                 client{}",
                if servers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", servers.join(", "))
                }
            )
        }
        Code::ActiveSyncMoved => "the mailbox moved (ActiveSync answered 451) to a server \
             that could not be confirmed: ask the administrator where it lives now, and give \
             that server (--host, exchange_server_host)"
            .to_owned(),
        Code::CredentialBudget => "the password was tried the most times allowed for now (so \
             that Active Directory does not lock the account): try again in 15 minutes"
            .to_owned(),
        Code::RedirectLoop | Code::RedirectLimit => format!(
            "the Exchange administrator must fix Autodiscover's redirects ({}) so that they end \
             at a server that answers with settings",
            hops(trail)
        ),
        Code::DnsServFail | Code::DnsTimeout => format!(
            "the name servers of {domain} fail: its DNS administrator must fix the zone or its \
             delegation"
        ),
        Code::DnsNxDomain => {
            format!("check the address: {domain} is not a registered domain (NXDOMAIN)")
        }
        Code::Deadline => "the servers answered too slowly: try again, or give the server \
             (--host, exchange_server_host)"
            .to_owned(),
        _ => not_found_remedy(trail, domain),
    }
}

/// For `not_found`: the most telling thing the trail shows, or the general advice.
fn not_found_remedy(trail: &[Attempt], domain: &Domain) -> String {
    let autodiscover = format!("autodiscover.{domain}");
    let at = |code: Code| {
        trail
            .iter()
            .find(|a| a.code == Some(code) && a.target.contains(&autodiscover))
    };
    if at(Code::Tls).is_some() {
        return format!(
            "{autodiscover} presents a certificate that is not valid for it (often its DNS \
             record points at a web hoster): point it at the Exchange server, or remove it"
        );
    }
    if at(Code::ConnectionRefused).is_some() || at(Code::Timeout).is_some() {
        return format!(
            "{autodiscover} resolves but nothing answers on https: point it at the Exchange \
             server, publish _autodiscover._tcp.{domain}, or give the server (--host, \
             exchange_server_host)"
        );
    }
    format!(
        "nothing answered as Autodiscover or ActiveSync for {domain}: publish {autodiscover} \
         (pointing at the Exchange server, with a valid certificate) or _autodiscover._tcp.{domain}, \
         or give the server (--host, exchange_server_host)"
    )
}

/// The hosts the POX requests went to, in order, each once.
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
    hosts
}

/// The Autodiscover hosts a discovery went through, as `a → b → c`.
fn hops(trail: &[Attempt]) -> String {
    let mut hosts = pox_hosts(trail);
    hosts.truncate(6);
    hosts.join(" → ")
}
