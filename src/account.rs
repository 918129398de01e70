//! The account model: the ids, the granted scopes, where an account's host came from and the
//! ActiveSync versions it answered with. The flow and the API speak these types; the store
//! only turns them into rows and back (and refuses a row it cannot read as one).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::report::{Method, Provider};

/// Scopes an account may be granted.
pub const KNOWN_SCOPES: &[&str] = &[
    "email",
    "email.read_only",
    "email.send",
    "email.modify",
    "email.drafts",
    "email.folders_and_labels",
    "email.metadata",
    "calendar",
    "calendar.read_only",
    "calendar.free_busy",
    "contacts",
    "contacts.read_only",
];

/// A registered client's public id (`cli_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

/// An account's id (`acct_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(String);

/// A queued job's id (`job_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

macro_rules! id_type {
    ($name:ident) => {
        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

id_type!(ClientId);
id_type!(AccountId);
id_type!(JobId);

/// Granted scopes: known ones only, sorted, each once; written comma-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scopes(String);

/// Why scopes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// None was given.
    #[error("at least one scope is required")]
    Empty,
    /// One is not a known scope.
    #[error("unknown scope; known scopes: {}", KNOWN_SCOPES.join(","))]
    Unknown,
}

impl Scopes {
    /// Scopes comma-separated (the platform's `scopes`) or space-delimited (RFC 6749 3.3
    /// `scope`).
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let mut list: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            return Err(ScopeError::Empty);
        }
        if list.iter().any(|s| !KNOWN_SCOPES.contains(s)) {
            return Err(ScopeError::Unknown);
        }
        list.sort_unstable();
        list.dedup();
        Ok(Self(list.join(",")))
    }

    /// Comma-separated, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// One by one.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').filter(|s| !s.is_empty())
    }
}

impl TryFrom<String> for Scopes {
    type Error = ScopeError;

    fn try_from(text: String) -> Result<Self, ScopeError> {
        Self::parse(&text)
    }
}

impl From<Scopes> for String {
    fn from(scopes: Scopes) -> Self {
        scopes.0
    }
}

/// Where an account's host came from: a discovery method (`explicit` when the caller named
/// it), or the Microsoft sign-in of an Exchange Online account. Written as the method's
/// label, or `office365`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HostOrigin {
    /// Found (or named) by this method.
    Discovered(Method),
    /// An Exchange Online account connected by Microsoft sign-in.
    MicrosoftSignIn,
}

impl HostOrigin {
    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discovered(method) => method.as_str(),
            Self::MicrosoftSignIn => "office365",
        }
    }
}

impl FromStr for HostOrigin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "office365" => Ok(Self::MicrosoftSignIn),
            other => other
                .parse()
                .map(Self::Discovered)
                .map_err(|()| format!("unknown host origin {other:?}")),
        }
    }
}

impl TryFrom<String> for HostOrigin {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<HostOrigin> for String {
    fn from(origin: HostOrigin) -> Self {
        origin.as_str().to_owned()
    }
}

/// The ActiveSync protocol versions a server answered with (`MS-ASProtocolVersions`), in
/// its order; written comma-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct Versions(Vec<String>);

impl Versions {
    /// The versions, in the server's order.
    pub fn list(&self) -> &[String] {
        &self.0
    }
}

impl From<Vec<String>> for Versions {
    fn from(list: Vec<String>) -> Self {
        Self(list)
    }
}

impl From<String> for Versions {
    fn from(text: String) -> Self {
        Self(
            text.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl From<Versions> for String {
    fn from(versions: Versions) -> Self {
        versions.0.join(",")
    }
}

/// An account to save: what an authorization verified, kept with its code until the code is
/// redeemed (rule 24).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewAccount {
    /// The id to use if the account is new.
    pub account_id: AccountId,
    /// The client that connected it.
    pub client_id: ClientId,
    /// The mailbox address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// Who runs the mailbox.
    pub provider: Provider,
    /// The Exchange host.
    pub exchange_server_host: String,
    /// Where the host came from.
    #[serde(rename = "discovery_method")]
    pub origin: HostOrigin,
    /// The ActiveSync versions the host answered with.
    pub activesync_versions: Versions,
    /// Granted scopes.
    pub scopes: Scopes,
    /// The username for Basic authentication.
    pub username: String,
    /// The password or refresh token, sealed (kept in its own column).
    #[serde(skip)]
    pub sealed_secret: Vec<u8>,
    /// Unix seconds.
    pub now: i64,
    /// What the authorization may change in an existing account of the same address.
    #[serde(default)]
    pub reauth: Reauth,
    /// What the sync check proved, when the daemon ran one (`connect.verify = "sync"`).
    #[serde(default)]
    pub sync: Option<SyncProof>,
}

/// What a passed sync check proved about an account: the protocol version its server syncs
/// with, the device identity it ran as (a sync engine can go on with it), and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncProof {
    /// The ActiveSync version both sides speak.
    pub protocol_version: String,
    /// The `DeviceId` the check ran as.
    pub device_id: String,
    /// Unix seconds.
    pub checked_at: i64,
}

/// What an authorization may change in an existing account of the same client and address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reauth {
    /// No `reauth_account_id`: the username, provider and scopes stay; the server only if
    /// discovery found it.
    #[default]
    None,
    /// `reauth_account_id` came through a browser (the hosted page): the scopes may change too.
    Scopes,
    /// `reauth_account_id` came from the application's backend: anything may change.
    Everything,
}

/// An account as stored (its secret stays sealed).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Account {
    /// The id.
    pub account_id: AccountId,
    /// The client that connected it.
    pub client_id: ClientId,
    /// The mailbox address.
    pub email: String,
    /// The display name.
    pub name: String,
    /// Who runs the mailbox.
    pub provider: Provider,
    /// The Exchange host.
    pub exchange_server_host: String,
    /// Where the host came from.
    #[serde(rename = "discovery_method")]
    pub origin: HostOrigin,
    /// The ActiveSync versions the host answered with.
    pub activesync_versions: Versions,
    /// Granted scopes.
    pub scopes: Scopes,
    /// The username for Basic authentication (not shown by the API).
    #[serde(skip)]
    pub username: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// What the last sync check proved, if one ran.
    pub sync: Option<SyncProof>,
}

/// A cached discovery of one domain.
#[derive(Debug, Clone)]
pub struct CachedDiscovery {
    /// The mail domain.
    pub domain: String,
    /// The host.
    pub host: String,
    /// How it was found.
    pub method: Method,
    /// The ActiveSync URL, or empty.
    pub activesync_url: String,
    /// Who runs the domain's mailboxes.
    pub provider: Provider,
    /// Unix seconds.
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_checked_and_normalised() {
        assert_eq!(
            Scopes::parse("email.read_only, calendar.read_only,email.read_only")
                .unwrap()
                .as_str(),
            "calendar.read_only,email.read_only"
        );
        assert_eq!(
            Scopes::parse("email.read_only calendar.read_only")
                .unwrap()
                .as_str(),
            "calendar.read_only,email.read_only",
            "RFC 6749 3.3: space-delimited"
        );
        assert_eq!(Scopes::parse(""), Err(ScopeError::Empty));
        assert_eq!(
            Scopes::parse("email.read_only,root"),
            Err(ScopeError::Unknown)
        );
    }

    #[test]
    fn origins_and_versions_keep_their_written_forms() {
        for text in ["explicit", "pox_domain", "activesync", "office365"] {
            assert_eq!(text.parse::<HostOrigin>().unwrap().as_str(), text);
        }
        assert!("guessed".parse::<HostOrigin>().is_err());
        let versions = Versions::from("14.0,14.1,16.1".to_owned());
        assert_eq!(versions.list(), ["14.0", "14.1", "16.1"]);
        assert_eq!(String::from(versions), "14.0,14.1,16.1");
        assert!(Versions::from(String::new()).list().is_empty());
    }
}
