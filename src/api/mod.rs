//! The HTTP API of the daemon: the native-authentication endpoints of hosted email platforms
//! (`/connect/authorize`, `/connect/token`), `/account`, the hosted sign-in page
//! (`/oauth/authorize`, [`hosted`]), health and metrics.
//!
//! `router` builds the app from each endpoint file's `routes()`; `serve` runs it on an
//! already-bound listener and shuts down gracefully when told to. Against a slow or greedy
//! caller (rules 17, 25): a cap on connections per source address, a header-read timeout, a
//! body that must arrive whole within its own timeout and size (`body`) before the request
//! takes one of the `max_in_flight` slots, a request timeout, and rate limits (`state`).
//! Health and metrics never wait for a slot.
//!
//! Endpoints: `authorize`, `token`, `account`, `revoke`, `oauth` (`/oauth/token`, metadata),
//! `discoveries`, `health`, `hosted`;
//! `auth` reads what a request presents (client credentials, bearer tokens).

mod account;
mod accounts;
pub mod answers;
mod auth;
mod authorize;
mod body;
mod caller;
mod discoveries;
mod error;
mod health;
pub mod hosted;
pub mod hosted_settings;
mod oauth;
pub mod openapi;
mod revoke;
mod state;
mod token;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use std::time::Duration;

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

pub use self::error::ApiError;
pub use self::state::AppState;

/// Settings of the HTTP API. Durations are written like `"30s"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ApiConfig {
    /// Where to listen. Default: `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Largest request body, in bytes. Default: 64 KiB.
    pub body_limit: usize,
    /// Longest request, discovery included. Default: 45 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest wait for a request's headers. Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest wait for a request's body, once its headers are in. Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Requests served at once (health and metrics aside). Default: 256.
    pub max_in_flight: usize,
    /// Open connections per source address. Default: 64.
    pub max_connections_per_address: usize,
    /// `/connect/authorize` calls per client per minute. Default: 600.
    pub authorize_per_client_per_minute: u32,
    /// `/connect/authorize` calls per source address per minute. Default: 60.
    pub authorize_per_address_per_minute: u32,
    /// `/connect/authorize` calls per account and source address per minute. Default: 10.
    pub authorize_per_account_per_minute: u32,
    /// `/connect/token` and `/oauth/revoke` calls per source address per minute. Default: 120.
    pub token_per_address_per_minute: u32,
    /// `/account` and `GET /v1/discoveries/{id}` calls per source address per minute.
    /// Default: 1,200.
    pub resource_per_address_per_minute: u32,
    /// Jobs `POST /v1/discoveries` accepts per client per minute. Default: 60,000.
    pub jobs_per_client_per_minute: u32,
    /// Proxies (CIDRs) whose `Forwarded` or `X-Forwarded-For` names the caller, for the rate
    /// limits (`caller.rs`); the connection cap counts direct peers. Default: none.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_connections_per_address: 64,
            authorize_per_client_per_minute: 600,
            authorize_per_address_per_minute: 60,
            authorize_per_account_per_minute: 10,
            token_per_address_per_minute: 120,
            resource_per_address_per_minute: 1200,
            jobs_per_client_per_minute: 60_000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ApiConfig {
    /// Checks what deserialising cannot: no zero limit or duration.
    pub fn validate(&self) -> Result<(), crate::settings::Error> {
        crate::settings::positive(&[
            ("api.request_timeout", self.request_timeout),
            ("api.header_read_timeout", self.header_read_timeout),
            ("api.body_read_timeout", self.body_read_timeout),
        ])?;
        let counts = [
            ("api.body_limit", self.body_limit),
            ("api.max_in_flight", self.max_in_flight),
            (
                "api.max_connections_per_address",
                self.max_connections_per_address,
            ),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(crate::settings::Error::Invalid(format!(
                "{name} must be positive"
            )));
        }
        Ok(())
    }
}

/// The app: every route, the limits and the request metrics.
pub fn router(state: AppState, config: &ApiConfig) -> Router {
    // A request takes a slot only once its body is in (`body::read_whole` runs outside).
    let slotted = Router::new()
        .merge(authorize::routes())
        .merge(token::routes())
        .merge(account::routes())
        .merge(accounts::routes())
        .merge(revoke::routes())
        .merge(oauth::routes())
        .merge(discoveries::routes())
        .merge(hosted::routes())
        .layer(GlobalConcurrencyLimitLayer::new(
            config.max_in_flight.max(1),
        ));
    let bounds = body::Bounds {
        limit: config.body_limit,
        timeout: config.body_read_timeout,
    };
    Router::new()
        .merge(slotted)
        .merge(health::routes())
        .merge(openapi::routes())
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(middleware::from_fn_with_state(bounds, body::read_whole))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        // The span names the path only: a query may carry an authorization code.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ApiConfig,
    metrics: &Metrics,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    info!(address = %listener.local_addr()?, "api listening");
    let connections = Connections::new(config.max_connections_per_address);
    let trusted_proxies: Arc<[IpNet]> = config.trusted_proxies.clone().into();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Some(slot) = connections.open(peer.ip()) else {
            // Closed at once: one source may not hold every connection (rule 25).
            drop(stream);
            continue;
        };
        // Answers go out at once, not after the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let trusted = trusted_proxies.clone();
        let service =
            app.clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    // Handlers see the caller: the peer, or whom a trusted proxy names.
                    let caller = caller::caller(peer.ip(), request.headers(), &trusted);
                    let caller = SocketAddr::new(caller, peer.port());
                    request.extensions_mut().insert(ConnectInfo(caller));
                    request.map(axum::body::Body::new)
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        let metrics = metrics.clone();
        metrics.api_connection(true);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
            metrics.api_connection(false);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => info!("api stopped"),
        () = tokio::time::sleep(grace) => warn!("api stopped with requests still running after the grace period"),
    }
    Ok(())
}

/// Open connections per source address.
#[derive(Clone)]
struct Connections {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_address: usize,
}

/// One open connection, counted until it is dropped.
struct ConnectionSlot {
    connections: Connections,
    address: IpAddr,
}

impl Connections {
    fn new(per_address: usize) -> Self {
        Self {
            open: Arc::default(),
            per_address: per_address.max(1),
        }
    }

    fn open(&self, address: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            connections: self.clone(),
            address,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// A JSON answer that must not be cached (codes, tokens, accounts).
fn no_store(body: impl serde::Serialize) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = match request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some("/connect/authorize") => "authorize",
        Some("/connect/token") => "token",
        Some("/account") => "account",
        Some("/oauth/revoke") => "revoke",
        Some("/oauth/token") => "oauth_token",
        Some("/.well-known/oauth-authorization-server") => "oauth_metadata",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        Some("/v1/discoveries") => "discoveries",
        Some("/v1/discoveries/{id}") => "discovery",
        Some("/oauth/authorize") => "oauth_authorize",
        Some("/oauth/microsoft" | "/oauth/microsoft/callback") => "oauth_microsoft",
        Some(path) if path.starts_with("/oauth/assets/") => "oauth_assets",
        _ => "other",
    };
    let response = next.run(request).await;
    state.metrics.request(route, response.status().as_u16());
    response
}

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(45);
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_IN_FLIGHT: usize = 256;
