//! Queue workers: claim a job, discover (sharing the per-domain cache), store the result, and
//! only then acknowledge it (rule 23: at least once, idempotent).
//!
//! - A job whose input is not a job is buried at once (a poison job).
//! - A job delivered `max_attempts` times (Redis: `max_deliveries`) without an end, because
//!   its worker died or was killed each time, is buried on its next claim: a job that crashes
//!   workers cannot loop for ever.
//! - Anything else, found or not found, broken domains included, is a result (the domain
//!   cache was patient with passing failures: [`crate::batch::Patience`]).
//!
//! Backends: [`StoreQueue`] (the daemon's embedded queue) and [`redis::RedisQueue`] (Redis
//! Streams, shared by workers on many machines). `Worker::try_run_one` does one job and says
//! whether there was one; `Worker::run` only adds waiting and cancellation.

pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::batch::{DomainCache, parse_line};
use crate::discovery::Pipeline;
use crate::metrics::Metrics;
use crate::store::Store;

/// A job handed to a worker.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The backend's id of the job.
    pub id: String,
    /// The input line.
    pub input: String,
    /// Deliveries so far, this one included.
    pub attempts: u32,
    /// The claim's lease in the embedded queue (empty for Redis, whose pending list fences).
    pub lease: String,
}

/// What a worker needs from a queue.
pub trait JobQueue: Send + Sync + 'static {
    /// The next job, if any.
    fn claim(&self) -> impl Future<Output = Result<Option<Claimed>, Error>> + Send;
    /// Stores the result, then acknowledges.
    fn complete(
        &self,
        job: &Claimed,
        result: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Makes the job a dead letter, with its reason.
    fn bury(&self, job: &Claimed, reason: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// Gives the job back untouched.
    fn release(&self, job: &Claimed) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The daemon's queue workers (`[queue]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Workers draining the embedded queue. Default: 4.
    pub workers: usize,
    /// How long a claimed job is held before another worker may take it. Default: 2 min.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Deliveries of one job without an end (its worker died or was killed) before it is a
    /// dead letter. Default: 3.
    pub max_attempts: u32,
    /// A Redis Streams queue to work from as well (redis://HOST:PORT/DB). Default: none.
    pub redis_url: Option<String>,
    /// Unfinished jobs the embedded queue holds at most; `POST /v1/discoveries` answers 503
    /// beyond. Default: 100,000.
    pub max_queued: u64,
    /// The Redis stream's key prefix. Default: `exdisco`.
    pub redis_prefix: String,
    /// How long a Redis entry stays pending before another worker reclaims it. Default: 60 s.
    #[serde(with = "humantime_serde")]
    pub redis_claim_idle: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            lease: Duration::from_secs(120),
            max_attempts: 3,
            redis_url: None,
            max_queued: 100_000,
            redis_prefix: "exdisco".to_owned(),
            redis_claim_idle: Duration::from_secs(60),
        }
    }
}

/// What one `try_run_one` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// A job was done, retried or buried.
    Ran,
    /// The queue had nothing to do.
    Empty,
}

/// A worker over queue `Q`. Cheap to clone.
pub struct Worker<Q> {
    queue: Arc<Q>,
    pipeline: Pipeline,
    cache: DomainCache,
    metrics: Option<Metrics>,
}

impl<Q> Clone for Worker<Q> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            pipeline: self.pipeline.clone(),
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<Q: JobQueue> Worker<Q> {
    /// A worker taking jobs from `queue`.
    pub fn new(queue: Q, pipeline: Pipeline, cache: DomainCache, metrics: Option<Metrics>) -> Self {
        Self {
            queue: Arc::new(queue),
            pipeline,
            cache,
            metrics,
        }
    }

    /// Claims and does one job.
    pub async fn try_run_one(&self) -> Result<RunOutcome, Error> {
        let Some(job) = self.queue.claim().await? else {
            return Ok(RunOutcome::Empty);
        };
        self.work(job, &CancellationToken::new()).await?;
        Ok(RunOutcome::Ran)
    }

    /// `count` copies of this worker on `tracker`, each running until `cancel`.
    pub fn spawn(
        self,
        tracker: &tokio_util::task::TaskTracker,
        count: usize,
        cancel: &CancellationToken,
        idle_wait: Duration,
    ) {
        for _ in 0..count {
            let (worker, cancel) = (self.clone(), cancel.clone());
            tracker.spawn(async move { worker.run(cancel, idle_wait).await });
        }
    }

    /// Does jobs until `cancel`; a job running then finishes, or is given back if it cannot.
    pub async fn run(&self, cancel: CancellationToken, idle_wait: Duration) {
        while !cancel.is_cancelled() {
            let claimed = tokio::select! {
                claimed = self.queue.claim() => claimed,
                () = cancel.cancelled() => break,
            };
            match claimed {
                Ok(Some(job)) => {
                    if let Err(err) = self.work(job, &cancel).await {
                        warn!(error.code = err.code(), error = %err, "queue job failed");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        () = tokio::time::sleep(idle_wait) => {}
                        () = cancel.cancelled() => break,
                    }
                }
                Err(err) => {
                    warn!(error.code = err.code(), error = %err, "queue unavailable");
                    tokio::select! {
                        () = tokio::time::sleep(idle_wait * 4) => {}
                        () = cancel.cancelled() => break,
                    }
                }
            }
        }
        info!("queue worker stopped");
    }

    async fn work(&self, job: Claimed, cancel: &CancellationToken) -> Result<(), Error> {
        let parsed = match parse_line(&job.input) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return self.bury(&job, "empty job").await,
            Err(err) => return self.bury(&job, err.code()).await,
        };
        let address = match parsed.target.address() {
            Ok(address) => address,
            Err(err) => return self.bury(&job, err.code().as_str()).await,
        };
        let discovered = tokio::select! {
            discovered = self.cache.discover(&self.pipeline, &address) => discovered,
            () = cancel.cancelled() => {
                // Shutdown before the answer: give it back for another worker.
                self.queue.release(&job).await?;
                return Ok(());
            }
        };
        // A broken domain is an answer (the cache was patient with it), not a dead letter.
        let (report, _) = discovered;
        let result = serde_json::to_string(&*report).map_err(|_| Error::Encode)?;
        self.queue.complete(&job, &result).await?;
        self.count(report.error.as_ref().map_or("found", |f| f.code.as_str()));
        Ok(())
    }

    async fn bury(&self, job: &Claimed, reason: &str) -> Result<(), Error> {
        self.queue.bury(job, reason).await?;
        self.count("dead_letter");
        Ok(())
    }

    fn count(&self, outcome: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.job(outcome);
        }
    }
}

/// The daemon's embedded queue, in its store (the SQLite file, or PostgreSQL).
#[derive(Clone)]
pub struct StoreQueue {
    store: Store,
    lease: Duration,
    max_attempts: u32,
}

impl StoreQueue {
    /// A queue in `store`; a claim holds a job for `lease`.
    pub fn new(store: Store, lease: Duration, max_attempts: u32) -> Self {
        Self {
            store,
            lease,
            max_attempts,
        }
    }
}

impl JobQueue for StoreQueue {
    async fn claim(&self) -> Result<Option<Claimed>, Error> {
        loop {
            let row = self
                .store
                .claim_job(self.store.now(), self.lease.as_secs().max(1) as i64)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let job = Claimed {
                id: row.job_id,
                input: row.input,
                attempts: row.attempts,
                lease: row.lease,
            };
            if job.attempts <= self.max_attempts.max(1) {
                return Ok(Some(job));
            }
            warn!(job = %job.id, attempts = job.attempts, "job buried after too many deliveries");
            self.bury(&job, "too many deliveries").await?;
        }
    }

    async fn complete(&self, job: &Claimed, result: &str) -> Result<(), Error> {
        let (id, lease, result) = (job.id.clone(), job.lease.clone(), result.to_owned());
        let done = self
            .store
            .complete_job(id, lease, result, self.store.now())
            .await?;
        fenced(job, done)
    }

    async fn bury(&self, job: &Claimed, reason: &str) -> Result<(), Error> {
        let (id, lease, reason) = (job.id.clone(), job.lease.clone(), reason.to_owned());
        let buried = self
            .store
            .bury_job(id, lease, reason, self.store.now())
            .await?;
        fenced(job, buried)
    }

    async fn release(&self, job: &Claimed) -> Result<(), Error> {
        let (id, lease) = (job.id.clone(), job.lease.clone());
        let released = self.store.release_job(id, lease, self.store.now()).await?;
        fenced(job, released)
    }
}

/// A job whose lease ran out and was claimed again belongs to its new holder: this worker's
/// answer is dropped (the new holder's stands).
fn fenced(job: &Claimed, held: bool) -> Result<(), Error> {
    if held {
        Ok(())
    } else {
        warn!(job = %job.id, "lease taken over by another worker; this worker's answer is dropped");
        Err(Error::LeaseLost)
    }
}

/// A queue failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SQLite store failed.
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A result could not be encoded.
    #[error("cannot encode a result")]
    Encode,
    /// The job's lease ran out and another worker holds it now.
    #[error("the job's lease was taken over by another worker")]
    LeaseLost,
}

impl Error {
    /// A stable label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(err) => err.code(),
            Self::Redis(_) => "redis",
            Self::Encode => "encode",
            Self::LeaseLost => "lease_lost",
        }
    }
}
