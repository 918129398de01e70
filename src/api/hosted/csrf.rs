//! CSRF protection of the page's forms: a random value in an `HttpOnly`, `SameSite=Lax` cookie,
//! and in each form its HMAC under the operator's key (a signed double submit). A form posted
//! from elsewhere has neither the cookie's value nor the key, so it cannot carry a valid token.
//! The same cookie binds a Microsoft sign-in to the browser that started it.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::secrets::{self, MasterKey};

/// The cookie's name.
pub const COOKIE: &str = "exdisco_csrf";
/// How long the cookie lives, in seconds.
const MAX_AGE: u32 = 3600;
/// Random bytes in the cookie.
const NONCE_BYTES: usize = 32;

/// This browser's CSRF value.
pub struct Csrf {
    nonce: String,
}

impl Csrf {
    /// A fresh value.
    pub fn new() -> Result<Self, secrets::Error> {
        let mut bytes = [0u8; NONCE_BYTES];
        getrandom::fill(&mut bytes).map_err(|_| secrets::Error::Random)?;
        Ok(Self {
            nonce: URL_SAFE_NO_PAD.encode(bytes),
        })
    }

    /// The value the request's cookie carries, if it is well formed.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|line| line.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)
            .filter(|value| {
                URL_SAFE_NO_PAD
                    .decode(value)
                    .is_ok_and(|b| b.len() == NONCE_BYTES)
            })
            .map(|value| Self {
                nonce: value.to_owned(),
            })
    }

    /// The token a form carries.
    pub fn token(&self, key: &MasterKey) -> String {
        URL_SAFE_NO_PAD.encode(key.mac("csrf", self.nonce.as_bytes()))
    }

    /// Whether `presented` is this browser's token.
    pub fn verify(&self, key: &MasterKey, presented: &str) -> bool {
        let expected = self.token(key);
        expected.len() == presented.len()
            && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// What ties a Microsoft sign-in to this browser.
    pub fn binding(&self, key: &MasterKey) -> String {
        URL_SAFE_NO_PAD.encode(key.mac("microsoft-binding", self.nonce.as_bytes()))
    }

    /// Whether `binding` was made for this browser.
    pub fn verify_binding(&self, key: &MasterKey, binding: &str) -> bool {
        let expected = self.binding(key);
        expected.len() == binding.len() && bool::from(expected.as_bytes().ct_eq(binding.as_bytes()))
    }

    /// The `Set-Cookie` value.
    /// The token of the user's consent to `host`, bound to this browser's cookie: a consent
    /// posted from another browser, or for another host, does nothing.
    pub fn consent_token(&self, key: &MasterKey, host: &str) -> String {
        let bound = format!("{}\n{}", self.nonce, host.to_ascii_lowercase());
        URL_SAFE_NO_PAD.encode(key.mac("consent", bound.as_bytes()))
    }

    /// Whether `presented` is this browser's consent to `host`.
    pub fn verify_consent(&self, key: &MasterKey, host: &str, presented: &str) -> bool {
        let expected = self.consent_token(key, host);
        expected.len() == presented.len()
            && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    pub fn cookie(&self, secure: bool) -> HeaderValue {
        let secure = if secure { "; Secure" } else { "" };
        let text = format!(
            "{COOKIE}={}; Path=/oauth; Max-Age={MAX_AGE}; HttpOnly; SameSite=Lax{secure}",
            self.nonce
        );
        HeaderValue::from_str(&text).expect("base64url and fixed attributes are header-safe")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_base64(&STANDARD.encode([byte; 32])).unwrap()
    }

    fn headers(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        headers
    }

    #[test]
    fn consents_are_bound_to_the_browser_and_the_host() {
        let csrf = Csrf::new().unwrap();
        let token = csrf.consent_token(&key(1), "autodiscover.hoster.test");
        assert!(csrf.verify_consent(&key(1), "autodiscover.hoster.test", &token));
        assert!(!csrf.verify_consent(&key(1), "autodiscover.evil.test", &token));
        assert!(
            !Csrf::new()
                .unwrap()
                .verify_consent(&key(1), "autodiscover.hoster.test", &token)
        );
        assert!(!csrf.verify_consent(&key(1), "autodiscover.hoster.test", ""));
    }

    #[test]
    fn tokens_verify_only_for_their_cookie_and_key() {
        let csrf = Csrf::new().unwrap();
        let token = csrf.token(&key(1));
        assert!(csrf.verify(&key(1), &token));
        assert!(!csrf.verify(&key(2), &token), "another key");
        assert!(
            !Csrf::new().unwrap().verify(&key(1), &token),
            "another browser"
        );
        assert!(!csrf.verify(&key(1), ""));
        assert!(
            !csrf.verify(&key(1), &csrf.nonce),
            "the cookie itself is not a token"
        );
    }

    #[test]
    fn the_cookie_is_read_back_and_malformed_ones_are_ignored() {
        let csrf = Csrf::new().unwrap();
        let line = format!("theme=dark; {COOKIE}={}; x=y", csrf.nonce);
        let read = Csrf::from_headers(&headers(&line)).unwrap();
        assert_eq!(read.nonce, csrf.nonce);
        assert!(Csrf::from_headers(&headers(&format!("{COOKIE}=short"))).is_none());
        assert!(Csrf::from_headers(&HeaderMap::new()).is_none());
        let cookie = csrf.cookie(true);
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert!(cookie.contains("Secure"));
        assert!(!csrf.cookie(false).to_str().unwrap().contains("Secure"));
    }
}
