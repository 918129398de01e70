//! `POST /connect/token`: a one-time code for an access token that ends after
//! `connect.token_ttl`; its redemption saves the account the code carries.

use axum::Router;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use secrecy::SecretString;

use super::error::{ApiError, ApiJson};
use super::no_store;
use super::state::{AppState, Limited, TokenCalls};
use serde::Deserialize;

use super::answers::TokenAnswer;
use crate::connect::CodeRedemption;

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
    let grant = state.connect.redeem(request.redemption()).await?;
    Ok(no_store(TokenAnswer::of(&grant, true)))
}

/// `POST /connect/token`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The client.
    pub client_id: String,
    /// Its secret.
    #[schema(value_type = String)]
    pub client_secret: SecretString,
    /// The one-time code.
    #[schema(value_type = String)]
    pub code: SecretString,
    /// The PKCE verifier, for a code issued with a `code_challenge` through the hosted page
    /// (RFC 7636 4.5): such a code redeems only with it, at either token endpoint.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub code_verifier: Option<SecretString>,
    /// The redirect URI the code was sent to, when the caller presents it (RFC 6749 4.1.3);
    /// it must then be that one.
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

impl TokenRequest {
    /// The redemption of the code with the client secret.
    fn redemption(self) -> CodeRedemption {
        CodeRedemption {
            client_id: self.client_id,
            client_secret: Some(self.client_secret),
            code: self.code,
            redirect_uri: self.redirect_uri.filter(|uri| !uri.is_empty()),
            code_verifier: self.code_verifier,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "client_id": "c", "client_secret": "s3cr3t-value", "code": "exd_code_abc"
        }))
        .unwrap();
        let debug = format!("{request:?}");
        assert!(!debug.contains("s3cr3t-value") && !debug.contains("exd_code_abc"));
    }
}
