//! `POST /oauth/revoke`: an access token ends now.
//!
//! Two callers, two shapes:
//! - RFC 7009: the client authenticates (`Authorization: Basic`, or `client_id` and
//!   `client_secret` in the body) and names `token` in a form (or JSON) body. The answer is
//!   `200` whether or not the token was known (RFC 7009 2.2), and only the client's own tokens
//!   are revoked.
//! - The platform's own shape: the token revokes itself, sent as `Authorization: Bearer`, or
//!   as the user name of `Authorization: Basic` with an empty password. The answer is
//!   `{"success": true}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::auth::{access_token, basic_client};
use super::body::form_or_json;
use super::error::ApiError;
use super::no_store;
use super::state::{AppState, Limited, TokenCalls};

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/oauth/revoke", post(revoke))
}

/// The body of an RFC 7009 request.
#[derive(Default, Deserialize)]
struct RevokeForm {
    #[serde(default)]
    token: Option<SecretString>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<SecretString>,
}

async fn revoke(
    State(state): State<AppState>,
    _: Limited<TokenCalls>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let form = read_form(&headers, &body)?;
    let connect = &state.connect;
    if let Some(token) = &form.token {
        let (client_id, secret) = match (basic_client(&headers), form.client_id, form.client_secret)
        {
            (Some((id, secret)), _, _) => (id, Some(secret)),
            // A public client names itself only (RFC 7009 2.1, RFC 6749 2.3).
            (None, Some(id), secret) => (id, secret),
            _ => return Err(ApiError::MissingClient),
        };
        let client = connect
            .authenticate_client(&client_id, secret.as_ref())
            .await?;
        connect
            .revoke(token.expose_secret(), Some(&client.client_id))
            .await?;
        return Ok(no_store(json!({})));
    }
    let token = access_token(&headers).ok_or(ApiError::MissingToken)?;
    if !connect.revoke(&token, None).await? {
        return Err(crate::connect::Error::BadToken.into());
    }
    Ok(no_store(json!({ "success": true })))
}

/// The body as a form (RFC 7009 2.1) or as JSON; empty is an empty form.
fn read_form(headers: &HeaderMap, body: &[u8]) -> Result<RevokeForm, ApiError> {
    if body.is_empty() {
        return Ok(RevokeForm::default());
    }
    form_or_json(headers, body).ok_or_else(|| ApiError::BadJson {
        status: axum::http::StatusCode::BAD_REQUEST,
        message: "the body is not a revocation form".to_owned(),
    })
}
