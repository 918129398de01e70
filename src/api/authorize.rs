//! `POST /connect/authorize`: rate limits, then the flow; answers `{"code": ...}`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use super::no_store;
use super::state::AppState;
use crate::connect::AuthorizeRequest;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/connect/authorize", post(authorize))
}

#[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
async fn authorize(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<AuthorizeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .limiters
        .check(&request.client_id, peer.ip(), &request.email_address)
        .map_err(ApiError::RateLimited)?;
    let result = state.connect.authorize(request).await;
    state.metrics.authorization(match &result {
        Ok(_) => "ok",
        Err(err) => err.code(),
    });
    let code = result?;
    Ok(no_store(json!({ "code": code.expose_secret() })))
}
