//! Secrets: random tokens and their hashes, and the cipher for account secrets at rest
//! (security rules 20 to 22).
//!
//! - Codes, access tokens and client secrets are 256 random bits from the OS, base64url, with a
//!   readable prefix. Only their SHA-256 hashes are stored; a presented value is hashed and
//!   looked up, and client secrets are compared in constant time.
//! - Account secrets (an Exchange password, a Microsoft refresh token) are sealed with
//!   XChaCha20-Poly1305 under the operator's 256-bit key, bound to the account's identity as
//!   associated data, so a sealed value copied to another row does not open.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Nonce length of XChaCha20-Poly1305.
const NONCE_BYTES: usize = 24;

/// A fresh random token with `prefix` (`exd_code_`, `exd_at_`, `exd_cs_`).
pub fn random_token(prefix: &str) -> Result<SecretString, Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| Error::Random)?;
    Ok(SecretString::from(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    )))
}

/// The stored form of a token: its SHA-256.
///
/// Unsalted on purpose. Codes, access tokens and client secrets are 256 random bits made here
/// ([`random_token`]), not chosen by people: a salt and a slow hash defend low-entropy inputs
/// against dictionaries and precomputed tables, and there is neither for a 2^256 space. The
/// hash is also the lookup key, which a per-row salt would prevent.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Compares two hashes in constant time.
pub fn hashes_match(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The operator's key for account secrets at rest. `Debug` never shows it.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// A separate key for MACs, derived from the master key.
    mac_key: [u8; 32],
}

impl MasterKey {
    /// A key from 32 bytes, given base64-encoded (a key file's content or `EXDISCO_KEY`).
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| Error::KeyFormat)?;
        if bytes.len() != 32 {
            return Err(Error::KeyFormat);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| Error::KeyFormat)?;
        let mac_key = Sha256::new()
            .chain_update(b"exdisco mac key v1\0")
            .chain_update(&bytes)
            .finalize()
            .into();
        Ok(Self { cipher, mac_key })
    }

    /// Reads the key from `path`.
    /// Refuses a file that others than its owner may read (as ssh does with private keys).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|_| Error::KeyMissing)?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyExposed(mode));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|_| Error::KeyMissing)?;
        Self::from_base64(&text)
    }

    /// A new random key, base64-encoded.
    pub fn generate_base64() -> Result<String, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| Error::Random)?;
        Ok(STANDARD.encode(bytes))
    }

    /// Creates a new key file at `path` (mode 0600); refuses to overwrite one.
    pub fn create_file(path: &Path) -> Result<(), Error> {
        use std::io::Write;
        let key = Self::generate_base64()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|_| Error::KeyCreate)?;
        writeln!(file, "{key}").map_err(|_| Error::KeyCreate)
    }

    /// Seals `secret`, bound to `context` (the account's identity).
    pub fn seal(&self, secret: &SecretString, context: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|_| Error::Random)?;
        let payload = Payload {
            msg: secret.expose_secret().as_bytes(),
            aad: context,
        };
        let sealed = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| Error::Seal)?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// An HMAC-SHA256 of `data` for `purpose` (CSRF tokens, bindings of the hosted page).
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key)
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// A value that tells this key from others without revealing it: what a database records
    /// so that an instance with another key refuses to start.
    pub fn check_value(&self) -> [u8; 32] {
        self.mac("key-check", b"exdisco database key")
    }

    /// Seals arbitrary bytes for `purpose`; the result is base64url, fit for a URL or a form.
    pub fn seal_text(&self, plain: &str, purpose: &str) -> Result<String, Error> {
        let sealed = self.seal(&SecretString::from(plain.to_owned()), purpose.as_bytes())?;
        Ok(URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens what [`MasterKey::seal_text`] sealed for the same `purpose`.
    pub fn open_text(&self, sealed: &str, purpose: &str) -> Result<SecretString, Error> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| Error::Open)?;
        self.open(&bytes, purpose.as_bytes())
    }

    /// Opens what [`MasterKey::seal`] sealed with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<SecretString, Error> {
        if sealed.len() < NONCE_BYTES {
            return Err(Error::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| Error::Open)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| Error::Open)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// What can go wrong with secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OS random source failed.
    #[error("the random source failed")]
    Random,
    /// The key is not 32 bytes of base64.
    #[error("the key must be 32 bytes, base64-encoded")]
    KeyFormat,
    /// No key file or variable.
    #[error("no key: run `exdisco init` or set EXDISCO_KEY")]
    KeyMissing,
    /// Others than its owner may read the key file.
    #[error("the key file is readable by others (mode {0:o}); run chmod 600 on it")]
    KeyExposed(u32),
    /// The key file could not be created (it may exist already).
    #[error("cannot create the key file (does it exist already?)")]
    KeyCreate,
    /// Sealing failed.
    #[error("cannot seal a secret")]
    Seal,
    /// Opening failed: wrong key, wrong context or damaged data.
    #[error("cannot open a sealed secret")]
    Open,
}

impl Error {
    /// A stable label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::KeyFormat => "key_format",
            Self::KeyMissing => "key_missing",
            Self::KeyExposed(_) => "key_exposed",
            Self::KeyCreate => "key_create",
            Self::Seal => "seal",
            Self::Open => "open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = random_token("exd_code_").unwrap();
        let b = random_token("exd_code_").unwrap();
        assert!(a.expose_secret().starts_with("exd_code_"));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(
            a.expose_secret().len() >= "exd_code_".len() + 43,
            "256 bits"
        );
        assert_eq!(hash_token(a.expose_secret()).len(), 32);
        assert!(hashes_match(&hash_token("x"), &hash_token("x")));
        assert!(!hashes_match(&hash_token("x"), &hash_token("y")));
    }

    #[test]
    fn sealed_secrets_open_only_with_their_context() {
        let key = key();
        let secret = SecretString::from("p@ssw0rd".to_owned());
        let sealed = key.seal(&secret, b"acct_1").unwrap();
        assert!(
            !sealed.windows(8).any(|w| w == b"p@ssw0rd"),
            "no clear text at rest"
        );
        assert_eq!(
            key.open(&sealed, b"acct_1").unwrap().expose_secret(),
            "p@ssw0rd"
        );
        assert!(key.open(&sealed, b"acct_2").is_err());
        let other = MasterKey::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open(&sealed, b"acct_1").is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(MasterKey::from_base64("short").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(format!("{:?}", key()).contains("***"));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exdisco.key");
        MasterKey::create_file(&path).unwrap();
        assert!(MasterKey::from_file(&path).is_ok(), "created 0600");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::from_file(&path).err().unwrap();
        assert_eq!(err.code(), "key_exposed");
        assert!(err.to_string().contains("644"), "{err}");
    }
}
