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
//! improves the progress display.

mod assets;
mod csrf;
mod flow;
mod microsoft;
mod page;
mod sign_in;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::state::AppState;
use crate::config::Error as ConfigError;

/// The Microsoft identity platform authorization endpoint (tenant `common`).
pub const DEFAULT_MICROSOFT_AUTHORIZE_URL: &str =
    "https://login.microsoftonline.com/common/oauth2/v2.0/authorize";

/// Settings of the hosted sign-in page.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HostedConfig {
    /// The name shown on the page. Default: `exdisco`.
    pub name: String,
    /// A logo (SVG, PNG, JPEG or WebP, at most 256 KiB). Default: exdisco's.
    pub logo_file: Option<PathBuf>,
    /// Where browsers reach the daemon (`https://auth.example.com`); the Microsoft callback
    /// is under it, and cookies are `Secure` when it is https. Default: `http://` + the
    /// listen address.
    pub public_url: Option<String>,
    /// The operator's Microsoft application, for mailboxes on Exchange Online. Default: none.
    pub microsoft: Option<MicrosoftApp>,
}

impl Default for HostedConfig {
    fn default() -> Self {
        Self {
            name: "exdisco".to_owned(),
            logo_file: None,
            public_url: None,
            microsoft: None,
        }
    }
}

/// An application registered with the Microsoft identity platform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MicrosoftApp {
    /// Its application (client) id.
    pub client_id: String,
    /// Its secret (or `EXDISCO_HOSTED__MICROSOFT__CLIENT_SECRET`).
    pub client_secret: SecretString,
    /// The authorization endpoint. Default: [`DEFAULT_MICROSOFT_AUTHORIZE_URL`].
    #[serde(default = "default_authorize_url")]
    pub authorize_url: String,
    /// The scopes asked for. Default: `offline_access openid profile User.Read`.
    #[serde(default = "default_scope")]
    pub scope: String,
}

fn default_authorize_url() -> String {
    DEFAULT_MICROSOFT_AUTHORIZE_URL.to_owned()
}

fn default_scope() -> String {
    crate::connect::OFFICE365_SCOPE.to_owned()
}

/// The page's settings, checked and loaded once at start.
#[derive(Debug)]
pub struct Hosted {
    name: String,
    logo: assets::Logo,
    public_url: Url,
    /// Whether the operator set `public_url` (else it is made from the listen address, and
    /// the `Host` header names the page's origin).
    public_url_set: bool,
    secure_cookies: bool,
    microsoft: Option<(MicrosoftApp, Url)>,
}

impl Hosted {
    /// Checks `config` and reads the logo; `listen` is the API's address.
    pub fn load(config: &HostedConfig, listen: SocketAddr) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid(message);
        let public_url = match &config.public_url {
            Some(text) => Url::parse(text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| invalid("hosted.public_url must be an http(s) url".into()))?,
            None => Url::parse(&format!("http://{listen}/"))
                .map_err(|_| invalid("api.listen does not make a url".into()))?,
        };
        let microsoft = match &config.microsoft {
            Some(app) => {
                let url = Url::parse(&app.authorize_url)
                    .map_err(|_| invalid("hosted.microsoft.authorize_url is not a url".into()))?;
                if url.scheme() != "https" && !is_loopback(&url) {
                    return Err(invalid(
                        "hosted.microsoft.authorize_url must be https".into(),
                    ));
                }
                if app.client_id.trim().is_empty() {
                    return Err(invalid("hosted.microsoft.client_id is empty".into()));
                }
                Some((app.clone(), url))
            }
            None => None,
        };
        let name = config.name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(invalid("hosted.name must have 1 to 60 characters".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            logo: assets::Logo::load(config.logo_file.as_deref())?,
            secure_cookies: public_url.scheme() == "https",
            public_url_set: config.public_url.is_some(),
            public_url,
            microsoft,
        })
    }

    /// Whether a form posted with `Origin: origin` came from this page: the origin of
    /// `public_url`, or, when it is not set, `http://` + the `Host` the request was sent to.
    fn is_own_origin(&self, origin: &str, host: Option<&str>) -> bool {
        let own = self.public_url.origin().ascii_serialization();
        if origin == own {
            return true;
        }
        !self.public_url_set && host.is_some_and(|host| origin == format!("http://{host}"))
    }

    /// The URL Microsoft sends the browser back to.
    fn microsoft_callback(&self) -> String {
        let mut url = self.public_url.clone();
        url.set_path("/oauth/microsoft/callback");
        url.set_query(None);
        url.to_string()
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

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
