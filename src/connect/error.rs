//! Why the flow refused or failed, with a stable code for each.

use crate::{secrets, store};

/// Why the flow refused or failed. Each maps to one HTTP status and type in `api::error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field is missing, malformed or unknown.
    #[error("invalid {field}: {message}")]
    InvalidRequest {
        /// The field.
        field: Field,
        /// What is wrong (never a secret).
        message: String,
    },
    /// No such client.
    #[error("unknown client_id")]
    UnknownClient,
    /// Wrong client id or secret.
    #[error("invalid client credentials")]
    BadClient,
    /// The mailbox refused the credentials.
    #[error("the mail server refused the credentials")]
    CredentialsRefused,
    /// The mailbox is on Exchange Online: basic authentication is off there.
    #[error(
        "the mailbox is on Exchange Online, where basic authentication is off; authorize with provider office365 (OAuth)"
    )]
    ExchangeOnline,
    /// Discovery found no host.
    #[error(
        "the Exchange server could not be discovered ({code}); pass settings.exchange_server_host"
    )]
    DiscoveryFailed {
        /// The headline code.
        code: crate::code::Code,
        /// What the domain's administrator or the user can do.
        remedy: Option<crate::report::Remedy>,
    },
    /// The domain's own Autodiscover names IMAP, POP3 and SMTP servers and no Exchange
    /// server: the mailbox is not Exchange. No password went to those servers.
    #[error("the mailbox is not on Exchange: its domain's Autodiscover names {}", list_servers(.servers))]
    ImapOnly {
        /// The servers, for the application's IMAP connector.
        servers: Vec<crate::report::MailServer>,
    },
    /// The host found needs confirmation (a foreign domain).
    #[error(
        "the Exchange server found is in another domain and needs confirmation; pass it as settings.exchange_server_host"
    )]
    Unconfirmed,
    /// Discovery was sent to a host outside the mailbox's domain: the user must allow it
    /// first (rule 4), then the application authorizes again with
    /// `settings.consented_autodiscover_host`.
    #[error(
        "the Exchange server is named by {host}, outside the mailbox's domain; ask the user, then authorize again with settings.consented_autodiscover_host"
    )]
    ConsentRequired {
        /// The host that needs consent.
        host: String,
        /// Why (`http_redirect_outside_domain`, `redirect_outside_domain`, ...).
        reason: &'static str,
        /// Where the host came from.
        from: String,
    },
    /// The host does not answer as ActiveSync.
    #[error("the server does not answer as Exchange ActiveSync ({0})")]
    NotActiveSync(crate::code::Code),
    /// The mail server or token endpoint could not be reached.
    #[error("the mail server could not be reached ({0})")]
    Upstream(&'static str),
    /// Too many credential attempts for this account.
    #[error("too many attempts for this account; try again later")]
    TooManyAttempts,
    /// The sync check (`connect.verify = "sync"`) says the mailbox will not sync: `code`
    /// says why (`device_quarantined`, `user_disabled_for_sync`, ...).
    #[error("the mailbox will not sync: {message}")]
    SyncCheckFailed {
        /// The sync check's code.
        code: crate::code::Code,
        /// What the server answered.
        message: String,
        /// What can be done.
        remedy: Option<crate::report::Remedy>,
    },
    /// The shared limits (Redis) did not answer: the password budget refuses (rule 19 fails
    /// closed).
    #[error("the password budget could not be checked; try again shortly")]
    LimitsUnavailable,
    /// Changing scopes requires `reauth_account_id`.
    #[error(
        "the account exists with other scopes; authorize again with reauth_account_id to change them"
    )]
    ScopeChange,
    /// The server or username of an existing account changes without the application's
    /// backend asking for it.
    #[error(
        "the account exists with another server or username; the application must authorize it again with reauth_account_id"
    )]
    SettingsChange,
    /// `reauth_account_id` names no account of this client and address.
    #[error("reauth_account_id names no account of this client and address")]
    AccountNotFound,
    /// The user signed in to Microsoft as another account than the mailbox's.
    #[error("signed in to Microsoft as {signed_in_as}, not as the mailbox's owner")]
    MicrosoftAccountMismatch {
        /// The account Microsoft names.
        signed_in_as: String,
    },
    /// The code is unknown, expired, replayed or another client's.
    #[error("invalid code: {0}")]
    InvalidGrant(&'static str),
    /// The access token is unknown or revoked.
    #[error("invalid or revoked access token")]
    BadToken,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Sealing or randomness failed.
    #[error(transparent)]
    Secrets(#[from] secrets::Error),
    /// A stored or configured value is unusable.
    #[error("corrupt {0}")]
    Corrupt(&'static str),
}

impl From<crate::account::ScopeError> for Error {
    fn from(err: crate::account::ScopeError) -> Self {
        Self::invalid(Field::Scopes, err.to_string())
    }
}

/// A field of a request the flow can refuse; each face names it its own way (the API by
/// these names, the hosted page by the form field it shows the message under).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// `email_address`.
    EmailAddress,
    /// `provider`.
    Provider,
    /// `scopes`.
    Scopes,
    /// `settings` (the provider's settings as a whole).
    Settings,
    /// `settings.exchange_server_host`.
    ExchangeServerHost,
    /// `settings.redirect_uri`.
    SettingsRedirectUri,
    /// `redirect_uri` (a client's).
    RedirectUri,
    /// `jobs` (the queue's body).
    Jobs,
    /// `offset` and `limit` of a list.
    Paging,
    /// An account's billing state (which exdisco does not have).
    Billing,
    /// A request body as a whole.
    Body,
}

impl Field {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailAddress => "email_address",
            Self::Provider => "provider",
            Self::Scopes => "scopes",
            Self::Settings => "settings",
            Self::ExchangeServerHost => "settings.exchange_server_host",
            Self::SettingsRedirectUri => "settings.redirect_uri",
            Self::RedirectUri => "redirect_uri",
            Self::Jobs => "jobs",
            Self::Paging => "offset, limit",
            Self::Billing => "billing",
            Self::Body => "body",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn list_servers(servers: &[crate::report::MailServer]) -> String {
    if servers.is_empty() {
        return "IMAP or POP settings".to_owned();
    }
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// A refused field, with what is wrong (never the value).
    pub fn invalid(field: Field, message: String) -> Self {
        Self::InvalidRequest { field, message }
    }

    /// A stable label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::UnknownClient => "unknown_client",
            Self::BadClient => "invalid_client",
            Self::CredentialsRefused => "credentials_refused",
            Self::ExchangeOnline => "exchange_online",
            Self::DiscoveryFailed { .. } => "discovery_failed",
            Self::ImapOnly { .. } => "imap_only",
            Self::Unconfirmed => "host_unconfirmed",
            Self::ConsentRequired { .. } => "consent_required",
            Self::NotActiveSync(_) => "not_activesync",
            Self::Upstream(_) => "upstream_unreachable",
            Self::TooManyAttempts => "too_many_attempts",
            Self::LimitsUnavailable => "limits_unavailable",
            Self::SyncCheckFailed { .. } => "sync_check_failed",
            Self::ScopeChange => "scope_change",
            Self::SettingsChange => "reauth_required",
            Self::AccountNotFound => "account_not_found",
            Self::MicrosoftAccountMismatch { .. } => "account_mismatch",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::BadToken => "invalid_token",
            Self::Store(e) => e.code(),
            Self::Secrets(e) => e.code(),
            Self::Corrupt(_) => "corrupt",
        }
    }
}
