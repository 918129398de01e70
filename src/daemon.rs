//! `exdisco serve`: load and validate the configuration, open the store, bind, serve until
//! SIGINT or SIGTERM, then let in-flight requests finish within the grace period.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::cli::ServeArgs;
use crate::cli::admin::{load_config, load_key};

/// Runs the daemon.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(&args.state)?;
    args.network.apply(&mut config.discovery)?;
    if let Some(listen) = args.listen {
        config.api.listen = listen;
    }
    if args.log_json {
        config.log.format = exdisco::config::LogFormat::Json;
    }
    crate::telemetry::set_format(config.log.format);
    let key = load_key(&config)?;
    let (app, _store) = exdisco::api::build(&config, key)?;
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
    exdisco::api::serve(
        listener,
        app,
        &config.api,
        shutdown.clone(),
        config.shutdown_grace,
    )
    .await?;
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

/// Waits for SIGINT or SIGTERM (or for `token` to be cancelled elsewhere), then cancels.
async fn shutdown_signal(token: CancellationToken) {
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
