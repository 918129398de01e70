//! What a request presents to prove who sends it: a client's id and secret in
//! `Authorization: Basic` (RFC 6749 2.3.1, the form `/v1/discoveries` and `/oauth/revoke`
//! take), or an access token in `Authorization: Bearer` (RFC 6750 2.1) or as the Basic user
//! name (the platform's v2 API).

use axum::http::{HeaderMap, header};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// A client's id and secret from `Authorization: Basic`, form-decoded as RFC 6749 2.3.1 asks.
pub fn basic_client(headers: &HeaderMap) -> Option<(String, SecretString)> {
    let value = authorization(headers, "basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |part: &str| {
        url::form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let id = decode(id).filter(|id| !id.is_empty())?;
    Some((id, SecretString::from(decode(secret)?)))
}

/// The access token of `Authorization: Bearer`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, "bearer")
}

/// An access token as `Authorization: Bearer TOKEN`, or as the user name of `Authorization:
/// Basic` with an empty password (the platform's API and SDK send it so).
pub fn access_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = bearer(headers) {
        return Some(token.to_owned());
    }
    let (token, password) = basic_client(headers)?;
    password.expose_secret().is_empty().then_some(token)
}

/// The credentials of an `Authorization` header of `scheme` (compared case-insensitively).
fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (presented, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    (presented.eq_ignore_ascii_case(scheme) && !credentials.is_empty()).then_some(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_and_bearer() {
        // "cli_1:s%3Acret" — a ':' in a secret is form-encoded.
        let encoded = base64::engine::general_purpose::STANDARD.encode("cli_1:s%3Acret");
        let (id, secret) = basic_client(&headers(&format!("Basic {encoded}"))).unwrap();
        assert_eq!((id.as_str(), secret.expose_secret()), ("cli_1", "s:cret"));
        assert!(basic_client(&headers("Basic !!!")).is_none());
        assert_eq!(bearer(&headers("bearer exd_at_1")), Some("exd_at_1"));
        assert_eq!(bearer(&headers("Bearer  ")), None);
        assert_eq!(bearer(&headers("Basic exd_at_1")), None);
        let as_user = base64::engine::general_purpose::STANDARD.encode("exd_at_1:");
        let as_user = headers(&format!("Basic {as_user}"));
        assert_eq!(access_token(&as_user).as_deref(), Some("exd_at_1"));
        assert_eq!(
            access_token(&headers(&format!("Basic {encoded}"))),
            None,
            "a client"
        );
    }
}
