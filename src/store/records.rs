//! What the store takes and gives back, the same for both backends.

use super::Error;
use crate::account::{Account, CachedDiscovery, ClientId, NewAccount, Scopes, SyncProof};

/// A client as stored: its id, the hash of its secret and its redirect URIs.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    /// The public id.
    pub client_id: String,
    /// The application's name, shown on the hosted sign-in page.
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Redirect URIs allowed for the hosted flow.
    pub redirect_uris: Vec<String>,
}

/// A client as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientInfo {
    /// The public id.
    pub client_id: String,
    /// The name given at registration.
    pub name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// What a code redemption came to.
#[derive(Debug, Clone)]
pub enum Redemption {
    /// The code was good: its account was created or replaced (the account's earlier tokens
    /// revoked), and the token was stored for it.
    Issued(Box<Account>),
    /// The code was good, but its account may not replace the one stored now; the code is
    /// spent and nothing changed.
    Refused(&'static str),
    /// The code had been redeemed before: the token issued then is now revoked.
    Replayed,
    /// The code expired.
    Expired,
    /// No such code, or it belongs to another client.
    Unknown,
}

/// A code to store: its hash, its client, when it ends, and the account its redemption saves.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// SHA-256 of the code.
    pub code_hash: Vec<u8>,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// Unix seconds.
    pub expires_at: i64,
    /// The account to create or replace.
    pub account: NewAccount,
    /// What the redemption must present again: the redirect URI and the PKCE challenge.
    pub binding: CodeBinding,
}

/// What a code was issued with, that its redemption must match (RFC 6749 4.1.3, RFC 7636).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeBinding {
    /// The redirect URI of the authorization request (hosted page), or empty.
    pub redirect_uri: String,
    /// The PKCE S256 challenge, or empty.
    pub code_challenge: String,
}

/// A token to store when a code is redeemed.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Whether a redeemed code's account may replace the stored one (`None`: there is none).
pub type ReplaceCheck =
    Box<dyn FnOnce(Option<&Account>, &NewAccount) -> Result<(), &'static str> + Send>;

/// Whether the redemption presents what the code was issued with.
pub type BindingCheck = Box<dyn FnOnce(&CodeBinding) -> Result<(), &'static str> + Send>;

/// What a redemption checks inside its transaction.
pub struct RedeemChecks {
    /// The redirect URI and PKCE verifier presented.
    pub binding: BindingCheck,
    /// Whether the code's account may replace the stored one.
    pub may_replace: ReplaceCheck,
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Unix seconds.
    pub created_at: i64,
    /// Not revoked and not expired.
    pub valid: bool,
}

/// What a sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Codes past their end (used or not).
    pub codes: usize,
    /// Tokens expired or revoked.
    pub tokens: usize,
    /// Finished jobs older than the retention.
    pub jobs: usize,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    /// The job id.
    pub job_id: String,
    /// The input line.
    pub input: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// This claim's lease: only its holder may complete, bury or give back the job.
    pub lease: String,
}

/// A job's state as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobStatus {
    /// The job id.
    pub id: String,
    /// The input.
    pub input: String,
    /// `queued`, `running`, `done` or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The result (a report), once done.
    pub result: Option<serde_json::Value>,
    /// Why it is dead.
    pub reason: Option<String>,
}

/// What an intake came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// Every job was queued.
    Queued,
    /// Nothing was queued: the queue would hold more than its bound.
    Full,
}

/// The account columns both backends select, in the order [`AccountColumns`] holds them.
pub const ACCOUNT_COLUMNS: &str =
    "account_id, client_id, email, name, provider, exchange_server_host,
    discovery_method, activesync_versions, scopes, username, created_at, updated_at,
    sync_version, sync_device_id, sync_checked_at";

/// [`ACCOUNT_COLUMNS`] of the table aliased `alias` (in a join).
pub fn account_columns_of(alias: &str) -> String {
    ACCOUNT_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An account row as a backend read it, before the model's types: each backend fills it from
/// its own row type, and [`AccountColumns::into_account`] is the one conversion.
pub struct AccountColumns {
    pub account_id: String,
    pub client_id: String,
    pub email: String,
    pub name: String,
    pub provider: String,
    pub exchange_server_host: String,
    pub discovery_method: String,
    pub activesync_versions: String,
    pub scopes: String,
    pub username: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub sync_version: String,
    pub sync_device_id: String,
    pub sync_checked_at: i64,
}

impl AccountColumns {
    /// The model's account; a value the model does not know is a corrupt row, not a default.
    pub fn into_account(self) -> Result<Account, Error> {
        Ok(Account {
            account_id: self.account_id.into(),
            client_id: self.client_id.into(),
            email: self.email,
            name: self.name,
            provider: typed(&self.provider, |t| t.parse().ok())?,
            exchange_server_host: self.exchange_server_host,
            origin: typed(&self.discovery_method, |t| t.parse().ok())?,
            activesync_versions: self.activesync_versions.into(),
            scopes: typed(&self.scopes, |t| Scopes::parse(t).ok())?,
            username: self.username,
            created_at: self.created_at,
            updated_at: self.updated_at,
            sync: (!self.sync_version.is_empty()).then_some(SyncProof {
                protocol_version: self.sync_version,
                device_id: self.sync_device_id,
                checked_at: self.sync_checked_at,
            }),
        })
    }
}

/// A cached discovery as a backend read it: `(domain, host, method, activesync_url, provider,
/// expires_at)`, its method and provider still text.
pub fn cached_discovery(
    (domain, host, method, activesync_url, provider, expires_at): (
        String,
        String,
        String,
        String,
        String,
        i64,
    ),
) -> Result<CachedDiscovery, Error> {
    Ok(CachedDiscovery {
        domain,
        host,
        method: typed(&method, |t| t.parse().ok())?,
        activesync_url,
        provider: typed(&provider, |t| t.parse().ok())?,
        expires_at,
    })
}

/// A column's text read as a model type; a value the model does not know is a corrupt row.
fn typed<T>(text: &str, read: impl FnOnce(&str) -> Option<T>) -> Result<T, Error> {
    read(text).ok_or(Error::Corrupt("unknown value in a typed column"))
}

/// A value stored as JSON text (redirect URIs, a code's pending account).
pub fn to_json_column(value: &impl serde::Serialize, what: &'static str) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|_| Error::Corrupt(what))
}

/// A JSON column read back; unreadable is a corrupt row.
pub fn from_json_column<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|_| Error::Corrupt(what))
}
