//! The daemon's configuration: defaults < TOML file < `EXDISCO_*` environment variables (`__`
//! between levels: `EXDISCO_API__LISTEN=127.0.0.1:9000`) < command-line flags. It is loaded and
//! validated before any socket is bound; an invalid configuration is one line and exit 64.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::api::ApiConfig;
use crate::api::hosted_settings::HostedConfig;
use crate::connect::ConnectConfig;
pub use crate::discovery::Settings as DiscoverySettings;
use crate::queue::QueueConfig;
pub use crate::settings::{Error, positive};
use crate::store::StoreConfig;

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
    pub store: StoreConfig,
    /// The authorization flow.
    pub connect: ConnectConfig,
    /// The hosted sign-in page.
    pub hosted: HostedConfig,
    /// Logging.
    pub log: LogSettings,
    /// The daemon's queue workers.
    pub queue: QueueConfig,
    /// `[limits]`: the limits several instances share (Redis).
    pub limits: crate::shared_limits::LimitsSettings,
    /// How long in-flight requests may finish after SIGTERM. Default: 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            discovery: DiscoverySettings::default(),
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            limits: crate::shared_limits::LimitsSettings::default(),
            connect: ConnectConfig::default(),
            hosted: HostedConfig::default(),
            log: LogSettings::default(),
            queue: QueueConfig::default(),
            shutdown_grace: Duration::from_secs(10),
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
            // `SECTION__KEY` is always configuration (every section there is; a misspelt one
            // is refused below). A name without `__` is only when it is a top-level setting:
            // EXDISCO_PASSWORD, EXDISCO_KEY and friends are not.
            if path.len() == 1 && !is_top_level_setting(&path[0], &value) {
                continue;
            }
            set_path(&mut table, &path, env_value(&value));
        }
        Config::deserialize(toml::Value::Table(table)).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Checks what deserialising cannot, without reading any file: the settings that name
    /// files (CA files, the logo) are checked when `app::App::build` reads them, once.
    pub fn validate(&self) -> Result<(), Error> {
        self.connect.validate()?;
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

/// Whether `name` is a setting of the file's top level (`shutdown_grace`), asked of `Config`
/// itself: set alone, it is not an unknown field.
fn is_top_level_setting(name: &str, value: &str) -> bool {
    let mut table = toml::Table::new();
    table.insert(name.to_owned(), env_value(value));
    match Config::deserialize(toml::Value::Table(table)) {
        Ok(_) => true,
        Err(err) => !err.to_string().contains("unknown field"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The field names a struct's `Deserialize` asks for, read off serde's own list.
    fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        use serde::de::value::Error as DeError;
        use serde::de::{Error as _, Visitor};
        struct Names(std::cell::Cell<&'static [&'static str]>);
        impl<'de> serde::Deserializer<'de> for &Names {
            type Error = DeError;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
                Err(DeError::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, DeError> {
                self.0.set(fields);
                Err(DeError::custom("collected"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let names = Names(std::cell::Cell::new(&[]));
        let _ = T::deserialize(&names);
        names.0.get()
    }

    #[test]
    fn the_configuration_reference_matches_the_code() {
        // docs/configuration.md: every key of every section, with its default, so that the
        // page cannot drift from the code.
        let doc = include_str!("../docs/configuration.md");
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a toml block");
        let dir = tempfile_dir();
        let file = dir.join("reference.toml");
        std::fs::write(&file, block).unwrap();
        let loaded = Config::load(Some(&file), Vec::new()).expect("the reference loads");
        assert_eq!(
            format!("{loaded:?}"),
            format!("{:?}", Config::default()),
            "the reference's values are the defaults"
        );
        let sections: [(&str, &[&str]); 8] = [
            ("discovery", field_names::<DiscoverySettings>()),
            ("api", field_names::<ApiConfig>()),
            ("store", field_names::<StoreConfig>()),
            ("connect", field_names::<ConnectConfig>()),
            ("hosted", field_names::<HostedConfig>()),
            ("log", field_names::<LogSettings>()),
            ("queue", field_names::<QueueConfig>()),
            (
                "limits",
                field_names::<crate::shared_limits::LimitsSettings>(),
            ),
        ];
        let mut missing = Vec::new();
        for (section, fields) in sections {
            assert!(!fields.is_empty(), "{section}");
            let heading = format!("[{section}]");
            let body = block
                .split(&heading)
                .nth(1)
                .unwrap_or_else(|| panic!("no {heading} in the reference"))
                .split("\n[")
                .next()
                .unwrap_or_default();
            for field in fields {
                let written = body.lines().any(|line| {
                    let line = line.trim_start_matches('#').trim_start();
                    line.starts_with(&format!("{field} ")) || line.starts_with(&format!("{field}="))
                });
                if !written {
                    missing.push(format!("{section}.{field}"));
                }
            }
        }
        for field in field_names::<Config>() {
            let is_section = sections.iter().any(|(s, _)| s == field);
            if !is_section && !block.lines().any(|l| l.starts_with(&format!("{field} "))) {
                missing.push((*field).to_owned());
            }
        }
        assert!(
            missing.is_empty(),
            "not in docs/configuration.md: {missing:?}"
        );
    }

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
    }

    #[test]
    fn every_section_comes_from_the_environment() {
        // EXDISCO_QUEUE__* was silently ignored: the sections were a hand-kept list.
        let config = Config::load(
            None,
            env(&[
                ("EXDISCO_QUEUE__WORKERS", "2"),
                ("EXDISCO_QUEUE__MAX_QUEUED", "7"),
                ("EXDISCO_STORE__JOB_RETENTION", "1d"),
                ("EXDISCO_SHUTDOWN_GRACE", "4s"),
                ("EXDISCO_KEY", "not configuration"),
            ]),
        )
        .unwrap();
        assert_eq!((config.queue.workers, config.queue.max_queued), (2, 7));
        assert_eq!(config.store.job_retention, Duration::from_secs(86400));
        assert_eq!(config.shutdown_grace, Duration::from_secs(4));
        let misspelt = Config::load(None, env(&[("EXDISCO_QUEU__WORKERS", "2")]));
        assert!(
            misspelt.is_err(),
            "a misspelt section is refused, not ignored"
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
