//! Codes and tokens: what an authorization verified waits with its one-time code, and only the
//! code's redemption with the client secret saves it (rule 24); tokens end, can be revoked,
//! and end when their account is replaced.
//!
//! Which fields of an existing account (same client, same address) an authorization may
//! change is [`check_replacement`]'s rule, applied when the code is issued and again, inside
//! the redemption's transaction, when it is redeemed.

use secrecy::{ExposeSecret, SecretString};
use tracing::warn;

use super::{Connect, Error};
use crate::account::HostOrigin;
use crate::account::{Account, NewAccount, Reauth};
use crate::report::Method;
use crate::secrets;
use crate::store::{ClientRecord, CodeBinding, NewCode, NewToken, RedeemChecks, Redemption};

/// What `/connect/token` returns.
#[derive(Debug)]
pub struct TokenGrant {
    /// The access token (shown once; stored hashed).
    pub access_token: SecretString,
    /// Seconds until it ends.
    pub expires_in: u64,
    /// The account.
    pub account: Account,
}

/// Why an authorization may not replace the stored account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The scopes differ and no `reauth_account_id` was given.
    Scopes,
    /// The username, provider or an explicit server differ and the application's backend did
    /// not ask to re-authorize the account.
    Settings,
    /// The account was created or replaced since the code was issued.
    Changed,
}

impl Refusal {
    /// The flow's error for this refusal at authorize time.
    pub fn error(self) -> Error {
        match self {
            Self::Scopes => Error::ScopeChange,
            Self::Settings => Error::SettingsChange,
            Self::Changed => Error::InvalidGrant(self.reason()),
        }
    }

    /// The reason given when a redemption is refused.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Scopes => "the account exists with other scopes",
            Self::Settings => "the account exists with another server or username",
            Self::Changed => "the account changed since the code was issued",
        }
    }
}

/// Whether `new` may replace `existing` (the account this client already has for the address).
///
/// - No existing account: it is created.
/// - Without `reauth_account_id`: the username, the provider and the scopes stay. The server may
///   change only when discovery found the new one (the domain moved the mailbox); an explicit
///   `exchange_server_host` that differs is refused, or anyone who knows the address could
///   point the account at a server of their own.
/// - `reauth_account_id` through the hosted page (it passed through a browser): the scopes may
///   change too.
/// - `reauth_account_id` from the application's backend (`/connect/authorize`): anything may
///   change.
pub fn check_replacement(existing: Option<&Account>, new: &NewAccount) -> Result<(), Refusal> {
    let Some(existing) = existing else {
        return Ok(());
    };
    if existing.account_id != new.account_id {
        return Err(Refusal::Changed);
    }
    if new.reauth == Reauth::Everything {
        return Ok(());
    }
    let same_identity =
        existing.provider == new.provider && existing.username.eq_ignore_ascii_case(&new.username);
    let server_may_change = new.origin != HostOrigin::Discovered(Method::Explicit);
    if !same_identity
        || !(existing.exchange_server_host == new.exchange_server_host || server_may_change)
    {
        return Err(Refusal::Settings);
    }
    if new.reauth == Reauth::None && existing.scopes != new.scopes {
        return Err(Refusal::Scopes);
    }
    Ok(())
}

/// A code's redemption, from `/connect/token` or `/oauth/token`.
#[derive(Debug)]
pub struct CodeRedemption {
    /// The client.
    pub client_id: String,
    /// Its secret; `None` for a public client (registered without one).
    pub client_secret: Option<SecretString>,
    /// The one-time code.
    pub code: SecretString,
    /// The redirect URI, presented again (RFC 6749 4.1.3).
    pub redirect_uri: Option<String>,
    /// The PKCE verifier (RFC 7636 4.5).
    pub code_verifier: Option<SecretString>,
}

/// Whether a redemption presents what its code was issued with. A PKCE challenge needs its
/// verifier, whatever the endpoint. A redirect URI presented must be the one the code was
/// sent to; a public client must present it (RFC 6749 4.1.3); a client that proved itself with
/// its secret may leave it out, as the platform's SDK does.
fn check_binding(
    binding: &CodeBinding,
    redirect_uri: Option<&str>,
    verifier: Option<&SecretString>,
    confidential: bool,
) -> Result<(), &'static str> {
    if !binding.code_challenge.is_empty() {
        let verifier = verifier.ok_or("the code needs its PKCE code_verifier")?;
        if !pkce_matches(verifier.expose_secret(), &binding.code_challenge) {
            return Err("the code_verifier does not match the code_challenge");
        }
    }
    match redirect_uri {
        Some(presented)
            if !binding.redirect_uri.is_empty() && presented != binding.redirect_uri =>
        {
            Err("redirect_uri is not the one the code was issued for")
        }
        None if !binding.redirect_uri.is_empty() && !confidential => {
            Err("redirect_uri is required")
        }
        _ => Ok(()),
    }
}

/// RFC 7636 4.6: BASE64URL(SHA256(verifier)) == challenge, for a verifier of 43 to 128
/// unreserved characters.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    if !(43..=128).contains(&verifier.len()) || !verifier.chars().all(unreserved) {
        return false;
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    secrets::hashes_match(computed.as_bytes(), challenge.as_bytes())
}

impl Connect {
    /// A one-time code that carries `account` until it is redeemed, bound to `binding`.
    pub(super) async fn issue_code(
        &self,
        account: NewAccount,
        binding: CodeBinding,
    ) -> Result<SecretString, Error> {
        let code = secrets::random_token("exd_code_")?;
        self.store
            .create_code(NewCode {
                code_hash: secrets::hash_token(code.expose_secret()),
                client_id: account.client_id.clone(),
                expires_at: self.store.now() + self.config.code_ttl.as_secs() as i64,
                account,
                binding,
            })
            .await?;
        Ok(code)
    }

    /// The client, if `secret` proves it: its secret, compared in constant time; a public
    /// client (registered without a secret) presents none.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: Option<&SecretString>,
    ) -> Result<ClientRecord, Error> {
        let client = self
            .store
            .find_client(client_id.to_owned())
            .await?
            .ok_or(Error::BadClient)?;
        let secret = secret.filter(|s| !s.expose_secret().is_empty());
        let proven = match secret {
            _ if client.secret_hash.is_empty() => secret.is_none(),
            Some(secret) => {
                let presented = secrets::hash_token(secret.expose_secret());
                secrets::hashes_match(&client.secret_hash, &presented)
            }
            None => false,
        };
        if proven {
            Ok(client)
        } else {
            Err(Error::BadClient)
        }
    }

    /// A confidential client (one registered with a secret), if `secret` proves it: a public
    /// client's id is no secret, so what needs a client's proof refuses it.
    pub async fn authenticate_confidential_client(
        &self,
        client_id: &str,
        secret: &SecretString,
    ) -> Result<super::ClientId, Error> {
        let client = self.authenticate_client(client_id, Some(secret)).await?;
        if client.secret_hash.is_empty() {
            return Err(Error::BadClient);
        }
        Ok(client.client_id.into())
    }

    /// Redeems a code for an access token: checks what the code was bound to, saves the
    /// account the code carries, revokes the account's earlier tokens, and issues a token that
    /// ends after `token_ttl`.
    pub async fn redeem(&self, request: CodeRedemption) -> Result<TokenGrant, Error> {
        let client = self
            .authenticate_client(&request.client_id, request.client_secret.as_ref())
            .await?;
        let confidential = !client.secret_hash.is_empty();
        let access_token = secrets::random_token("exd_at_")?;
        let now = self.store.now();
        let expires_in = self.config.token_ttl.as_secs();
        let token = NewToken {
            token_hash: secrets::hash_token(access_token.expose_secret()),
            expires_at: now + expires_in as i64,
        };
        let CodeRedemption {
            code,
            redirect_uri,
            code_verifier,
            ..
        } = request;
        let checks = RedeemChecks {
            binding: Box::new(move |binding| {
                check_binding(
                    binding,
                    redirect_uri.as_deref(),
                    code_verifier.as_ref(),
                    confidential,
                )
            }),
            may_replace: Box::new(|existing, new| {
                check_replacement(existing, new).map_err(Refusal::reason)
            }),
        };
        let redemption = self
            .store
            .redeem_code(
                secrets::hash_token(code.expose_secret()),
                client.client_id,
                token,
                checks,
                now,
            )
            .await?;
        match redemption {
            Redemption::Issued(account) => Ok(TokenGrant {
                access_token,
                expires_in,
                account: *account,
            }),
            Redemption::Refused(reason) => Err(Error::InvalidGrant(reason)),
            Redemption::Replayed => {
                warn!("authorization code replayed; the token issued for it is revoked");
                Err(Error::InvalidGrant(
                    "the code was already used; the token issued for it is revoked",
                ))
            }
            Redemption::Expired => Err(Error::InvalidGrant("the code expired")),
            Redemption::Unknown => Err(Error::InvalidGrant("unknown code")),
        }
    }

    /// The account an access token gives access to, unless it ended or was revoked.
    pub async fn account(&self, access_token: &str) -> Result<Account, Error> {
        self.store
            .account_for_token(secrets::hash_token(access_token), self.store.now())
            .await?
            .ok_or(Error::BadToken)
    }

    /// Revokes an access token; with `client`, only one issued to that client. Whether there
    /// was one to revoke.
    pub async fn revoke(&self, access_token: &str, client: Option<&str>) -> Result<bool, Error> {
        Ok(self
            .store
            .revoke_token(secrets::hash_token(access_token), client.map(str::to_owned))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(host: &str) -> Account {
        Account {
            sync: None,
            account_id: "acct_1".into(),
            client_id: "cli".into(),
            email: "alice@example.test".into(),
            name: String::new(),
            provider: crate::report::Provider::Exchange,
            exchange_server_host: host.into(),
            origin: HostOrigin::Discovered(Method::PoxDomain),
            activesync_versions: Default::default(),
            scopes: crate::account::Scopes::parse("email").unwrap(),
            username: "alice".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn new(host: &str, method: &str, username: &str, scopes: &str, reauth: Reauth) -> NewAccount {
        NewAccount {
            sync: None,
            account_id: "acct_1".into(),
            client_id: "cli".into(),
            email: "alice@example.test".into(),
            name: String::new(),
            provider: crate::report::Provider::Exchange,
            exchange_server_host: host.into(),
            origin: method.parse().unwrap(),
            activesync_versions: Default::default(),
            scopes: crate::account::Scopes::parse(scopes).unwrap(),
            username: username.into(),
            sealed_secret: Vec::new(),
            now: 0,
            reauth,
        }
    }

    #[test]
    fn pkce_s256_and_the_redirect_uri() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("short", challenge));
        let bound = CodeBinding {
            redirect_uri: "https://app.example.test/cb".into(),
            code_challenge: challenge.into(),
        };
        let good = SecretString::from(verifier.to_owned());
        let uri = Some("https://app.example.test/cb");
        assert_eq!(check_binding(&bound, uri, Some(&good), false), Ok(()));
        assert!(
            check_binding(&bound, uri, None, true).is_err(),
            "no verifier"
        );
        let other = Some("https://evil.example.net/cb");
        assert!(check_binding(&bound, other, Some(&good), true).is_err());
        assert!(
            check_binding(&bound, None, Some(&good), false).is_err(),
            "public: uri required"
        );
        assert_eq!(
            check_binding(&bound, None, Some(&good), true),
            Ok(()),
            "the SDK's shape"
        );
    }

    #[test]
    fn who_may_change_what() {
        let alice = stored("mail.example.test");
        let check = |n: &NewAccount| check_replacement(Some(&alice), n);
        let none = Reauth::None;
        // A new password on the same server, or a server the domain's discovery names.
        assert_eq!(
            check(&new(
                "mail.example.test",
                "explicit",
                "alice",
                "email",
                none
            )),
            Ok(())
        );
        assert_eq!(
            check(&new(
                "exch01.example.test",
                "pox_domain",
                "ALICE",
                "email",
                none
            )),
            Ok(())
        );
        // A stranger's server or username for Alice's address.
        assert_eq!(
            check(&new("evil.example.net", "explicit", "alice", "email", none)),
            Err(Refusal::Settings)
        );
        assert_eq!(
            check(&new(
                "mail.example.test",
                "pox_domain",
                "mallory",
                "email",
                none
            )),
            Err(Refusal::Settings)
        );
        assert_eq!(
            check(&new(
                "mail.example.test",
                "explicit",
                "alice",
                "calendar",
                none
            )),
            Err(Refusal::Scopes)
        );
        let scopes = Reauth::Scopes;
        assert_eq!(
            check(&new(
                "mail.example.test",
                "explicit",
                "alice",
                "calendar",
                scopes
            )),
            Ok(())
        );
        assert_eq!(
            check(&new(
                "evil.example.net",
                "explicit",
                "alice",
                "email",
                scopes
            )),
            Err(Refusal::Settings),
            "a reauth that passed through a browser moves nothing"
        );
        let all = Reauth::Everything;
        assert_eq!(
            check(&new("evil.example.net", "explicit", "bob", "calendar", all)),
            Ok(())
        );
        let mut other = new("mail.example.test", "explicit", "alice", "email", all);
        other.account_id = "acct_2".into();
        assert_eq!(check(&other), Err(Refusal::Changed));
        assert_eq!(check_replacement(None, &other), Ok(()));
    }
}
