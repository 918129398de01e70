//! `exdisco serve`: load and validate the configuration, open the store, bind, serve until
//! SIGINT or SIGTERM, then let in-flight requests finish within the grace period.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use exdisco::batch::DomainCache;
use exdisco::queue::redis::{RedisConfig, RedisQueue};
use exdisco::queue::{SqliteQueue, Worker};

use crate::cli::ServeArgs;
use crate::cli::admin::{load_config, load_key};

/// Runs the daemon.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(&args.state)?;
    args.network.apply(&mut config.discovery)?;
    if let Some(listen) = args.listen {
        config.api.listen = listen;
    }
    if let Some(url) = &args.queue {
        config.queue.redis_url = Some(url.clone());
    }
    if args.log_json {
        config.log.format = exdisco::config::LogFormat::Json;
    }
    crate::telemetry::set_format(config.log.format);
    let key = load_key(&config)?;
    let app = exdisco::api::build(&config, key)?;
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api.listen))?;
    let address = listener.local_addr()?;
    // The bound address on stdout, for scripts that listen on port 0.
    println!("listening on http://{address}");
    info!(%address, db = %config.store.path.display(), "exdisco serving");

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(shutdown_signal(shutdown.clone()));
    spawn_workers(&tracker, &app, &config, &shutdown).await?;
    tracker.spawn(app.store.clone().sweep_until(
        config.store.sweep_every,
        config.store.job_retention,
        shutdown.clone(),
    ));
    let grace = config.shutdown_grace;
    exdisco::api::serve(listener, app.router, &config.api, shutdown.clone(), grace).await?;
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks still running after the grace period");
    }
    info!("exdisco stopped");
    Ok(())
}

/// Queue workers: the embedded queue's, and a Redis stream's when configured. On shutdown
/// they stop claiming; a job running then finishes or is given back.
async fn spawn_workers(
    tracker: &TaskTracker,
    app: &exdisco::api::App,
    config: &exdisco::config::Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let cache = DomainCache::new(CACHE_CAPACITY, config.connect.cache_ttl);
    let embedded = SqliteQueue::new(
        app.store.clone(),
        config.queue.lease,
        config.queue.max_attempts,
    );
    let worker = Worker::new(
        embedded,
        app.pipeline.clone(),
        cache.clone(),
        Some(app.metrics.clone()),
    );
    for _ in 0..config.queue.workers {
        let (worker, cancel) = (worker.clone(), shutdown.clone());
        tracker.spawn(async move { worker.run(cancel, IDLE_WAIT).await });
    }
    if let Some(url) = &config.queue.redis_url {
        let queue = RedisQueue::connect(url, RedisConfig::default())
            .await
            .with_context(|| format!("cannot reach the redis queue {url}"))?;
        let worker = Worker::new(
            queue,
            app.pipeline.clone(),
            cache,
            Some(app.metrics.clone()),
        );
        for _ in 0..config.queue.workers {
            let (worker, cancel) = (worker.clone(), shutdown.clone());
            tracker.spawn(async move { worker.run(cancel, IDLE_WAIT).await });
        }
    }
    info!(
        workers = config.queue.workers,
        redis = config.queue.redis_url.is_some(),
        "queue workers started"
    );
    Ok(())
}

/// Waits for SIGINT or SIGTERM (or for `token` to be cancelled elsewhere), then cancels.
pub async fn shutdown_signal(token: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => info!("interrupt: shutting down"),
        () = terminate => info!("terminate: shutting down"),
        () = token.cancelled() => {}
    }
    token.cancel();
}

const CACHE_CAPACITY: usize = 100_000;
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
