//! The hosted sign-in page: the OAuth 2.0 authorization-code flow for applications that do not
//! build their own credential form.
//!
//! 1. `GET /oauth/authorize` checks the client and its exact `redirect_uri` (`flow`); a
//!    mismatch is an error page that redirects nowhere. Then the sign-in form (`page`).
//! 2. `POST /oauth/authorize` (`sign_in`) checks the CSRF token (`csrf`) and the API's rate
//!    limits, then runs the flow of `/connect/authorize`: discovery, verification, a one-time
//!    code; the browser goes to `redirect_uri?code=...&state=...`.
//! 3. Discovery found nothing: the form asks for the server. Wrong password: it says so.
//!    Exchange Online: it explains, and offers "Sign in with Microsoft" (`microsoft`) when
//!    the operator set up a Microsoft application.
//!
//! Every page is served with `Cache-Control: no-store`, a strict Content-Security-Policy and
//! `X-Frame-Options: DENY`; every asset comes from the daemon (`assets`); JavaScript only
//! improves the progress display. `settings`: the page's configuration, checked and loaded
//! once at start.

mod assets;
mod csrf;
mod flow;
mod microsoft;
mod page;
mod sign_in;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;

pub use super::hosted_settings::{
    DEFAULT_MICROSOFT_AUTHORIZE_URL, Hosted, HostedConfig, MicrosoftApp,
};
use super::state::AppState;

/// The page's routes, with their security headers.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(sign_in::routes())
        .merge(microsoft::routes())
        .merge(assets::routes())
        .layer(middleware::from_fn(security_headers))
}

/// Headers every response of the page carries; a handler may set a narrower policy first.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &'static str); 6] = [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, page::DEFAULT_CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}
