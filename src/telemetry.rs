//! Tracing to standard error, human-readable or JSON. `RUST_LOG` wins; otherwise `-v` raises
//! the level. The format can be switched to JSON once the daemon's configuration is read.

use std::sync::atomic::{AtomicBool, Ordering};

use exdisco::config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the subscriber once: both formats, one of them active.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let human = tracing_subscriber::fmt::layer()
        .with_writer(Gate { json: false })
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(Gate { json: true });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .try_init();
}

/// Switches the log format.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// A writer to stderr that writes only when its format is the active one.
#[derive(Clone, Copy)]
struct Gate {
    json: bool,
}

impl<'a> MakeWriter<'a> for Gate {
    type Writer = Box<dyn std::io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        if JSON.load(Ordering::Relaxed) == self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::sink())
        }
    }
}
