//! `GET /account` with `Authorization: Bearer TOKEN` (or the token as the Basic user name, as
//! the platform's SDK sends it): the account the token opens.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::auth::access_token;
use super::error::ApiError;
use super::no_store;
use super::state::{AppState, Limited, ResourceCalls};

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/account", get(account))
}

async fn account(
    State(state): State<AppState>,
    _: Limited<ResourceCalls>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let token = access_token(&headers).ok_or(ApiError::MissingToken)?;
    let account = state.connect.account(&token).await?;
    Ok(no_store(json!({
        "id": account.account_id,
        "object": "account",
        "account_id": account.account_id,
        "name": account.name,
        "email_address": account.email,
        "provider": account.provider,
        "exchange_server_host": account.exchange_server_host,
        "discovery_method": account.origin,
        "activesync_versions": account.activesync_versions.list(),
        "scopes": account.scopes.iter().collect::<Vec<_>>(),
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    })))
}
