//! `POST /connect/token`: a one-time code for an access token.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use super::no_store;
use super::state::AppState;
use crate::connect::TokenRequest;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/connect/token", post(token))
}

#[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
async fn token(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let grant = state.connect.token(request).await?;
    Ok(no_store(json!({
        "access_token": grant.access_token.expose_secret(),
        "account_id": grant.account.account_id,
        "email_address": grant.account.email,
        "provider": grant.account.provider,
        "token_type": "bearer",
    })))
}
