//! exdisco finds where a mailbox's Exchange server lives, proves that it answers, and lets an
//! application authorize the account against it.
//!
//! # Layout
//! - [`domain`]: validated inputs (`EmailAddress`, `Domain`, `Credentials`).
//! - [`report`]: what a discovery returns: host, URLs, method, confidence and the trail.
//! - [`discovery`]: the pipeline. `candidates` (preference order), `srv` (RFC 2782),
//!   `pox` (request body and bounded parser), `steps` (one candidate's requests),
//!   `redirect` (hop decisions), `trust` (who gets credentials), `address_policy` (what may be
//!   reached), `dns` (the resolver), `http` (the client and bounded fetch), `limits`
//!   (per-host and per-account governors), `error` (`discovery::Error` and its codes).
//! - `cli` and `telemetry` (binary only): the `exdisco` command line.
//!
//! # Example
//! ```no_run
//! use exdisco::discovery::{Config, Pipeline};
//! use exdisco::domain::{Credentials, EmailAddress};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pipeline = Pipeline::builder(Config::default()).build()?;
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

pub mod discovery;
pub mod domain;
pub mod report;

pub use discovery::discover;
