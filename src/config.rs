//! The daemon's configuration: defaults < TOML file < `EXDISCO_*` environment variables (`__`
//! between levels: `EXDISCO_API__LISTEN=127.0.0.1:9000`) < command-line flags. It is loaded and
//! validated before any socket is bound; an invalid configuration is one line and exit 64.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use crate::api::ApiConfig;
use crate::api::hosted::HostedConfig;
use crate::connect::{ConnectConfig, DEFAULT_OFFICE365_TOKEN_URL};
use crate::discovery::{self, Schema};
pub use crate::settings::{Error, positive};

/// Everything `serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// How discovery reaches the network.
    pub discovery: DiscoverySettings,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Where state lives.
    pub store: StoreSettings,
    /// The authorization flow.
    pub connect: ConnectSettings,
    /// The hosted sign-in page.
    pub hosted: HostedConfig,
    /// Logging.
    pub log: LogSettings,
    /// The daemon's queue workers.
    pub queue: QueueSettings,
    /// How long in-flight requests may finish after SIGTERM. Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            discovery: DiscoverySettings::default(),
            api: ApiConfig::default(),
            store: StoreSettings::default(),
            connect: ConnectSettings::default(),
            hosted: HostedConfig::default(),
            log: LogSettings::default(),
            queue: QueueSettings::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Discovery settings as written in the file and on the command line.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DiscoverySettings {
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
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        let defaults = discovery::Config::default();
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
        }
    }
}

impl DiscoverySettings {
    /// The pipeline configuration these settings describe (reads the CA files).
    pub fn pipeline_config(&self) -> Result<discovery::Config, Error> {
        if self.timeout.is_zero() {
            return Err(Error::Invalid("discovery.timeout must be positive".into()));
        }
        let mut config = discovery::Config {
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
        for path in &self.ca_files {
            config.http.extra_roots.extend(read_certificates(path)?);
        }
        Ok(config)
    }
}

/// Where state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreSettings {
    /// The SQLite file. Default: `./exdisco.db`.
    pub path: PathBuf,
    /// The key that seals account secrets (32 bytes, base64). Default: `./exdisco.key`;
    /// `EXDISCO_KEY` holds the key itself instead.
    pub key_file: PathBuf,
    /// How long finished jobs (done or dead) are kept. Default: 7 days.
    #[serde(with = "humantime_serde")]
    pub job_retention: Duration,
    /// How often ended codes and tokens and old jobs are deleted. Default: 10 min.
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("exdisco.db"),
            key_file: PathBuf::from("exdisco.key"),
            job_retention: Duration::from_secs(7 * 24 * 3600),
            sweep_every: Duration::from_secs(600),
        }
    }
}

/// Settings of the authorization flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnectSettings {
    /// How long a code lives. Default: 5 min.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// How long a discovery is cached without a TTL from the answer. Default: 1 h.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// The Microsoft identity platform token endpoint.
    pub office365_token_url: String,
    /// How long an access token lives. Default: 90 days.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        let defaults = ConnectConfig::default();
        Self {
            code_ttl: defaults.code_ttl,
            cache_ttl: defaults.cache_ttl,
            office365_token_url: DEFAULT_OFFICE365_TOKEN_URL.to_owned(),
            token_ttl: defaults.token_ttl,
        }
    }
}

impl ConnectSettings {
    /// The flow configuration.
    pub fn connect_config(&self) -> Result<ConnectConfig, Error> {
        let url = url::Url::parse(&self.office365_token_url)
            .map_err(|_| Error::Invalid("connect.office365_token_url is not a url".into()))?;
        if url.scheme() != "https" {
            return Err(Error::Invalid(
                "connect.office365_token_url must be https".into(),
            ));
        }
        positive(&[
            ("connect.code_ttl", self.code_ttl),
            ("connect.cache_ttl", self.cache_ttl),
            ("connect.token_ttl", self.token_ttl),
        ])?;
        Ok(ConnectConfig {
            code_ttl: self.code_ttl,
            cache_ttl: self.cache_ttl,
            office365_token_url: self.office365_token_url.clone(),
            token_ttl: self.token_ttl,
        })
    }
}

/// The daemon's queue workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct QueueSettings {
    /// Workers draining the embedded queue. Default: 4.
    pub workers: usize,
    /// How long a claimed job is held before another worker may take it. Default: 2 min.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Attempts before a failing job is a dead letter. Default: 3.
    pub max_attempts: u32,
    /// A Redis Streams queue to work from as well (redis://HOST:PORT/DB). Default: none.
    pub redis_url: Option<String>,
    /// Unfinished jobs the embedded queue holds at most; `POST /v1/discoveries` answers 503
    /// beyond. Default: 100,000.
    pub max_queued: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            lease: Duration::from_secs(120),
            max_attempts: 3,
            redis_url: None,
            max_queued: 100_000,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LogSettings {
    /// `human` or `json`. Default: human.
    pub format: LogFormat,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object a line.
    Json,
}

impl Config {
    /// Defaults, then `file` (if any), then the `EXDISCO_*` variables in `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Error> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| Error::Invalid(format!("{}: {}", path.display(), e.message())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = key.split("__").map(str::to_lowercase).collect();
            if !SECTIONS.contains(&path[0].as_str()) {
                continue; // EXDISCO_PASSWORD, EXDISCO_KEY and friends are not configuration
            }
            set_path(&mut table, &path, env_value(&value));
        }
        Config::deserialize(toml::Value::Table(table)).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Checks what deserialising cannot, without reading any file: the settings that name
    /// files (CA files, the logo) are checked when `app::App::build` reads them, once.
    pub fn validate(&self) -> Result<(), Error> {
        self.connect.connect_config()?;
        self.api.validate()?;
        positive(&[
            ("discovery.timeout", self.discovery.timeout),
            ("store.job_retention", self.store.job_retention),
            ("store.sweep_every", self.store.sweep_every),
            ("queue.lease", self.queue.lease),
        ])?;
        if self.queue.max_queued == 0 {
            return Err(Error::Invalid("queue.max_queued must be positive".into()));
        }
        Ok(())
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

fn env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut table) => table
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

const ENV_PREFIX: &str = "EXDISCO_";
const SECTIONS: &[&str] = &[
    "discovery",
    "hosted",
    "api",
    "store",
    "connect",
    "log",
    "queue",
    "shutdown_grace",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_documented_values() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.api.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.store.path, PathBuf::from("exdisco.db"));
        assert_eq!(config.connect.code_ttl, Duration::from_secs(300));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        config.validate().unwrap();
    }

    #[test]
    fn environment_beats_file() {
        let dir = tempfile_dir();
        let file = dir.join("exdisco.toml");
        std::fs::write(
            &file,
            "shutdown_grace = \"3s\"\n[api]\nlisten = \"127.0.0.1:7000\"\nmax_in_flight = 5\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env(&[
                ("EXDISCO_API__LISTEN", "127.0.0.1:9000"),
                ("EXDISCO_CONNECT__CODE_TTL", "2m"),
                ("EXDISCO_PASSWORD", "not configuration"),
                ("EXDISCO_DISCOVERY__ALLOW_NETS", "[\"127.0.0.0/8\"]"),
            ]),
        )
        .unwrap();
        assert_eq!(config.api.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.api.max_in_flight, 5);
        assert_eq!(config.shutdown_grace, Duration::from_secs(3));
        assert_eq!(config.connect.code_ttl, Duration::from_secs(120));
        assert_eq!(config.discovery.allow_nets.len(), 1);
    }

    #[test]
    fn zero_durations_are_refused() {
        for (name, value) in [
            ("EXDISCO_API__REQUEST_TIMEOUT", "0s"),
            ("EXDISCO_API__BODY_READ_TIMEOUT", "0s"),
            ("EXDISCO_CONNECT__CODE_TTL", "0s"),
            ("EXDISCO_CONNECT__TOKEN_TTL", "0s"),
            ("EXDISCO_STORE__SWEEP_EVERY", "0s"),
            ("EXDISCO_QUEUE__LEASE", "0s"),
        ] {
            let config = Config::load(None, env(&[(name, value)])).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("longer than 0s"), "{name}: {err}");
        }
        let queue = Config::load(None, env(&[("EXDISCO_QUEUE__WORKERS", "2")])).unwrap();
        assert_eq!(
            queue.queue.workers, 2,
            "queue settings come from the environment too"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::load(None, env(&[("EXDISCO_API__LISTN", "x")])).is_err());
        assert!(Config::load(None, env(&[("EXDISCO_API__LISTEN", "not an address")])).is_err());
        let insecure = Config::load(
            None,
            env(&[("EXDISCO_CONNECT__OFFICE365_TOKEN_URL", "http://x.test/t")]),
        )
        .unwrap();
        assert!(insecure.validate().is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("exdisco-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
