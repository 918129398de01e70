//! `exdisco serve`: build the daemon from a checked configuration and the key, bind, and serve
//! until SIGINT or SIGTERM; requests and jobs then finish within the grace period. The
//! command line stays in `cli`.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use exdisco::app::App;
use exdisco::config::Config;
use exdisco::secrets::MasterKey;

/// Runs the daemon.
pub async fn serve(config: Config, key: MasterKey) -> anyhow::Result<()> {
    let app = App::build(&config, key).await?;
    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api.listen))?;
    let address = listener.local_addr()?;
    // The bound address on stdout, for scripts that listen on port 0.
    println!("listening on http://{address}");
    info!(%address, db = %exdisco::store::Store::describe(&config.store), "exdisco serving");
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_signal(shutdown.clone()));
    app.run(listener, &config, shutdown).await?;
    info!("exdisco stopped");
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
