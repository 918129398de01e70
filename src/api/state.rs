//! What every handler shares: the flow, the metrics and the rate limiters.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiConfig;
use super::hosted_settings::Hosted;
use crate::connect::Connect;
use crate::domain::EmailAddress;
use crate::metrics::Metrics;
use crate::shared_limits::{Rate, SharedLimits, Verdict};

/// Handler state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The authorization flow.
    pub connect: Connect,
    /// Metrics.
    pub metrics: Metrics,
    /// The API's rate limits.
    pub limiters: Arc<RateLimiters>,
    /// The hosted sign-in page's settings.
    pub hosted: Arc<Hosted>,
    /// Unfinished jobs the embedded queue holds at most.
    pub max_queued: u64,
}

impl AppState {
    /// State for `connect` under `config`'s limits; the embedded queue holds at most
    /// `max_queued` unfinished jobs.
    pub fn new(
        connect: Connect,
        metrics: Metrics,
        config: &ApiConfig,
        hosted: Hosted,
        max_queued: u64,
    ) -> Self {
        Self::with_shared_limits(connect, metrics, config, hosted, max_queued, None)
    }

    /// [`AppState::new`], whose limits every instance given the same `shared` limits shares.
    pub fn with_shared_limits(
        connect: Connect,
        metrics: Metrics,
        config: &ApiConfig,
        hosted: Hosted,
        max_queued: u64,
        shared: Option<SharedLimits>,
    ) -> Self {
        Self {
            connect,
            metrics,
            limiters: Arc::new(RateLimiters::new(config, shared)),
            hosted: Arc::new(hosted),
            max_queued,
        }
    }
}

/// The API's rate limits (rules 18, 25). On `/connect/authorize` and the hosted form: per
/// source address first; per client and per account only once the client is known to exist,
/// and the account's limit is kept per source address, so that nobody can spend another
/// caller's allowance for a user. On the token, revocation, resource and queue endpoints: per
/// source address, and queue intake per client.
///
/// With shared limits (`[limits] url`) every limit is taken from Redis first, so that it holds
/// across instances; Redis away, each falls back to this process's limiter.
pub struct RateLimiters {
    shared: Option<SharedLimits>,
    rates: Rates,
    sources: DefaultKeyedRateLimiter<IpAddr>,
    clients: DefaultKeyedRateLimiter<String>,
    accounts: DefaultKeyedRateLimiter<(IpAddr, String)>,
    token_sources: DefaultKeyedRateLimiter<IpAddr>,
    resource_sources: DefaultKeyedRateLimiter<IpAddr>,
    intake: DefaultKeyedRateLimiter<String>,
    calls: AtomicU64,
}

/// The configured rates, for the shared limits.
struct Rates {
    sources: u32,
    clients: u32,
    accounts: u32,
    token_sources: u32,
    resource_sources: u32,
    intake: u32,
}

/// Which limit of a source address a request takes.
#[derive(Debug, Clone, Copy)]
pub enum SourceLimit {
    /// `/connect/authorize` and the hosted form.
    Authorize,
    /// `/connect/token` and `/oauth/revoke`.
    Token,
    /// `/account` and the queue's job status.
    Resource,
}

impl RateLimiters {
    fn new(config: &ApiConfig, shared: Option<SharedLimits>) -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            shared: shared.filter(SharedLimits::keys_people),
            rates: Rates {
                sources: config.authorize_per_address_per_minute,
                clients: config.authorize_per_client_per_minute,
                accounts: config.authorize_per_account_per_minute,
                token_sources: config.token_per_address_per_minute,
                resource_sources: config.resource_per_address_per_minute,
                intake: config.jobs_per_client_per_minute,
            },
            sources: RateLimiter::keyed(per_minute(config.authorize_per_address_per_minute)),
            clients: RateLimiter::keyed(per_minute(config.authorize_per_client_per_minute)),
            accounts: RateLimiter::keyed(per_minute(config.authorize_per_account_per_minute)),
            token_sources: RateLimiter::keyed(per_minute(config.token_per_address_per_minute)),
            resource_sources: RateLimiter::keyed(per_minute(
                config.resource_per_address_per_minute,
            )),
            intake: RateLimiter::keyed(per_minute(config.jobs_per_client_per_minute)),
            calls: AtomicU64::new(0),
        }
    }

    /// Takes one call of `source`'s `limit`, or says how long to wait.
    pub async fn check_source(&self, limit: SourceLimit, source: IpAddr) -> Result<(), Duration> {
        self.prune();
        let (limiter, name, rate) = match limit {
            SourceLimit::Authorize => (&self.sources, "authorize_source", self.rates.sources),
            SourceLimit::Token => (
                &self.token_sources,
                "token_source",
                self.rates.token_sources,
            ),
            SourceLimit::Resource => (
                &self.resource_sources,
                "resource_source",
                self.rates.resource_sources,
            ),
        };
        let key = source.to_string();
        if let Some(verdict) = self.shared(name, key.as_bytes(), rate, 1).await {
            return verdict;
        }
        limiter.check_key(&source).map_err(wait)
    }

    /// The shared limit's answer, or `None` to fall back to this process's limiter.
    async fn shared(
        &self,
        name: &'static str,
        key: &[u8],
        per_minute: u32,
        cost: u32,
    ) -> Option<Result<(), Duration>> {
        let shared = self.shared.as_ref()?;
        match shared
            .take(name, key, Rate::per_minute(per_minute), cost)
            .await
        {
            Ok(Verdict::Allowed) => Some(Ok(())),
            Ok(Verdict::Wait(wait)) => Some(Err(wait.min(Duration::from_secs(60)))),
            Err(_) => None,
        }
    }

    /// Takes one authorization of a known `client` for `account` (normalised) from `source`.
    pub async fn check_account(
        &self,
        client: &str,
        account: &EmailAddress,
        source: IpAddr,
    ) -> Result<(), Duration> {
        match self
            .shared("authorize_client", client.as_bytes(), self.rates.clients, 1)
            .await
        {
            Some(verdict) => verdict?,
            None => self.clients.check_key(&client.to_owned()).map_err(wait)?,
        }
        let key = format!("{source}\n{account}");
        match self
            .shared("authorize_account", key.as_bytes(), self.rates.accounts, 1)
            .await
        {
            Some(verdict) => verdict,
            None => self
                .accounts
                .check_key(&(source, account.to_string()))
                .map_err(wait),
        }
    }

    /// Takes one sign-in of a client already known to exist (the hosted page): the source's
    /// limit, then, for a well-formed address, the client's and the account's.
    pub async fn check_sign_in(
        &self,
        client: &str,
        address: &str,
        source: IpAddr,
    ) -> Result<(), Duration> {
        self.check_source(SourceLimit::Authorize, source).await?;
        match EmailAddress::parse(address) {
            Ok(address) => self.check_account(client, &address, source).await,
            Err(_) => Ok(()),
        }
    }

    /// Takes `jobs` jobs of an authenticated `client`'s intake.
    pub async fn check_intake(&self, client: &str, jobs: usize) -> Result<(), Duration> {
        let jobs = NonZeroU32::new(jobs.min(u32::MAX as usize) as u32).unwrap_or(NonZeroU32::MIN);
        if let Some(verdict) = self
            .shared(
                "job_intake",
                client.as_bytes(),
                self.rates.intake,
                jobs.get(),
            )
            .await
        {
            return verdict;
        }
        match self.intake.check_key_n(&client.to_owned(), jobs) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(wait(not_until)),
            // More jobs than a whole minute's allowance: never, in one request.
            Err(_) => Err(Duration::from_secs(60)),
        }
    }

    fn prune(&self) {
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            self.sources.retain_recent();
            self.clients.retain_recent();
            self.accounts.retain_recent();
            self.token_sources.retain_recent();
            self.resource_sources.retain_recent();
            self.intake.retain_recent();
        }
    }
}

/// The rate-limit prologue of a handler, as an extractor: the request's source has taken one
/// call of its `L` limit (or the request is answered 429 with `Retry-After`), and this is its
/// address. Put before the body, so that a limited source's body is never parsed.
pub struct Limited<L> {
    /// The caller's address.
    pub source: IpAddr,
    limit: std::marker::PhantomData<L>,
}

/// Which source limit a [`Limited`] takes.
pub trait LimitKind: Send + Sync {
    /// The limit.
    const LIMIT: SourceLimit;
}

/// `/connect/authorize`.
pub struct AuthorizeCalls;
/// `/connect/token`, `/oauth/token`, `/oauth/revoke`, queue intake.
pub struct TokenCalls;
/// `/account`, a job's status.
pub struct ResourceCalls;

impl LimitKind for AuthorizeCalls {
    const LIMIT: SourceLimit = SourceLimit::Authorize;
}
impl LimitKind for TokenCalls {
    const LIMIT: SourceLimit = SourceLimit::Token;
}
impl LimitKind for ResourceCalls {
    const LIMIT: SourceLimit = SourceLimit::Resource;
}

impl<L: LimitKind> axum::extract::FromRequestParts<AppState> for Limited<L> {
    type Rejection = super::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let source = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        state
            .limiters
            .check_source(L::LIMIT, source)
            .await
            .map_err(super::error::ApiError::RateLimited)?;
        Ok(Self {
            source,
            limit: std::marker::PhantomData,
        })
    }
}

fn wait(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

const PRUNE_EVERY: u64 = 1024;
