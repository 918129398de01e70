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
use exdisco::discovery::Pipeline;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncWrite, BufReader};
use tokio_util::sync::CancellationToken;

use super::NetworkArgs;

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// Addresses or domains, one per line (plain or JSON lines); `-` or nothing: stdin.
    input: Option<PathBuf>,
    /// Where to write one JSON line per job (default stdout). Running again with the same
    /// file continues where the last run stopped.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Jobs in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Work from a Redis stream instead of a file (redis://HOST:PORT/DB).
    #[arg(long, value_name = "URL")]
    queue: Option<String>,
    #[command(flatten)]
    network: NetworkArgs,
}

pub async fn run(args: BatchArgs) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::builder(args.network.config()?)
        .build()
        .context("cannot set up discovery")?;
    let cache = DomainCache::new(CACHE_CAPACITY, CACHE_TTL);
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    if let Some(url) = &args.queue {
        return super::queue::run_redis_worker(url, pipeline, cache, args.concurrency, cancel)
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
    let bar = progress_bar();
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
                    bar.set_position(summary.done);
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

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {pos} jobs  {per_sec}  {elapsed}  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
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
const CACHE_CAPACITY: usize = 100_000;
const CACHE_TTL: Duration = Duration::from_secs(3600);
