//! kubeguard's own metrics, created once at start and passed to every step that records into them.
//! Served as Prometheus text on the admin listener's `/metrics`.
//!
//! Label values that come from clients (the resource) are bounded: past
//! [`MAX_RESOURCE_LABELS`] distinct values, new ones are counted as `other`, so a client walking
//! random paths cannot grow the registry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub guard: &'static str,
    /// `forward`, `rewrite`, `throttle`, `block`.
    pub verdict: &'static str,
    /// `enforce`, `shadow`.
    pub mode: &'static str,
}

/// `a == b` for labels of `&'static str`s: the same literal is usually at one address, so the
/// pointers are compared first and the text only when they differ.
fn same_labels(a: &DecisionLabels, b: &DecisionLabels) -> bool {
    let same = |x: &str, y: &str| std::ptr::eq(x, y) || x == y;
    same(a.guard, b.guard) && same(a.verdict, b.verdict) && same(a.mode, b.mode)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, `error`.
    pub result: &'static str,
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
    /// Guard decisions, by guard, verdict and mode.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Policy reloads, by result.
    pub policy_reloads: Family<ResultLabels, Counter>,
    /// Per resource label, the metric handles of each verb seen with it (bounded by
    /// [`MAX_RESOURCE_LABELS`]).
    routes: RwLock<RouteMap>,
    /// Handles into `decisions`, by labels.
    decision_counters: RwLock<Vec<(DecisionLabels, Counter)>>,
    other_resources: AtomicU64,
}

/// Route handles by resource label, looked up on every request: a randomly seeded fast hasher
/// (the labels come from request paths).
type RouteMap = HashMap<String, Vec<Arc<Route>>, crate::observe::lru::RandomState>;

/// The metric handles one (verb, resource) records into, resolved once and shared, so a
/// request takes one map lookup instead of one hashed label lookup per metric.
#[derive(Debug)]
pub struct Route {
    pub verb: &'static str,
    /// The resource label recorded: the request's, or `other` past [`MAX_RESOURCE_LABELS`].
    pub resource: Arc<str>,
    pub response_bytes: Counter,
    pub duration: Histogram,
    /// `requests_total` with code 200, the common case; other codes are looked up.
    pub ok: Counter,
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
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Guard decisions, by guard, verdict and mode (shadow verdicts were only reported)",
            decisions.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy reloads, by result (error: the running policy was kept)",
            policy_reloads.clone(),
        );
        Metrics {
            registry,
            decisions,
            policy_reloads,
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
            routes: RwLock::new(RouteMap::with_hasher(crate::observe::lru::random_state())),
            decision_counters: RwLock::new(Vec::new()),
            other_resources: AtomicU64::new(0),
        }
    }

    /// The metric handles for `verb` on `resource`. Past [`MAX_RESOURCE_LABELS`] distinct
    /// resources, new ones share the `other` label, so a client walking random paths cannot
    /// grow the registry.
    pub fn route(&self, verb: &'static str, resource: &str) -> Arc<Route> {
        let find = |routes: &RouteMap, resource: &str| {
            routes
                .get(resource)
                .and_then(|v| v.iter().find(|r| r.verb == verb).cloned())
        };
        let full = {
            let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = find(&routes, resource) {
                return r;
            }
            routes.len() >= MAX_RESOURCE_LABELS && !routes.contains_key(resource)
        };
        let resource = if full {
            self.other_resources.fetch_add(1, Ordering::Relaxed);
            "other"
        } else {
            resource
        };
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = find(&routes, resource) {
            return r;
        }
        let route = Arc::new(Route {
            verb,
            resource: Arc::from(resource),
            response_bytes: self.response_bytes.get_or_create_owned(&TrafficLabels {
                verb,
                resource: resource.to_string(),
            }),
            duration: self
                .request_duration
                .get_or_create_owned(&VerbLabels { verb }),
            ok: self.requests.get_or_create_owned(&RequestLabels {
                verb,
                resource: resource.to_string(),
                code: 200,
            }),
        });
        routes
            .entry(resource.to_string())
            .or_default()
            .push(route.clone());
        route
    }

    /// Counts one guard decision. The label space is small and fixed (guards × verdicts ×
    /// modes), so the counters are kept in a short list compared by value, not hashed.
    pub fn count_decision(&self, guard: &'static str, verdict: &'static str, mode: &'static str) {
        let labels = DecisionLabels {
            guard,
            verdict,
            mode,
        };
        {
            let counters = self
                .decision_counters
                .read()
                .unwrap_or_else(|e| e.into_inner());
            // Counted in place: no handle cloned and dropped for a counter already listed.
            if let Some((_, c)) = counters.iter().find(|(l, _)| same_labels(l, &labels)) {
                c.inc();
                return;
            }
        }
        let counter = self.decisions.get_or_create_owned(&labels);
        self.decision_counters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((labels, counter.clone()));
        counter.inc();
    }

    /// Counts one answered request on `route` with `code`.
    pub fn count_request(&self, route: &Route, code: u16) {
        if code == 200 {
            route.ok.inc();
        } else {
            self.requests
                .get_or_create(&RequestLabels {
                    verb: route.verb,
                    resource: route.resource.to_string(),
                    code,
                })
                .inc();
        }
    }

    pub fn policy_reload(&self, result: &'static str) {
        self.policy_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
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
            m.route("get", &format!("r{i}"));
        }
        assert_eq!(&*m.route("get", "r1").resource, "r1");
        assert_eq!(&*m.route("list", "r1").resource, "r1");
        assert_eq!(&*m.route("get", "fresh").resource, "other");
        assert_eq!(m.routes.read().unwrap().len(), MAX_RESOURCE_LABELS + 1);
        assert!(Arc::ptr_eq(&m.route("get", "r7"), &m.route("get", "r7")));
    }

    #[test]
    fn decisions_are_counted_per_label_set_whatever_the_strings_address() {
        let m = Metrics::new();
        // The same text at another address (not the literal's) counts into the same counter.
        let guard: &'static str = Box::leak(String::from("listRewrite").into_boxed_str());
        m.count_decision("listRewrite", "forward", "shadow");
        m.count_decision(guard, "forward", "shadow");
        m.count_decision("listRewrite", "rewrite", "shadow");
        let text = m.encode();
        for line in [
            r#"kubeguard_decisions_total{guard="listRewrite",verdict="forward",mode="shadow"} 2"#,
            r#"kubeguard_decisions_total{guard="listRewrite",verdict="rewrite",mode="shadow"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn routes_record_into_the_registered_families() {
        let m = Metrics::new();
        let r = m.route("get", "pods");
        m.count_request(&r, 200);
        m.count_request(&r, 404);
        r.response_bytes.inc_by(7);
        let text = m.encode();
        for line in [
            r#"kubeguard_requests_total{verb="get",resource="pods",code="200"} 1"#,
            r#"kubeguard_requests_total{verb="get",resource="pods",code="404"} 1"#,
            r#"kubeguard_response_bytes_total{verb="get",resource="pods"} 7"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
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
