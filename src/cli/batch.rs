//! `exdisco batch`: a file or standard input through the discovery pipeline, or queue workers
//! (`--queue redis://...`); and `exdisco enqueue` to feed a Redis stream.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use exdisco::batch::{
    BatchConfig, DomainCache, DoneLines, Event, Summary, resume_output, run_batch,
};
use exdisco::discovery::{Limits, Pipeline};
use exdisco::shared_limits::SharedLimits;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncWrite, BufReader};
use tokio_util::sync::CancellationToken;

use exdisco::queue::redis::RedisConfig;

use super::{NetworkArgs, SettingsArgs};

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// Addresses or domains, one per line (plain or JSON lines); `-` or nothing: stdin.
    input: Option<PathBuf>,
    /// Where to write one JSON line per job (default stdout). Running again with the same
    /// file continues where the last run stopped.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Jobs in flight (per process with `--queue`). 128 gave the most domains per second on 2
    /// cores for the bench's realistic mix (figure 6), within the memory target.
    #[arg(long, default_value_t = exdisco::batch::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Domains whose answers are kept for the addresses still to come (about 1.2 KB each);
    /// past it the oldest go. Addresses of one domain further apart than this in the input
    /// are discovered again.
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    cache_domains: usize,
    /// Work from a Redis stream instead of a file (redis://HOST:PORT/DB).
    #[arg(long, value_name = "URL")]
    queue: Option<String>,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    network: NetworkArgs,
}

pub async fn run(args: BatchArgs) -> anyhow::Result<ExitCode> {
    let settings = args.settings.load(&args.network)?;
    // With `[limits] url`, every worker on every machine shares each host's rate and requests
    // in flight (batch carries no passwords, so no key is needed).
    let pipeline_config = settings
        .discovery
        .pipeline_config()
        .context("cannot set up discovery")?;
    let shared = SharedLimits::new(&settings.limits, None).context("limits.url")?;
    let limits = Limits::with_shared(pipeline_config.limits.clone(), shared);
    let pipeline = Pipeline::builder(pipeline_config)
        .limits(limits)
        .build()
        .context("cannot set up discovery")?;
    // A domain's answer is kept as long as the daemon keeps its cache (`connect.cache_ttl`).
    let cache = DomainCache::new(args.cache_domains, settings.connect.cache_ttl);
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    if let Some(url) = &args.queue {
        let redis = RedisConfig::from_queue(&settings.queue);
        return super::queue::run_redis_worker(
            url,
            redis,
            pipeline,
            cache,
            args.concurrency,
            cancel,
        )
        .await;
    }
    let mut config = BatchConfig::default();
    config.concurrency = args.concurrency.max(1);
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &args.input {
        Some(path) if path.as_os_str() != "-" => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        _ => Box::new(tokio::io::stdin()),
    };
    let input = BufReader::with_capacity(64 * 1024, input);
    let (mut output, done): (Box<dyn AsyncWrite + Unpin + Send>, DoneLines) = match &args.out {
        Some(path) => {
            let done = resume_output(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            (Box::new(tokio::io::BufWriter::new(file)), done)
        }
        None => (Box::new(tokio::io::stdout()), DoneLines::default()),
    };
    // A file's lines are counted first (a quick scan), so that the bar can show an ETA;
    // standard input has no end to count to.
    let total = match &args.input {
        Some(path) if path.as_os_str() != "-" && std::io::stderr().is_terminal() => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || count_lines(&path))
                .await
                .ok()
                .and_then(Result::ok)
        }
        _ => None,
    };
    let bar = progress_bar(total);
    let summary = run_batch(
        &pipeline,
        &cache,
        input,
        &mut output,
        &done,
        &config,
        &cancel,
        |event| match event {
            Event::Done(summary) => {
                if let Some(bar) = &bar {
                    bar.set_position(summary.done + summary.bad_lines + summary.already_done);
                    bar.set_message(format!("{} found, {:.0}/s", summary.found, summary.rate()));
                }
            }
            Event::BadLine {
                line,
                code,
                message,
            } => {
                let text = format!("line {line}: {message} ({code})");
                match &bar {
                    Some(bar) => bar.println(text),
                    None => eprintln!("{text}"),
                }
            }
        },
    )
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    write_summary(&summary)?;
    Ok(if summary.left > 0 {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// A bar to `total` lines with an ETA when the total is known, else a spinner; none when
/// standard error is not a terminal.
fn progress_bar(total: Option<u64>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{bar:30} {pos}/{len} lines  {per_sec}  {elapsed} (ETA {eta})  {msg}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} {pos} lines  {per_sec}  {elapsed}  {msg}",
        ),
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// The lines of the file at `path` (a last line without a newline counts).
fn count_lines(path: &std::path::Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        lines += buffer[..read].iter().filter(|b| **b == b'\n').count() as u64;
        last = buffer[read - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

/// The summary on standard error, so that standard output stays JSON lines.
pub fn write_summary(summary: &Summary) -> std::io::Result<()> {
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "batch: {} done ({} found), {} discoveries, {} bad lines, {} done earlier, {} left, {:.1}s, {:.1} jobs/s",
        summary.done,
        summary.found,
        summary.discoveries,
        summary.bad_lines,
        summary.already_done,
        summary.left,
        summary.seconds,
        summary.rate(),
    )?;
    for (code, count) in &summary.not_found {
        writeln!(err, "  not found: {count} {code}")?;
    }
    Ok(())
}

/// Cancels on SIGINT or SIGTERM, and says what stopping means.
async fn cancel_on_signal(cancel: CancellationToken) {
    crate::daemon::shutdown_signal(cancel).await;
    eprintln!("batch: stopping: no new jobs; running ones finish");
}

/// Exit status when the batch stopped with jobs left for the next run.
pub const EXIT_INTERRUPTED: u8 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_with_or_without_a_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("input.txt");
        for (text, lines) in [
            ("", 0),
            ("a@example.com\n", 1),
            ("a@example.com\nb@example.com", 2),
            ("a\n\nb\n", 3),
        ] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(count_lines(&path).unwrap(), lines, "{text:?}");
        }
        let big: String = (0..100_000).map(|i| format!("user{i}@d.test\n")).collect();
        std::fs::write(&path, big).unwrap();
        assert_eq!(count_lines(&path).unwrap(), 100_000, "across read buffers");
    }
}
