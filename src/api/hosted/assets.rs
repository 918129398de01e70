//! The page's files, all served by the daemon: the style sheet, the progress script and the
//! operator's logo (or exdisco's).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::super::state::AppState;

const STYLE: &str = include_str!("assets/style.css");
const PROGRESS: &str = include_str!("assets/progress.js");

/// Paths the pages link to.
pub const STYLE_PATH: &str = "/oauth/assets/style.css";
/// The progress script.
pub const PROGRESS_PATH: &str = "/oauth/assets/progress.js";
/// The logo.
pub const LOGO_PATH: &str = "/oauth/assets/logo";

/// The routes of the files.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            STYLE_PATH,
            get(|| async { file(STYLE.as_bytes().to_vec(), "text/css; charset=utf-8") }),
        )
        .route(
            PROGRESS_PATH,
            get(|| async {
                file(
                    PROGRESS.as_bytes().to_vec(),
                    "text/javascript; charset=utf-8",
                )
            }),
        )
        .route(LOGO_PATH, get(logo))
}

async fn logo(State(state): State<AppState>) -> Response {
    let logo = &state.hosted.logo;
    file(logo.bytes.clone(), logo.content_type)
}

fn file(bytes: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    // An SVG opened on its own runs no script and loads nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    response
}
