//! `POST /connect/authorize`: the source's rate limit, the client check, the client's and the
//! account's limits (rule 25), then the flow; answers `{"code": ...}`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use super::no_store;
use super::state::{AppState, SourceLimit};
use crate::connect::AuthorizeRequest;
use crate::domain::EmailAddress;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/connect/authorize", post(authorize))
}

#[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
async fn authorize(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(mut request): ApiJson<AuthorizeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let limits = &state.limiters;
    limits
        .check_source(SourceLimit::Authorize, peer.ip())
        .map_err(ApiError::RateLimited)?;
    state.connect.check_client(&request.client_id).await?;
    // A malformed address is refused by the flow, before any traffic, without a charge.
    if let Ok(address) = EmailAddress::parse(&request.email_address) {
        limits
            .check_account(&request.client_id, &address, peer.ip())
            .map_err(ApiError::RateLimited)?;
    }
    request.source = Some(peer.ip());
    request.through_browser = false;
    let result = state.connect.authorize(request).await;
    state.metrics.authorization(match &result {
        Ok(_) => "ok",
        Err(err) => err.code(),
    });
    let code = result?;
    Ok(no_store(json!({ "code": code.expose_secret() })))
}
