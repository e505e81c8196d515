//! kubeguard's own metrics, created once at start and passed to every step that records into them.
//! Served as Prometheus text on the admin listener's `/metrics`.
//!
//! Label values that come from clients (the resource) are bounded: past
//! [`MAX_RESOURCE_LABELS`] distinct values, new ones are counted as `other`, so a client walking
//! random paths cannot grow the registry.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How many distinct `resource` label values are kept before new ones become `other`.
pub const MAX_RESOURCE_LABELS: usize = 512;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: &'static str,
    pub resource: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrafficLabels {
    pub verb: &'static str,
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `connect`, `timeout`, `request`, `credentials`, `classify`.
    pub kind: &'static str,
}

/// Every metric kubeguard exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// Time until the response headers went back to the client.
    pub request_duration: Family<VerbLabels, Histogram, fn() -> Histogram>,
    pub response_bytes: Family<TrafficLabels, Counter>,
    pub inflight: Gauge,
    pub connections_open: Gauge,
    pub connections_accepted: Counter,
    /// Connections closed at accept because `maxConnections` was reached.
    pub connections_rejected: Counter,
    pub tls_handshake_failures: Counter,
    pub upstream_errors: Family<ErrorLabels, Counter>,
    pub upgrades: Counter,
    /// The identity step's counters (`kubeguard_identity_*`).
    pub identity: crate::identity::IdentityMetrics,
    resources: RwLock<HashSet<String>>,
    other_resources: AtomicU64,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kubeguard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by verb, resource and HTTP code",
            requests.clone(),
        );
        let request_duration =
            Family::<VerbLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "request_duration",
            "Time from receiving a request to sending its response headers",
            prometheus_client::registry::Unit::Seconds,
            request_duration.clone(),
        );
        let response_bytes = Family::<TrafficLabels, Counter>::default();
        registry.register_with_unit(
            "response",
            "Response body bytes streamed to clients",
            prometheus_client::registry::Unit::Bytes,
            response_bytes.clone(),
        );
        let inflight = Gauge::default();
        registry.register(
            "inflight_requests",
            "Requests being served, including open watches and streams",
            inflight.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Open client connections",
            connections_open.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            connections_accepted.clone(),
        );
        let connections_rejected = Counter::default();
        registry.register(
            "connections_rejected",
            "Client connections closed at once because maxConnections was reached",
            connections_rejected.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "Client TLS handshakes that failed or timed out",
            tls_handshake_failures.clone(),
        );
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Requests that failed before the upstream answered, by kind",
            upstream_errors.clone(),
        );
        let upgrades = Counter::default();
        registry.register(
            "upgrades",
            "Upgraded streams (exec, attach, port-forward) bridged after the upstream's 101",
            upgrades.clone(),
        );
        let identity = crate::identity::IdentityMetrics::register(&mut registry);
        Metrics {
            registry,
            requests,
            request_duration,
            response_bytes,
            inflight,
            connections_open,
            connections_accepted,
            connections_rejected,
            tls_handshake_failures,
            upstream_errors,
            upgrades,
            identity,
            resources: RwLock::new(HashSet::new()),
            other_resources: AtomicU64::new(0),
        }
    }

    /// The resource label to record for `resource`: itself while fewer than
    /// [`MAX_RESOURCE_LABELS`] distinct values were seen, else `other`.
    pub fn resource_label(&self, resource: String) -> String {
        if let Ok(known) = self.resources.read()
            && known.contains(&resource)
        {
            return resource;
        }
        if let Ok(mut known) = self.resources.write()
            && (known.len() < MAX_RESOURCE_LABELS || known.contains(&resource))
        {
            known.insert(resource.clone());
            return resource;
        }
        self.other_resources.fetch_add(1, Ordering::Relaxed);
        "other".to_string()
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_RESOURCE_LABELS + 50 {
            m.resource_label(format!("r{i}"));
        }
        assert_eq!(m.resource_label("r1".into()), "r1");
        assert_eq!(m.resource_label("fresh".into()), "other");
        assert_eq!(m.resources.read().unwrap().len(), MAX_RESOURCE_LABELS);
    }

    #[test]
    fn encodes_with_units_and_prefix() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                verb: "list",
                resource: "pods".into(),
                code: 200,
            })
            .inc();
        m.request_duration
            .get_or_create(&VerbLabels { verb: "list" })
            .observe(0.002);
        m.response_bytes
            .get_or_create(&TrafficLabels {
                verb: "list",
                resource: "pods".into(),
            })
            .inc_by(10);
        let text = m.encode();
        assert!(
            text.contains(r#"kubeguard_requests_total{verb="list",resource="pods",code="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("kubeguard_request_duration_seconds"),
            "{text}"
        );
        assert!(text.contains("kubeguard_response_bytes_total"), "{text}");
    }
}
