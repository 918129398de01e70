//! The hosted page as a standard OAuth 2.0 authorization server: the token endpoint
//! `/oauth/token` (RFC 6749 4.1.3, PKCE RFC 7636 4.5) and its metadata at
//! `/.well-known/oauth-authorization-server` (RFC 8414). The authorization endpoint is the
//! hosted page itself (`hosted`), revocation `revoke` (RFC 7009).
//!
//! The token endpoint takes the RFC's form-encoded POST, with the client authenticated by
//! HTTP Basic (`client_secret_basic`) or by form fields (`client_secret_post`), or only named
//! (`none`, a public client, which must use PKCE); and the platform SDK's
//! `exchangeCodeForToken`, a GET with the same parameters in the query. Errors are RFC 6749
//! 5.2's `{"error", "error_description"}`. A code redeems once, here or at `/connect/token`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::auth::basic_client;
use super::body::form_or_json;
use super::no_store;
use super::state::{AppState, Limited, TokenCalls};
use crate::connect::{self, CodeRedemption, KNOWN_SCOPES};

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", get(token).post(token))
        .route("/.well-known/oauth-authorization-server", get(metadata))
}

/// The parameters of a token request (RFC 6749 4.1.3).
#[derive(Default, Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: Option<String>,
    #[serde(default)]
    code: Option<SecretString>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<SecretString>,
    #[serde(default)]
    code_verifier: Option<SecretString>,
}

/// An RFC 6749 5.2 error.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
    /// The client authenticated by HTTP Basic: a 401 names the scheme.
    basic: bool,
}

impl OAuthError {
    fn request(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description,
            basic: false,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, no_store(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let scheme = if self.basic {
                r#"Basic realm="exdisco""#
            } else {
                r#"Basic realm="exdisco", error="invalid_client""#
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }
}

async fn token(
    State(state): State<AppState>,
    _: Limited<TokenCalls>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    match redeem(&state, method, &headers, query.as_deref(), &body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn redeem(
    state: &AppState,
    method: Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let form = read_form(method, headers, query, body)?;
    match form.grant_type.as_deref() {
        Some("authorization_code") => {}
        Some(_) => {
            return Err(OAuthError {
                error: "unsupported_grant_type",
                ..OAuthError::request("only grant_type=authorization_code is supported")
            });
        }
        None => return Err(OAuthError::request("grant_type is required")),
    }
    let code = form.code.ok_or(OAuthError::request("code is required"))?;
    let basic = basic_client(headers);
    let used_basic = basic.is_some();
    let (client_id, client_secret) = match (basic, form.client_id, form.client_secret) {
        (Some((id, secret)), None | Some(_), None) => (id, Some(secret)),
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::request(
                "the client authenticated twice (Basic and client_secret)",
            ));
        }
        (None, Some(id), secret) => (id, secret),
        (None, None, _) => {
            return Err(OAuthError {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_client",
                description: "client authentication is required",
                basic: used_basic,
            });
        }
    };
    let redemption = CodeRedemption {
        client_id,
        client_secret,
        code,
        redirect_uri: form.redirect_uri,
        code_verifier: form.code_verifier,
    };
    let grant = state
        .connect
        .redeem(redemption)
        .await
        .map_err(|err| match err {
            connect::Error::BadClient => OAuthError {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_client",
                description: "unknown client or wrong client credentials",
                basic: used_basic,
            },
            connect::Error::InvalidGrant(description) => OAuthError {
                error: "invalid_grant",
                ..OAuthError::request(description)
            },
            other => {
                tracing::error!(error.code = other.code(), "token endpoint failed");
                OAuthError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    error: "server_error",
                    description: "internal error",
                    basic: false,
                }
            }
        })?;
    Ok(no_store(super::answers::TokenAnswer::of(&grant, false)))
}

/// The parameters from a form (or JSON) body, or, for the platform SDK's GET, the query.
fn read_form(
    method: Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<TokenForm, OAuthError> {
    let unreadable = || OAuthError::request("the parameters could not be read");
    if method == Method::GET {
        return serde_urlencoded::from_str(query.unwrap_or_default()).map_err(|_| unreadable());
    }
    form_or_json(headers, body).ok_or_else(unreadable)
}

/// RFC 8414 2: where the endpoints are and what they take.
async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let base = state.hosted.base_url(host);
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": KNOWN_SCOPES,
    }))
    .into_response()
}
