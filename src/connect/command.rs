//! The flow's typed commands. The faces parse their wire shapes into these (the API its JSON,
//! the hosted page its form, the Microsoft callback what it kept), so the flow sees an
//! authorization whose provider carries exactly its own fields, never a JSON value to parse.

use std::net::IpAddr;

use secrecy::SecretString;

pub use crate::account::{AccountId, ClientId, Scopes};
use crate::domain::EmailAddress;
use crate::store::CodeBinding;

/// An Exchange mailbox's credentials and where to check them.
#[derive(Debug)]
pub struct ExchangeLogin {
    /// The username (often the address, or `DOMAIN\user`).
    pub username: String,
    /// The password.
    pub password: SecretString,
    /// The server, when the caller names it: discovery is off.
    pub host: Option<String>,
    /// A host outside the domain the user allowed to receive the password in this
    /// authorization (the answer to a `consent_required` error).
    pub consented_host: Option<String>,
}

/// An Exchange Online mailbox's refresh token, redeemed at the Microsoft identity platform.
#[derive(Debug)]
pub struct RefreshGrant {
    /// The application's Microsoft client id.
    pub microsoft_client_id: String,
    /// Its secret.
    pub microsoft_client_secret: SecretString,
    /// The refresh token.
    pub refresh_token: SecretString,
    /// The redirect URI the token was issued for.
    pub redirect_uri: url::Url,
}

/// What a provider needs to connect the mailbox.
#[derive(Debug)]
pub enum Login {
    /// Provider `exchange`: a username and password.
    Exchange(ExchangeLogin),
    /// Provider `office365`: a refresh token.
    Office365(RefreshGrant),
}

/// Who asks for which mailbox with which scopes: what every authorization shares.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The client (the application).
    pub client_id: ClientId,
    /// The account holder's name.
    pub name: String,
    /// The mailbox address.
    pub address: EmailAddress,
    /// The scopes asked for.
    pub scopes: Scopes,
    /// The account being authorized again (required to change scopes).
    pub reauth: Option<AccountId>,
    /// Whether the request passed through a browser (the hosted page): there a `reauth`
    /// may change the scopes, not the server or the username.
    pub through_browser: bool,
    /// What the code's redemption must present again (the hosted page's redirect URI and
    /// PKCE challenge); empty for `/connect/authorize`.
    pub binding: CodeBinding,
}

/// One authorization: `/connect/authorize`, or the hosted page's form.
#[derive(Debug)]
pub struct Authorization {
    /// Who asks for what.
    pub intent: Intent,
    /// The provider's login.
    pub login: Login,
    /// Who sent the request: budgets that protect an account are kept per source (rule 25).
    pub source: Option<IpAddr>,
}
