//! The `exdisco` command: parse the command line, start telemetry, dispatch.

mod cli;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Args::parse();
    telemetry::init(args.verbose);
    match cli::run(args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("exdisco: {err:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
