//! Human-readable output of `discover` and `probe`.

use std::io::{IsTerminal, Write};

use exdisco::discovery::activesync::Probe;
use exdisco::report::{Attempt, Remedy, Report};

pub fn write_human(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
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
            if let Some(from) = &report.moved_from {
                writeln!(
                    out,
                    "  moved from  {from} (ActiveSync 451: the mailbox lives here now)"
                )?;
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
            if let Some(check) = &report.sync {
                write_sync(out, "  sync        ", check)?;
            }
            if let Some(failure) = &report.error {
                // Found, and still an error: the mailbox is here, and will not sync.
                writeln!(out, "  error       {} ({})", failure.message, failure.code)?;
                if let Some(remedy) = &report.remedy {
                    writeln!(out, "  remedy      {}", remedy_words(remedy))?;
                }
            }
        }
        (None, Some(failure)) => {
            writeln!(out, "not found: {} ({})", failure.message, failure.code)?;
            if let Some(remedy) = &report.remedy {
                writeln!(out, "  remedy  {}", remedy_words(remedy))?;
            }
        }
        (None, None) => writeln!(out, "not found")?,
    }
    if let Some(endpoint) = &report.autodiscover_endpoint {
        let auth = if endpoint.requires_auth {
            "wants credentials"
        } else {
            "answered"
        };
        writeln!(out, "  autodiscover endpoint  {} ({auth})", endpoint.url)?;
    }
    if let Some(consent) = &report.needs_consent {
        writeln!(
            out,
            "  needs consent  {} ({}, from {}): it gets the password only if you allow it; \
             to allow it, run again with --trust-host {}",
            consent.host, consent.reason, consent.from, consent.host
        )?;
    }
    writeln!(out)?;
    write_trail(out, &report.trail)?;
    writeln!(out, "{:.3}s", report.seconds)
}

/// A remedy in the command line's words: its flags.
pub fn remedy_words(remedy: &Remedy) -> String {
    let name_server = "give the server (--host)";
    match remedy {
        Remedy::AllowHost { host, domain } => format!(
            "{host} is outside {domain}: allow it only if the mail is hosted there \
             (--trust-host {host}); otherwise {name_server}"
        ),
        Remedy::UseOffice365 => "the mailbox is on Exchange Online, where basic \
             authentication is off: use provider office365 (OAuth)"
            .to_owned(),
        Remedy::GiveCredentials => "Autodiscover names the server only to the account's \
             credentials: run again with --username and a password"
            .to_owned(),
        Remedy::RetryOrNameServer
        | Remedy::NameNewServer
        | Remedy::FixListener { .. }
        | Remedy::FixCertificate { .. }
        | Remedy::PublishAutodiscover { .. } => format!("{remedy} ({name_server})"),
        other => other.to_string(),
    }
}

pub fn write_probe(out: &mut impl Write, prefix: &str, probe: &Probe) -> std::io::Result<()> {
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

pub fn write_trail(out: &mut impl Write, trail: &[Attempt]) -> std::io::Result<()> {
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
            attempt.code.map_or("-", |c| c.as_str()),
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

/// The sync check, on one line and its folders on the next.
pub fn write_sync(
    out: &mut impl Write,
    prefix: &str,
    check: &exdisco::report::SyncCheck,
) -> std::io::Result<()> {
    let version = check.protocol_version.as_deref().unwrap_or("-");
    let policy = if check.policy_acknowledged {
        ", policy acknowledged"
    } else {
        ""
    };
    writeln!(
        out,
        "{prefix}{} (ActiveSync {version}{policy}, device {} {}, {} requests, {} ms)",
        check.code, check.device_type, check.device_id, check.requests, check.ms
    )?;
    if let Some(folders) = check.folders {
        let kinds: Vec<String> = check
            .folder_types
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let pad = " ".repeat(prefix.len());
        writeln!(out, "{pad}{folders} folders: {}", kinds.join(", "))?;
    }
    Ok(())
}
