//! Discovery's settings as the daemon's file and the command line write them (`[discovery]`,
//! `--dns-server`, `--ca-file`, ...), and the pipeline [`Config`] they describe.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use super::{Config, Schema};
use crate::settings::{Error, positive};

/// Discovery settings as written in the file and on the command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// Name servers (`IP:PORT`); empty: the system's. Default: empty.
    pub dns_servers: Vec<SocketAddr>,
    /// Extra trusted root certificates (PEM files). Default: none.
    pub ca_files: Vec<PathBuf>,
    /// Networks that may be reached although private. Default: none.
    pub allow_nets: Vec<IpNet>,
    /// Hosts trusted with credentials for every domain. Default: none.
    pub trust_hosts: Vec<String>,
    /// Overall deadline of one discovery. Default: 20 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Wire port for https URLs. Default: 443.
    pub https_port: u16,
    /// Wire port for http URLs. Default: 80.
    pub http_port: u16,
    /// The Autodiscover request schema. Default: outlook.
    pub schema: Schema,
    /// The Exchange Online Autodiscover v2 base URL.
    pub exchange_online_v2_base: String,
    /// Requests per second to one destination host. Default: 10.
    pub per_host_per_second: u32,
    /// Burst of requests to one destination host. Default: 20.
    pub per_host_burst: u32,
    /// Requests in flight to one destination host. Default: 8.
    pub per_host_in_flight: usize,
    /// Password attempts per account (per source, in the daemon) within `account_window`
    /// (rule 19: Active Directory locks accounts after a few failures). Default: 5.
    pub credential_attempts_per_account: u32,
    /// The window of `credential_attempts_per_account`. Default: 15 min.
    #[serde(with = "humantime_serde")]
    pub account_window: Duration,
    /// How long a host's answers to anonymous requests are shared by the process's
    /// discoveries (`0s`: not shared). Default: 10 min.
    #[serde(with = "humantime_serde")]
    pub shared_answer_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let defaults = Config::default();
        Self {
            dns_servers: Vec::new(),
            ca_files: Vec::new(),
            allow_nets: Vec::new(),
            trust_hosts: Vec::new(),
            timeout: defaults.deadline,
            https_port: 443,
            http_port: 80,
            schema: Schema::Outlook,
            exchange_online_v2_base: defaults.exchange_online_v2_base,
            per_host_per_second: defaults.limits.per_host_per_second,
            per_host_burst: defaults.limits.per_host_burst,
            per_host_in_flight: defaults.limits.per_host_in_flight,
            credential_attempts_per_account: defaults.limits.credential_attempts_per_account,
            account_window: defaults.limits.account_window,
            shared_answer_ttl: defaults.shared_answer_ttl,
        }
    }
}

impl Settings {
    /// The pipeline configuration these settings describe (reads the CA files).
    pub fn pipeline_config(&self) -> Result<Config, Error> {
        positive(&[
            ("discovery.timeout", self.timeout),
            ("discovery.account_window", self.account_window),
        ])?;
        if self.credential_attempts_per_account == 0 {
            return Err(Error::Invalid(
                "discovery.credential_attempts_per_account must be positive".into(),
            ));
        }
        let mut config = Config {
            deadline: self.timeout,
            ..Default::default()
        };
        config.dns.name_servers = self.dns_servers.clone();
        config.allow_nets = self.allow_nets.clone();
        config.trusted_hosts = self.trust_hosts.clone();
        config.schema = self.schema;
        config.http.ports.https = self.https_port;
        config.http.ports.http = self.http_port;
        config.exchange_online_v2_base = self.exchange_online_v2_base.clone();
        config.limits.per_host_per_second = self.per_host_per_second;
        config.limits.per_host_burst = self.per_host_burst;
        config.limits.per_host_in_flight = self.per_host_in_flight;
        config.limits.credential_attempts_per_account = self.credential_attempts_per_account;
        config.limits.account_window = self.account_window;
        config.shared_answer_ttl = self.shared_answer_ttl;
        for path in &self.ca_files {
            config.http.extra_roots.extend(read_certificates(path)?);
        }
        Ok(config)
    }
}

/// Reads every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|_| Error::Invalid(format!("cannot read certificates from {}", path.display())))?;
    if certificates.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(certificates)
}
