//! `POST /connect/token`: a one-time code for an access token that ends after
//! `connect.token_ttl`; its redemption saves the account the code carries.

use axum::Router;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use super::no_store;
use super::state::{AppState, SourceLimit};
use crate::connect::TokenRequest;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/connect/token", post(token))
}

#[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .limiters
        .check_source(SourceLimit::Token, peer.ip())
        .map_err(ApiError::RateLimited)?;
    let grant = state.connect.token(request).await?;
    Ok(no_store(json!({
        "access_token": grant.access_token.expose_secret(),
        "id": grant.account.account_id,
        "object": "account",
        "account_id": grant.account.account_id,
        "name": grant.account.name,
        "email_address": grant.account.email,
        "provider": grant.account.provider,
        "token_type": "bearer",
        "expires_in": grant.expires_in,
    })))
}
