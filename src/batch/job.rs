//! Discovery jobs and the input lines they come from: an address or a bare domain, as plain
//! text or a JSON line (`{"email": ...}` or `{"domain": ...}`, with an optional
//! `credentials_ref` naming credentials held elsewhere: a password never travels in a queue).

use serde::{Deserialize, Serialize};

use crate::domain::{Domain, EmailAddress, InputError};

/// What to discover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One mailbox.
    Address(EmailAddress),
    /// A whole domain (discovered as `postmaster@DOMAIN`).
    Domain(Domain),
}

impl Target {
    /// The mail domain, the key of the per-domain cache.
    pub fn domain(&self) -> &Domain {
        match self {
            Self::Address(address) => address.domain(),
            Self::Domain(domain) => domain,
        }
    }

    /// The address discovery runs with.
    pub fn address(&self) -> Result<EmailAddress, InputError> {
        match self {
            Self::Address(address) => Ok(address.clone()),
            Self::Domain(domain) => EmailAddress::parse(&format!("postmaster@{domain}")),
        }
    }
}

/// One job: its target, and the input it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// What to discover.
    pub target: Target,
    /// A reference to credentials held elsewhere (never a password).
    pub credentials_ref: Option<String>,
    /// The input as given.
    pub input: String,
}

/// A job as JSON (`{"email": ...}` or `{"domain": ...}`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct JobLine {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    credentials_ref: Option<String>,
}

/// Why a line is not a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Not a valid address or domain.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A JSON line of the wrong shape.
    #[error("a JSON job needs exactly one of \"email\" or \"domain\"")]
    Shape,
    /// Not JSON, though it starts like JSON.
    #[error("not a valid JSON job")]
    Json,
}

impl JobError {
    /// A stable label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Input(err) => err.code().as_str(),
            Self::Shape => "invalid_job",
            Self::Json => "invalid_json",
        }
    }
}

/// Parses one input line; `Ok(None)` for blank lines and `#` comments.
pub fn parse_line(line: &str) -> Result<Option<Job>, JobError> {
    let text = line.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let (target, credentials_ref) = if text.starts_with('{') {
        let job: JobLine = serde_json::from_str(text).map_err(|_| JobError::Json)?;
        let target = match (job.email, job.domain) {
            (Some(email), None) => Target::Address(EmailAddress::parse(&email)?),
            (None, Some(domain)) => Target::Domain(Domain::parse(&domain)?),
            _ => return Err(JobError::Shape),
        };
        (target, job.credentials_ref)
    } else if text.contains('@') {
        (Target::Address(EmailAddress::parse(text)?), None)
    } else {
        (Target::Domain(Domain::parse(text)?), None)
    };
    Ok(Some(Job {
        target,
        credentials_ref,
        input: text.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json_lines() {
        let job = parse_line("  Alice@Example.test ").unwrap().unwrap();
        assert_eq!(
            job.target,
            Target::Address(EmailAddress::parse("alice@example.test").unwrap())
        );
        let job = parse_line("example.test").unwrap().unwrap();
        assert_eq!(job.target.domain().as_str(), "example.test");
        assert_eq!(
            job.target.address().unwrap().to_string(),
            "postmaster@example.test"
        );
        let job = parse_line(r#"{"email":"bob@example.test","credentials_ref":"vault:bob"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(job.credentials_ref.as_deref(), Some("vault:bob"));
        assert_eq!(parse_line("").unwrap(), None);
        assert_eq!(parse_line("# comment").unwrap(), None);
    }

    #[test]
    fn bad_lines_have_codes() {
        assert_eq!(
            parse_line("not an address@").unwrap_err().code(),
            "invalid_address"
        );
        assert_eq!(
            parse_line("localhost").unwrap_err().code(),
            "invalid_domain"
        );
        assert_eq!(parse_line("{broken").unwrap_err().code(), "invalid_json");
        assert_eq!(
            parse_line(r#"{"email":"a@b.test","domain":"b.test"}"#)
                .unwrap_err()
                .code(),
            "invalid_job"
        );
        assert_eq!(
            parse_line(r#"{"email":"a@b.test","password":"x"}"#)
                .unwrap_err()
                .code(),
            "invalid_json"
        );
    }
}
