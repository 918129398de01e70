//! Prometheus metrics: requests by route and status, discoveries by method and outcome, and
//! ActiveSync probe latencies. Labels come only from stable codes, never from user data.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::report::Report;

/// The metrics of one process. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    requests: Family<RequestLabels, Counter>,
    discoveries: Family<DiscoveryLabels, Counter>,
    authorizations: Family<OutcomeLabels, Counter>,
    consents: Family<OutcomeLabels, Counter>,
    probe_seconds: Histogram,
    jobs: Family<OutcomeLabels, Counter>,
    queue_depth: Family<StateLabels, prometheus_client::metrics::gauge::Gauge>,
    api_connections: prometheus_client::metrics::gauge::Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiscoveryLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("exdisco");
        let requests = Family::<RequestLabels, Counter>::default();
        let discoveries = Family::<DiscoveryLabels, Counter>::default();
        let authorizations = Family::<OutcomeLabels, Counter>::default();
        let consents = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "consents",
            "Consents to a host outside the mailbox's domain: asked, given, refused",
            consents.clone(),
        );
        let buckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let probe_seconds = Histogram::new(buckets);
        registry.register("http_requests", "HTTP API requests", requests.clone());
        registry.register(
            "discoveries",
            "Discoveries by method and outcome",
            discoveries.clone(),
        );
        registry.register(
            "authorizations",
            "Authorize calls by outcome",
            authorizations.clone(),
        );
        registry.register(
            "activesync_probe_seconds",
            "ActiveSync probe latency",
            probe_seconds.clone(),
        );
        let jobs = Family::<OutcomeLabels, Counter>::default();
        let queue_depth =
            Family::<StateLabels, prometheus_client::metrics::gauge::Gauge>::default();
        registry.register(
            "queue_jobs",
            "Queue jobs by outcome (found, error codes, retry, dead_letter)",
            jobs.clone(),
        );
        registry.register(
            "queue_depth",
            "Embedded queue jobs by state",
            queue_depth.clone(),
        );
        let api_connections = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "api_connections",
            "Open connections to the HTTP API",
            api_connections.clone(),
        );
        Self {
            api_connections,
            registry: Arc::new(Mutex::new(registry)),
            requests,
            discoveries,
            authorizations,
            consents,
            probe_seconds,
            jobs,
            queue_depth,
        }
    }

    /// Registers the counter of limits that fell back to this process's own (Redis away).
    pub fn register_limits_fallbacks(
        &self,
        fallbacks: Family<crate::shared_limits::FallbackLabels, Counter>,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(
                "limits_fallbacks",
                "Shared limits that Redis did not answer: per-process fallbacks, refused passwords",
                fallbacks,
            );
    }

    /// Counts one API request.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Counts a consent `asked`, `given` or `refused`.
    pub fn consent(&self, outcome: &'static str) {
        self.consents
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one authorize call.
    pub fn authorization(&self, outcome: &'static str) {
        self.authorizations
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Records a discovery (and its probes) from its report.
    pub fn discovery(&self, report: &Report) {
        let method = report.method.map(|m| m.as_str()).unwrap_or("none");
        let outcome = report.error.as_ref().map_or("found", |f| f.code.as_str());
        self.discoveries
            .get_or_create(&DiscoveryLabels { method, outcome })
            .inc();
        for probe in [&report.activesync, &report.verification]
            .into_iter()
            .flatten()
        {
            self.probe_seconds.observe(probe.ms as f64 / 1000.0);
        }
    }

    /// Counts one queue job by outcome.
    pub fn job(&self, outcome: &'static str) {
        self.jobs.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// One more open API connection (`opened`), or one fewer.
    pub fn api_connection(&self, opened: bool) {
        if opened {
            self.api_connections.inc();
        } else {
            self.api_connections.dec();
        }
    }

    /// Open API connections now.
    pub fn api_connections(&self) -> i64 {
        self.api_connections.get()
    }

    /// Sets the queue depth of `state`.
    pub fn queue_depth(&self, state: &str, count: u64) {
        let labels = StateLabels {
            state: state.to_owned(),
        };
        self.queue_depth.get_or_create(&labels).set(count as i64);
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}
