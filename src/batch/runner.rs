//! `exdisco batch` over a file or standard input: lines in, one JSON line out per job.
//!
//! Input is streamed and at most `concurrency` jobs run at once, so memory stays bounded
//! whatever the input size. Each record is written and flushed as its job ends. Started again
//! with the same output file, the batch skips the lines already written (a partial last line
//! from a kill is cut off first): nothing is redone, nothing is lost. On cancellation it stops
//! reading, lets running jobs finish within the grace period, and leaves the rest for the next
//! run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::cache::{DomainCache, Source};
use super::job::{Job, parse_line};
use crate::code::Code;
use crate::discovery::Pipeline;
use crate::report::Report;

/// Jobs in flight by default: on 2 cores, the realistic mix of `exdisco bench` (figure 6)
/// went fastest at 128 (300 domains/s at 64, where black holes and slow servers hold the slots;
/// 453 at 128 and 192, where the CPU is the limit; 428 at 256), at about 105 MiB.
pub const DEFAULT_CONCURRENCY: usize = 128;

/// Settings of one batch run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Jobs in flight. Default: [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// How long running jobs may finish after cancellation. Default: 10 s.
    pub grace: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            grace: Duration::from_secs(10),
        }
    }
}

/// One output line.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// The input line number (1-based).
    pub line: u64,
    /// The input as given.
    pub input: &'a str,
    /// Whether the discovery was shared with another job of the same domain: then the trail
    /// is empty, and is in the record of the job that ran it.
    pub shared: bool,
    /// The report, as `discover --json` prints it, for this job's address.
    #[serde(flatten)]
    pub report: &'a Report,
}

/// What a batch did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Jobs finished in this run.
    pub done: u64,
    /// Of those, with a host.
    pub found: u64,
    /// Of those, without a host, by error code.
    pub not_found: BTreeMap<Code, u64>,
    /// Discoveries actually run (the rest were shared within a domain).
    pub discoveries: u64,
    /// Lines that are not jobs.
    pub bad_lines: u64,
    /// Lines skipped because an earlier run wrote them.
    pub already_done: u64,
    /// Jobs left for the next run (cancellation).
    pub left: u64,
    /// Seconds this run took.
    pub seconds: f64,
}

impl Summary {
    /// Jobs per second in this run.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.done as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// What happened to one line, for progress display.
#[derive(Debug)]
pub enum Event<'a> {
    /// A job finished.
    Done(&'a Summary),
    /// A line is not a job.
    BadLine {
        /// The line number.
        line: u64,
        /// The error code.
        code: &'static str,
        /// The explanation.
        message: String,
    },
}

/// Line numbers already written by an earlier run, as a bitmap.
#[derive(Debug, Default)]
pub struct DoneLines {
    bits: Vec<u64>,
}

impl DoneLines {
    /// Marks `line` as done.
    pub fn insert(&mut self, line: u64) {
        let (word, bit) = ((line / 64) as usize, line % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
    }

    /// Whether `line` is done.
    pub fn contains(&self, line: u64) -> bool {
        self.bits
            .get((line / 64) as usize)
            .is_some_and(|w| w & (1 << (line % 64)) != 0)
    }
}

/// Prepares `path` for appending: cuts a partial last line and returns the lines it holds.
pub async fn resume_output(path: &Path) -> std::io::Result<DoneLines> {
    let mut done = DoneLines::default();
    let text = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(err) => return Err(err),
    };
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < text.len() {
        let file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
        file.set_len(complete as u64).await?;
    }
    #[derive(serde::Deserialize)]
    struct Line {
        line: u64,
    }
    for record in text[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        if let Ok(Line { line }) = serde_json::from_slice(record) {
            done.insert(line);
        }
    }
    Ok(done)
}

/// Runs the batch: `input` lines in, records out to `output`.
#[allow(clippy::too_many_arguments)]
pub async fn run_batch(
    pipeline: &Pipeline,
    cache: &DomainCache,
    input: impl AsyncBufRead + Unpin,
    output: &mut (impl AsyncWrite + Unpin),
    done_before: &DoneLines,
    config: &BatchConfig,
    cancel: &CancellationToken,
    mut on_event: impl FnMut(Event<'_>),
) -> std::io::Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let mut lines = input.lines();
    let mut running: JoinSet<(u64, Job, Arc<Report>, Source)> = JoinSet::new();
    let mut number = 0u64;
    let mut reading = true;
    let mut stop_by: Option<tokio::time::Instant> = None;
    while reading || !running.is_empty() {
        if reading && running.len() < config.concurrency.max(1) {
            let next = tokio::select! {
                line = lines.next_line() => line?,
                () = cancel.cancelled() => {
                    stop_by = Some(tokio::time::Instant::now() + config.grace);
                    None
                }
            };
            let Some(line) = next else {
                reading = false;
                continue;
            };
            number += 1;
            if done_before.contains(number) {
                summary.already_done += 1;
                continue;
            }
            match parse_line(&line) {
                Ok(Some(job)) => spawn_job(&mut running, pipeline, cache, number, job),
                Ok(None) => {}
                Err(err) => {
                    summary.bad_lines += 1;
                    on_event(Event::BadLine {
                        line: number,
                        code: err.code(),
                        message: err.to_string(),
                    });
                }
            }
            continue;
        }
        let grace_over = async {
            match stop_by {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            () = cancel.cancelled(), if reading => {
                reading = false;
                stop_by = Some(tokio::time::Instant::now() + config.grace);
                continue;
            }
            () = grace_over => {
                // Not written, so the next run does them: nothing is lost.
                summary.left += running.len() as u64;
                running.abort_all();
                break;
            }
        };
        let Some(Ok((line, job, report, source))) = joined else {
            continue;
        };
        write_record(output, line, &job, &report, source).await?;
        count(&mut summary, &report, source);
        summary.seconds = started.elapsed().as_secs_f64();
        on_event(Event::Done(&summary));
    }
    output.flush().await?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn spawn_job(
    running: &mut JoinSet<(u64, Job, Arc<Report>, Source)>,
    pipeline: &Pipeline,
    cache: &DomainCache,
    line: u64,
    job: Job,
) {
    let pipeline = pipeline.clone();
    let cache = cache.clone();
    running.spawn(async move {
        let (report, source) = match job.target.address() {
            Ok(address) => cache.discover(&pipeline, &address).await,
            Err(err) => {
                let mut report = Report::empty(job.input.clone());
                report.error = Some(crate::report::Failure {
                    code: err.code(),
                    message: err.to_string(),
                });
                (Arc::new(report), Source::Discovered)
            }
        };
        (line, job, report, source)
    });
}

async fn write_record(
    output: &mut (impl AsyncWrite + Unpin),
    line: u64,
    job: &Job,
    report: &Report,
    source: Source,
) -> std::io::Result<()> {
    let record = Record {
        line,
        input: &job.input,
        shared: source == Source::Shared,
        report,
    };
    let mut bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    output.write_all(&bytes).await?;
    output.flush().await
}

fn count(summary: &mut Summary, report: &Report, source: Source) {
    summary.done += 1;
    if source == Source::Discovered {
        summary.discoveries += 1;
    }
    match &report.error {
        None => summary.found += 1,
        Some(failure) => *summary.not_found.entry(failure.code).or_default() += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_lines_are_a_bitmap() {
        let mut done = DoneLines::default();
        done.insert(1);
        done.insert(130);
        assert!(done.contains(1) && done.contains(130));
        assert!(!done.contains(2) && !done.contains(10_000));
    }

    #[tokio::test]
    async fn a_partial_last_line_is_cut_on_resume() {
        let dir = std::env::temp_dir().join(format!("exdisco-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        std::fs::write(&path, "{\"line\":1}\n{\"line\":3}\n{\"line\":4,\"inp").unwrap();
        let done = resume_output(&path).await.unwrap();
        assert!(done.contains(1) && done.contains(3) && !done.contains(4));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"line\":1}\n{\"line\":3}\n"
        );
    }
}
