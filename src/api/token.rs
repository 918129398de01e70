//! `POST /connect/token`: a one-time code for an access token that ends after
//! `connect.token_ttl`; its redemption saves the account the code carries.

use axum::Router;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::json;

use super::error::{ApiError, ApiJson};
use super::no_store;
use super::state::{AppState, Limited, TokenCalls};
use crate::connect::{TokenGrant, TokenRequest};

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/connect/token", post(token))
}

#[tracing::instrument(skip_all, fields(client_id = %request.client_id))]
async fn token(
    State(state): State<AppState>,
    _: Limited<TokenCalls>,
    ApiJson(request): ApiJson<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let grant = state.connect.token(request).await?;
    Ok(no_store(answer(&grant, Shape::Platform)))
}

/// Which endpoint's shape a token answer takes.
pub enum Shape {
    /// `/connect/token`: the platform's (the account's `id`, `object`, `name`).
    Platform,
    /// `/oauth/token`: RFC 6749 5.1 (`token_type` `Bearer`, space-delimited `scope`).
    Rfc6749,
}

/// The answer to a redeemed code: the token, its lifetime, and whose account it opens.
pub fn answer(grant: &TokenGrant, shape: Shape) -> serde_json::Value {
    let account = &grant.account;
    let mut answer = json!({
        "access_token": grant.access_token.expose_secret(),
        "expires_in": grant.expires_in,
        "account_id": account.account_id,
        "email_address": account.email,
        "provider": account.provider,
    });
    match shape {
        Shape::Platform => {
            answer["token_type"] = "bearer".into();
            answer["id"] = account.account_id.as_str().into();
            answer["object"] = "account".into();
            answer["name"] = account.name.clone().into();
        }
        Shape::Rfc6749 => {
            answer["token_type"] = "Bearer".into();
            answer["scope"] = account.scopes.iter().collect::<Vec<_>>().join(" ").into();
        }
    }
    answer
}
