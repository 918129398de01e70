//! The hosted page's settings: the operator's name, logo, public address and Microsoft
//! application, checked and read once when the daemon starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::settings::Error as ConfigError;

const DEFAULT_LOGO: &[u8] = include_bytes!("hosted/assets/logo.svg");
const MAX_LOGO_BYTES: u64 = 256 * 1024;

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
    pub(super) name: String,
    pub(super) logo: Logo,
    public_url: Url,
    /// Whether the operator set `public_url` (else it is made from the listen address, and
    /// the `Host` header names the page's origin).
    public_url_set: bool,
    pub(super) secure_cookies: bool,
    pub(super) microsoft: Option<(MicrosoftApp, Url)>,
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
            logo: Logo::load(config.logo_file.as_deref())?,
            secure_cookies: public_url.scheme() == "https",
            public_url_set: config.public_url.is_some(),
            public_url,
            microsoft,
        })
    }

    /// Whether a form posted with `Origin: origin` came from this page: the origin of
    /// `public_url`, or, when it is not set, `http://` + the `Host` the request was sent to.
    pub(super) fn is_own_origin(&self, origin: &str, host: Option<&str>) -> bool {
        let own = self.public_url.origin().ascii_serialization();
        if origin == own {
            return true;
        }
        !self.public_url_set && host.is_some_and(|host| origin == format!("http://{host}"))
    }

    /// Where clients reach the daemon, without a trailing slash: `public_url`, or, when it is
    /// not set, `http://` + the `Host` the request was sent to.
    pub fn base_url(&self, host: Option<&str>) -> String {
        match host.filter(|_| !self.public_url_set) {
            Some(host) => format!("http://{host}"),
            None => self.public_url.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// The URL Microsoft sends the browser back to.
    pub(super) fn microsoft_callback(&self) -> String {
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

/// The logo's bytes and type.
#[derive(Debug)]
pub struct Logo {
    pub(super) bytes: Vec<u8>,
    pub(super) content_type: &'static str,
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
