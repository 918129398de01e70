//! Which hosts may receive credentials for one discovery (security rules 2 to 4).
//!
//! The trust set for a mail domain D holds D, `autodiscover.D` and every host that shares D's
//! registrable domain (public suffix list), the hosts the operator allows (built in: Exchange
//! Online's own), and hosts that a trusted HTTPS answer redirected to. A host learned from an
//! unauthenticated source (the plain-HTTP redirect, SRV, DNS) whose registrable domain differs
//! from D's is untrusted: it may be probed anonymously and reported as a candidate that needs
//! confirmation, but it never receives credentials and is never a confirmed host.

use std::collections::HashSet;

use crate::domain::{Domain, registrable_domain};

/// Exchange Online hosts that are trusted for every domain.
pub const BUILT_IN_TRUSTED_HOSTS: &[&str] = &[
    "outlook.office365.com",
    "autodiscover-s.outlook.com",
    "outlook.office.com",
    "autodiscover.outlook.com",
];

/// The trust set of one discovery.
#[derive(Debug, Clone)]
pub struct Trust {
    registrable: String,
    allowed: HashSet<String>,
}

impl Trust {
    /// The trust set for `domain` plus the operator's `allowed_hosts`.
    pub fn new(domain: &Domain, allowed_hosts: &[String]) -> Self {
        let registrable = domain.registrable().unwrap_or(domain.as_str()).to_owned();
        let allowed = BUILT_IN_TRUSTED_HOSTS
            .iter()
            .map(|h| (*h).to_owned())
            .chain(allowed_hosts.iter().map(|h| h.to_ascii_lowercase()))
            .collect();
        Self {
            registrable,
            allowed,
        }
    }

    /// Whether `host` may receive credentials.
    pub fn is_trusted(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed.contains(&host) || registrable_domain(&host) == Some(self.registrable.as_str())
    }

    /// Adds `host` because a trusted HTTPS answer redirected to it (rule 4).
    pub fn extend(&mut self, host: &str) {
        self.allowed
            .insert(host.trim_end_matches('.').to_ascii_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_tree_and_allow_list_are_trusted() {
        let trust = Trust::new(
            &Domain::parse("example.test").unwrap(),
            &["mx.partner.test".into()],
        );
        assert!(trust.is_trusted("example.test"));
        assert!(trust.is_trusted("autodiscover.example.test"));
        assert!(trust.is_trusted("mail.eu.example.test"));
        assert!(trust.is_trusted("outlook.office365.com"));
        assert!(trust.is_trusted("MX.Partner.Test"));
        assert!(!trust.is_trusted("evil.test"));
        assert!(!trust.is_trusted("example.test.evil.test"));
        assert!(!trust.is_trusted("autodiscover.test"));
    }

    #[test]
    fn subdomain_mail_domains_share_their_registrable_domain() {
        let trust = Trust::new(&Domain::parse("eu.example.co.uk").unwrap(), &[]);
        assert!(trust.is_trusted("mail.example.co.uk"));
        assert!(!trust.is_trusted("other.co.uk"));
        assert!(!trust.is_trusted("co.uk"));
    }

    #[test]
    fn redirects_extend_trust() {
        let mut trust = Trust::new(&Domain::parse("example.test").unwrap(), &[]);
        assert!(!trust.is_trusted("hosted.partner.test"));
        trust.extend("hosted.partner.test");
        assert!(trust.is_trusted("hosted.partner.test"));
    }
}
