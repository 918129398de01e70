//! What every handler shares: the flow, the metrics and the rate limiters.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiConfig;
use super::hosted::Hosted;
use crate::connect::Connect;
use crate::metrics::Metrics;

/// Handler state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The authorization flow.
    pub connect: Connect,
    /// Metrics.
    pub metrics: Metrics,
    /// Rate limiters of `/connect/authorize` and the hosted page.
    pub limiters: Arc<RateLimiters>,
    /// The hosted sign-in page's settings.
    pub hosted: Arc<Hosted>,
}

impl AppState {
    /// State for `connect` under `config`'s limits.
    pub fn new(connect: Connect, metrics: Metrics, config: &ApiConfig, hosted: Hosted) -> Self {
        Self {
            connect,
            metrics,
            limiters: Arc::new(RateLimiters::new(config)),
            hosted: Arc::new(hosted),
        }
    }
}

/// Per-client, per-source-address and per-account limits on `/connect/authorize` (rule 18).
pub struct RateLimiters {
    clients: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    accounts: DefaultKeyedRateLimiter<String>,
    calls: AtomicU64,
}

impl RateLimiters {
    fn new(config: &ApiConfig) -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            clients: RateLimiter::keyed(per_minute(config.authorize_per_client_per_minute)),
            addresses: RateLimiter::keyed(per_minute(config.authorize_per_address_per_minute)),
            accounts: RateLimiter::keyed(per_minute(config.authorize_per_account_per_minute)),
            calls: AtomicU64::new(0),
        }
    }

    /// Takes one authorize call for all three keys, or says how long to wait.
    pub fn check(&self, client: &str, address: IpAddr, account: &str) -> Result<(), Duration> {
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            self.clients.retain_recent();
            self.addresses.retain_recent();
            self.accounts.retain_recent();
        }
        let now = DefaultClock::default().now();
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(now);
        self.addresses.check_key(&address).map_err(wait)?;
        self.clients.check_key(&client.to_owned()).map_err(wait)?;
        self.accounts
            .check_key(&account.trim().to_lowercase())
            .map_err(wait)?;
        Ok(())
    }
}

const PRUNE_EVERY: u64 = 1024;
