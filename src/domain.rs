//! Newtypes for what users hand us, validated once at the edge, and the report types that
//! discovery hands back.
//!
//! `EmailAddress::parse` and `Domain::parse` implement security rule 10: one `@`, IDNA to ASCII,
//! lower-case, at least two labels, no IP literal, no port, path or escape characters, no
//! `localhost`, `.local`, `.internal` or `.home.arpa`, and never a bare public suffix (rule 6: a
//! public suffix as the domain would make `autodiscover.<suffix>` a candidate).

use std::fmt;
use std::net::IpAddr;

use secrecy::SecretString;
use serde::Serialize;

/// A mailbox address, lower-cased, with its domain in ASCII (punycode) form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    local: String,
    domain: Domain,
}

impl EmailAddress {
    /// Parses and normalises an address: exactly one `@`, a plain local part, a valid
    /// [`Domain`].
    pub fn parse(input: &str) -> Result<Self, InputError> {
        let input = input.trim();
        let mut parts = input.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(InputError::Address("an address needs exactly one '@'"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(InputError::Address(
                "the part before '@' must hold 1 to 64 characters",
            ));
        }
        if local
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || FORBIDDEN.contains(&c))
        {
            return Err(InputError::Address(
                "the part before '@' holds a forbidden character",
            ));
        }
        let domain = Domain::parse(domain).map_err(|err| match err {
            InputError::Domain(why) => InputError::Address(why),
            other => other,
        })?;
        Ok(Self {
            local: local.to_lowercase(),
            domain,
        })
    }

    /// The part after `@`.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        &self.local
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Full addresses stay out of logs above debug; Debug output ends up in spans.
        write!(f, "EmailAddress(***@{})", self.domain)
    }
}

/// A DNS host name in lower-case ASCII form without a trailing dot: a mail domain or a server.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
#[serde(transparent)]
pub struct Domain(String);

impl Domain {
    /// Validates a host name for use as a mail domain or server (rule 10).
    pub fn parse(input: &str) -> Result<Self, InputError> {
        let trimmed = input.trim().trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(InputError::Domain("the domain is empty"));
        }
        if trimmed.starts_with('[') || trimmed.parse::<IpAddr>().is_ok() {
            return Err(InputError::Domain("an IP literal is not a domain"));
        }
        if trimmed
            .chars()
            .any(|c| FORBIDDEN.contains(&c) || c.is_whitespace() || c.is_control())
        {
            return Err(InputError::Domain(
                "the domain holds a port, path or escape character",
            ));
        }
        let ascii = idna::domain_to_ascii_strict(trimmed)
            .map_err(|_| InputError::Domain("the domain is not a valid IDNA name"))?;
        let labels: Vec<&str> = ascii.split('.').collect();
        if labels.len() < 2 {
            return Err(InputError::Domain("the domain needs at least two labels"));
        }
        if labels.iter().any(|l| l.is_empty() || l.len() > 63) || ascii.len() > 253 {
            return Err(InputError::Domain("a domain label is empty or too long"));
        }
        if labels.iter().all(|l| l.chars().all(|c| c.is_ascii_digit())) {
            return Err(InputError::Domain("an IP literal is not a domain"));
        }
        if is_local_only(&ascii) {
            return Err(InputError::Domain("local-only names are not mail domains"));
        }
        if psl::domain(ascii.as_bytes()).is_none() {
            return Err(InputError::Domain("a public suffix is not a mail domain"));
        }
        Ok(Self(ascii))
    }

    /// The name as a string, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name with a trailing dot, as DNS queries want it (no search list applies).
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }

    /// The registrable part of the name by the public suffix list (`example.co.uk` for
    /// `mail.example.co.uk`).
    pub fn registrable(&self) -> Option<&str> {
        registrable_domain(&self.0)
    }

    /// Whether `self` is `other` or a name under it.
    pub fn is_within(&self, other: &Domain) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.ends_with(other.0.as_str())
                && self.0.as_bytes()[self.0.len() - other.0.len() - 1] == b'.')
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The registrable domain of a lower-case ASCII host name, by the public suffix list.
pub fn registrable_domain(host: &str) -> Option<&str> {
    let domain = psl::domain(host.as_bytes())?;
    std::str::from_utf8(domain.as_bytes()).ok()
}

/// A username and password for Basic authentication. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    /// The username (often the address itself, or `DOMAIN\\user`).
    pub username: String,
    /// The password.
    pub password: SecretString,
    /// Who is trying them, when that is known (the daemon's caller): the per-account budget of
    /// password attempts is kept per source, so that one source's failures do not block the
    /// account for the others (rule 25). `None`: this process is the only source.
    pub source: Option<std::net::IpAddr>,
}

impl Credentials {
    /// Credentials from a username and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
            source: None,
        }
    }

    /// The key of the per-account attempt budget: the username, case-folded, per source.
    pub fn budget_key(&self) -> String {
        let username = self.username.trim().to_lowercase();
        match self.source {
            Some(source) => format!("{source}|{username}"),
            None => username,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &"***")
            .field("password", &"***")
            .finish()
    }
}

/// Input that was refused at the edge, before any network traffic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The email address is malformed.
    #[error("invalid email address: {0}")]
    Address(&'static str),
    /// The domain or host name is malformed or not allowed.
    #[error("invalid domain: {0}")]
    Domain(&'static str),
}

impl InputError {
    /// A stable label for reports and tests.
    pub fn code(&self) -> crate::code::Code {
        match self {
            Self::Address(_) => crate::code::Code::InvalidAddress,
            Self::Domain(_) => crate::code::Code::InvalidDomain,
        }
    }
}

fn is_local_only(name: &str) -> bool {
    LOCAL_ONLY_NAMES.contains(&name)
        || LOCAL_ONLY_SUFFIXES
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// Characters that never belong in an address or a host name we accept: ports, paths,
/// queries, escapes, quoting and URL userinfo.
const FORBIDDEN: &[char] = &[
    ':', '/', '\\', '?', '#', '%', '[', ']', '"', '\'', '<', '>', ',', ';', '(', ')', '`',
];

const LOCAL_ONLY_NAMES: &[&str] = &["localhost", "localhost.localdomain"];

const LOCAL_ONLY_SUFFIXES: &[&str] = &[
    ".localhost",
    ".local",
    ".internal",
    ".home.arpa",
    ".localdomain",
    ".lan",
    ".intranet",
    ".corp",
    ".in-addr.arpa",
    ".ip6.arpa",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised() {
        let addr = EmailAddress::parse(" Alice@Example.COM ").unwrap();
        assert_eq!(addr.to_string(), "alice@example.com");
        let idn = EmailAddress::parse("bob@bücher.example").unwrap();
        assert_eq!(idn.domain().as_str(), "xn--bcher-kva.example");
    }

    #[test]
    fn hostile_addresses_are_refused_with_codes() {
        for bad in [
            "no-at-sign",
            "a@b@example.com",
            "@example.com",
            "alice@",
            "alice@com",
            "alice@localhost",
            "alice@printer.local",
            "alice@corp.internal",
            "alice@nas.home.arpa",
            "alice@127.0.0.1",
            "alice@[127.0.0.1]",
            "alice@[::1]",
            "alice@example.com:8443",
            "alice@example.com/path",
            "alice@exa%2emple.com",
            "alice@co.uk",
            "al ice@example.com",
            "alice@exa mple.com",
            "alice@.example.com",
            "alice@example..com",
        ] {
            let err = EmailAddress::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_address", "{bad}");
        }
    }

    #[test]
    fn within_is_label_aware() {
        let parent = Domain::parse("example.com").unwrap();
        assert!(
            Domain::parse("mail.example.com")
                .unwrap()
                .is_within(&parent)
        );
        assert!(parent.is_within(&parent));
        assert!(!Domain::parse("badexample.com").unwrap().is_within(&parent));
    }

    #[test]
    fn registrable_uses_public_suffix_list() {
        let d = Domain::parse("mail.example.co.uk").unwrap();
        assert_eq!(d.registrable(), Some("example.co.uk"));
        assert_eq!(
            Domain::parse("a.example.test").unwrap().registrable(),
            Some("example.test")
        );
    }
}
