//! Redis Streams as the queue of many machines.
//!
//! Jobs are entries of the stream `{prefix}:jobs` (fields `line`, `input`), read by every
//! worker through one consumer group. A worker stores the result in the hash
//! `{prefix}:result` (key: the entry id, so a redelivered job overwrites its own result) and
//! appends it to the stream `{prefix}:results`, and only then acknowledges the entry. An entry
//! left pending by a dead worker is reclaimed with `XAUTOCLAIM` once idle for `claim_idle`;
//! an entry delivered more than `max_deliveries` times, or that is not a job at all, goes to
//! the dead-letter stream `{prefix}:dead` with its reason, and is acknowledged.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use tracing::warn;

use super::{Claimed, Error, JobQueue};

/// Settings of the Redis queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Key prefix. Default: `exdisco`.
    pub prefix: String,
    /// The consumer group. Default: `exdisco-workers`.
    pub group: String,
    /// This worker's consumer name. Default: `HOST-PID`.
    pub consumer: String,
    /// How long an entry stays pending before another worker reclaims it. Default: 60 s.
    pub claim_idle: Duration,
    /// Deliveries before an entry is a dead letter. Default: 3.
    pub max_deliveries: u32,
}

impl RedisConfig {
    /// The settings of `[queue]` (`redis_prefix`, `redis_claim_idle`, and `max_attempts` as
    /// the deliveries before a dead letter), with this process's consumer name.
    pub fn from_queue(queue: &super::QueueConfig) -> Self {
        Self {
            prefix: queue.redis_prefix.clone(),
            claim_idle: queue.redis_claim_idle,
            max_deliveries: queue.max_attempts,
            ..Self::default()
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
        Self {
            prefix: "exdisco".to_owned(),
            group: "exdisco-workers".to_owned(),
            consumer: format!("{host}-{}", std::process::id()),
            claim_idle: Duration::from_secs(60),
            max_deliveries: 3,
        }
    }
}

/// The queue. Cheap to clone.
#[derive(Clone)]
pub struct RedisQueue {
    connection: MultiplexedConnection,
    config: RedisConfig,
}

impl RedisQueue {
    /// Connects to `url` and makes sure the stream and the group exist.
    pub async fn connect(url: &str, config: RedisConfig) -> Result<Self, Error> {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(jobs_key(&config))
            .arg(&config.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut connection)
            .await;
        match created {
            Err(err) if err.code() != Some("BUSYGROUP") => return Err(err.into()),
            _ => {}
        }
        Ok(Self { connection, config })
    }

    /// Adds `(line, input)` jobs; returns how many.
    pub async fn enqueue(&self, jobs: &[(u64, String)]) -> Result<u64, Error> {
        let mut connection = self.connection.clone();
        for chunk in jobs.chunks(1000) {
            let mut pipe = redis::pipe();
            for (line, input) in chunk {
                pipe.cmd("XADD")
                    .arg(jobs_key(&self.config))
                    .arg("*")
                    .arg("line")
                    .arg(*line)
                    .arg("input")
                    .arg(input)
                    .ignore();
            }
            pipe.query_async::<()>(&mut connection).await?;
        }
        Ok(jobs.len() as u64)
    }

    /// Entries in the jobs, results and dead-letter streams.
    pub async fn lengths(&self) -> Result<(u64, u64, u64), Error> {
        let mut connection = self.connection.clone();
        let (jobs, results, dead): (u64, u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(jobs_key(&self.config))
            .cmd("XLEN")
            .arg(results_key(&self.config))
            .cmd("XLEN")
            .arg(dead_key(&self.config))
            .query_async(&mut connection)
            .await?;
        Ok((jobs, results, dead))
    }

    async fn deliveries(&self, id: &str) -> Result<u32, Error> {
        let mut connection = self.connection.clone();
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(jobs_key(&self.config))
            .arg(&self.config.group)
            .arg(id)
            .arg(id)
            .arg(1)
            .query_async(&mut connection)
            .await?;
        Ok(pending
            .ids
            .first()
            .map(|p| p.times_delivered as u32)
            .unwrap_or(1))
    }

    async fn bury_entry(&self, id: &str, input: &str, reason: &str) -> Result<(), Error> {
        let mut connection = self.connection.clone();
        redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(dead_key(&self.config))
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("input")
            .arg(input)
            .arg("reason")
            .arg(reason)
            .ignore()
            .cmd("XACK")
            .arg(jobs_key(&self.config))
            .arg(&self.config.group)
            .arg(id)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }
}

impl JobQueue for RedisQueue {
    async fn claim(&self) -> Result<Option<Claimed>, Error> {
        let mut connection = self.connection.clone();
        loop {
            let reclaimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(jobs_key(&self.config))
                .arg(&self.config.group)
                .arg(&self.config.consumer)
                .arg(self.config.claim_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut connection)
                .await?;
            let Some(entry) = reclaimed.claimed.into_iter().next() else {
                break;
            };
            let deliveries = self.deliveries(&entry.id).await?;
            let input = field(&entry, "input");
            if deliveries > self.config.max_deliveries {
                warn!(entry = %entry.id, deliveries, "redis entry buried after too many deliveries");
                self.bury_entry(&entry.id, &input, "too many deliveries")
                    .await?;
                continue;
            }
            return Ok(Some(Claimed {
                id: entry.id,
                input,
                attempts: deliveries,
                lease: String::new(),
            }));
        }
        let read: StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.config.group)
            .arg(&self.config.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(jobs_key(&self.config))
            .arg(">")
            .query_async(&mut connection)
            .await?;
        let entry = read.keys.into_iter().flat_map(|k| k.ids).next();
        Ok(entry.map(|entry| Claimed {
            input: field(&entry, "input"),
            id: entry.id,
            attempts: 1,
            lease: String::new(),
        }))
    }

    async fn complete(&self, job: &Claimed, result: &str) -> Result<(), Error> {
        let mut connection = self.connection.clone();
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(result_store_key(&self.config))
            .arg(&job.id)
            .arg(result)
            .ignore()
            .cmd("XADD")
            .arg(results_key(&self.config))
            .arg("*")
            .arg("id")
            .arg(&job.id)
            .arg("input")
            .arg(&job.input)
            .arg("result")
            .arg(result)
            .ignore()
            .cmd("XACK")
            .arg(jobs_key(&self.config))
            .arg(&self.config.group)
            .arg(&job.id)
            .ignore()
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    async fn bury(&self, job: &Claimed, reason: &str) -> Result<(), Error> {
        self.bury_entry(&job.id, &job.input, reason).await
    }

    async fn release(&self, _job: &Claimed) -> Result<(), Error> {
        // Left pending, reclaimed by whoever is alive once idle.
        Ok(())
    }
}

fn field(entry: &StreamId, name: &str) -> String {
    entry.get::<String>(name).unwrap_or_default()
}

fn jobs_key(config: &RedisConfig) -> String {
    format!("{}:jobs", config.prefix)
}

fn results_key(config: &RedisConfig) -> String {
    format!("{}:results", config.prefix)
}

fn result_store_key(config: &RedisConfig) -> String {
    format!("{}:result", config.prefix)
}

fn dead_key(config: &RedisConfig) -> String {
    format!("{}:dead", config.prefix)
}
