//! The command line: `exdisco discover`.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use exdisco::discovery::activesync::{Probe, activesync_url};
use exdisco::discovery::{Config, Pipeline, Schema};
use exdisco::domain::{Credentials, Domain, EmailAddress, InputError};
use exdisco::report::{Attempt, Report};
use ipnet::IpNet;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use url::Url;

/// Exit status when a host was found.
pub const EXIT_FOUND: u8 = 0;
/// Exit status when no host was found.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit status for bad usage or input.
pub const EXIT_USAGE: u8 = 2;

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
    #[command(flatten)]
    network: NetworkArgs,
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

#[derive(Debug, clap::Args)]
struct DiscoverArgs {
    /// The mailbox address.
    address: String,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// Check the credentials on the host found (one ActiveSync OPTIONS exchange).
    #[arg(long)]
    verify: bool,
    /// The Exchange host, when known: discovery is skipped (no network traffic).
    #[arg(long)]
    host: Option<String>,
    /// Print one JSON object on the last line of standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    network: NetworkArgs,
}

/// Options that shape how discovery reaches the network.
#[derive(Debug, clap::Args)]
pub struct NetworkArgs {
    /// Overall deadline of one discovery, in seconds.
    #[arg(long, default_value_t = 20.0)]
    timeout: f64,
    /// A name server to use instead of the system's (IP:PORT, repeatable).
    #[arg(long = "dns-server", value_name = "IP:PORT")]
    dns_servers: Vec<SocketAddr>,
    /// Extra trusted root certificates, PEM (repeatable; public roots stay trusted).
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,
    /// A network that may be reached although private or loopback (CIDR, repeatable).
    #[arg(long = "allow-net", value_name = "CIDR")]
    allow_nets: Vec<IpNet>,
    /// A host trusted with credentials for every domain (repeatable).
    #[arg(long = "trust-host", value_name = "HOST")]
    trust_hosts: Vec<String>,
    /// The Autodiscover request schema.
    #[arg(long, value_enum, default_value_t = SchemaArg::Outlook)]
    schema: SchemaArg,
    /// Connect https URLs to this port instead of 443 (test setups).
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// Connect http URLs to this port instead of 80 (test setups).
    #[arg(long, default_value_t = 80)]
    http_port: u16,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaArg {
    Outlook,
    Mobilesync,
}

impl NetworkArgs {
    /// The discovery configuration these options describe.
    pub fn config(&self) -> anyhow::Result<Config> {
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            bail!("--timeout must be a positive number of seconds");
        }
        let mut config = Config::default();
        config.deadline = Duration::from_secs_f64(self.timeout);
        config.dns.name_servers = self.dns_servers.clone();
        config.allow_nets = self.allow_nets.clone();
        config.trusted_hosts = self.trust_hosts.clone();
        config.schema = match self.schema {
            SchemaArg::Outlook => Schema::Outlook,
            SchemaArg::Mobilesync => Schema::MobileSync,
        };
        config.http.ports.https = self.https_port;
        config.http.ports.http = self.http_port;
        for path in &self.ca_files {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<_, _>>())
                .with_context(|| format!("cannot read certificates from {}", path.display()))?;
            if certs.is_empty() {
                bail!("{} holds no certificate", path.display());
            }
            config.http.extra_roots.extend(certs);
        }
        Ok(config)
    }
}

/// Runs the parsed command line.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Discover(discover) => run_discover(discover).await,
        Command::Probe(probe) => run_probe(probe).await,
    }
}

async fn run_discover(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    let address = match EmailAddress::parse(&args.address) {
        Ok(address) => address,
        Err(err) => return Ok(usage_error(args.json, err.code(), &err.to_string())),
    };
    let credentials = read_credentials(&args.credentials)?;
    if args.verify && credentials.is_none() {
        bail!("--verify needs --username and a password");
    }
    let pipeline = Pipeline::builder(args.network.config()?)
        .build()
        .context("cannot set up discovery")?;
    let mut report = match &args.host {
        Some(host) => match Pipeline::explicit_host(&address, host) {
            Ok(report) => report,
            Err(err) => return Ok(usage_error(args.json, err.code(), &err.to_string())),
        },
        None => match (&credentials, args.verify) {
            (Some(credentials), true) => pipeline.discover_and_verify(&address, credentials).await,
            _ => pipeline.discover(&address, credentials.as_ref()).await,
        },
    };
    if let (Some(credentials), true, Some(_)) = (&credentials, args.verify, &args.host) {
        pipeline.verify(&mut report, credentials).await;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write_human(&mut out, &report)?;
    }
    Ok(ExitCode::from(if report.is_found() {
        EXIT_FOUND
    } else {
        EXIT_NOT_FOUND
    }))
}

async fn run_probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let url = match probe_url(&args.target) {
        Ok(url) => url,
        Err(err) => return Ok(usage_error(args.json, err.code(), &err.to_string())),
    };
    let credentials = read_credentials(&args.credentials)?;
    let pipeline = Pipeline::builder(args.network.config()?)
        .build()
        .context("cannot set up the probe")?;
    let (probe, trail) = pipeline.probe(&url, credentials.as_ref()).await;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&probe)?;
        value["trail"] = serde_json::to_value(&trail)?;
        writeln!(out, "{value}")?;
    } else {
        write_probe(&mut out, "", &probe)?;
        writeln!(out)?;
        write_trail(&mut out, &trail)?;
    }
    let exit = if probe.outcome.shows_endpoint() {
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

fn write_human(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let color = std::io::stdout().is_terminal();
    match (&report.exchange_server_host, &report.error) {
        (Some(host), _) => {
            let method = report.method.map(|m| m.as_str()).unwrap_or("-");
            let confidence = if report.confirmed {
                "confirmed"
            } else {
                "needs confirmation"
            };
            let evidence = report.evidence.map(|e| e.as_str()).unwrap_or_default();
            let provider = report.provider.map(|p| p.as_str()).unwrap_or("-");
            let bold = if color { "\x1b[1m" } else { "" };
            let reset = if color { "\x1b[0m" } else { "" };
            writeln!(
                out,
                "{bold}{host}{reset}  via {method}, {confidence} ({evidence}), provider {provider}"
            )?;
            if let Some(url) = &report.activesync_url {
                writeln!(out, "  activesync  {url}")?;
            }
            if let Some(url) = &report.ews_url {
                writeln!(out, "  ews         {url}")?;
            }
            if let Some(email) = &report.redirected_email {
                writeln!(out, "  redirected  {email}")?;
            }
            // With --verify the credential check is the probe; print it once.
            if let Some(probe) = report.activesync.as_ref().filter(|p| !p.authenticated) {
                write_probe(out, "  probe       ", probe)?;
            }
            if let Some(probe) = &report.verification {
                write_probe(out, "  verify      ", probe)?;
            }
        }
        (None, Some(failure)) => {
            writeln!(out, "not found: {} ({})", failure.message, failure.code)?
        }
        (None, None) => writeln!(out, "not found")?,
    }
    writeln!(out)?;
    write_trail(out, &report.trail)?;
    writeln!(out, "{:.3}s", report.seconds)
}

fn write_probe(out: &mut impl Write, prefix: &str, probe: &Probe) -> std::io::Result<()> {
    let status = probe
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "-".to_owned());
    let who = if probe.authenticated {
        "with credentials"
    } else {
        "anonymous"
    };
    writeln!(
        out,
        "{prefix}{} (http {status}, {who}, {} ms) {}",
        probe.code, probe.ms, probe.url
    )?;
    let indent = " ".repeat(prefix.len().max(2));
    if !probe.versions.is_empty() {
        writeln!(out, "{indent}versions  {}", probe.versions.join(", "))?;
    }
    if !probe.commands.is_empty() {
        writeln!(out, "{indent}commands  {}", probe.commands.join(", "))?;
    }
    if let Some(build) = &probe.server_build {
        writeln!(out, "{indent}server    {build}")?;
    }
    for moved in &probe.moves {
        writeln!(out, "{indent}moved to  {moved}")?;
    }
    Ok(())
}

fn write_trail(out: &mut impl Write, trail: &[Attempt]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<15} {:<10} {:<22} {:>6}  target",
        "method", "step", "outcome", "code", "ms"
    )?;
    for attempt in trail {
        writeln!(
            out,
            "{:<16} {:<15} {:<10} {:<22} {:>6}  {}{}",
            attempt.method.as_str(),
            attempt.step.as_str(),
            attempt.outcome.as_str(),
            attempt.code.unwrap_or("-"),
            attempt.ms,
            attempt.target,
            if attempt.authenticated {
                " (with credentials)"
            } else {
                ""
            },
        )?;
    }
    Ok(())
}
