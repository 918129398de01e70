//! The one clock of stored times: Unix seconds for codes, tokens, leases, the discovery cache
//! and the sweep. Everything that reads the time for something it stores or compares with a
//! stored time asks the [`Clock`] it was given, so that a test can move time instead of
//! waiting for it ([`Clock::manual`]). Durations of network steps stay on tokio's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The clock. Cheap to clone: clones share one time.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system's clock. `Some`: a time that moves only when told.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the system's time now and moves only by [`Clock::advance`].
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(system_now()))),
        }
    }

    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        match &self.manual {
            Some(now) => now.load(Ordering::SeqCst),
            None => system_now(),
        }
    }

    /// Moves a manual clock forward by `by` (whole seconds); the system's clock is not moved.
    pub fn advance(&self, by: Duration) {
        if let Some(now) = &self.manual {
            now.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            Some(_) => write!(f, "Clock::manual({})", self.now()),
            None => f.write_str("Clock::system"),
        }
    }
}

fn system_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_with_it() {
        let clock = Clock::manual();
        let start = clock.now();
        let clone = clock.clone();
        clone.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + 90);
        let system = Clock::system();
        system.advance(Duration::from_secs(3600));
        assert!(system.now() < start + 3600);
    }
}
