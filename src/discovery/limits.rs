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
//!
//! With [`SharedLimits`] (`[limits] url`), every instance and `batch` worker takes from the
//! same limits in Redis: a host's rate and requests in flight, the account's budget, and the
//! accepted passwords. Redis away: the host limits fall back to this process's own, and the
//! account budget refuses (nothing is sent: [`Budget::Unavailable`]).

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
use crate::shared_limits::{self, Rate, SharedLimits, Slot, Verdict};

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
    /// The limits every instance shares, when configured.
    shared: Option<SharedLimits>,
}

/// Held while a request to a host is in flight.
#[derive(Debug)]
pub struct HostPermit {
    _local: Option<OwnedSemaphorePermit>,
    shared: Option<(SharedLimits, Slot)>,
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        if let Some((shared, slot)) = self.shared.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { shared.release(slot).await });
        }
    }
}

/// What the account's budget said to one credentialed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Taken (or free: the password was accepted lately).
    Granted,
    /// The window is spent.
    Spent,
    /// The shared budget did not answer: refused, nothing is sent.
    Unavailable,
}

/// How long a host's shared slot is held at most, should its holder die.
const SLOT_TTL: Duration = Duration::from_secs(120);
/// How often a request waiting for a host's shared slot asks again.
const SLOT_POLL: Duration = Duration::from_millis(20);

impl Limits {
    /// Builds the limiters.
    pub fn new(config: LimitsConfig) -> Self {
        Self::with_shared(config, None)
    }

    /// [`Limits::new`], taking from `shared` first when given.
    pub fn with_shared(config: LimitsConfig, shared: Option<SharedLimits>) -> Self {
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
                shared,
            }),
        }
    }

    /// Waits until a request to `host` may start, and holds a slot while it runs.
    pub async fn acquire_host(&self, host: &str) -> HostPermit {
        let key = host.to_ascii_lowercase();
        if let Some(shared) = &self.inner.shared
            && let Some(permit) = self.acquire_shared_host(shared, &key).await
        {
            return permit;
        }
        let semaphore = self.semaphore(&key);
        let permit = semaphore
            .acquire_owned()
            .await
            .expect("host semaphores are never closed");
        self.inner.hosts.until_key_ready(&key).await;
        HostPermit {
            _local: Some(permit),
            shared: None,
        }
    }

    /// A slot of the host's shared semaphore, then a cell of its shared rate; `None` when
    /// Redis is away (the caller falls back to this process's limits).
    async fn acquire_shared_host(&self, shared: &SharedLimits, key: &str) -> Option<HostPermit> {
        let config = &self.inner.config;
        let slot = loop {
            let capacity = config.per_host_in_flight.max(1);
            match shared
                .acquire(
                    shared_limits::HOST_IN_FLIGHT,
                    key.as_bytes(),
                    capacity,
                    SLOT_TTL,
                )
                .await
            {
                Ok(Some(slot)) => break slot,
                Ok(None) => tokio::time::sleep(SLOT_POLL).await,
                Err(_) => return None,
            }
        };
        let permit = HostPermit {
            _local: None,
            shared: Some((shared.clone(), slot)),
        };
        let rate = Rate {
            interval: Duration::from_secs(1) / config.per_host_per_second.max(1),
            burst: config.per_host_burst.max(1),
        };
        loop {
            match shared
                .take(shared_limits::HOST_RATE, key.as_bytes(), rate, 1)
                .await
            {
                Ok(Verdict::Allowed) => return Some(permit),
                Ok(Verdict::Wait(wait)) => tokio::time::sleep(wait.min(SLOT_TTL)).await,
                Err(_) => {
                    drop(permit);
                    return None;
                }
            }
        }
    }

    /// Takes one credentialed attempt of `credentials` from their account's budget (per
    /// source: [`Credentials::budget_key`]); `false` when its window is spent. A password
    /// accepted lately ([`Limits::password_accepted`]) spends nothing.
    pub async fn try_account_attempt(&self, credentials: &Credentials) -> Budget {
        if self.is_accepted(credentials).await {
            return Budget::Granted;
        }
        self.charge_account(credentials).await
    }

    /// Takes one attempt from the account's budget, accepted password or not (for a caller
    /// that has just asked [`Limits::is_accepted`]); `false` when the window is spent.
    pub async fn charge_account(&self, credentials: &Credentials) -> Budget {
        let key = credentials.budget_key().to_lowercase();
        if let Some(shared) = self.shared_for_people() {
            let config = &self.inner.config;
            let quota = config.credential_attempts_per_account.max(1);
            let rate = Rate {
                interval: (config.account_window / quota).max(Duration::from_millis(1)),
                burst: quota,
            };
            return match shared
                .take(shared_limits::ACCOUNT_BUDGET, key.as_bytes(), rate, 1)
                .await
            {
                Ok(Verdict::Allowed) => Budget::Granted,
                Ok(Verdict::Wait(_)) => Budget::Spent,
                // Fails closed: a budget nobody can check allows nothing (rule 19).
                Err(_) => Budget::Unavailable,
            };
        }
        if self.inner.accounts.check_key(&key).is_ok() {
            Budget::Granted
        } else {
            Budget::Spent
        }
    }

    /// The shared limits, when they may hold keys of people (the operator's key is known).
    fn shared_for_people(&self) -> Option<&SharedLimits> {
        self.inner.shared.as_ref().filter(|s| s.keys_people())
    }

    /// Whether a host speaking for the account's domain accepted this very password (for
    /// this account, from this source) within `account_window`.
    pub async fn is_accepted(&self, credentials: &Credentials) -> bool {
        let tag = self.password_tag(credentials);
        let here = {
            let accepted = self
                .inner
                .accepted
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            accepted
                .get(&tag)
                .is_some_and(|at| at.elapsed() < self.inner.config.account_window)
        };
        if here {
            return true;
        }
        match self.shared_for_people() {
            // Another instance's acceptance counts; a Redis away counts as not accepted (the
            // attempt is then charged, which fails closed).
            Some(shared) => shared
                .remembered(
                    shared_limits::ACCEPTED_PASSWORDS,
                    &secret_material(credentials),
                )
                .await
                .unwrap_or(false),
            None => false,
        }
    }

    /// Remembers that a host speaking for the account's domain accepted `credentials`: later
    /// attempts with the same password spend no budget, since they cannot lock the account.
    /// Callers decide what counts as acceptance; a consented host's never does.
    pub async fn password_accepted(&self, credentials: &Credentials) {
        let tag = self.password_tag(credentials);
        self.inner
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag, Instant::now());
        if let Some(shared) = self.shared_for_people() {
            let window = self.inner.config.account_window;
            // Kept under an HMAC of the operator's key, never the password itself.
            let _ = shared
                .remember(
                    shared_limits::ACCEPTED_PASSWORDS,
                    &secret_material(credentials),
                    window,
                )
                .await;
        }
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

/// What an accepted password is remembered by in the shared limits (which key it with the
/// operator's key): the budget key and the password.
fn secret_material(credentials: &Credentials) -> Vec<u8> {
    let mut material = credentials.budget_key().to_lowercase().into_bytes();
    material.push(0);
    material.extend_from_slice(credentials.password.expose_secret().as_bytes());
    material
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

    #[tokio::test]
    async fn account_attempts_are_capped() {
        let limits = Limits::new(LimitsConfig {
            credential_attempts_per_account: 3,
            ..LimitsConfig::default()
        });
        let alice = Credentials::new("alice@example.test", "wrong");
        for _ in 0..3 {
            assert_eq!(limits.try_account_attempt(&alice).await, Budget::Granted);
        }
        let shouting = Credentials::new("ALICE@example.test", "wrong");
        assert_eq!(limits.try_account_attempt(&shouting).await, Budget::Spent);
        let bob = Credentials::new("bob@example.test", "wrong");
        assert_eq!(limits.try_account_attempt(&bob).await, Budget::Granted);
    }

    #[tokio::test]
    async fn an_accepted_password_spends_nothing_and_any_other_still_does() {
        let limits = Limits::new(LimitsConfig {
            credential_attempts_per_account: 2,
            ..LimitsConfig::default()
        });
        let right = Credentials::new("alice@example.test", "right");
        assert_eq!(limits.try_account_attempt(&right).await, Budget::Granted);
        limits.password_accepted(&right).await;
        assert!(limits.is_accepted(&right).await);
        for _ in 0..10 {
            assert_eq!(
                limits.try_account_attempt(&right).await,
                Budget::Granted,
                "a password the domain accepted cannot lock the account"
            );
        }
        // One unit is left (the accepted attempt spent one before it was known to be right).
        let wrong = Credentials::new("alice@example.test", "wrong");
        assert!(!limits.is_accepted(&wrong).await);
        assert_eq!(limits.try_account_attempt(&wrong).await, Budget::Granted);
        assert_eq!(
            limits.try_account_attempt(&wrong).await,
            Budget::Spent,
            "a password nobody accepted is charged as before"
        );
        let elsewhere = Credentials {
            source: Some("192.0.2.7".parse().unwrap()),
            ..right.clone()
        };
        assert!(
            !limits.is_accepted(&elsewhere).await,
            "acceptance is per source"
        );
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
