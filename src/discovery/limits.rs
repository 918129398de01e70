//! Politeness and lock-out protection shared by every discovery of a process (rules 18, 19).
//!
//! Per destination host: a governor rate limiter (requests per second with a burst) and a
//! semaphore (requests in flight). Per account: a governor limiter on credentialed attempts, so
//! that a wrong password cannot lock an Active Directory account. The key maps are pruned as
//! they grow, so memory stays bounded however many hosts a batch touches.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Requests per second to one host. Default: 10.
    pub per_host_per_second: u32,
    /// Burst of requests to one host. Default: 20.
    pub per_host_burst: u32,
    /// Requests in flight to one host. Default: 8.
    pub per_host_in_flight: usize,
    /// Credentialed attempts per discovery. Default: 2.
    pub credential_attempts_per_discovery: u32,
    /// Credentialed attempts per account within `account_window`. Default: 5.
    pub credential_attempts_per_account: u32,
    /// The window for `credential_attempts_per_account`. Default: 15 min.
    pub account_window: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_host_per_second: DEFAULT_PER_HOST_PER_SECOND,
            per_host_burst: DEFAULT_PER_HOST_BURST,
            per_host_in_flight: DEFAULT_PER_HOST_IN_FLIGHT,
            credential_attempts_per_discovery: DEFAULT_CREDENTIAL_ATTEMPTS_PER_DISCOVERY,
            credential_attempts_per_account: DEFAULT_CREDENTIAL_ATTEMPTS_PER_ACCOUNT,
            account_window: DEFAULT_ACCOUNT_WINDOW,
        }
    }
}

/// The limiters of one process. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    inner: Arc<Inner>,
}

struct Inner {
    config: LimitsConfig,
    hosts: DefaultKeyedRateLimiter<String>,
    accounts: DefaultKeyedRateLimiter<String>,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Held while a request to a host is in flight.
#[derive(Debug)]
pub struct HostPermit {
    _permit: OwnedSemaphorePermit,
}

impl Limits {
    /// Builds the limiters.
    pub fn new(config: LimitsConfig) -> Self {
        let per_second = NonZeroU32::new(config.per_host_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.per_host_burst).unwrap_or(per_second);
        let account_quota =
            NonZeroU32::new(config.credential_attempts_per_account).unwrap_or(NonZeroU32::MIN);
        let replenish = config.account_window / account_quota.get();
        let accounts = Quota::with_period(replenish.max(Duration::from_millis(1)))
            .map(|q| q.allow_burst(account_quota))
            .unwrap_or_else(|| Quota::per_second(account_quota));
        Self {
            inner: Arc::new(Inner {
                hosts: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                accounts: RateLimiter::keyed(accounts),
                in_flight: Mutex::new(HashMap::new()),
                config,
            }),
        }
    }

    /// Waits until a request to `host` may start, and holds a slot while it runs.
    pub async fn acquire_host(&self, host: &str) -> HostPermit {
        let key = host.to_ascii_lowercase();
        let semaphore = self.semaphore(&key);
        let permit = semaphore
            .acquire_owned()
            .await
            .expect("host semaphores are never closed");
        self.inner.hosts.until_key_ready(&key).await;
        HostPermit { _permit: permit }
    }

    /// Takes one credentialed attempt for `key` (an account, per source:
    /// [`crate::domain::Credentials::budget_key`]); `false` when its window is spent.
    pub fn try_account_attempt(&self, key: &str) -> bool {
        self.inner.accounts.check_key(&key.to_lowercase()).is_ok()
    }

    /// The configured limits.
    pub fn config(&self) -> &LimitsConfig {
        &self.inner.config
    }

    fn semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut map = self
            .inner
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_AT {
            // Only this map holds an idle host's semaphore: drop those.
            map.retain(|_, s| Arc::strong_count(s) > 1);
            self.inner.hosts.retain_recent();
            self.inner.accounts.retain_recent();
        }
        map.entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(self.inner.config.per_host_in_flight.max(1)))
            })
            .clone()
    }

    #[cfg(test)]
    fn tracked_hosts(&self) -> usize {
        self.inner.in_flight.lock().map(|m| m.len()).unwrap_or(0)
    }
}

const DEFAULT_PER_HOST_PER_SECOND: u32 = 10;
const DEFAULT_PER_HOST_BURST: u32 = 20;
const DEFAULT_PER_HOST_IN_FLIGHT: usize = 8;
const DEFAULT_CREDENTIAL_ATTEMPTS_PER_DISCOVERY: u32 = 2;
const DEFAULT_CREDENTIAL_ATTEMPTS_PER_ACCOUNT: u32 = 5;
const DEFAULT_ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
const PRUNE_AT: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_flight_is_capped_per_host() {
        let limits = Limits::new(LimitsConfig {
            per_host_in_flight: 1,
            ..LimitsConfig::default()
        });
        let first = limits.acquire_host("a.example.test").await;
        let blocked = tokio::time::timeout(
            Duration::from_millis(50),
            limits.acquire_host("a.example.test"),
        )
        .await;
        assert!(
            blocked.is_err(),
            "a second request to the same host must wait"
        );
        let _other = limits.acquire_host("b.example.test").await;
        drop(first);
        let _again = limits.acquire_host("a.example.test").await;
    }

    #[test]
    fn account_attempts_are_capped() {
        let limits = Limits::new(LimitsConfig {
            credential_attempts_per_account: 3,
            ..LimitsConfig::default()
        });
        assert!((0..3).all(|_| limits.try_account_attempt("alice@example.test")));
        assert!(!limits.try_account_attempt("ALICE@example.test"));
        assert!(limits.try_account_attempt("bob@example.test"));
    }

    #[tokio::test]
    async fn idle_hosts_are_pruned() {
        let limits = Limits::new(LimitsConfig::default());
        for i in 0..(PRUNE_AT + 10) {
            drop(limits.acquire_host(&format!("h{i}.example.test")).await);
        }
        assert!(limits.tracked_hosts() < PRUNE_AT);
    }
}
