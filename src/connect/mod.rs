//! The native-authentication flow of hosted email platforms, as a library the HTTP API calls:
//! validate the request, find the Exchange host (explicit, cached, or discovered), verify the
//! credentials there, store the account with its secret sealed, and hand out a one-time code;
//! redeem the code for an access token; answer who a token belongs to.
//!
//! Order of `authorize` for provider `exchange`:
//! 1. Validate: client, address, scopes, settings (unknown fields refused).
//! 2. Host: `settings.exchange_server_host` (or `eas_server_host`) turns discovery off; else a
//!    fresh cache entry for the domain; else discovery. An Exchange Online mailbox is refused
//!    with a pointer to OAuth (provider `office365`).
//! 3. Verify with one ActiveSync OPTIONS exchange; a cached host that no longer answers is
//!    forgotten and discovery runs again.
//! 4. Issue a code (256 bits, stored hashed, minutes) that carries the account, password
//!    sealed. Nothing durable changes yet: only the code's redemption with the client secret
//!    (`/connect/token`) creates the account or replaces it, as `grant` allows (rule 24).
//!
//! Provider `office365` redeems the refresh token at the Microsoft identity platform token
//! endpoint instead; discovery cannot be turned off for it. The hosted page's "Sign in with
//! Microsoft" redeems an authorization code there (`microsoft.rs`). `grant.rs`: codes, tokens,
//! revocation and which fields an authorization may change. `error.rs`: the flow's refusals and
//! their stable codes.

mod command;
mod error;
mod grant;
mod manage;
mod microsoft;

pub use self::command::{
    AccountId, Authorization, ClientId, ExchangeLogin, Intent, Login, RefreshGrant, Scopes,
};
pub use self::error::{Error, Field};
pub use self::grant::{CodeRedemption, Refusal, TokenGrant, check_replacement, pkce_matches};
pub use self::microsoft::{DEFAULT_OFFICE365_TOKEN_URL, MicrosoftCode, OFFICE365_SCOPE};
pub use crate::account::JobId;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::{info, warn};
use url::Url;

use crate::account::HostOrigin;
use crate::account::{Account, CachedDiscovery, NewAccount, Reauth, SyncProof};
use crate::code::Code;
use crate::discovery::activesync::sync::DeviceIdentity;
use crate::discovery::{KnownHost, Pipeline};
use crate::domain::{Credentials, EmailAddress};
use crate::metrics::Metrics;
use crate::report::{Method, Provider, Report};
use crate::secrets::{self, MasterKey};
use crate::store::{self, Store};

pub use crate::account::KNOWN_SCOPES;

/// Settings of the flow (`[connect]`). Durations are written like `"5m"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectConfig {
    /// How long a code lives. Default: [`DEFAULT_CODE_TTL`].
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// The Microsoft token endpoint. Default: [`DEFAULT_OFFICE365_TOKEN_URL`].
    pub office365_token_url: String,
    /// How long a discovery is cached when the answer gives no TTL. Default:
    /// [`DEFAULT_CACHE_TTL`].
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// How long an access token lives. Default: [`DEFAULT_TOKEN_TTL`].
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// How far an Exchange authorization proves the account: `options` (one ActiveSync
    /// OPTIONS exchange with the password, the default) or `sync` (then Provision and
    /// FolderSync, as a device would; an account that will not sync is refused with why).
    pub verify: VerifyMode,
}

/// How far an authorization proves an Exchange account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// One ActiveSync OPTIONS exchange with the password: no device is registered on the
    /// mailbox.
    #[default]
    Options,
    /// OPTIONS, then Provision and FolderSync as the account's device
    /// ([`crate::discovery::activesync::sync`]).
    Sync,
}

/// How long a code lives by default: 5 minutes.
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(300);
/// How long a discovery is cached by default: 1 hour.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(3600);
/// How long an access token lives by default: 90 days.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            code_ttl: DEFAULT_CODE_TTL,
            office365_token_url: DEFAULT_OFFICE365_TOKEN_URL.to_owned(),
            cache_ttl: DEFAULT_CACHE_TTL,
            token_ttl: DEFAULT_TOKEN_TTL,
            verify: VerifyMode::Options,
        }
    }
}

impl ConnectConfig {
    /// Checks what deserialising cannot: an https token endpoint, no zero duration.
    pub fn validate(&self) -> Result<(), crate::settings::Error> {
        use crate::settings::{Error, positive};
        let url = Url::parse(&self.office365_token_url)
            .map_err(|_| Error::Invalid("connect.office365_token_url is not a url".into()))?;
        if url.scheme() != "https" {
            return Err(Error::Invalid(
                "connect.office365_token_url must be https".into(),
            ));
        }
        positive(&[
            ("connect.code_ttl", self.code_ttl),
            ("connect.cache_ttl", self.cache_ttl),
            ("connect.token_ttl", self.token_ttl),
        ])
    }
}

struct Prepared {
    address: EmailAddress,
    scopes: Scopes,
    account_id: AccountId,
    existing: Option<Account>,
    reauth: Reauth,
}

impl Prepared {
    /// The account to create or replace, checked against the one stored now.
    fn account(&self, mut account: NewAccount) -> Result<NewAccount, Error> {
        account.reauth = self.reauth;
        check_replacement(self.existing.as_ref(), &account).map_err(Refusal::error)?;
        Ok(account)
    }
}

/// A registered client, with its secret shown once.
#[derive(Debug)]
pub struct NewClient {
    /// The public id.
    pub client_id: String,
    /// The secret (shown once; stored hashed).
    pub client_secret: SecretString,
}

/// The flow. Cheap to clone.
#[derive(Clone)]
pub struct Connect {
    store: Store,
    pipeline: Pipeline,
    key: Arc<MasterKey>,
    config: Arc<ConnectConfig>,
    metrics: Metrics,
}

impl Connect {
    /// The flow over `store`, discovering with `pipeline`, sealing with `key`.
    pub fn new(
        store: Store,
        pipeline: Pipeline,
        key: MasterKey,
        config: ConnectConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            pipeline,
            key: Arc::new(key),
            config: Arc::new(config),
            metrics,
        }
    }

    /// Unix seconds now, by the one clock ([`crate::clock::Clock`]).
    pub fn now(&self) -> i64 {
        self.store.now()
    }

    /// Whether the database can take a write within `wait` (readiness).
    pub async fn ping(&self, wait: Duration) -> Result<(), Error> {
        Ok(self.store.ping(wait).await?)
    }

    /// Jobs of the embedded queue by state (a gauge).
    pub async fn queue_depth(&self) -> Result<Vec<(String, u64)>, Error> {
        Ok(self.store.queue_depth().await?)
    }

    /// The registered client `client_id`, if any.
    pub async fn find_client(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<store::ClientRecord>, Error> {
        Ok(self.store.find_client(client_id.to_string()).await?)
    }

    /// Queues `jobs` (id, input) for `client`, unless the queue holds `max_queued` unfinished
    /// jobs already.
    pub async fn enqueue_jobs(
        &self,
        client: &ClientId,
        jobs: Vec<(JobId, String)>,
        max_queued: u64,
    ) -> Result<store::Intake, Error> {
        let now = self.now();
        let rows = jobs
            .into_iter()
            .map(|(id, input)| (id.into(), input))
            .collect();
        Ok(self
            .store
            .enqueue_jobs(client.to_string(), rows, max_queued, now)
            .await?)
    }

    /// The state of `client`'s job `job_id`; `None` for another client's or an unknown job.
    pub async fn job_status(
        &self,
        client: &ClientId,
        job_id: JobId,
    ) -> Result<Option<store::JobStatus>, Error> {
        Ok(self
            .store
            .job_status(client.to_string(), job_id.into())
            .await?)
    }

    /// The operator's key (the hosted page's CSRF tokens and sealed state use it).
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// Registers a client; its secret is returned once and stored hashed.
    pub async fn add_client(
        &self,
        name: &str,
        redirect_uris: Vec<String>,
    ) -> Result<NewClient, Error> {
        add_client(&self.store, name, redirect_uris).await
    }

    /// Checks that `client_id` names a registered client (nothing is charged before this:
    /// rule 25).
    pub async fn check_client(&self, client_id: &str) -> Result<(), Error> {
        match self.store.find_client(client_id.to_owned()).await? {
            Some(_) => Ok(()),
            None => Err(Error::UnknownClient),
        }
    }

    /// Runs the authorize flow and returns a one-time code that carries the account. Counts
    /// the authorization in the metrics, whichever face asked.
    pub async fn authorize(&self, command: Authorization) -> Result<SecretString, Error> {
        let result = self.authorize_uncounted(command).await;
        self.counted(result)
    }

    /// Counts an authorization whose request a face refused before it became a command (a
    /// field that does not parse), and gives the refusal back.
    pub fn refused(&self, err: Error) -> Error {
        self.count(Err(&err));
        err
    }

    /// Counts `result` and gives it back.
    fn counted<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        self.count(result.as_ref().map(|_| ()));
        result
    }

    /// The one place the authorization metric is counted.
    fn count(&self, outcome: Result<(), &Error>) {
        self.metrics.authorization(match outcome {
            Ok(()) => "ok",
            Err(err) => err.code(),
        });
    }

    async fn authorize_uncounted(&self, command: Authorization) -> Result<SecretString, Error> {
        let Authorization {
            intent,
            login,
            source,
        } = command;
        let prepared = self.prepare(&intent).await?;
        let account = match login {
            Login::Exchange(login) => {
                self.authorize_exchange(&intent, login, source, &prepared)
                    .await?
            }
            Login::Office365(grant) => self.authorize_office365(&intent, grant, &prepared).await?,
        };
        self.issue_code(prepared.account(account)?, intent.binding)
            .await
    }

    /// What every authorization checks first: the client, and whether this is a new
    /// account, the same one, or a scope change.
    async fn prepare(&self, intent: &Intent) -> Result<Prepared, Error> {
        let client_id = intent.client_id.as_str();
        self.check_client(client_id).await?;
        let address = intent.address.clone();
        let scopes = intent.scopes.clone();
        let existing = self
            .store
            .find_account_by_email(client_id.to_owned(), address.to_string())
            .await?;
        let reauth = check_reauth(intent, existing.as_ref(), &self.store).await?;
        let account_id = match &existing {
            Some(account) => account.account_id.clone(),
            None => new_id("acct_")?.into(),
        };
        let prepared = Prepared {
            address,
            scopes,
            account_id,
            existing,
            reauth,
        };
        if let Some(existing) = &prepared.existing
            && reauth == Reauth::None
            && existing.scopes != prepared.scopes
        {
            // Known before any password is tried.
            return Err(Error::ScopeChange);
        }
        Ok(prepared)
    }

    async fn authorize_exchange(
        &self,
        intent: &Intent,
        login: ExchangeLogin,
        source: Option<IpAddr>,
        prepared: &Prepared,
    ) -> Result<NewAccount, Error> {
        let address = &prepared.address;
        let credentials = Credentials {
            username: login.username,
            password: login.password,
            source,
        };
        let explicit = login.host.filter(|h| !h.trim().is_empty());
        let consent_given = login.consented_host.is_some();
        let consented: Vec<String> = login
            .consented_host
            .iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let report = match explicit {
            Some(host) => self
                .pipeline
                .known_host_with_consent(
                    address,
                    KnownHost::explicit(&host),
                    Some(&credentials),
                    &consented,
                )
                .await
                .map_err(|e| Error::invalid(Field::ExchangeServerHost, e.to_string()))?,
            None => {
                self.discover_and_verify(address, &credentials, &consented)
                    .await?
            }
        };
        self.metrics.discovery(&report);
        let checked = check_verification(&report);
        if let Err(Error::ConsentRequired { .. }) = &checked {
            self.metrics.consent("asked");
        } else if checked.is_ok() && consent_given {
            self.metrics.consent("given");
        }
        checked?;
        let mut report = report;
        let sync = match self.config.verify {
            VerifyMode::Options => None,
            VerifyMode::Sync => Some(self.check_sync(&mut report, address, &credentials).await?),
        };
        let host = report.exchange_server_host.clone().unwrap_or_default();
        let versions = report
            .verification
            .as_ref()
            .map(|p| p.versions.clone())
            .unwrap_or_default();
        let account_id = prepared.account_id.clone();
        let sealed = self
            .key
            .seal(&credentials.password, account_id.as_str().as_bytes())?;
        info!(domain = %address.domain(), method = report.method.map(|m| m.as_str()).unwrap_or(""), "account verified");
        Ok(NewAccount {
            account_id,
            client_id: intent.client_id.clone(),
            email: address.to_string(),
            name: intent.name.clone(),
            provider: Provider::Exchange,
            exchange_server_host: host,
            origin: HostOrigin::Discovered(report.method.unwrap_or(Method::Explicit)),
            activesync_versions: versions.into(),
            scopes: prepared.scopes.clone(),
            username: credentials.username.clone(),
            sealed_secret: sealed,
            now: self.store.now(),
            reauth: Reauth::None,
            sync,
        })
    }

    /// The sync check on a verified report: its proof, or why the mailbox will not sync.
    async fn check_sync(
        &self,
        report: &mut Report,
        address: &EmailAddress,
        credentials: &Credentials,
    ) -> Result<SyncProof, Error> {
        let identity = DeviceIdentity::for_account(&address.to_string());
        self.pipeline
            .check_sync(report, credentials, &identity)
            .await;
        let Some(check) = report.sync.as_ref() else {
            return Err(Error::Upstream(Code::NotVerified.as_str()));
        };
        if check.code != Code::SyncConfirmed {
            return Err(match check.code {
                Code::AuthFailed => Error::CredentialsRefused,
                Code::CredentialBudget => Error::TooManyAttempts,
                Code::BudgetUnavailable => Error::LimitsUnavailable,
                code => Error::SyncCheckFailed {
                    code,
                    message: check.message.clone(),
                    remedy: report.remedy.clone(),
                },
            });
        }
        Ok(SyncProof {
            protocol_version: check.protocol_version.clone().unwrap_or_default(),
            device_id: check.device_id.clone(),
            checked_at: self.store.now(),
        })
    }

    /// Cached host first; discovery when there is none or it stopped working.
    /// A consented discovery is never cached: the consent was one user's, for one sign-in.
    async fn discover_and_verify(
        &self,
        address: &EmailAddress,
        credentials: &Credentials,
        consented: &[String],
    ) -> Result<Report, Error> {
        let domain = address.domain().as_str().to_owned();
        if !consented.is_empty() {
            return Ok(self
                .pipeline
                .discover_and_verify_with_consent(address, credentials, consented)
                .await);
        }
        if let Some(cached) = self
            .store
            .cached_discovery(domain.clone(), self.store.now())
            .await?
        {
            let known = KnownHost::remembered(
                &cached.host,
                cached.method,
                Some(cached.activesync_url),
                cached.provider,
            );
            let report = self
                .pipeline
                .known_host(address, known, Some(credentials))
                .await
                .map_err(|_| Error::Corrupt("cached host"))?;
            if report.credentials_valid.is_some() {
                return Ok(report);
            }
            warn!(domain = %domain, "cached exchange host stopped answering; discovering again");
            self.store.forget_discovery(domain.clone()).await?;
        }
        let report = self
            .pipeline
            .discover_and_verify(address, credentials)
            .await;
        // A moved mailbox (ActiveSync 451) is one mailbox's news, not the domain's host.
        if report.confirmed && report.credentials_valid == Some(true) && report.moved_from.is_none()
        {
            let ttl = report
                .ttl_seconds
                .unwrap_or(self.config.cache_ttl.as_secs());
            self.store
                .cache_discovery(CachedDiscovery {
                    domain,
                    host: report.exchange_server_host.clone().unwrap_or_default(),
                    method: report.method.unwrap_or(Method::Explicit),
                    activesync_url: report.activesync_url.clone().unwrap_or_default(),
                    provider: report.provider.unwrap_or(Provider::Exchange),
                    expires_at: self.store.now() + ttl as i64,
                })
                .await?;
        }
        Ok(report)
    }
}

/// Registers a client on `store`; its secret is returned once and stored hashed.
pub async fn add_client(
    store: &Store,
    name: &str,
    redirect_uris: Vec<String>,
) -> Result<NewClient, Error> {
    let client_secret = secrets::random_token("exd_cs_")?;
    let secret_hash = secrets::hash_token(client_secret.expose_secret());
    let client_id = register(store, name, redirect_uris, secret_hash).await?;
    Ok(NewClient {
        client_id,
        client_secret,
    })
}

/// Registers a public client (RFC 6749 2.1: one that cannot keep a secret, an app on a phone
/// or in a browser): no secret; the hosted page requires PKCE from it.
pub async fn add_public_client(
    store: &Store,
    name: &str,
    redirect_uris: Vec<String>,
) -> Result<String, Error> {
    if redirect_uris.is_empty() {
        return Err(Error::invalid(
            Field::RedirectUri,
            "a public client needs a redirect uri".into(),
        ));
    }
    register(store, name, redirect_uris, Vec::new()).await
}

async fn register(
    store: &Store,
    name: &str,
    redirect_uris: Vec<String>,
    secret_hash: Vec<u8>,
) -> Result<String, Error> {
    for uri in &redirect_uris {
        Url::parse(uri).map_err(|_| {
            Error::invalid(Field::RedirectUri, "a redirect uri is not a url".into())
        })?;
    }
    let client_id = new_id("cli_")?;
    let record = store::ClientRecord {
        client_id: client_id.clone(),
        name: name.to_owned(),
        secret_hash,
        redirect_uris,
    };
    store.add_client(record).await?;
    Ok(client_id)
}

/// What a `reauth_account_id` allows: it must name this client's account of this address.
async fn check_reauth(
    intent: &Intent,
    existing: Option<&Account>,
    store: &Store,
) -> Result<Reauth, Error> {
    let Some(reauth) = intent.reauth.as_ref() else {
        return Ok(Reauth::None);
    };
    let account = store.find_account(reauth.to_string()).await?;
    let matches = account.is_some_and(|a| {
        a.client_id == intent.client_id && existing.is_some_and(|e| e.account_id == a.account_id)
    });
    if !matches {
        return Err(Error::AccountNotFound);
    }
    Ok(if intent.through_browser {
        Reauth::Scopes
    } else {
        Reauth::Everything
    })
}

/// Maps the verification of a report to the flow's answer.
fn check_verification(report: &Report) -> Result<(), Error> {
    if let Some(consent) = &report.needs_consent
        && !(report.is_found() && report.confirmed)
    {
        return Err(Error::ConsentRequired {
            host: consent.host.clone(),
            reason: consent.reason,
            from: consent.from.clone(),
        });
    }
    if !report.is_found() {
        let code = report
            .error
            .as_ref()
            .map(|f| f.code)
            .unwrap_or(Code::NotFound);
        if code == Code::AuthFailed {
            // The domain's own Autodiscover refused the password: it is the password.
            return Err(Error::CredentialsRefused);
        }
        if code == Code::CredentialBudget {
            return Err(Error::TooManyAttempts);
        }
        if code == Code::BudgetUnavailable {
            return Err(Error::LimitsUnavailable);
        }
        if code == Code::ImapOnly {
            return Err(Error::ImapOnly {
                servers: report.mail_servers.clone(),
            });
        }
        return Err(Error::DiscoveryFailed {
            code,
            remedy: report.remedy.clone(),
        });
    }
    if report.provider == Some(Provider::Office365) {
        return Err(Error::ExchangeOnline);
    }
    if !report.confirmed {
        return Err(Error::Unconfirmed);
    }
    match report.credentials_valid {
        Some(true) => Ok(()),
        Some(false) => Err(Error::CredentialsRefused),
        None => {
            let code = report
                .verification
                .as_ref()
                .map(|p| p.code)
                .unwrap_or(Code::NotVerified);
            match code {
                Code::ModernAuthOnly => Err(Error::ExchangeOnline),
                Code::CredentialBudget => Err(Error::TooManyAttempts),
                Code::BudgetUnavailable => Err(Error::LimitsUnavailable),
                Code::NotActiveSync
                | Code::Forbidden
                | Code::ActiveSyncMoved
                | Code::CredentialsWithheld
                | Code::AuthRequired => Err(Error::NotActiveSync(code)),
                other => Err(Error::Upstream(other.as_str())),
            }
        }
    }
}

/// A serde message without the offending value (it may be a password sent with the wrong
/// type): `invalid type: integer `1234`, expected a string` keeps only what was expected.
pub fn redact_serde_message(message: &str) -> String {
    // `unknown field `x`, expected ...`: the name was the caller's, the expected ones ours.
    for marker in ["unknown field `", "unknown variant `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            let tail = rest.find('`').map(|i| &rest[i + 1..]).unwrap_or("");
            return format!(
                "{}{}{}",
                &message[..start],
                marker.trim_end_matches([' ', '`']),
                tail
            );
        }
    }
    for marker in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start..];
            let tail = rest.find(", expected").map(|i| &rest[i..]).unwrap_or("");
            return format!(
                "{}{}{}",
                &message[..start],
                marker.trim_end_matches([':', ' ']),
                tail
            );
        }
    }
    message.to_owned()
}

fn new_id(prefix: &str) -> Result<String, Error> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| Error::Secrets(secrets::Error::Random))?;
    Ok(format!(
        "{prefix}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}
