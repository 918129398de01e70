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
//! 4. Save the account (password sealed), issue a code (256 bits, stored hashed, minutes).
//!
//! Provider `office365` redeems the refresh token at the Microsoft identity platform token
//! endpoint instead; discovery cannot be turned off for it.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method as HttpMethod;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::{info, warn};
use url::Url;

use crate::discovery::{Body, Outgoing, Pipeline};
use crate::domain::{Credentials, EmailAddress};
use crate::metrics::Metrics;
use crate::report::{Provider, Report};
use crate::secrets::{self, MasterKey};
use crate::store::unix_now;
use crate::store::{self, Account, CachedDiscovery, NewAccount, Redemption, Store};

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

/// The Microsoft identity platform token endpoint (tenant `common`).
pub const DEFAULT_OFFICE365_TOKEN_URL: &str =
    "https://login.microsoftonline.com/common/oauth2/v2.0/token";

/// The scope a refresh token is redeemed for.
pub const OFFICE365_SCOPE: &str = "offline_access openid profile User.Read";

/// Settings of the flow.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectConfig {
    /// How long a code lives. Default: 5 min.
    pub code_ttl: Duration,
    /// The Microsoft token endpoint. Default: [`DEFAULT_OFFICE365_TOKEN_URL`].
    pub office365_token_url: String,
    /// How long a discovery is cached when the answer gives no TTL. Default: 1 h.
    pub cache_ttl: Duration,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            code_ttl: Duration::from_secs(300),
            office365_token_url: DEFAULT_OFFICE365_TOKEN_URL.to_owned(),
            cache_ttl: Duration::from_secs(3600),
        }
    }
}

/// `POST /connect/authorize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The client.
    pub client_id: String,
    /// The account holder's name.
    #[serde(default)]
    pub name: String,
    /// The mailbox address.
    pub email_address: String,
    /// `exchange` or `office365`.
    pub provider: String,
    /// Provider-specific settings.
    pub settings: serde_json::Value,
    /// Comma-separated scopes.
    pub scopes: String,
    /// The account being authorized again (required to change scopes).
    #[serde(default)]
    pub reauth_account_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeSettings {
    username: String,
    password: SecretString,
    #[serde(default)]
    exchange_server_host: Option<String>,
    #[serde(default)]
    eas_server_host: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Office365Settings {
    microsoft_client_id: String,
    microsoft_client_secret: SecretString,
    microsoft_refresh_token: SecretString,
    redirect_uri: String,
}

/// `POST /connect/token`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The client.
    pub client_id: String,
    /// Its secret.
    pub client_secret: SecretString,
    /// The one-time code.
    pub code: SecretString,
}

/// What `/connect/token` returns.
#[derive(Debug)]
pub struct TokenGrant {
    /// The access token (shown once; stored hashed).
    pub access_token: SecretString,
    /// The account.
    pub account: Account,
}

/// An authorization code of the Microsoft identity platform, with what the hosted page
/// learned before the user went to sign in there.
#[derive(Debug)]
pub struct MicrosoftCode {
    /// The client (the application).
    pub client_id: String,
    /// The account holder's name.
    pub name: String,
    /// The mailbox address.
    pub email_address: String,
    /// Comma-separated scopes.
    pub scopes: String,
    /// The account being authorized again (required to change scopes).
    pub reauth_account_id: Option<String>,
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

struct Prepared {
    address: EmailAddress,
    scopes: String,
    account_id: String,
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

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
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

    /// Runs the authorize flow and returns a one-time code.
    pub async fn authorize(&self, request: AuthorizeRequest) -> Result<SecretString, Error> {
        let prepared = self
            .prepare(
                &request.client_id,
                &request.email_address,
                &request.scopes,
                request.reauth_account_id.as_deref(),
            )
            .await?;
        let Prepared {
            address,
            scopes,
            account_id,
        } = prepared;
        let saved = match request.provider.as_str() {
            "exchange" => {
                self.authorize_exchange(&request, &address, &scopes, account_id)
                    .await?
            }
            "office365" => {
                self.authorize_office365(&request, &address, &scopes, account_id)
                    .await?
            }
            other => {
                return Err(Error::invalid(
                    "provider",
                    format!("unknown provider {other:?}; use exchange or office365"),
                ));
            }
        };
        self.issue_code(&request.client_id, saved).await
    }

    /// Redeems an authorization code of the Microsoft identity platform (the hosted page's
    /// "Sign in with Microsoft"), saves the office365 account with its refresh token sealed,
    /// and returns a one-time code.
    pub async fn authorize_microsoft_code(
        &self,
        grant: MicrosoftCode,
    ) -> Result<SecretString, Error> {
        let Prepared {
            address,
            scopes,
            account_id,
        } = self
            .prepare(
                &grant.client_id,
                &grant.email_address,
                &grant.scopes,
                grant.reauth_account_id.as_deref(),
            )
            .await?;
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
        let saved = self
            .save_office365(
                &grant.client_id,
                &address,
                &grant.name,
                &scopes,
                account_id,
                &grant.microsoft_client_id,
                &refresh_token,
            )
            .await?;
        self.issue_code(&grant.client_id, saved).await
    }

    /// What every authorization checks first: the client, the address, the scopes, and
    /// whether this is a new account, the same one, or a scope change.
    async fn prepare(
        &self,
        client_id: &str,
        email_address: &str,
        scopes: &str,
        reauth_account_id: Option<&str>,
    ) -> Result<Prepared, Error> {
        if self
            .store
            .find_client(client_id.to_owned())
            .await?
            .is_none()
        {
            return Err(Error::UnknownClient);
        }
        let address = EmailAddress::parse(email_address)
            .map_err(|e| Error::invalid("email_address", e.to_string()))?;
        let scopes = parse_scopes(scopes)?;
        let existing = self
            .store
            .find_account_by_email(client_id.to_owned(), address.to_string())
            .await?;
        check_reauth(
            client_id,
            reauth_account_id,
            existing.as_ref(),
            &scopes,
            &self.store,
        )
        .await?;
        let account_id = match &existing {
            Some(account) => account.account_id.clone(),
            None => new_id("acct_")?,
        };
        Ok(Prepared {
            address,
            scopes,
            account_id,
        })
    }

    /// A one-time code for the saved account.
    async fn issue_code(&self, client_id: &str, saved: String) -> Result<SecretString, Error> {
        let code = secrets::random_token("exd_code_")?;
        let expires_at = unix_now() + self.config.code_ttl.as_secs() as i64;
        self.store
            .create_code(
                secrets::hash_token(code.expose_secret()),
                client_id.to_owned(),
                saved,
                expires_at,
            )
            .await?;
        Ok(code)
    }

    async fn authorize_exchange(
        &self,
        request: &AuthorizeRequest,
        address: &EmailAddress,
        scopes: &str,
        account_id: String,
    ) -> Result<String, Error> {
        let settings: ExchangeSettings = serde_json::from_value(request.settings.clone())
            .map_err(|e| Error::invalid("settings", redact_serde_message(&e.to_string())))?;
        if settings.username.trim().is_empty() || settings.password.expose_secret().is_empty() {
            return Err(Error::invalid(
                "settings",
                "username and password are required".into(),
            ));
        }
        let credentials = Credentials {
            username: settings.username.clone(),
            password: settings.password.clone(),
        };
        let explicit = settings
            .exchange_server_host
            .or(settings.eas_server_host)
            .filter(|h| !h.trim().is_empty());
        let report = match explicit {
            Some(host) => {
                let mut report = Pipeline::explicit_host(address, host.trim())
                    .map_err(|e| Error::invalid("settings.exchange_server_host", e.to_string()))?;
                self.pipeline.verify(&mut report, &credentials).await;
                report
            }
            None => self.discover_and_verify(address, &credentials).await?,
        };
        self.metrics.discovery(&report);
        check_verification(&report)?;
        let host = report.exchange_server_host.clone().unwrap_or_default();
        let versions = report
            .verification
            .as_ref()
            .map(|p| p.versions.join(","))
            .unwrap_or_default();
        let sealed = self
            .key
            .seal(&credentials.password, account_id.as_bytes())?;
        let saved = self
            .store
            .save_account(NewAccount {
                account_id,
                client_id: request.client_id.clone(),
                email: address.to_string(),
                name: request.name.clone(),
                provider: Provider::Exchange.as_str().to_owned(),
                exchange_server_host: host,
                discovery_method: report.method.map(|m| m.as_str()).unwrap_or("").to_owned(),
                activesync_versions: versions,
                scopes: scopes.to_owned(),
                username: credentials.username.clone(),
                sealed_secret: sealed,
                now: unix_now(),
            })
            .await?;
        info!(domain = %address.domain(), method = report.method.map(|m| m.as_str()).unwrap_or(""), "account authorized");
        Ok(saved)
    }

    /// Cached host first; discovery when there is none or it stopped working.
    async fn discover_and_verify(
        &self,
        address: &EmailAddress,
        credentials: &Credentials,
    ) -> Result<Report, Error> {
        let domain = address.domain().as_str().to_owned();
        if let Some(cached) = self
            .store
            .cached_discovery(domain.clone(), unix_now())
            .await?
        {
            let mut report = Pipeline::explicit_host(address, &cached.host)
                .map_err(|_| Error::Corrupt("cached host"))?;
            report.method = cached.method.parse().ok();
            report.activesync_url = Some(cached.activesync_url).filter(|u| !u.is_empty());
            report.provider = Some(if cached.provider == "office365" {
                Provider::Office365
            } else {
                Provider::Exchange
            });
            self.pipeline.verify(&mut report, credentials).await;
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
        if report.confirmed && report.credentials_valid == Some(true) {
            let ttl = report
                .ttl_seconds
                .unwrap_or(self.config.cache_ttl.as_secs());
            self.store
                .cache_discovery(CachedDiscovery {
                    domain,
                    host: report.exchange_server_host.clone().unwrap_or_default(),
                    method: report.method.map(|m| m.as_str()).unwrap_or("").to_owned(),
                    activesync_url: report.activesync_url.clone().unwrap_or_default(),
                    provider: report
                        .provider
                        .map(|p| p.as_str())
                        .unwrap_or("exchange")
                        .to_owned(),
                    expires_at: unix_now() + ttl as i64,
                })
                .await?;
        }
        Ok(report)
    }

    async fn authorize_office365(
        &self,
        request: &AuthorizeRequest,
        address: &EmailAddress,
        scopes: &str,
        account_id: String,
    ) -> Result<String, Error> {
        let settings: Office365Settings = serde_json::from_value(request.settings.clone())
            .map_err(|e| Error::invalid("settings", redact_serde_message(&e.to_string())))?;
        Url::parse(&settings.redirect_uri)
            .map_err(|_| Error::invalid("settings.redirect_uri", "not a valid url".into()))?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &settings.microsoft_client_id)
            .append_pair(
                "client_secret",
                settings.microsoft_client_secret.expose_secret(),
            )
            .append_pair(
                "refresh_token",
                settings.microsoft_refresh_token.expose_secret(),
            )
            .append_pair("redirect_uri", &settings.redirect_uri)
            .append_pair("scope", OFFICE365_SCOPE)
            .finish();
        let refresh_token = self
            .fetch_microsoft_token(form)
            .await?
            .refresh_token
            .unwrap_or_else(|| settings.microsoft_refresh_token.clone());
        let saved = self
            .save_office365(
                &request.client_id,
                address,
                &request.name,
                scopes,
                account_id,
                &settings.microsoft_client_id,
                &refresh_token,
            )
            .await?;
        info!(domain = %address.domain(), "office365 account authorized");
        Ok(saved)
    }

    /// Saves an office365 account with its refresh token sealed.
    #[allow(clippy::too_many_arguments)]
    async fn save_office365(
        &self,
        client_id: &str,
        address: &EmailAddress,
        name: &str,
        scopes: &str,
        account_id: String,
        microsoft_client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<String, Error> {
        let sealed = self.key.seal(refresh_token, account_id.as_bytes())?;
        let saved = self
            .store
            .save_account(NewAccount {
                account_id,
                client_id: client_id.to_owned(),
                email: address.to_string(),
                name: name.to_owned(),
                provider: Provider::Office365.as_str().to_owned(),
                exchange_server_host: "outlook.office365.com".to_owned(),
                discovery_method: "office365".to_owned(),
                activesync_versions: String::new(),
                scopes: scopes.to_owned(),
                username: microsoft_client_id.to_owned(),
                sealed_secret: sealed,
                now: unix_now(),
            })
            .await?;
        Ok(saved)
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
        };
        let fetched = self
            .pipeline
            .http()
            .fetch(request)
            .await
            .map_err(|e| Error::Upstream(e.code()))?;
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

    /// Redeems a code for an access token.
    pub async fn token(&self, request: TokenRequest) -> Result<TokenGrant, Error> {
        let client = self.store.find_client(request.client_id.clone()).await?;
        let presented = secrets::hash_token(request.client_secret.expose_secret());
        let Some(client) = client.filter(|c| secrets::hashes_match(&c.secret_hash, &presented))
        else {
            return Err(Error::BadClient);
        };
        let access_token = secrets::random_token("exd_at_")?;
        let redemption = self
            .store
            .redeem_code(
                secrets::hash_token(request.code.expose_secret()),
                client.client_id,
                secrets::hash_token(access_token.expose_secret()),
                unix_now(),
            )
            .await?;
        match redemption {
            Redemption::Issued(account) => Ok(TokenGrant {
                access_token,
                account: *account,
            }),
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

    /// The account an access token gives access to.
    pub async fn account(&self, access_token: &str) -> Result<Account, Error> {
        self.store
            .account_for_token(secrets::hash_token(access_token))
            .await?
            .ok_or(Error::BadToken)
    }
}

/// Registers a client on `store`.
pub async fn add_client(
    store: &Store,
    name: &str,
    redirect_uris: Vec<String>,
) -> Result<NewClient, Error> {
    for uri in &redirect_uris {
        Url::parse(uri)
            .map_err(|_| Error::invalid("redirect_uri", format!("{uri:?} is not a url")))?;
    }
    let client_id = new_id("cli_")?;
    let client_secret = secrets::random_token("exd_cs_")?;
    let record = store::ClientRecord {
        client_id: client_id.clone(),
        name: name.to_owned(),
        secret_hash: secrets::hash_token(client_secret.expose_secret()),
        redirect_uris,
    };
    store.add_client(record, name.to_owned()).await?;
    Ok(NewClient {
        client_id,
        client_secret,
    })
}

/// Validates comma-separated scopes; returns them normalised.
pub fn parse_scopes(scopes: &str) -> Result<String, Error> {
    let mut list: Vec<&str> = scopes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err(Error::invalid(
            "scopes",
            "at least one scope is required".into(),
        ));
    }
    if let Some(unknown) = list.iter().find(|s| !KNOWN_SCOPES.contains(s)) {
        return Err(Error::invalid(
            "scopes",
            format!("unknown scope {unknown:?}"),
        ));
    }
    list.sort_unstable();
    list.dedup();
    Ok(list.join(","))
}

async fn check_reauth(
    client_id: &str,
    reauth_account_id: Option<&str>,
    existing: Option<&Account>,
    scopes: &str,
    store: &Store,
) -> Result<(), Error> {
    if let Some(reauth) = reauth_account_id {
        let account = store.find_account(reauth.to_owned()).await?;
        let matches = account.is_some_and(|a| {
            a.client_id == client_id && existing.is_some_and(|e| e.account_id == a.account_id)
        });
        if !matches {
            return Err(Error::AccountNotFound);
        }
        return Ok(());
    }
    match existing {
        Some(account) if account.scopes != scopes => Err(Error::ScopeChange),
        _ => Ok(()),
    }
}

/// Maps the verification of a report to the flow's answer.
fn check_verification(report: &Report) -> Result<(), Error> {
    if !report.is_found() {
        let code = report.error.as_ref().map(|f| f.code).unwrap_or("not_found");
        return Err(Error::DiscoveryFailed(code));
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
                .unwrap_or("not_verified");
            match code {
                "modern_auth_only" => Err(Error::ExchangeOnline),
                "credential_budget" => Err(Error::TooManyAttempts),
                "not_activesync"
                | "forbidden"
                | "activesync_moved"
                | "credentials_withheld"
                | "auth_required" => Err(Error::NotActiveSync(code)),
                other => Err(Error::Upstream(other)),
            }
        }
    }
}

/// A serde message without the offending value (it may be a password sent with the wrong
/// type): `invalid type: integer `1234`, expected a string` keeps only what was expected.
pub fn redact_serde_message(message: &str) -> String {
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

/// Why the flow refused or failed. Each maps to one HTTP status and type in `api::error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field is missing, malformed or unknown.
    #[error("invalid {field}: {message}")]
    InvalidRequest {
        /// The field.
        field: &'static str,
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
        "the Exchange server could not be discovered ({0}); pass settings.exchange_server_host"
    )]
    DiscoveryFailed(&'static str),
    /// The host found needs confirmation (a foreign domain).
    #[error(
        "the Exchange server found is in another domain and needs confirmation; pass it as settings.exchange_server_host"
    )]
    Unconfirmed,
    /// The host does not answer as ActiveSync.
    #[error("the server does not answer as Exchange ActiveSync ({0})")]
    NotActiveSync(&'static str),
    /// The mail server or token endpoint could not be reached.
    #[error("the mail server could not be reached ({0})")]
    Upstream(&'static str),
    /// Too many credential attempts for this account.
    #[error("too many attempts for this account; try again later")]
    TooManyAttempts,
    /// Changing scopes requires `reauth_account_id`.
    #[error(
        "the account exists with other scopes; authorize again with reauth_account_id to change them"
    )]
    ScopeChange,
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

impl Error {
    fn invalid(field: &'static str, message: String) -> Self {
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
            Self::DiscoveryFailed(_) => "discovery_failed",
            Self::Unconfirmed => "host_unconfirmed",
            Self::NotActiveSync(_) => "not_activesync",
            Self::Upstream(_) => "upstream_unreachable",
            Self::TooManyAttempts => "too_many_attempts",
            Self::ScopeChange => "scope_change",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_checked_and_normalised() {
        assert_eq!(
            parse_scopes("email.read_only, calendar.read_only,email.read_only").unwrap(),
            "calendar.read_only,email.read_only"
        );
        assert_eq!(parse_scopes("").unwrap_err().code(), "invalid_request");
        assert_eq!(
            parse_scopes("email.read_only,root").unwrap_err().code(),
            "invalid_request"
        );
    }

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

    #[test]
    fn serde_messages_lose_their_values() {
        let err =
            serde_json::from_str::<ExchangeSettings>(r#"{"username":"a","password":123456789}"#)
                .err()
                .unwrap();
        let message = redact_serde_message(&err.to_string());
        assert!(!message.contains("123456789"), "{message}");
        assert!(message.contains("expected"), "{message}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "client_id": "c", "client_secret": "s3cr3t-value", "code": "exd_code_abc"
        }))
        .unwrap();
        let debug = format!("{request:?}");
        assert!(!debug.contains("s3cr3t-value") && !debug.contains("exd_code_abc"));
    }
}
