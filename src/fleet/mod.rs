//! A loopback fleet for tests and benchmarks: a DNS authority, HTTPS and plain-HTTP servers
//! with per-host behaviour (answers, delays, black holes, bad certificates), and a certificate
//! authority made per run. `exdisco bench` and the integration tests both use it, so that the
//! figures and the tests exercise the production pipeline against the same peers, reached
//! only through configuration (name server, extra root, wire ports, allowed networks).
//!
//! Everything binds 127.0.0.1 on a port the OS picks. A failure here is a broken machine
//! (no loopback, no ports), not a discovery outcome: the fleet panics with what failed.

pub mod dns;
pub mod https;
pub mod tls;

use std::net::Ipv4Addr;

pub use self::dns::{Answer, FakeDns};
pub use self::https::{Fleet, Reply, Seen};
pub use self::tls::{CertKind, TestCa};

/// Where the fleet listens (every fake host's A record).
pub const FLEET_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// A loopback address where nothing listens: connections are refused.
pub const REFUSED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 254);

/// A real Outlook-schema Autodiscover answer (Exchange 2013, `fixtures/pox/ex2013-outlook.xml`)
/// whose `EXPR` server and EWS URLs name `host`.
pub fn settings_answer(host: &str) -> Vec<u8> {
    include_str!("../../fixtures/pox/ex2013-outlook.xml")
        .replace("mail.rs2013.example", host)
        .into_bytes()
}
