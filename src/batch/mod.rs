//! Batch discovery: jobs (an address or a domain) in, one result per job out.
//!
//! - `job`: parsing input lines (plain text or JSON lines) into jobs.
//! - `cache`: the per-domain cache with in-flight de-duplication, shared by a worker's jobs.
//! - `runner`: `exdisco batch` over a file or standard input, resumable.
//!
//! The queue-backed workers (SQLite for `serve`, Redis Streams across machines) are in
//! [`crate::queue`].

pub mod cache;
pub mod job;
pub mod runner;

pub use cache::{DomainCache, Patience, Source, transient_failure};
pub use job::{Job, JobError, Target, parse_line};
pub use runner::{
    BatchConfig, DEFAULT_CONCURRENCY, DoneLines, Event, Record, Summary, resume_output, run_batch,
};
