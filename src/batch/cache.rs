//! The per-domain discovery cache of a worker: many addresses of one domain share one
//! discovery. A domain being discovered is awaited, not discovered again (in-flight
//! de-duplication); a finished discovery is reused until its TTL runs out. Memory is bounded:
//! past `capacity` entries, expired ones are dropped, then the oldest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::discovery::Pipeline;
use crate::domain::{Domain, EmailAddress};
use crate::report::Report;

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct DomainCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<HashMap<Domain, Entry>>,
    capacity: usize,
    default_ttl: Duration,
}

#[derive(Clone)]
struct Entry {
    cell: Arc<OnceCell<(Arc<Report>, Instant)>>,
    created: Instant,
}

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
                entries: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                default_ttl,
            }),
        }
    }

    /// The report for `address`: its domain's discovery (cached, awaited, or run now), with
    /// `address` as its email when another address of the domain ran it.
    pub async fn discover(
        &self,
        pipeline: &Pipeline,
        address: &EmailAddress,
    ) -> (Arc<Report>, Source) {
        let domain = address.domain().clone();
        let cell = self.cell(&domain);
        let mut ran = false;
        let (report, _) = cell
            .get_or_init(|| async {
                ran = true;
                let report = pipeline.discover(address, None).await;
                let ttl = report
                    .ttl_seconds
                    .map(Duration::from_secs)
                    .filter(|_| report.is_found())
                    .unwrap_or(self.inner.default_ttl);
                (Arc::new(report), Instant::now() + ttl)
            })
            .await
            .clone();
        let report = if report.email == address.to_string() {
            report
        } else {
            let mut own = (*report).clone();
            own.email = address.to_string();
            Arc::new(own)
        };
        let source = if ran {
            Source::Discovered
        } else {
            Source::Shared
        };
        (report, source)
    }

    /// Domains held now.
    pub fn len(&self) -> usize {
        self.inner.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn cell(&self, domain: &Domain) -> Arc<OnceCell<(Arc<Report>, Instant)>> {
        let now = Instant::now();
        let mut entries = self.inner.entries.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = entries.get(domain).filter(|entry| match entry.cell.get() {
            Some((_, expires)) => *expires > now,
            None => true, // in flight
        });
        if let Some(entry) = fresh {
            return entry.cell.clone();
        }
        if entries.len() >= self.inner.capacity {
            entries.retain(|_, e| e.cell.get().is_none_or(|(_, expires)| *expires > now));
            while entries.len() >= self.inner.capacity {
                let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.created)
                    .map(|(d, _)| d.clone())
                else {
                    break;
                };
                entries.remove(&oldest);
            }
        }
        let entry = Entry {
            cell: Arc::new(OnceCell::new()),
            created: now,
        };
        entries.insert(domain.clone(), entry.clone());
        entry.cell
    }
}
