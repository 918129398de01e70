//! `WWW-Authenticate` challenges: which schemes a 401 offers (RFC 9110 11.6.1).
//!
//! Scheme names are compared case-insensitively: real servers send `Www-Authenticate` and
//! lower-case `basic`. A challenge that offers only `Bearer` means basic authentication is off
//! there (modern authentication only), which is not a wrong password.

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

/// The schemes a `WWW-Authenticate` challenge offers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// `Basic` is offered.
    pub basic: bool,
    /// `Bearer` is offered.
    pub bearer: bool,
    /// Another scheme (NTLM, Negotiate) is offered.
    pub other: bool,
}

impl Challenge {
    /// Reads every `WWW-Authenticate` header, case-insensitively.
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut challenge = Self::default();
        for value in headers.get_all(WWW_AUTHENTICATE) {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split(',') {
                let scheme = part.split_whitespace().next().unwrap_or("");
                if scheme.eq_ignore_ascii_case("basic") {
                    challenge.basic = true;
                } else if scheme.eq_ignore_ascii_case("bearer") {
                    challenge.bearer = true;
                } else if !scheme.is_empty() && !scheme.contains('=') {
                    // Parameters of a previous scheme contain '='; a bare token is a scheme.
                    challenge.other = true;
                }
            }
        }
        challenge
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn challenges_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("basic realm=\"mail.example.test\""),
        );
        assert_eq!(
            Challenge::parse(&headers),
            Challenge {
                basic: true,
                bearer: false,
                other: true
            }
        );
        let mut headers = HeaderMap::new();
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer client_id=\"00000002-0000-0ff1-ce00-000000000000\", trusted_issuers=\"x\"",
            ),
        );
        assert_eq!(
            Challenge::parse(&headers),
            Challenge {
                basic: false,
                bearer: true,
                other: false
            }
        );
    }
}
