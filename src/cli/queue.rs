//! Redis Streams from the command line: `batch --queue` runs workers, `enqueue` feeds them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use exdisco::batch::{DomainCache, parse_line};
use exdisco::discovery::Pipeline;
use exdisco::queue::Worker;
use exdisco::queue::redis::{RedisConfig, RedisQueue};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// Addresses or domains, one per line; `-` or nothing: stdin.
    input: Option<PathBuf>,
    /// The Redis stream's server (redis://HOST:PORT/DB).
    #[arg(long, value_name = "URL")]
    queue: String,
    #[command(flatten)]
    settings: super::SettingsArgs,
}

/// Feeds a Redis stream; bad lines are reported and skipped.
pub async fn enqueue(args: EnqueueArgs) -> anyhow::Result<ExitCode> {
    let settings =
        exdisco::config::Config::load(args.settings.config.as_deref(), std::env::vars())?;
    let queue = RedisQueue::connect(&args.queue, RedisConfig::from_queue(&settings.queue))
        .await
        .context("cannot reach redis")?;
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &args.input {
        Some(path) if path.as_os_str() != "-" => Box::new(tokio::fs::File::open(path).await?),
        _ => Box::new(tokio::io::stdin()),
    };
    let mut lines = tokio::io::BufReader::new(input).lines();
    let (mut number, mut added, mut bad) = (0u64, 0u64, 0u64);
    let mut chunk = Vec::new();
    while let Some(line) = lines.next_line().await? {
        number += 1;
        match parse_line(&line) {
            Ok(Some(job)) => chunk.push((number, job.input)),
            Ok(None) => {}
            Err(err) => {
                bad += 1;
                eprintln!("line {number}: {err} ({})", err.code());
            }
        }
        if chunk.len() >= 1000 {
            added += queue.enqueue(&chunk).await?;
            chunk.clear();
        }
    }
    added += queue.enqueue(&chunk).await?;
    eprintln!("enqueue: {added} jobs, {bad} bad lines");
    Ok(ExitCode::SUCCESS)
}

/// `concurrency` workers on the Redis stream until SIGINT or SIGTERM.
pub async fn run_redis_worker(
    url: &str,
    redis: RedisConfig,
    pipeline: Pipeline,
    cache: DomainCache,
    concurrency: usize,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let queue = RedisQueue::connect(url, redis)
        .await
        .context("cannot reach redis")?;
    let worker = Worker::new(queue.clone(), pipeline, cache, None);
    let tracker = TaskTracker::new();
    worker.spawn(&tracker, concurrency.max(1), &cancel, IDLE_WAIT);
    tracker.close();
    tracker.wait().await;
    let (jobs, results, dead) = queue.lengths().await?;
    eprintln!(
        "batch: stopped; stream lengths: {jobs} jobs, {results} results, {dead} dead letters"
    );
    Ok(ExitCode::SUCCESS)
}

const IDLE_WAIT: Duration = Duration::from_millis(200);
