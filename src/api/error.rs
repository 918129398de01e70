//! API errors: JSON `{"message": ..., "type": ...}` with the fitting status. Internal errors
//! are logged inside the request span and answered without their text.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::connect;
use crate::report::Remedy;

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
                E::ConsentRequired { .. } => {
                    (StatusCode::CONFLICT, "consent_required", err.to_string())
                }
                E::ExchangeOnline
                | E::DiscoveryFailed { .. }
                | E::ImapOnly { .. }
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
                E::SyncCheckFailed { code, .. } => (
                    if *code == crate::code::Code::Throttled {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::UNPROCESSABLE_ENTITY
                    },
                    "sync_check_failed",
                    err.to_string(),
                ),
                E::LimitsUnavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "capacity_error",
                    err.to_string(),
                ),
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
        let mut body = json!({ "message": message, "type": kind });
        if let Self::Connect(connect::Error::ConsentRequired { host, reason, from }) = &self {
            // What the application shows its user, and sends back once they allow it.
            body["consent"] = json!({ "host": host, "reason": reason, "from": from });
        }
        if let Self::Connect(connect::Error::ImapOnly { servers }) = &self {
            // Where the mailbox is reached instead: the application's IMAP connector's input.
            body["code"] = json!("imap_only");
            body["mail_servers"] = json!(servers);
        }
        if let Self::Connect(connect::Error::DiscoveryFailed {
            code,
            remedy: Some(remedy),
        }) = &self
        {
            // What the domain's administrator can do: worth passing on to the user, in the
            // API's words (its fields), and as the typed action with its values.
            body["code"] = json!(code.as_str());
            body["remedy"] = json!(remedy_words(remedy));
            body["remedy_action"] = json!(remedy);
        }
        if let Self::Connect(connect::Error::SyncCheckFailed { code, remedy, .. }) = &self {
            // Why the mailbox will not sync, and what its administrator can do.
            body["code"] = json!(code.as_str());
            if let Some(remedy) = remedy {
                body["remedy"] = json!(remedy_words(remedy));
                body["remedy_action"] = json!(remedy);
            }
        }
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            Self::RateLimited(wait) => Some(wait.as_secs().max(1)),
            Self::Connect(connect::Error::TooManyAttempts) => Some(60),
            Self::Connect(connect::Error::LimitsUnavailable) => Some(5),
            Self::Connect(connect::Error::SyncCheckFailed {
                code: crate::code::Code::Throttled,
                ..
            }) => Some(300),
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

/// A remedy in the API's words: the fields a caller sets, not the command line's flags.
fn remedy_words(remedy: &Remedy) -> String {
    let name_server = "pass settings.exchange_server_host";
    match remedy {
        Remedy::AllowHost { host, domain } => format!(
            "{host} is outside {domain}: ask the user, and only if the mail is hosted there \
             authorize again with settings.consented_autodiscover_host = {host}; otherwise \
             {name_server}"
        ),
        Remedy::UseOffice365 => "the mailbox is on Exchange Online, where basic \
             authentication is off: authorize with provider office365 (OAuth)"
            .to_owned(),
        Remedy::GiveCredentials => "Autodiscover names the server only to the account's \
             credentials: send settings.username and settings.password"
            .to_owned(),
        Remedy::RetryOrNameServer
        | Remedy::NameNewServer
        | Remedy::FixListener { .. }
        | Remedy::FixCertificate { .. }
        | Remedy::PublishAutodiscover { .. } => format!("{remedy}; to name it, {name_server}"),
        other => other.to_string(),
    }
}

/// A JSON body, whatever its `Content-Type`: the platform's SDK sends JSON as
/// `text/plain;charset=UTF-8`. What is not JSON is a 400 that names the problem, not the value.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::BadJson {
                status: StatusCode::BAD_REQUEST,
                message: "the request body could not be read".to_owned(),
            })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let path = err.path().to_string();
            let inner = connect::redact_serde_message(&err.inner().to_string());
            let message = if path == "." {
                format!("the body is not the JSON this endpoint takes: {inner}")
            } else {
                format!("the body is not the JSON this endpoint takes: {path}: {inner}")
            };
            ApiError::BadJson {
                status: StatusCode::BAD_REQUEST,
                message,
            }
        })?;
        Ok(Self(value))
    }
}
