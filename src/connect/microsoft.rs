//! Microsoft sign-in for mailboxes on Exchange Online: provider `office365` of
//! `/connect/authorize` (a refresh token redeemed at the token endpoint) and the hosted page's
//! authorization code ([`MicrosoftCode`]), both ending in an account whose refresh token is
//! sealed at rest.

use reqwest::Method as HttpMethod;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::info;
use url::Url;

use super::{Connect, Error, Intent, Prepared, RefreshGrant};
use crate::account::{HostOrigin, Versions};
use crate::account::{NewAccount, Reauth};
use crate::discovery::{Body, Outgoing};
use crate::report::Provider;

/// The Microsoft identity platform token endpoint (tenant `common`).
pub const DEFAULT_OFFICE365_TOKEN_URL: &str =
    "https://login.microsoftonline.com/common/oauth2/v2.0/token";

/// The scope a refresh token is redeemed for.
pub const OFFICE365_SCOPE: &str = "offline_access openid profile User.Read";

/// An authorization code of the Microsoft identity platform, with what the hosted page
/// learned before the user went to sign in there.
#[derive(Debug)]
pub struct MicrosoftCode {
    /// Who asks for what (through the browser).
    pub intent: Intent,
    /// The operator's Microsoft application.
    pub microsoft_client_id: String,
    /// Its secret.
    pub microsoft_client_secret: SecretString,
    /// The Microsoft scopes asked for.
    pub microsoft_scope: String,
    /// The code Microsoft returned.
    pub code: SecretString,
    /// The PKCE verifier of the request that code answers.
    pub code_verifier: SecretString,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
}

/// What a Microsoft token answer gives the flow.
struct MicrosoftTokens {
    refresh_token: Option<SecretString>,
    /// `email` or `preferred_username` of the ID token.
    signed_in_as: Option<String>,
}

/// The account an ID token names: its `email` claim, else `preferred_username`.
fn id_token_account(id_token: &str) -> Option<String> {
    use base64::Engine;
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(Deserialize)]
    struct Claims {
        email: Option<String>,
        preferred_username: Option<String>,
    }
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    claims
        .email
        .or(claims.preferred_username)
        .filter(|a| a.contains('@'))
}

impl Connect {
    /// Redeems an authorization code of the Microsoft identity platform (the hosted page's
    /// "Sign in with Microsoft"), saves the office365 account with its refresh token sealed,
    /// and returns a one-time code.
    pub async fn authorize_microsoft_code(
        &self,
        grant: MicrosoftCode,
    ) -> Result<SecretString, Error> {
        let result = self.redeem_microsoft_code(grant).await;
        self.counted(result)
    }

    async fn redeem_microsoft_code(&self, grant: MicrosoftCode) -> Result<SecretString, Error> {
        let prepared = self.prepare(&grant.intent).await?;
        let address = &prepared.address;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("client_id", &grant.microsoft_client_id)
            .append_pair(
                "client_secret",
                grant.microsoft_client_secret.expose_secret(),
            )
            .append_pair("code", grant.code.expose_secret())
            .append_pair("code_verifier", grant.code_verifier.expose_secret())
            .append_pair("redirect_uri", &grant.redirect_uri)
            .append_pair("scope", &grant.microsoft_scope)
            .finish();
        let tokens = self.fetch_microsoft_token(form).await?;
        // The ID token came straight from the token endpoint over verified TLS, so its claims
        // are taken as they are (OpenID Connect Core 3.1.3.7). A user who signed in to
        // Microsoft as someone else does not connect this mailbox.
        if let Some(signed_in_as) = tokens.signed_in_as
            && !signed_in_as.eq_ignore_ascii_case(&address.to_string())
        {
            return Err(Error::MicrosoftAccountMismatch { signed_in_as });
        }
        let refresh_token = tokens
            .refresh_token
            .ok_or(Error::Upstream("token_endpoint_no_refresh_token"))?;
        let account = self.office365_account(
            &grant.intent,
            &prepared,
            &grant.microsoft_client_id,
            &refresh_token,
        )?;
        self.issue_code(prepared.account(account)?, grant.intent.binding)
            .await
    }

    pub(super) async fn authorize_office365(
        &self,
        intent: &Intent,
        settings: RefreshGrant,
        prepared: &Prepared,
    ) -> Result<NewAccount, Error> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &settings.microsoft_client_id)
            .append_pair(
                "client_secret",
                settings.microsoft_client_secret.expose_secret(),
            )
            .append_pair("refresh_token", settings.refresh_token.expose_secret())
            .append_pair("redirect_uri", settings.redirect_uri.as_str())
            .append_pair("scope", OFFICE365_SCOPE)
            .finish();
        let refresh_token = self
            .fetch_microsoft_token(form)
            .await?
            .refresh_token
            .unwrap_or_else(|| settings.refresh_token.clone());
        info!(domain = %prepared.address.domain(), "office365 account verified");
        self.office365_account(
            intent,
            prepared,
            &settings.microsoft_client_id,
            &refresh_token,
        )
    }

    /// An office365 account with its refresh token sealed.
    fn office365_account(
        &self,
        intent: &Intent,
        prepared: &Prepared,
        microsoft_client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<NewAccount, Error> {
        let account_id = prepared.account_id.clone();
        let sealed = self
            .key
            .seal(refresh_token, account_id.as_str().as_bytes())?;
        Ok(NewAccount {
            sync: None,
            account_id,
            client_id: intent.client_id.clone(),
            email: prepared.address.to_string(),
            name: intent.name.clone(),
            provider: Provider::Office365,
            exchange_server_host: "outlook.office365.com".to_owned(),
            origin: HostOrigin::MicrosoftSignIn,
            activesync_versions: Versions::default(),
            scopes: prepared.scopes.clone(),
            username: microsoft_client_id.to_owned(),
            sealed_secret: sealed,
            now: self.store.now(),
            reauth: Reauth::None,
        })
    }

    /// POSTs `form` to the Microsoft token endpoint; on success returns the refresh token and
    /// the account of the ID token the answer carries, if any.
    async fn fetch_microsoft_token(&self, form: String) -> Result<MicrosoftTokens, Error> {
        let url = Url::parse(&self.config.office365_token_url)
            .map_err(|_| Error::Corrupt("token url"))?;
        let request = Outgoing {
            method: HttpMethod::POST,
            url: &url,
            body: Some(Body::Form(&form)),
            credentials: None,
            headers: &[],
        };
        let fetched = self
            .pipeline
            .http()
            .fetch(request)
            .await
            .map_err(|e| Error::Upstream(e.code().as_str()))?;
        #[derive(Deserialize)]
        struct Answer {
            access_token: Option<SecretString>,
            refresh_token: Option<SecretString>,
            id_token: Option<SecretString>,
            error: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&fetched.body)
            .map_err(|_| Error::Upstream("token_endpoint_json"))?;
        match (fetched.status.as_u16(), answer) {
            (
                200,
                Answer {
                    access_token: Some(_),
                    refresh_token,
                    id_token,
                    ..
                },
            ) => Ok(MicrosoftTokens {
                refresh_token,
                signed_in_as: id_token.and_then(|t| id_token_account(t.expose_secret())),
            }),
            (400 | 401, Answer { error: Some(_), .. }) => Err(Error::CredentialsRefused),
            _ => Err(Error::Upstream("token_endpoint")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_tokens_name_their_account() {
        use base64::Engine;
        let encode = |claims: &str| {
            format!(
                "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            )
        };
        assert_eq!(
            id_token_account(&encode(r#"{"preferred_username":"carol@example.com"}"#)).as_deref(),
            Some("carol@example.com")
        );
        assert_eq!(
            id_token_account(&encode(
                r#"{"email":"c@example.com","preferred_username":"carol@example.com"}"#
            ))
            .as_deref(),
            Some("c@example.com")
        );
        assert_eq!(
            id_token_account(&encode(r#"{"preferred_username":"+15551234"}"#)),
            None
        );
        assert_eq!(id_token_account("not-a-jwt"), None);
    }
}
