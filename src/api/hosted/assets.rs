//! The page's files, all served by the daemon: the style sheet, the progress script and the
//! operator's logo (or exdisco's).

use std::path::Path;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::super::state::AppState;
use crate::config::Error as ConfigError;

const STYLE: &str = include_str!("assets/style.css");
const PROGRESS: &str = include_str!("assets/progress.js");
const DEFAULT_LOGO: &[u8] = include_bytes!("assets/logo.svg");
const MAX_LOGO_BYTES: u64 = 256 * 1024;

/// Paths the pages link to.
pub const STYLE_PATH: &str = "/oauth/assets/style.css";
/// The progress script.
pub const PROGRESS_PATH: &str = "/oauth/assets/progress.js";
/// The logo.
pub const LOGO_PATH: &str = "/oauth/assets/logo";

/// The logo's bytes and type.
#[derive(Debug)]
pub struct Logo {
    bytes: Vec<u8>,
    content_type: &'static str,
}

impl Logo {
    /// The file at `path`, or exdisco's logo.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self {
                bytes: DEFAULT_LOGO.to_vec(),
                content_type: "image/svg+xml",
            });
        };
        let invalid =
            |why: &str| ConfigError::Invalid(format!("hosted.logo_file {}: {why}", path.display()));
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let content_type = match extension.as_deref() {
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("jpg" | "jpeg") => "image/jpeg",
            Some("webp") => "image/webp",
            _ => return Err(invalid("must be .svg, .png, .jpg or .webp")),
        };
        let size = std::fs::metadata(path)
            .map_err(|_| invalid("cannot be read"))?
            .len();
        if size > MAX_LOGO_BYTES {
            return Err(invalid("is larger than 256 KiB"));
        }
        let bytes = std::fs::read(path).map_err(|_| invalid("cannot be read"))?;
        Ok(Self {
            bytes,
            content_type,
        })
    }
}

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
