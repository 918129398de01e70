//! `GET /account` with `Authorization: Bearer TOKEN` (or the token as the Basic user name, as
//! the platform's SDK sends it): the account the token opens.

use super::answers::AccountAnswer;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;

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
    Ok(no_store(AccountAnswer::from(&account)))
}
