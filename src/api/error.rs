//! API errors: JSON `{"message": ..., "type": ...}` with the fitting status. Internal errors
//! are logged inside the request span and answered without their text.

use std::time::Duration;

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::connect;

/// An error answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// A flow error.
    Connect(connect::Error),
    /// The body is not acceptable JSON for the endpoint.
    BadJson {
        /// 400, 413 or 415.
        status: StatusCode,
        /// What is wrong.
        message: String,
    },
    /// A rate limit; retry after the given time.
    RateLimited(Duration),
    /// No `Authorization: Bearer`.
    MissingToken,
    /// No client credentials (`Authorization: Basic`).
    MissingClient,
    /// The body did not arrive within `api.body_read_timeout`.
    SlowBody,
    /// The queue holds `queue.max_queued` unfinished jobs.
    QueueFull,
    /// No such route.
    NotFound,
}

impl From<connect::Error> for ApiError {
    fn from(err: connect::Error) -> Self {
        Self::Connect(err)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        // The rejection names the field and the problem; values are cut out of it.
        Self::BadJson {
            status,
            message: connect::redact_serde_message(&rejection.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use connect::Error as E;
        let (status, kind, message) = match &self {
            Self::BadJson { status, message } => {
                let kind = if *status == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload_too_large"
                } else {
                    "invalid_request_error"
                };
                (*status, kind, message.clone())
            }
            Self::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "too many requests; retry later".to_owned(),
            ),
            Self::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "auth_error",
                "an Authorization: Bearer token is required".to_owned(),
            ),
            Self::MissingClient => (
                StatusCode::UNAUTHORIZED,
                "auth_error",
                "client credentials are required (Authorization: Basic client_id:client_secret)"
                    .to_owned(),
            ),
            Self::SlowBody => (
                StatusCode::REQUEST_TIMEOUT,
                "timeout_error",
                "the request body did not arrive in time".to_owned(),
            ),
            Self::QueueFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "capacity_error",
                "the queue is full; retry later".to_owned(),
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found_error",
                "no such endpoint".to_owned(),
            ),
            Self::Connect(err) => match err {
                E::InvalidRequest { .. } => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    err.to_string(),
                ),
                E::UnknownClient | E::BadClient | E::CredentialsRefused | E::BadToken => {
                    (StatusCode::UNAUTHORIZED, "auth_error", err.to_string())
                }
                E::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant", err.to_string()),
                E::AccountNotFound => (StatusCode::NOT_FOUND, "not_found_error", err.to_string()),
                E::ScopeChange | E::SettingsChange | E::MicrosoftAccountMismatch { .. } => {
                    (StatusCode::CONFLICT, "conflict_error", err.to_string())
                }
                E::ExchangeOnline
                | E::DiscoveryFailed(_)
                | E::Unconfirmed
                | E::NotActiveSync(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "provider_error",
                    err.to_string(),
                ),
                E::TooManyAttempts => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    err.to_string(),
                ),
                E::Upstream(_) => (StatusCode::BAD_GATEWAY, "provider_error", err.to_string()),
                E::Store(_) | E::Secrets(_) | E::Corrupt(_) => {
                    error!(error.code = err.code(), error = %err, "internal error");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "api_error",
                        "internal error".to_owned(),
                    )
                }
            },
        };
        let mut response =
            (status, Json(json!({ "message": message, "type": kind }))).into_response();
        let retry_after = match &self {
            Self::RateLimited(wait) => Some(wait.as_secs().max(1)),
            Self::Connect(connect::Error::TooManyAttempts) => Some(60),
            Self::QueueFull => Some(30),
            _ => None,
        };
        if let Some(value) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        // A 401 names what it wants (RFC 9110 11.6.1; RFC 6750 3 for bearer tokens).
        let challenge = match &self {
            Self::MissingToken => Some(r#"Bearer realm="exdisco""#),
            Self::Connect(connect::Error::BadToken) => {
                Some(r#"Bearer realm="exdisco", error="invalid_token""#)
            }
            Self::MissingClient | Self::Connect(connect::Error::BadClient) => {
                Some(r#"Basic realm="exdisco""#)
            }
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// `Json` whose rejections answer in the API's error shape.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);
