//! The API's answers as types: what the handlers serialize, and what the OpenAPI document
//! (`openapi.rs`) describes, from the same definitions.

use serde::Serialize;
use utoipa::ToSchema;

use crate::account::Account;
use crate::connect::TokenGrant;

/// `POST /connect/authorize`: the one-time code.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "exd_code_x3V9ZkP2c0qY7mJ1nB4sT6wR8uA5eH2dL0fG3iK9oM"}))]
pub struct CodeAnswer {
    /// Redeem it at `/connect/token` (or `/oauth/token`) within minutes, once.
    pub code: String,
}

/// A redeemed code: the access token and whose account it opens. `/connect/token` adds the
/// platform's `id`, `object` and `name`; `/oauth/token` RFC 6749's `scope`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "exd_at_T7pQ2mW9xR4vK8nB1cZ6yL3sD0fH5jG7aE2uI9oP",
    "token_type": "bearer", "expires_in": 7776000,
    "account_id": "acct_9b1e4c7d2a5f8e0b3c6d9a1e", "email_address": "alice@example.test",
    "provider": "exchange", "id": "acct_9b1e4c7d2a5f8e0b3c6d9a1e", "object": "account",
    "name": "Alice Example"
}))]
pub struct TokenAnswer {
    /// The access token.
    pub access_token: String,
    /// `bearer` (`/connect/token`) or `Bearer` (`/oauth/token`).
    pub token_type: String,
    /// Seconds until it ends.
    pub expires_in: u64,
    /// The account.
    pub account_id: String,
    /// The mailbox address.
    pub email_address: String,
    /// `exchange` or `office365`.
    pub provider: String,
    /// The account (the platform's name for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `account`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The account holder's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The granted scopes, space-delimited (RFC 6749 3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl TokenAnswer {
    /// The answer of `/connect/token` (`platform`) or of `/oauth/token`.
    pub fn of(grant: &TokenGrant, platform: bool) -> Self {
        use secrecy::ExposeSecret;
        let account = &grant.account;
        let id = account.account_id.to_string();
        Self {
            access_token: grant.access_token.expose_secret().to_owned(),
            token_type: if platform { "bearer" } else { "Bearer" }.to_owned(),
            expires_in: grant.expires_in,
            account_id: id.clone(),
            email_address: account.email.clone(),
            provider: account.provider.as_str().to_owned(),
            id: platform.then(|| id.clone()),
            object: platform.then(|| "account".to_owned()),
            name: platform.then(|| account.name.clone()),
            scope: (!platform).then(|| account.scopes.iter().collect::<Vec<_>>().join(" ")),
        }
    }
}

/// `GET /account`: the account a token opens.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "acct_9b1e4c7d2a5f8e0b3c6d9a1e", "object": "account",
    "account_id": "acct_9b1e4c7d2a5f8e0b3c6d9a1e", "name": "Alice Example",
    "email_address": "alice@example.test", "provider": "exchange",
    "exchange_server_host": "mail.example.test", "discovery_method": "pox_domain",
    "activesync_versions": ["14.0", "14.1", "16.0", "16.1"],
    "scopes": ["calendar.read_only", "email.read_only"],
    "created_at": 1795860000, "updated_at": 1795860000,
    "sync_check": {"protocol_version": "16.1", "device_id": "3F2A9C0D5B7E41A8C6D2F0B9E8A71C35", "checked_at": 1795860000}
}))]
pub struct AccountAnswer {
    /// The account.
    pub id: String,
    /// `account`.
    pub object: String,
    /// The account, again (the platform names it both ways).
    pub account_id: String,
    /// The account holder's name.
    pub name: String,
    /// The mailbox address.
    pub email_address: String,
    /// `exchange` or `office365`.
    pub provider: String,
    /// The Exchange host.
    pub exchange_server_host: String,
    /// How the host was found (`pox_domain`, `explicit`, ...; `office365` for Microsoft
    /// sign-in).
    pub discovery_method: String,
    /// The ActiveSync versions the host answered with.
    pub activesync_versions: Vec<String>,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// What the sync check proved (`connect.verify = "sync"`): absent when none ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_check: Option<SyncCheckAnswer>,
}

/// What a passed sync check proved about an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncCheckAnswer {
    /// The ActiveSync version the server syncs with.
    pub protocol_version: String,
    /// The `DeviceId` the check ran as: a sync engine that uses it goes on with the same
    /// device partnership.
    pub device_id: String,
    /// Unix seconds: when the check passed.
    pub checked_at: i64,
}

impl From<&Account> for AccountAnswer {
    fn from(account: &Account) -> Self {
        Self {
            id: account.account_id.to_string(),
            object: "account".to_owned(),
            account_id: account.account_id.to_string(),
            name: account.name.clone(),
            email_address: account.email.clone(),
            provider: account.provider.as_str().to_owned(),
            exchange_server_host: account.exchange_server_host.clone(),
            discovery_method: account.origin.as_str().to_owned(),
            activesync_versions: account.activesync_versions.list().to_vec(),
            scopes: account.scopes.iter().map(str::to_owned).collect(),
            created_at: account.created_at,
            updated_at: account.updated_at,
            sync_check: account.sync.as_ref().map(|proof| SyncCheckAnswer {
                protocol_version: proof.protocol_version.clone(),
                device_id: proof.device_id.clone(),
                checked_at: proof.checked_at,
            }),
        }
    }
}

/// An account as the platform's management API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagedAccount {
    /// The account.
    pub id: String,
    /// The account, again.
    pub account_id: String,
    /// The account, as the platform's namespace.
    pub namespace_id: String,
    /// `account`.
    pub object: String,
    /// The mailbox address.
    pub email: String,
    /// The account holder's name.
    pub name: String,
    /// `exchange` or `office365`.
    pub provider: String,
    /// `password` (Exchange) or `oauth` (Exchange Online).
    pub authentication_type: String,
    /// Always false: there are no trials here.
    pub trial: bool,
    /// The Exchange host.
    pub exchange_server_host: String,
    /// The granted scopes.
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<&Account> for ManagedAccount {
    fn from(account: &Account) -> Self {
        let id = account.account_id.to_string();
        Self {
            id: id.clone(),
            account_id: id.clone(),
            namespace_id: id,
            object: "account".to_owned(),
            email: account.email.clone(),
            name: account.name.clone(),
            provider: account.provider.as_str().to_owned(),
            authentication_type: match account.provider {
                crate::report::Provider::Office365 => "oauth",
                _ => "password",
            }
            .to_owned(),
            trial: false,
            exchange_server_host: account.exchange_server_host.clone(),
            scopes: account.scopes.iter().map(str::to_owned).collect(),
            created_at: account.created_at,
            updated_at: account.updated_at,
        }
    }
}

/// What a token is.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfoAnswer {
    /// The account's scopes, comma-separated.
    pub scopes: String,
    /// `valid` or `invalid` (revoked or ended).
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// It was done.
#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    /// Always true.
    pub success: bool,
    /// How many tokens were revoked (`revoke-all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<usize>,
}

/// `POST /v1/discoveries`: the queued jobs' ids, in the order given.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobsAccepted {
    /// One id a job.
    pub ids: Vec<String>,
}

/// An error of the API: `{"message", "type"}`, with what the type adds.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "message": "the mail server refused the credentials", "type": "auth_error"
}))]
pub struct ErrorAnswer {
    /// What is wrong, for a person (never a value sent).
    pub message: String,
    /// `invalid_request_error`, `invalid_grant`, `auth_error`, `not_found_error`,
    /// `conflict_error`, `consent_required`, `payload_too_large`, `provider_error`,
    /// `sync_check_failed`, `rate_limit_error`, `timeout_error`, `capacity_error`,
    /// `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The failure's stable code (`discovery_failed`, `imap_only`, and for
    /// `sync_check_failed` why the mailbox will not sync: `device_quarantined`,
    /// `device_blocked`, `user_disabled_for_sync`, `max_devices_reached`, `throttled`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What the domain's administrator or the user can do (`discovery_failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// The remedy as an action with its values.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub remedy_action: Option<serde_json::Value>,
    /// The host that needs the user's consent, why, and where it came from
    /// (`consent_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub consent: Option<serde_json::Value>,
    /// The IMAP, POP3 and SMTP servers of a mailbox that is not Exchange (`imap_only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub mail_servers: Option<serde_json::Value>,
}

/// An RFC 6749 5.2 error of `/oauth/token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorAnswer {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`, ...
    pub error: String,
    /// What is wrong, for a person.
    pub error_description: String,
}
