//! Request bodies arrive whole, within a size and a time, before a handler (or one of the
//! in-flight slots) sees the request (rules 17, 25). A declared `Content-Length` over the limit
//! is refused before a byte is read, so `Expect: 100-continue` gets `413`, not `100 Continue`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The bounds of one body.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes.
    pub limit: usize,
    /// From the end of the headers to the last byte.
    pub timeout: Duration,
}

/// Reads the body whole within `bounds`, then passes the request on.
pub async fn read_whole(State(bounds): State<Bounds>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > bounds.limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(bounds.timeout, axum::body::to_bytes(body, bounds.limit)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(err)) if is_length_limit(&err) => too_large(),
        Ok(Err(_)) => ApiError::BadJson {
            status: StatusCode::BAD_REQUEST,
            message: "the request body could not be read".to_owned(),
        }
        .into_response(),
        Err(_) => ApiError::SlowBody.into_response(),
    }
}

/// A body of parameters: JSON when its `Content-Type` says so, else a form
/// (`application/x-www-form-urlencoded`, as RFC 6749 and RFC 7009 send them).
pub fn form_or_json<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<T> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if json {
        serde_json::from_slice(body).ok()
    } else {
        serde_urlencoded::from_bytes(body).ok()
    }
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn too_large() -> Response {
    ApiError::BadJson {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: "the request body is too large".to_owned(),
    }
    .into_response()
}
