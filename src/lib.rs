//! exdisco finds where a mailbox's Exchange server lives, proves that it answers, and lets an
//! application authorize the account against it.
//!
//! # Layout
//! From the model up; no module names one above it (`.ci/module-cycles` checks that no two
//! rooms name each other).
//! - [`domain`]: validated inputs (`EmailAddress`, `Domain`, `Credentials`).
//! - [`account`]: the account model (`Account`, `NewAccount`, `CachedDiscovery`, `Reauth`,
//!   `ClientId`, `AccountId`, `JobId`, `Scopes`, where a host came from, ActiveSync versions),
//!   which the store only turns into rows.
//! - [`clock`]: the one clock of stored times (codes, tokens, leases, caches); tests move a
//!   manual one instead of waiting.
//! - [`code`]: the stable codes of failures and conclusions, with what they mean for a retry.
//! - [`report`]: what a discovery returns: host, URLs, method, confidence, the trail, and what
//!   an ActiveSync probe found (`Probe`).
//! - [`settings`]: the configuration error and the checks every module's settings share.
//! - [`discovery`]: the pipeline (`Pipeline`, `Config`, `Settings` as the file writes them,
//!   `KnownHost` for a host known without discovery, the address-redirect loop).
//!   - `candidates`: address to candidates in the protocol's preference order (pure).
//!   - `race`: runs the candidates at once; the preference order picks the answer.
//!   - `steps`: what the steps of one candidate share: outcomes, origins, findings, and
//!     sending and recording one request.
//!   - `pox`: the request body and the bounded answer parser (pure); `pox/step.rs`, the POX
//!     POST step (credentials, redirects, the mobilesync fallback).
//!   - `srv`: RFC 2782 ordering (pure); `srv/step.rs`, the SRV step. `redirect`: hop budget
//!     and target checks (pure); `redirect/step.rs`, the plain-HTTP redirect method.
//!   - `trust`: which hosts may receive credentials. `challenge`: `WWW-Authenticate`.
//!   - `address_policy`: which IP addresses may be reached. `dns`: the one resolver.
//!   - `http`: the one client and the bounded fetch. `limits`: per-host and per-account
//!     governors. `error`: `discovery::Error` and its stable codes.
//!   - `verify`: the credential check on a report's host, and the report put where the
//!     password works (a `451` move, a refusal). `diagnosis`: the headline failure, decided
//!     once, and the typed remedy each face words its own way.
//!   - `activesync`: the ActiveSync OPTIONS probe and its classification;
//!     `activesync::shared_probes`: a host's anonymous probe shared by the pipeline's
//!     discoveries; `activesync::sync`: the sync check (Provision, FolderSync) and its codes;
//!     `activesync::wbxml`: the bounded WBXML codec it speaks. `memo`: the bounded memory of hosts' anonymous answers it and the POX
//!     step use. `online`: Exchange Online (Autodiscover v2, provider detection).
//! - [`connect`]: the native-authentication flow over typed commands (`connect::command`:
//!   an `Authorization` is an `Intent` and a provider's `Login`; the faces parse their wire
//!   shapes into it); `connect::grant`: codes that carry an account until redeemed, tokens,
//!   revocation, and what may replace an account.
//! - [`api`]: the HTTP API of the daemon (router, serve with its per-source connection cap,
//!   `body` bounds, `auth` for presented credentials, one file per endpoint, errors, rate
//!   limits) and `api::hosted`, the hosted sign-in page (OAuth authorization-code flow in the
//!   browser) and `api::hosted_settings`, its configuration, which the API's state holds
//!   without naming the page's handlers.
//! - [`config`]: the daemon's configuration: the modules' own settings assembled, loaded from
//!   defaults, TOML and `EXDISCO_*`.
//! - [`app`]: the daemon assembled once from a `Config` and the key, and run on a listener
//!   until a shutdown token fires.
//! - [`store`]: the state, in SQLite (`store::sqlite`, the default) or PostgreSQL
//!   (`store::postgres`, for several instances): one migration history, the SQL and its row
//!   conversion for accounts, codes, tokens, the discovery cache and the queue, and the sweep
//!   that deletes what ended.
//! - [`shared_limits`]: the limits several instances and `batch` workers share through Redis
//!   (GCRA, a leased semaphore, a short memory), with the fallback when Redis is away.
//! - [`secrets`]: random tokens, hashes, the key that seals account secrets.
//! - [`batch`]: jobs, the per-domain cache, the resumable file runner.
//! - `bounded_map`: a map that forgets its oldest entries first, in constant time (the
//!   per-domain cache and the discovery's `memo` are built on it).
//! - [`queue`]: queue workers; the embedded queue in the store; Redis Streams.
//! - [`metrics`]: Prometheus metrics.
//! - `fleet` (feature `fleet`, on for the tests): the loopback fleet (DNS, HTTPS, CA) of the
//!   tests and `exdisco bench`; a release build has none of it.
//! - `cli`, `daemon` and `telemetry` (binary only): the `exdisco` command line; `daemon`
//!   binds and handles signals, and sees no flag.
//!
//! # Example
//! ```no_run
//! use exdisco::discovery::{Pipeline, Settings};
//! use exdisco::domain::{Credentials, EmailAddress};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The same settings as the configuration file's `[discovery]` and the command line's flags.
//! let pipeline = Pipeline::from_settings(&Settings::default())?;
//! let address = EmailAddress::parse("alice@example.com")?;
//! let credentials = Credentials::new("alice@example.com", "secret");
//! let report = pipeline.discover(&address, Some(&credentials)).await;
//! if let Some(host) = &report.exchange_server_host {
//!     println!("{host} (confirmed: {}, via {:?})", report.confirmed, report.method);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(clippy::dbg_macro, clippy::print_stdout)]

pub mod account;
pub mod api;
pub mod app;
pub mod batch;
mod bounded_map;
pub mod clock;
pub mod code;
pub mod config;
pub mod connect;
pub mod discovery;
pub mod domain;
#[cfg(feature = "fleet")]
#[allow(missing_docs)] // a fixture: its items say what they are
pub mod fleet;
pub mod metrics;
pub mod queue;
pub mod report;
pub mod secrets;
pub mod settings;
pub mod shared_limits;
pub mod store;

pub use discovery::discover;
