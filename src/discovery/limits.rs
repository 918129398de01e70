//! Politeness and lock-out protection shared by every discovery of a process (rules 18, 19).
//!
//! Per destination host: a governor rate limiter (requests per second with a burst) and a
//! semaphore (requests in flight). Per account: a governor limiter on credentialed attempts, so
//! that a wrong password cannot lock an Active Directory account. The key maps are pruned as
//! they grow, so memory stays bounded however many hosts a batch touches.
//!
//! The budget counts *unverified* attempts. Directories lock an account after failed logins;
//! a password that a host speaking for the account's domain has just accepted cannot add to
//! that count. So an accepted password is remembered (as a keyed hash, per account and source,
//! for `account_window`), and later attempts with that same password spend nothing: the
//! schema fallback and the verification that follow an accepted password are never refused
//! (Horde accepts the password for the Outlook schema, then names ActiveSync only in the
//! mobilesync one). Any other password is charged as before, so the number of unverified
//! attempts anyone can cause per account is unchanged.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::bounded_map::BoundedMap;
use crate::domain::Credentials;

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
    /// Passwords accepted lately, by [`Limits::password_tag`], with when.
    accepted: Mutex<BoundedMap<[u8; 32], Instant>>,
    /// The key of those tags, random per process: a tag says nothing outside it.
    tag_key: [u8; 32],
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
        let mut tag_key = [0u8; 32];
        // Without randomness the tags are still per account and password; only their
        // secrecy outside the process would be lost, and nothing leaves the process.
        let _ = getrandom::fill(&mut tag_key);
        Self {
            inner: Arc::new(Inner {
                hosts: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                accounts: RateLimiter::keyed(accounts),
                in_flight: Mutex::new(HashMap::new()),
                accepted: Mutex::new(BoundedMap::new(ACCEPTED_HELD)),
                tag_key,
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

    /// Takes one credentialed attempt of `credentials` from their account's budget (per
    /// source: [`Credentials::budget_key`]); `false` when its window is spent. A password
    /// accepted lately ([`Limits::password_accepted`]) spends nothing.
    pub fn try_account_attempt(&self, credentials: &Credentials) -> bool {
        self.is_accepted(credentials) || self.charge_account(credentials)
    }

    /// Takes one attempt from the account's budget, accepted password or not (for a caller
    /// that has just asked [`Limits::is_accepted`]); `false` when the window is spent.
    pub fn charge_account(&self, credentials: &Credentials) -> bool {
        self.inner
            .accounts
            .check_key(&credentials.budget_key().to_lowercase())
            .is_ok()
    }

    /// Whether a host speaking for the account's domain accepted this very password (for
    /// this account, from this source) within `account_window`.
    pub fn is_accepted(&self, credentials: &Credentials) -> bool {
        let tag = self.password_tag(credentials);
        let accepted = self
            .inner
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        accepted
            .get(&tag)
            .is_some_and(|at| at.elapsed() < self.inner.config.account_window)
    }

    /// Remembers that a host speaking for the account's domain accepted `credentials`: later
    /// attempts with the same password spend no budget, since they cannot lock the account.
    /// Callers decide what counts as acceptance; a consented host's never does.
    pub fn password_accepted(&self, credentials: &Credentials) {
        let tag = self.password_tag(credentials);
        self.inner
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag, Instant::now());
    }

    /// HMAC-SHA-256 under the process's key of the budget key and the password.
    fn password_tag(&self, credentials: &Credentials) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.tag_key)
            .expect("HMAC takes a key of any length");
        mac.update(credentials.budget_key().to_lowercase().as_bytes());
        mac.update(&[0]);
        mac.update(credentials.password.expose_secret().as_bytes());
        mac.finalize().into_bytes().into()
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
/// Accepted passwords remembered at most (the oldest go first).
const ACCEPTED_HELD: usize = 4096;

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
        let alice = Credentials::new("alice@example.test", "wrong");
        assert!((0..3).all(|_| limits.try_account_attempt(&alice)));
        let shouting = Credentials::new("ALICE@example.test", "wrong");
        assert!(!limits.try_account_attempt(&shouting));
        assert!(limits.try_account_attempt(&Credentials::new("bob@example.test", "wrong")));
    }

    #[test]
    fn an_accepted_password_spends_nothing_and_any_other_still_does() {
        let limits = Limits::new(LimitsConfig {
            credential_attempts_per_account: 2,
            ..LimitsConfig::default()
        });
        let right = Credentials::new("alice@example.test", "right");
        assert!(limits.try_account_attempt(&right));
        limits.password_accepted(&right);
        assert!(limits.is_accepted(&right));
        assert!(
            (0..10).all(|_| limits.try_account_attempt(&right)),
            "a password the domain accepted cannot lock the account"
        );
        // One unit is left (the accepted attempt spent one before it was known to be right).
        let wrong = Credentials::new("alice@example.test", "wrong");
        assert!(!limits.is_accepted(&wrong));
        assert!(limits.try_account_attempt(&wrong));
        assert!(
            !limits.try_account_attempt(&wrong),
            "a password nobody accepted is charged as before"
        );
        let elsewhere = Credentials {
            source: Some("192.0.2.7".parse().unwrap()),
            ..right.clone()
        };
        assert!(!limits.is_accepted(&elsewhere), "acceptance is per source");
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
