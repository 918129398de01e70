//! `GET /account` with `Authorization: Bearer TOKEN`: the account the token opens.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::error::ApiError;
use super::no_store;
use super::state::AppState;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/account", get(account))
}

async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::MissingToken)?;
    let account = state.connect.account(token).await?;
    let split = |text: &str| {
        text.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    Ok(no_store(json!({
        "id": account.account_id,
        "name": account.name,
        "email_address": account.email,
        "provider": account.provider,
        "exchange_server_host": account.exchange_server_host,
        "discovery_method": account.discovery_method,
        "activesync_versions": split(&account.activesync_versions),
        "scopes": split(&account.scopes),
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    })))
}
