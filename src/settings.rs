//! What every module's settings share: the error of an unusable setting, in one line, and the
//! checks each module applies to its own. `config` assembles the modules' settings; the
//! modules know nothing of it.

use std::time::Duration;

/// An unusable configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// What is wrong, in one line.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Error {
    /// A stable label.
    pub fn code(&self) -> &'static str {
        "invalid_config"
    }
}

/// Refuses a zero duration: a zero timeout or lifetime is a mistake, never "off".
pub fn positive(durations: &[(&str, Duration)]) -> Result<(), Error> {
    match durations.iter().find(|(_, d)| d.is_zero()) {
        Some((name, _)) => Err(Error::Invalid(format!("{name} must be longer than 0s"))),
        None => Ok(()),
    }
}
