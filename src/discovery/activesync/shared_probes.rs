//! Anonymous ActiveSync probes shared by a pipeline's discoveries. The anonymous
//! `OPTIONS /Microsoft-Server-ActiveSync` of a host carries nothing of the mailbox, so its
//! answer is the host's, whichever domain led there: Exchange Online's
//! `outlook.office365.com` answers every one of its tenants' domains alike. Probed once per
//! domain, a batch with 20,000 such domains would queue 20,000 requests behind the per-host
//! rate (10 per second: 2,000 s); shared, it asks once per `ttl`.
//!
//! Only a probe that got an HTTP answer is kept (an unreachable host is asked again); probes
//! of one URL at the same moment wait for the first (in-flight de-duplication).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::discovery::memo::Memo;
use crate::report::{Attempt, Probe, ProbeOutcome};

/// URLs held at most.
const CAPACITY: usize = 4096;

/// What a probe found, the requests it made, and when.
type Answer = Arc<(Probe, Vec<Attempt>, Instant)>;

/// The shared probes of one pipeline.
pub struct SharedProbes {
    memo: Memo<Arc<OnceCell<Answer>>>,
}

/// A probe's answer, and whether this call made it.
pub struct Shared {
    /// The probe.
    pub probe: Probe,
    /// Its requests, as they were recorded.
    pub trail: Vec<Attempt>,
    /// `None` when this call probed; else how long ago another discovery did.
    pub age: Option<Duration>,
}

impl SharedProbes {
    /// Answers kept for `ttl` (zero: none kept, every call probes).
    pub fn new(ttl: Duration) -> Self {
        Self {
            memo: Memo::new(ttl, CAPACITY),
        }
    }

    /// How long an answer is shared.
    pub fn ttl(&self) -> Duration {
        self.memo.ttl()
    }

    /// The anonymous probe of `url`: shared, awaited, or made now by `probe`.
    pub async fn probe<F>(&self, url: &str, probe: impl FnOnce() -> F) -> Shared
    where
        F: Future<Output = (Probe, Vec<Attempt>)>,
    {
        let cell = self
            .memo
            .get_or_insert_with(url, || Arc::new(OnceCell::new()));
        let mut made = false;
        let answer = cell
            .get_or_init(|| async {
                made = true;
                let (probe, trail) = probe().await;
                Arc::new((probe, trail, Instant::now()))
            })
            .await
            .clone();
        let (probe, trail, at) = &*answer;
        if probe.outcome == ProbeOutcome::Unreachable {
            self.memo.forget_if(url, |held| Arc::ptr_eq(held, &cell));
        }
        Shared {
            probe: probe.clone(),
            trail: trail.clone(),
            age: (!made).then(|| at.elapsed()),
        }
    }
}
