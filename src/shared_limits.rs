//! Limits shared by every instance and `batch` worker through Redis (`[limits] url`): the same
//! GCRA as governor's (a theoretical arrival time per key, a burst, one emission interval per
//! cell), run atomically as a Lua script on Redis's clock, so ten instances allow what one
//! does; a counting semaphore with leases (a sorted set) for requests in flight to one host;
//! and a short memory of keys (the passwords a domain accepted).
//!
//! Keys never carry a plain address or user name: each is `prefix:limit:` and an HMAC-SHA-256
//! of the key under a secret derived from the operator's key (hosts, public names that
//! `batch` workers without the key share too, are hashed with SHA-256).
//!
//! Every call is bounded by `timeout`. A failure is [`Unavailable`]: the callers decide. The
//! password budget refuses (it fails closed); every other limit falls back to its per-process
//! limiter, with a warning at most every 10 s and the `exdisco_limits_fallbacks` counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `[limits]`: where the limits every instance shares live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitsSettings {
    /// A `redis://` URL: every limit the daemon and `batch` keep is shared there. Default:
    /// none (each process keeps its own).
    pub url: Option<SecretString>,
    /// The prefix of every key. Default: `exdisco:limits`.
    pub prefix: String,
    /// How long one call to Redis may take before the limit counts it unavailable. Default:
    /// 250 ms.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        Self {
            url: None,
            prefix: "exdisco:limits".to_owned(),
            timeout: Duration::from_millis(250),
        }
    }
}

/// A rate: `burst` cells, one more every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The emission interval.
    pub interval: Duration,
    /// The burst.
    pub burst: u32,
}

impl Rate {
    /// `n` per minute, all of them at once at most (governor's `Quota::per_minute`).
    pub fn per_minute(n: u32) -> Self {
        let n = n.max(1);
        Self {
            interval: Duration::from_secs(60) / n,
            burst: n,
        }
    }
}

/// What a shared limit answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Taken.
    Allowed,
    /// Not before this long (or never, for more cells than the burst: `Duration::MAX`).
    Wait(Duration),
}

/// Redis did not answer in time, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A slot of a shared semaphore, given back by [`SharedLimits::release`].
#[derive(Debug)]
pub struct Slot {
    key: String,
    member: String,
}

/// The label of `exdisco_limits_fallbacks`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    /// Which limit fell back to the process's own.
    pub limit: &'static str,
}

/// The shared limits. Cheap to clone.
#[derive(Clone)]
pub struct SharedLimits {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

struct Inner {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    key: Option<[u8; 32]>,
    gcra: redis::Script,
    acquire: redis::Script,
    fallbacks: Family<FallbackLabels, Counter>,
    last_warning: AtomicU64,
}

const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
if cost > burst then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - interval * burst
if allow_at > now then return allow_at - now end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return 0
";

const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
";

impl SharedLimits {
    /// The shared limits `settings` name, or `None` without a URL. `secret` (derived from the
    /// operator's key) keys the hashes of addresses and accounts; without it (a `batch` worker)
    /// only host limits are shared. Connects lazily: a Redis that is down at start is a
    /// fallback, not a failure to start.
    pub fn new(
        settings: &LimitsSettings,
        secret: Option<[u8; 32]>,
    ) -> Result<Option<Self>, redis::RedisError> {
        let Some(url) = &settings.url else {
            return Ok(None);
        };
        let client = redis::Client::open(url.expose_secret())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Some(Self {
            inner: Arc::new(Inner {
                connection,
                prefix: settings.prefix.clone(),
                timeout: settings.timeout,
                key: secret,
                gcra: redis::Script::new(GCRA),
                acquire: redis::Script::new(ACQUIRE),
                fallbacks: Family::default(),
                last_warning: AtomicU64::new(0),
            }),
        }))
    }

    /// Whether keys of people (addresses, accounts) can be shared: the operator's key is known.
    pub fn keys_people(&self) -> bool {
        self.inner.key.is_some()
    }

    /// The fallback counter, for the metrics registry.
    pub fn fallbacks(&self) -> Family<FallbackLabels, Counter> {
        self.inner.fallbacks.clone()
    }

    /// Takes `cost` cells of `key` under `limit`'s `rate`.
    pub async fn take(
        &self,
        limit: &'static str,
        key: &[u8],
        rate: Rate,
        cost: u32,
    ) -> Result<Verdict, Unavailable> {
        let key = self.key_of(limit, key).ok_or(Unavailable)?;
        let interval = rate.interval.as_micros().max(1) as u64;
        let mut connection = self.inner.connection.clone();
        let mut call = self.inner.gcra.key(key);
        call.arg(interval).arg(rate.burst.max(1)).arg(cost);
        let answer: Result<i64, _> = self.bounded(call.invoke_async(&mut connection)).await;
        match answer {
            Ok(0) => Ok(Verdict::Allowed),
            Ok(wait) if wait < 0 => Ok(Verdict::Wait(Duration::MAX)),
            Ok(wait) => Ok(Verdict::Wait(Duration::from_micros(wait as u64))),
            Err(()) => Err(self.unavailable(limit)),
        }
    }

    /// Takes one of `capacity` slots of `key` under `limit`, held at most `ttl` (a holder that
    /// dies gives it back then); `None` when all are taken.
    pub async fn acquire(
        &self,
        limit: &'static str,
        key: &[u8],
        capacity: usize,
        ttl: Duration,
    ) -> Result<Option<Slot>, Unavailable> {
        let key = self.key_of(limit, key).ok_or(Unavailable)?;
        let member = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let mut connection = self.inner.connection.clone();
        let mut call = self.inner.acquire.key(&key);
        call.arg(capacity.max(1))
            .arg(&member)
            .arg(ttl.as_millis().max(1) as u64);
        let answer: Result<i64, _> = self.bounded(call.invoke_async(&mut connection)).await;
        match answer {
            Ok(1) => Ok(Some(Slot { key, member })),
            Ok(_) => Ok(None),
            Err(()) => Err(self.unavailable(limit)),
        }
    }

    /// Gives a slot back.
    pub async fn release(&self, slot: Slot) {
        let mut connection = self.inner.connection.clone();
        let call = redis::cmd("ZREM")
            .arg(&slot.key)
            .arg(&slot.member)
            .to_owned();
        let _: Result<i64, ()> = self.bounded(call.query_async(&mut connection)).await;
    }

    /// Remembers `key` under `limit` for `ttl`.
    pub async fn remember(
        &self,
        limit: &'static str,
        key: &[u8],
        ttl: Duration,
    ) -> Result<(), Unavailable> {
        let key = self.key_of(limit, key).ok_or(Unavailable)?;
        let mut connection = self.inner.connection.clone();
        let call = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .to_owned();
        let answer: Result<(), ()> = self.bounded(call.query_async(&mut connection)).await;
        answer.map_err(|()| self.unavailable(limit))
    }

    /// Whether `key` is remembered under `limit`.
    pub async fn remembered(&self, limit: &'static str, key: &[u8]) -> Result<bool, Unavailable> {
        let key = self.key_of(limit, key).ok_or(Unavailable)?;
        let mut connection = self.inner.connection.clone();
        let call = redis::cmd("EXISTS").arg(&key).to_owned();
        let answer: Result<i64, ()> = self.bounded(call.query_async(&mut connection)).await;
        answer.map(|n| n > 0).map_err(|()| self.unavailable(limit))
    }

    /// The Redis key of `key` under `limit`: hosts hashed, people keyed by the operator's key
    /// (`None` without it).
    fn key_of(&self, limit: &'static str, key: &[u8]) -> Option<String> {
        let digest: [u8; 32] = if limit == HOST_RATE || limit == HOST_IN_FLIGHT {
            Sha256::digest(key).into()
        } else {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.inner.key.as_ref()?)
                .expect("HMAC takes a key of any length");
            mac.update(limit.as_bytes());
            mac.update(&[0]);
            mac.update(key);
            mac.finalize().into_bytes().into()
        };
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!("{}:{limit}:{hex}", self.inner.prefix))
    }

    async fn bounded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, ()> {
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            _ => Err(()),
        }
    }

    fn unavailable(&self, limit: &'static str) -> Unavailable {
        self.inner
            .fallbacks
            .get_or_create(&FallbackLabels { limit })
            .inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.inner.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .inner
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                limit,
                "Redis for shared limits did not answer: the password budget refuses, other limits are per process"
            );
        }
        Unavailable
    }
}

/// The names of the shared limits (the metric's `limit` label, and part of each key).
pub const HOST_RATE: &str = "host_rate";
/// Requests in flight to one host.
pub const HOST_IN_FLIGHT: &str = "host_in_flight";
/// The password budget per account and source (rule 19).
pub const ACCOUNT_BUDGET: &str = "account_budget";
/// Passwords a domain accepted lately.
pub const ACCEPTED_PASSWORDS: &str = "accepted_password";
