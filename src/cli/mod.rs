//! The command line: `discover`, `probe`, `serve`, `init`, `client`.

pub mod admin;
mod batch;
#[cfg(feature = "fleet")]
mod bench;
mod output;
mod queue;
mod report_page;

use self::output::{write_human, write_probe, write_trail};

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use exdisco::config::DiscoverySettings;
use exdisco::discovery::activesync::sync::DeviceIdentity;
use exdisco::discovery::activesync::{ProbeOutcome, activesync_url};
use exdisco::discovery::{KnownHost, Pipeline, Schema};
use exdisco::domain::{Credentials, Domain, EmailAddress, InputError};

use ipnet::IpNet;
use url::Url;

/// Exit status when a host was found.
pub const EXIT_FOUND: u8 = 0;
/// Exit status when no host was found.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit status for bad usage or input.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for an invalid configuration (EX_CONFIG).
pub const EXIT_CONFIG: u8 = 64;

/// Finds, confirms and authorizes Exchange mailbox servers.
#[derive(Debug, Parser)]
#[command(name = "exdisco", version, about)]
pub struct Args {
    /// More log output on standard error (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find the Exchange host that serves an address.
    Discover(DiscoverArgs),
    /// Probe a host's ActiveSync endpoint (OPTIONS /Microsoft-Server-ActiveSync).
    Probe(ProbeArgs),
    /// Run the daemon: the authorization API on the embedded SQLite store.
    Serve(ServeArgs),
    /// First run: create the key that seals account secrets, and the database.
    Init(StateArgs),
    /// Register and list API clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Discover many addresses or domains: a file or stdin, or workers on a Redis stream.
    Batch(batch::BatchArgs),
    /// Add jobs to a Redis stream for `batch --queue` workers.
    Enqueue(queue::EnqueueArgs),
    /// Measure latency under broken candidates, batch throughput, memory, cache and API
    /// figures on an in-process loopback fleet.
    #[cfg(feature = "fleet")]
    Bench(bench::BenchArgs),
    /// Needs the fleet: `cargo run --release --features fleet -- bench`.
    #[cfg(not(feature = "fleet"))]
    #[command(disable_help_flag = true)]
    Bench {
        /// Ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        rest: Vec<String>,
    },
}

/// Where the daemon's configuration and state are.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// A TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The SQLite database (default ./exdisco.db).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The key file (default ./exdisco.key; EXDISCO_KEY holds the key itself instead).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Where to listen (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Log one JSON object a line.
    #[arg(long)]
    pub log_json: bool,
    /// Also work jobs from a Redis stream (redis://HOST:PORT/DB).
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret (the secret only this once).
    Add {
        /// A name for the client.
        name: String,
        /// A redirect URI allowed for the hosted sign-in page (repeatable).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// A public client (an app on a phone or in a browser): no secret; the hosted page
        /// requires PKCE from it. Needs a redirect URI.
        #[arg(long, requires = "redirect_uris")]
        public: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List the registered clients.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// A host name, or a full https ActiveSync URL.
    target: String,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// Print one JSON object on the last line of standard output.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page: the headline, the remedy, a picture of the race
    /// and the trail.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// After OPTIONS accepts the password, run the sync check (Provision, FolderSync).
    #[arg(long)]
    sync: bool,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    network: NetworkArgs,
}

/// The configuration file every command reads: defaults < this file < `EXDISCO_*` < flags.
#[derive(Debug, clap::Args)]
pub struct SettingsArgs {
    /// A TOML configuration file (the daemon's: its `[discovery]`, `[connect]` and `[queue]`
    /// sections apply here too).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl SettingsArgs {
    /// The configuration: defaults, the file, then `EXDISCO_*`; then `network`'s flags over
    /// its discovery settings.
    pub fn load(&self, network: &NetworkArgs) -> anyhow::Result<exdisco::config::Config> {
        let mut config = exdisco::config::Config::load(self.config.as_deref(), std::env::vars())?;
        network.apply(&mut config.discovery)?;
        Ok(config)
    }
}

/// Where credentials come from.
#[derive(Debug, clap::Args)]
struct CredentialArgs {
    /// Username for Basic authentication (the password comes from --password-stdin or
    /// EXDISCO_PASSWORD, never from a flag).
    #[arg(long)]
    username: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// How far `--verify` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum VerifyMode {
    /// One ActiveSync OPTIONS exchange with the password.
    Options,
    /// OPTIONS, then Provision and FolderSync.
    Sync,
}

/// The device the sync check runs as.
#[derive(Debug, clap::Args)]
struct DeviceArgs {
    /// The sync check's `DeviceId` (letters and digits, at most 32). Default: derived from the
    /// address, the same on every run (see docs/discovery.md).
    #[arg(long, value_name = "ID")]
    device_id: Option<String>,
    /// The sync check's `DeviceType` (letters and digits, at most 16). Default: `exdisco`.
    #[arg(long, value_name = "TYPE")]
    device_type: Option<String>,
}

impl DeviceArgs {
    fn identity(&self, address: &str) -> anyhow::Result<DeviceIdentity> {
        let mut identity = DeviceIdentity::for_account(address);
        if let Some(id) = &self.device_id {
            identity.device_id.clone_from(id);
        }
        if let Some(kind) = &self.device_type {
            identity.device_type.clone_from(kind);
        }
        if !identity.is_valid() {
            bail!("--device-id takes up to 32 letters and digits, --device-type up to 16");
        }
        Ok(identity)
    }
}

#[derive(Debug, clap::Args)]
struct DiscoverArgs {
    /// The mailbox address.
    address: String,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// Check the credentials on the host found: `--verify` (or `=options`) with one
    /// ActiveSync OPTIONS exchange, the default whenever credentials are given;
    /// `--verify=sync` also runs the sync check (Provision and FolderSync, as a device would),
    /// and says why the mailbox will not sync when it will not.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "options",
        conflicts_with = "no_verify"
    )]
    verify: Option<VerifyMode>,
    #[command(flatten)]
    device: DeviceArgs,
    /// With credentials, only discover: skip the check on the host found. The report is then
    /// where discovery points, not proof that the password works there.
    #[arg(long)]
    no_verify: bool,
    /// The Exchange host, when known: discovery is skipped (no network traffic).
    #[arg(long)]
    host: Option<String>,
    /// Print one JSON object on the last line of standard output.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page: the headline, the remedy, a picture of the race
    /// and the trail.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    network: NetworkArgs,
}

/// Options that shape how discovery reaches the network; each overrides the configuration.
#[derive(Debug, clap::Args)]
pub struct NetworkArgs {
    /// Overall deadline of one discovery, in seconds (default 20).
    #[arg(long)]
    timeout: Option<f64>,
    /// A name server to use instead of the system's (IP:PORT, repeatable).
    #[arg(long = "dns-server", value_name = "IP:PORT")]
    dns_servers: Vec<SocketAddr>,
    /// Extra trusted root certificates, PEM (repeatable; public roots stay trusted).
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,
    /// A network that may be reached although private or loopback (CIDR, repeatable).
    #[arg(long = "allow-net", value_name = "CIDR")]
    allow_nets: Vec<IpNet>,
    /// A host outside the domain that may receive the credentials (repeatable): the consent
    /// that a report's `needs_consent` asks for, or a host the operator trusts for every domain.
    #[arg(long = "trust-host", value_name = "HOST")]
    trust_hosts: Vec<String>,
    /// The Autodiscover request schema (default outlook).
    #[arg(long, value_enum)]
    schema: Option<SchemaArg>,
    /// Connect https URLs to this port instead of 443 (test setups).
    #[arg(long)]
    https_port: Option<u16>,
    /// Connect http URLs to this port instead of 80 (test setups).
    #[arg(long)]
    http_port: Option<u16>,
}

/// A list flag given on the command line replaces the configured list.
fn replace<T: Clone>(target: &mut Vec<T>, given: &[T]) {
    if !given.is_empty() {
        *target = given.to_vec();
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaArg {
    Outlook,
    Mobilesync,
}

impl NetworkArgs {
    /// Applies the flags given over `settings`.
    pub fn apply(&self, settings: &mut DiscoverySettings) -> anyhow::Result<()> {
        if let Some(timeout) = self.timeout {
            if !(timeout.is_finite() && timeout > 0.0) {
                bail!("--timeout must be a positive number of seconds");
            }
            settings.timeout = Duration::from_secs_f64(timeout);
        }
        replace(&mut settings.dns_servers, &self.dns_servers);
        replace(&mut settings.ca_files, &self.ca_files);
        replace(&mut settings.allow_nets, &self.allow_nets);
        replace(&mut settings.trust_hosts, &self.trust_hosts);
        if let Some(schema) = self.schema {
            settings.schema = match schema {
                SchemaArg::Outlook => Schema::Outlook,
                SchemaArg::Mobilesync => Schema::MobileSync,
            };
        }
        settings.https_port = self.https_port.unwrap_or(settings.https_port);
        settings.http_port = self.http_port.unwrap_or(settings.http_port);
        Ok(())
    }
}

/// Runs the parsed command line.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Discover(discover) => run_discover(discover).await,
        Command::Probe(probe) => run_probe(probe).await,
        Command::Serve(serve) => admin::serve(serve).await.map(|()| ExitCode::SUCCESS),
        Command::Init(state) => admin::init(&state).await,
        Command::Client(command) => admin::client(command).await,
        Command::Batch(args) => batch::run(args).await,
        Command::Enqueue(args) => queue::enqueue(args).await,
        #[cfg(feature = "fleet")]
        Command::Bench(args) => bench::run(args).await,
        #[cfg(not(feature = "fleet"))]
        Command::Bench { .. } => {
            eprintln!(
                "exdisco bench: this build has no fleet; run `cargo run --release --features fleet -- bench`"
            );
            Ok(std::process::ExitCode::from(64))
        }
    }
}

async fn run_discover(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let address = match EmailAddress::parse(&args.address) {
        Ok(address) => address,
        Err(err) => {
            return Ok(usage_error(
                args.json,
                err.code().as_str(),
                &err.to_string(),
            ));
        }
    };
    let credentials = read_credentials(&args.credentials)?;
    if args.verify.is_some() && credentials.is_none() {
        bail!("--verify needs --username and a password");
    }
    let identity = args.device.identity(&address.to_string())?;
    let config = args.settings.load(&args.network)?;
    let pipeline = Pipeline::from_settings(&config.discovery).context("cannot set up discovery")?;
    // Given a password, the answer is where that password works (as the daemon's).
    let verify = !args.no_verify;
    let verify_with = credentials.as_ref().filter(|_| verify);
    let mut report = match &args.host {
        Some(host) => match pipeline
            .known_host(&address, KnownHost::explicit(host), verify_with)
            .await
        {
            Ok(report) => report,
            Err(err) => {
                return Ok(usage_error(
                    args.json,
                    err.code().as_str(),
                    &err.to_string(),
                ));
            }
        },
        None => match (&credentials, verify) {
            (Some(credentials), true) => pipeline.discover_and_verify(&address, credentials).await,
            _ => pipeline.discover(&address, credentials.as_ref()).await,
        },
    };
    if let (Some(VerifyMode::Sync), Some(credentials)) = (args.verify, &credentials) {
        pipeline
            .check_sync(&mut report, credentials, &identity)
            .await;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, report_page::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(remedy) = &report.remedy {
            // The typed action and its values, and the command line's words for it.
            value["remedy"]["text"] = output::remedy_words(remedy).into();
        }
        writeln!(out, "{value}")?;
    } else {
        write_human(&mut out, &report)?;
    }
    Ok(ExitCode::from(
        if report.is_found() && report.error.is_none() {
            EXIT_FOUND
        } else {
            EXIT_NOT_FOUND
        },
    ))
}

async fn run_probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let url = match probe_url(&args.target) {
        Ok(url) => url,
        Err(err) => {
            return Ok(usage_error(
                args.json,
                err.code().as_str(),
                &err.to_string(),
            ));
        }
    };
    let credentials = read_credentials(&args.credentials)?;
    let config = args.settings.load(&args.network)?;
    let pipeline = Pipeline::from_settings(&config.discovery).context("cannot set up the probe")?;
    if args.sync && credentials.is_none() {
        bail!("--sync needs --username and a password");
    }
    let (probe, mut trail) = pipeline.probe(&url, credentials.as_ref()).await;
    // The sync check where the password was just accepted (the URL the caller named).
    let sync = match &credentials {
        Some(credentials) if args.sync && probe.outcome == ProbeOutcome::Confirmed => {
            let identity = args.device.identity(&credentials.username)?;
            let at = Url::parse(&probe.url).unwrap_or_else(|_| url.clone());
            let checked = pipeline
                .sync_at(&at, credentials, &identity, &probe.versions)
                .await;
            let method = exdisco::report::Method::Explicit;
            Some(checked.into_trail(&mut trail, probe.ms, method))
        }
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&probe)?;
        value["trail"] = serde_json::to_value(&trail)?;
        if let Some(check) = &sync {
            value["sync"] = serde_json::to_value(check)?;
        }
        writeln!(out, "{value}")?;
    } else {
        write_probe(&mut out, "", &probe)?;
        if let Some(check) = &sync {
            output::write_sync(&mut out, "sync  ", check)?;
        }
        writeln!(out)?;
        write_trail(&mut out, &trail)?;
    }
    let synced = sync
        .as_ref()
        .is_none_or(|c| c.code == exdisco::code::Code::SyncConfirmed);
    let exit = if probe.outcome.shows_endpoint() && synced {
        EXIT_FOUND
    } else {
        EXIT_NOT_FOUND
    };
    Ok(ExitCode::from(exit))
}

/// A host becomes its ActiveSync URL; a URL must be https with a host name.
fn probe_url(target: &str) -> Result<Url, InputError> {
    if !target.contains("://") {
        let host = Domain::parse(target)?;
        return activesync_url(host.as_str()).ok_or(InputError::Domain("not a host name"));
    }
    let url = Url::parse(target).map_err(|_| InputError::Domain("not a valid url"))?;
    match url.host_str() {
        Some(host) if url.scheme() == "https" => {
            Domain::parse(host)?;
            Ok(url)
        }
        _ => Err(InputError::Domain(
            "an ActiveSync URL must be https with a host name",
        )),
    }
}

fn read_credentials(args: &CredentialArgs) -> anyhow::Result<Option<Credentials>> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take(4096)
            .read_to_string(&mut line)
            .context("cannot read the password")?;
        Some(line.lines().next().unwrap_or_default().to_owned())
    } else {
        std::env::var("EXDISCO_PASSWORD").ok()
    };
    match (&args.username, password) {
        (Some(username), Some(password)) => Ok(Some(Credentials::new(username, password))),
        (Some(_), None) => {
            bail!("--username needs a password: --password-stdin or EXDISCO_PASSWORD")
        }
        (None, Some(_)) if args.password_stdin => bail!("--password-stdin needs --username"),
        (None, _) => Ok(None),
    }
}

fn usage_error(json: bool, code: &str, message: &str) -> ExitCode {
    if json {
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        let _ = writeln!(std::io::stdout(), "{body}");
    }
    let _ = writeln!(std::io::stderr(), "exdisco: {message}");
    ExitCode::from(EXIT_USAGE)
}
