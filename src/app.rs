//! The daemon, assembled once from a checked [`Config`] and the operator's key: the store, the
//! discovery pipeline, the authorization flow, the HTTP app, the queue workers and the sweep.
//! The binary hands it a listener and a shutdown token (as mini-redis's server is handed
//! them); it never sees the command line.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::api::hosted_settings::Hosted;
use crate::api::{self, AppState};
use crate::batch::DomainCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::connect::Connect;
use crate::discovery::{Limits, Pipeline};
use crate::metrics::Metrics;
use crate::queue::redis::{RedisConfig, RedisQueue};
use crate::queue::{StoreQueue, Worker};
use crate::secrets::MasterKey;
use crate::shared_limits::SharedLimits;
use crate::store::Store;

/// The daemon's parts: the HTTP app, and what its queue workers share with it.
pub struct App {
    /// The HTTP app.
    pub router: axum::Router,
    /// The store (accounts, codes, the embedded queue).
    pub store: Store,
    /// The discovery pipeline.
    pub pipeline: Pipeline,
    /// The metrics.
    pub metrics: Metrics,
}

impl App {
    /// Checks `config` and builds every part, reading each file it names once (the CA files,
    /// the logo, the database).
    pub async fn build(config: &Config, key: MasterKey) -> Result<Self, StartError> {
        Self::build_with_clock(config, key, Clock::system()).await
    }

    /// [`App::build`] on `clock`, the one every stored time is read from (tests move a
    /// manual one).
    pub async fn build_with_clock(
        config: &Config,
        key: MasterKey,
        clock: Clock,
    ) -> Result<Self, StartError> {
        config.validate()?;
        let hosted = Hosted::load(&config.hosted, config.api.listen)?;
        let pipeline_config = config.discovery.pipeline_config()?;
        // The limits every instance shares, keyed by a secret only holders of the key know.
        let shared = SharedLimits::new(&config.limits, Some(key.mac("shared limits", b"")))
            .map_err(|e| StartError::Limits(e.to_string()))?;
        let limits = Limits::with_shared(pipeline_config.limits.clone(), shared.clone());
        let pipeline = Pipeline::builder(pipeline_config).limits(limits).build()?;
        let store = Store::connect(&config.store, clock).await?;
        store.check_key(&key.check_value()).await?;
        let metrics = Metrics::new();
        if let Some(shared) = &shared {
            metrics.register_limits_fallbacks(shared.fallbacks());
        }
        let connect = Connect::new(
            store.clone(),
            pipeline.clone(),
            key,
            config.connect.clone(),
            metrics.clone(),
        );
        let state = AppState::with_shared_limits(
            connect,
            metrics.clone(),
            &config.api,
            hosted,
            config.queue.max_queued,
            shared,
        );
        Ok(Self {
            router: api::router(state, &config.api),
            store,
            pipeline,
            metrics,
        })
    }

    /// Serves on `listener` with the queue workers and the sweep until `shutdown` is
    /// cancelled; then stops accepting, lets requests and running jobs finish within
    /// `config.shutdown_grace`, and gives back what did not.
    pub async fn run(
        self,
        listener: TcpListener,
        config: &Config,
        shutdown: CancellationToken,
    ) -> Result<(), StartError> {
        let tracker = TaskTracker::new();
        self.spawn_workers(&tracker, config, &shutdown).await?;
        tracker.spawn(self.store.clone().sweep_until(
            config.store.sweep_every,
            config.store.job_retention,
            shutdown.clone(),
        ));
        let grace = config.shutdown_grace;
        let metrics = self.metrics.clone();
        api::serve(
            listener,
            self.router,
            &config.api,
            &metrics,
            shutdown.clone(),
            grace,
        )
        .await
        .map_err(StartError::Serve)?;
        shutdown.cancel();
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!("tasks still running after the grace period");
        }
        Ok(())
    }

    /// Queue workers: the embedded queue's, and a Redis stream's when configured. On shutdown
    /// they stop claiming; a job running then finishes or is given back.
    async fn spawn_workers(
        &self,
        tracker: &TaskTracker,
        config: &Config,
        shutdown: &CancellationToken,
    ) -> Result<(), StartError> {
        let cache = DomainCache::new(CACHE_CAPACITY, config.connect.cache_ttl);
        let embedded = StoreQueue::new(
            self.store.clone(),
            config.queue.lease,
            config.queue.max_attempts,
        );
        let worker = Worker::new(
            embedded,
            self.pipeline.clone(),
            cache.clone(),
            Some(self.metrics.clone()),
        );
        worker.spawn(tracker, config.queue.workers, shutdown, IDLE_WAIT);
        if let Some(url) = &config.queue.redis_url {
            let queue = RedisQueue::connect(url, RedisConfig::from_queue(&config.queue))
                .await
                .map_err(|e| StartError::Redis(e.to_string()))?;
            let worker = Worker::new(
                queue,
                self.pipeline.clone(),
                cache,
                Some(self.metrics.clone()),
            );
            worker.spawn(tracker, config.queue.workers, shutdown, IDLE_WAIT);
        }
        info!(
            workers = config.queue.workers,
            redis = config.queue.redis_url.is_some(),
            "queue workers started"
        );
        Ok(())
    }
}

/// Why the daemon could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::settings::Error),
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] crate::store::Error),
    /// `[limits] url` is not a Redis URL.
    #[error("limits.url: {0}")]
    Limits(String),
    /// The discovery pipeline could not be built.
    #[error(transparent)]
    Discovery(#[from] crate::discovery::Error),
    /// The Redis queue could not be reached.
    #[error("cannot reach the redis queue: {0}")]
    Redis(String),
    /// The listener failed.
    #[error("the api stopped: {0}")]
    Serve(std::io::Error),
}

const CACHE_CAPACITY: usize = 100_000;
const IDLE_WAIT: Duration = Duration::from_millis(500);
