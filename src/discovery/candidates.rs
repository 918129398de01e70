//! The candidates of one discovery, in the protocol's preference order ([MS-OXDSCLI] 3.1.5).
//!
//! Pure: a mail domain in, an ordered list out. Only the domain itself and
//! `autodiscover.DOMAIN` are ever built: never a parent domain, never
//! `autodiscover.<public suffix>` (rule 6).

use url::Url;

use super::redirect::AUTODISCOVER_PATH;
use crate::domain::Domain;
use crate::report::Method;

/// Where one candidate starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// POST Autodiscover XML to this https URL.
    Pox(Url),
    /// GET this http URL, anonymously, and use only an https redirect.
    HttpRedirect(Url),
    /// Look up SRV records under this fully qualified name.
    Srv(String),
    /// Autodiscover v2, anonymously: the domain's own `autodiscover.DOMAIN` first; then, when
    /// the domain's MX records are Exchange Online's, Exchange Online.
    AutodiscoverV2,
    /// Probe `OPTIONS /Microsoft-Server-ActiveSync` on these hosts (and the MX hosts inside
    /// the domain).
    ActiveSync(Vec<String>),
}

/// One candidate: a method and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The method, which is also its rank.
    pub method: Method,
    /// Where it starts.
    pub start: Start,
}

/// When a candidate starts, relative to the more preferred ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wave {
    /// At once: the two POX URLs.
    First,
    /// When every first-wave candidate has failed (or only proved an endpoint), or after
    /// `Config::second_wave_delay`: the plain-HTTP redirect, the SRV lookup and Autodiscover
    /// v2.
    Second,
    /// When every Autodiscover candidate has failed, or after `Config::fallback_delay`: the
    /// ActiveSync host probes.
    Fallback,
}

impl Candidate {
    /// When this candidate starts.
    pub fn wave(&self) -> Wave {
        match self.start {
            Start::Pox(_) => Wave::First,
            Start::HttpRedirect(_) | Start::Srv(_) | Start::AutodiscoverV2 => Wave::Second,
            Start::ActiveSync(_) => Wave::Fallback,
        }
    }

    /// Whether this candidate may send the password (Autodiscover POX, reached directly, by
    /// the plain-HTTP redirect or by SRV); Autodiscover v2 and the ActiveSync host probes are
    /// anonymous.
    pub fn carries_password(&self) -> bool {
        matches!(
            self.start,
            Start::Pox(_) | Start::HttpRedirect(_) | Start::Srv(_)
        )
    }

    /// The target shown in the trail.
    pub fn target(&self) -> String {
        match &self.start {
            Start::Pox(url) | Start::HttpRedirect(url) => url.to_string(),
            Start::Srv(name) => name.clone(),
            Start::AutodiscoverV2 => {
                "autodiscover v2 (autodiscover.DOMAIN, then Exchange Online if the MX is)"
                    .to_owned()
            }
            Start::ActiveSync(hosts) => hosts.join(" "),
        }
    }
}

/// The candidates for `domain`, most preferred first.
pub fn candidates_for(domain: &Domain) -> Vec<Candidate> {
    let url = |scheme: &str, host: &str| {
        Url::parse(&format!("{scheme}://{host}{AUTODISCOVER_PATH}"))
            .expect("a validated domain makes a valid url")
    };
    let autodiscover_host = format!("autodiscover.{domain}");
    vec![
        Candidate {
            method: Method::PoxDomain,
            start: Start::Pox(url("https", domain.as_str())),
        },
        Candidate {
            method: Method::PoxAutodiscover,
            start: Start::Pox(url("https", &autodiscover_host)),
        },
        Candidate {
            method: Method::HttpRedirect,
            start: Start::HttpRedirect(url("http", &autodiscover_host)),
        },
        Candidate {
            method: Method::Srv,
            start: Start::Srv(format!("_autodiscover._tcp.{domain}.")),
        },
        Candidate {
            method: Method::AutodiscoverV2,
            start: Start::AutodiscoverV2,
        },
        Candidate {
            method: Method::ActiveSync,
            start: Start::ActiveSync(
                ACTIVESYNC_HOST_PREFIXES
                    .iter()
                    .map(|prefix| format!("{prefix}.{domain}"))
                    .collect(),
            ),
        },
    ]
}

/// The host names a domain typically gives its ActiveSync server.
const ACTIVESYNC_HOST_PREFIXES: &[&str] = &["mail", "owa", "exchange", "webmail"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_the_protocol() {
        let domain = Domain::parse("sub.example.co.uk").unwrap();
        let targets: Vec<String> = candidates_for(&domain)
            .iter()
            .map(Candidate::target)
            .collect();
        assert_eq!(
            targets,
            [
                "https://sub.example.co.uk/autodiscover/autodiscover.xml",
                "https://autodiscover.sub.example.co.uk/autodiscover/autodiscover.xml",
                "http://autodiscover.sub.example.co.uk/autodiscover/autodiscover.xml",
                "_autodiscover._tcp.sub.example.co.uk.",
                "autodiscover v2 (autodiscover.DOMAIN, then Exchange Online if the MX is)",
                "mail.sub.example.co.uk owa.sub.example.co.uk exchange.sub.example.co.uk \
                 webmail.sub.example.co.uk",
            ]
        );
    }

    #[test]
    fn never_a_parent_domain() {
        let domain = Domain::parse("mail.sub.example.test").unwrap();
        for candidate in candidates_for(&domain) {
            if candidate.start == Start::AutodiscoverV2 {
                // Exchange Online's fixed endpoint, asked only when the MX is Exchange Online.
                continue;
            }
            let target = candidate.target();
            assert!(
                target.contains("mail.sub.example.test"),
                "{target} leaves the domain"
            );
            assert!(!target.contains("autodiscover.sub.example.test"));
            assert!(!target.contains("autodiscover.example.test"));
        }
    }
}
