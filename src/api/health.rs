//! `GET /healthz` (the process answers), `GET /readyz` (the database takes a write now) and
//! `GET /metrics` (Prometheus text format). They never wait for an in-flight slot.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let ping = state.connect.ping(LOCK_WAIT);
    match tokio::time::timeout(READY_WAIT, ping).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n"),
        Ok(Err(_)) | Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n"),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let depth = state.connect.queue_depth();
    if let Ok(Ok(depth)) = tokio::time::timeout(READY_WAIT, depth).await {
        // A state with no job left reads 0, not its last count.
        for job_state in JOB_STATES {
            let count = depth
                .iter()
                .find(|(s, _)| s == job_state)
                .map_or(0, |(_, n)| *n);
            state.metrics.queue_depth(job_state, count);
        }
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
}

/// How long `/readyz` waits for a database lock held elsewhere.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(250);
/// How long `/readyz` and `/metrics` wait for the database at all.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Every state a job of the embedded queue can be in.
const JOB_STATES: [&str; 4] = ["queued", "running", "done", "dead"];
