//! The per-domain discovery cache of a worker: many addresses of one domain share one
//! discovery. A domain being discovered is awaited, not discovered again (in-flight
//! de-duplication); a finished discovery is reused until its TTL runs out. Memory is bounded:
//! past `capacity` entries the oldest go (an expired one is replaced when its domain comes
//! again); an entry holds the
//! answer without its trail (the trail is the report of the job that ran the discovery; the
//! jobs that share it get the answer, an empty trail, and `shared`).
//!
//! A domain that fails for a passing reason, quickly (SERVFAIL, a refused connection, a server
//! error), is tried again after a back-off, within [`Patience`]; then its report is the result,
//! saying what failed and how many times, for every address of the domain. A discovery that
//! failed slowly (timeouts, the deadline) is not tried again: a black hole costs its timeout
//! once. Nothing here is a dead letter: a broken domain is an answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::bounded_map::BoundedMap;
use crate::code::Code;
use crate::discovery::Pipeline;
use crate::domain::{Domain, EmailAddress};
use crate::report::{Outcome, Report};

/// How patient a worker is with a domain that fails for a passing reason.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Discoveries of one domain at most. Default: 3.
    pub tries: u32,
    /// The wait before the second try; it doubles after. Default: 1 s.
    pub backoff: Duration,
    /// A failure that took longer than this is not tried again. Default: 2 s.
    pub slow_after: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            tries: 3,
            backoff: Duration::from_secs(1),
            slow_after: Duration::from_secs(2),
        }
    }
}

/// The reason a failed discovery may succeed later, if it may: every attempt failed for a
/// passing reason ([`Code::is_retryable`]) and none answered.
pub fn transient_failure(report: &Report) -> Option<Code> {
    let failure = report.error.as_ref()?;
    if failure.code == Code::Deadline {
        return Some(Code::Deadline);
    }
    let failed: Vec<Code> = report
        .trail
        .iter()
        .filter(|a| a.outcome == Outcome::Failed)
        .filter_map(|a| a.code)
        .collect();
    let answered = report.trail.iter().any(|a| a.outcome == Outcome::Answered);
    let passing = failed.iter().all(|code| code.is_retryable());
    (!answered && !failed.is_empty() && passing).then_some(failure.code)
}

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct DomainCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<BoundedMap<Domain, Entry>>,
    capacity: usize,
    default_ttl: Duration,
    patience: Patience,
}

/// A domain's discovery: in flight while empty, then its report and when it expires.
type Entry = Arc<OnceCell<(Arc<Report>, Instant)>>;

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This call ran the discovery.
    Discovered,
    /// Another job of the same domain ran it (before or at the same time).
    Shared,
}

impl DomainCache {
    /// A cache of at most `capacity` domains; reports without a TTL live `default_ttl`.
    pub fn new(capacity: usize, default_ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: Mutex::new(BoundedMap::new(capacity)),
                capacity: capacity.max(1),
                default_ttl,
                patience: Patience::default(),
            }),
        }
    }

    /// The same cache, `patience` with domains that fail for a passing reason.
    pub fn with_patience(self, patience: Patience) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            entries: Mutex::new(BoundedMap::new(shared.capacity)),
            capacity: shared.capacity,
            default_ttl: shared.default_ttl,
            patience,
        });
        Self {
            inner: Arc::new(Inner { patience, ..inner }),
        }
    }

    /// The report for `address`: its domain's discovery run now (with its trail), or
    /// another job's, cached or awaited ([`Source::Shared`], without the trail), with
    /// `address` as its email.
    pub async fn discover(
        &self,
        pipeline: &Pipeline,
        address: &EmailAddress,
    ) -> (Arc<Report>, Source) {
        let domain = address.domain().clone();
        let cell = self.cell(&domain);
        let mut ran = None;
        let (kept, _) = cell
            .get_or_init(|| async {
                let mut report = self.discover_patiently(pipeline, address).await;
                let ttl = report
                    .ttl_seconds
                    .map(Duration::from_secs)
                    .filter(|_| report.is_found())
                    .unwrap_or(self.inner.default_ttl);
                // The cache keeps the answer, not the trail: the trail is this job's, and
                // 100,000 finished domains' trails would be most of a batch's memory.
                let trail = std::mem::take(&mut report.trail);
                let kept = Arc::new(report.clone());
                report.trail = trail;
                ran = Some(report);
                (kept, Instant::now() + ttl)
            })
            .await
            .clone();
        if let Some(report) = ran {
            return (Arc::new(report), Source::Discovered);
        }
        let report = if kept.email == address.to_string() {
            kept
        } else {
            let mut own = (*kept).clone();
            own.email = address.to_string();
            Arc::new(own)
        };
        (report, Source::Shared)
    }

    /// Discovers `address`, again after a back-off while it fails quickly for a passing
    /// reason, within the patience; the last report, its failure saying how many tries.
    async fn discover_patiently(&self, pipeline: &Pipeline, address: &EmailAddress) -> Report {
        let patience = self.inner.patience;
        let mut wait = patience.backoff;
        let mut tries = 1;
        loop {
            let started = Instant::now();
            let mut report = pipeline.discover(address, None).await;
            let passing = transient_failure(&report).is_some();
            let quick = started.elapsed() < patience.slow_after;
            if !(passing && quick) || tries >= patience.tries.max(1) {
                if passing
                    && tries > 1
                    && let Some(failure) = report.error.as_mut()
                {
                    failure.message = format!("{} (after {tries} tries)", failure.message);
                }
                return report;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
            tries += 1;
        }
    }

    /// Domains held now.
    pub fn len(&self) -> usize {
        self.inner.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cell(&self, domain: &Domain) -> Entry {
        let now = Instant::now();
        let mut entries = self.inner.entries.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = entries.get(domain).filter(|cell| match cell.get() {
            Some((_, expires)) => *expires > now,
            None => true, // in flight
        });
        if let Some(cell) = fresh {
            return cell.clone();
        }
        let cell = Entry::default();
        entries.insert(domain.clone(), cell.clone());
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Attempt, Failure, Method, Step};

    fn failed_with(codes: &[Code]) -> Report {
        let mut report = Report::empty("a@example.test".into());
        report.error = Some(Failure {
            code: Code::NotFound,
            message: String::new(),
        });
        report.trail = codes
            .iter()
            .map(|code| Attempt {
                step: Step::Pox,
                method: Method::PoxDomain,
                target: "https://example.test/autodiscover/autodiscover.xml".into(),
                outcome: Outcome::Failed,
                code: Some(*code),
                detail: None,
                authenticated: false,
                ms: 1,
                start_ms: 0,
            })
            .collect();
        report
    }

    #[test]
    fn past_its_capacity_the_oldest_domain_goes() {
        let cache = DomainCache::new(2, Duration::from_secs(60));
        let domain = |name: &str| Domain::parse(name).unwrap();
        let first = cache.cell(&domain("one.example"));
        cache.cell(&domain("two.example"));
        cache.cell(&domain("three.example"));
        assert_eq!(cache.len(), 2);
        assert!(!Arc::ptr_eq(&first, &cache.cell(&domain("one.example"))));
        for i in 0..10 {
            cache.cell(&domain(&format!("d{i}.example")));
        }
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn passing_failures_are_what_the_engine_calls_retryable() {
        // Refused connections and server errors were dropped by a string copy of this rule.
        for code in [
            Code::ConnectionRefused,
            Code::HttpServerError,
            Code::Timeout,
        ] {
            let report = failed_with(&[code, Code::DnsServFail]);
            assert!(transient_failure(&report).is_some(), "{code:?}");
        }
        let gone = failed_with(&[Code::Timeout, Code::DnsNxDomain]);
        assert_eq!(
            transient_failure(&gone),
            None,
            "a missing name stays missing"
        );
        assert_eq!(transient_failure(&failed_with(&[Code::HttpNotFound])), None);
    }
}
