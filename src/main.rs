//! The `exdisco` command: parse the command line, start telemetry, dispatch.

mod cli;
mod daemon;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: less CPU per allocation than the system allocator under many small, short-lived
/// allocations across threads (TLS records, HTTP heads, reports).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    telemetry::init(args.verbose);
    match cli::run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("exdisco: {err:#}");
            let invalid_config = err.chain().any(|e| e.is::<exdisco::config::Error>());
            ExitCode::from(if invalid_config {
                cli::EXIT_CONFIG
            } else {
                cli::EXIT_USAGE
            })
        }
    }
}
