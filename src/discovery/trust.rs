//! Which hosts may receive credentials for one discovery (security rules 2 to 4).
//!
//! The trust set for a mail domain D holds D, `autodiscover.D` and every host that shares D's
//! registrable domain (public suffix list), the hosts the operator allows (built in: Exchange
//! Online's own), and the hosts the caller consented to for this discovery. A redirect never
//! adds to it, whoever sent it: a redirect target outside D's registrable domain is untrusted
//! (rule 4), and so is a host learned from DNS (SRV) in another registrable domain (rule 3).
//! An untrusted host may be probed anonymously and reported as needing consent, but it never
//! receives credentials and is never a confirmed host.

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
    /// The built-in and the operator's hosts.
    allowed: HashSet<String>,
    /// The hosts the caller consented to for this discovery.
    consented: HashSet<String>,
}

impl Trust {
    /// The trust set for `domain` plus the operator's `allowed_hosts` and the hosts the
    /// caller `consented` to for this discovery.
    pub fn new(domain: &Domain, allowed_hosts: &[String], consented: &[String]) -> Self {
        let registrable = domain.registrable().unwrap_or(domain.as_str()).to_owned();
        let normalised = |hosts: &[String]| -> HashSet<String> {
            hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect()
        };
        let mut allowed = normalised(allowed_hosts);
        allowed.extend(BUILT_IN_TRUSTED_HOSTS.iter().map(|h| (*h).to_owned()));
        Self {
            registrable,
            allowed,
            consented: normalised(consented),
        }
    }

    /// Whether `host` may receive credentials.
    pub fn is_trusted(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.consented.contains(&host) || self.speaks_for_domain(&host)
    }

    /// Whether `host` is trusted without anyone's consent: inside the domain's registrable
    /// domain, or a host the operator (or the built-in list) trusts for every domain. Only
    /// such a host's acceptance of a password counts as proof that the password is right
    /// ([`super::limits`]): a consented host may be anyone's and accept anything.
    pub fn speaks_for_domain(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed.contains(&host) || registrable_domain(&host) == Some(self.registrable.as_str())
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
            &[],
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
        let trust = Trust::new(&Domain::parse("eu.example.co.uk").unwrap(), &[], &[]);
        assert!(trust.is_trusted("mail.example.co.uk"));
        assert!(!trust.is_trusted("other.co.uk"));
        assert!(!trust.is_trusted("co.uk"));
    }

    #[test]
    fn consent_adds_a_host_for_one_discovery() {
        let domain = Domain::parse("example.test").unwrap();
        assert!(!Trust::new(&domain, &[], &[]).is_trusted("hosted.partner.test"));
        let trust = Trust::new(&domain, &[], &["Hosted.Partner.Test.".into()]);
        assert!(trust.is_trusted("hosted.partner.test"));
        assert!(
            !trust.speaks_for_domain("hosted.partner.test"),
            "a consented host's acceptance of a password proves nothing"
        );
        assert!(trust.speaks_for_domain("mail.example.test"));
        assert!(trust.speaks_for_domain("outlook.office365.com"));
    }
}
