//! The replay: every audit event goes through kubeguard's own classifier
//! ([`crate::request::classify`]), cost estimate ([`crate::cost::estimate`]), policy
//! ([`PolicyEngine::decide`]: LIST rewrite, delete guard) and per-client limits
//! ([`Limits::check`] on a clock driven by the log's timestamps), and what it cost goes into the
//! same bounded ledger the gateway keeps ([`Ledger`]: top clients + "other").
//!
//! What cannot be evaluated offline is left out and said so in the report: a delete confirmed
//! by the `kubeguard.io/confirm-delete` annotation (the object is not in the log), and the cap
//! on concurrent expensive requests (the log has no concurrency, only timestamps).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use governor::clock::FakeRelativeClock;
use http::{HeaderMap, Method};
use lru::LruCache;

use super::counts::ObjectCounts;
use super::reader::{Event, go_duration, micros};
use super::windows::Windows;
use crate::cost::limits_config::LimitMode;
use crate::cost::{CostRecord, Estimate, Ledger, Limits, Refusal, ServedFrom, estimate};
use crate::guards::upstream_facts::UpstreamFacts;
use crate::guards::{GuardCtx, Verdict};
use crate::identity::{Identity, IdentitySource};
use crate::metrics::Metrics;
use crate::observe::{BodyKind, ScanSummary, scope_key};
use crate::policy::engine::PolicyEngine;
use crate::policy::{Mode, Policy};
use crate::request::{ApiRequest, Verb, classify};

/// Resources a stock kube-apiserver serves from its watch cache (k8s-facts §1: every built-in
/// resource with a `watch` verb). CRDs are not known offline: their LISTs are never counted as
/// rewritable, so the report errs on the side of saving less.
const WATCH_CACHED: &[&str] = &[
    "pods",
    "services",
    "endpoints",
    "configmaps",
    "secrets",
    "serviceaccounts",
    "namespaces",
    "nodes",
    "events",
    "persistentvolumes",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
    "limitranges",
    "podtemplates",
    "deployments.apps",
    "replicasets.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "controllerrevisions.apps",
    "jobs.batch",
    "cronjobs.batch",
    "endpointslices.discovery.k8s.io",
    "ingresses.networking.k8s.io",
    "networkpolicies.networking.k8s.io",
    "leases.coordination.k8s.io",
    "events.events.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "horizontalpodautoscalers.autoscaling",
    "poddisruptionbudgets.policy",
    "storageclasses.storage.k8s.io",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "customresourcedefinitions.apiextensions.k8s.io",
    "priorityclasses.scheduling.k8s.io",
];

/// Refused deletes listed in the report (all are counted).
const DELETES_LISTED: usize = 100;
/// Long-running requests whose `ResponseStarted` was seen, to pair with their completion.
const STARTED_REMEMBERED: usize = 65_536;
/// Resources with their own row in the by-resource share; the rest add to `other`.
const MAX_RESOURCES: usize = 512;

/// What the replay needs to know that the log does not say.
pub struct Settings {
    pub policy: Policy,
    pub limits: crate::cost::limits_config::LimitsSection,
    pub max_clients: usize,
    pub max_keys_per_client: usize,
    /// The apiserver's minor version (LIST semantics, k8s-facts §1).
    pub minor: u32,
    pub counts: ObjectCounts,
    pub window: Duration,
}

/// What a client would have been refused, and the latency the apiserver itself reported.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    pub would_throttle: u64,
    pub would_refuse: u64,
    pub deletes_refused: u64,
    pub etcd_seconds: f64,
    pub apf_wait_seconds: f64,
}

impl Extra {
    pub fn merge(&mut self, o: &Extra) {
        self.would_throttle += o.would_throttle;
        self.would_refuse += o.would_refuse;
        self.deletes_refused += o.deletes_refused;
        self.etcd_seconds += o.etcd_seconds;
        self.apf_wait_seconds += o.apf_wait_seconds;
    }
}

/// Requests, cost and apiserver seconds of one verb or resource.
#[derive(Clone, Debug, Default)]
pub struct Share {
    pub requests: u64,
    pub cost: f64,
    pub seconds: f64,
}

/// One delete the delete guard would have refused.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedDelete {
    pub time: String,
    pub user: String,
    pub verb: String,
    pub target: String,
    /// What the apiserver answered.
    pub code: u16,
    pub reason: String,
}

/// Long-running requests (watch, exec, attach, port-forward, proxy, `logs -f`), counted apart:
/// their duration is the client's choice, not apiserver work.
#[derive(Clone, Debug, Default)]
pub struct Streams {
    pub started: u64,
    pub completed: u64,
    pub seconds: f64,
}

/// Everything the replay accumulates. Bounded: the ledger and `extras` by `max_clients`,
/// windows by [`Windows`], shares by [`MAX_RESOURCES`], refused deletes by [`DELETES_LISTED`].
pub struct Analysis {
    engine: PolicyEngine,
    metrics: Metrics,
    limits: Option<Limits<FakeRelativeClock>>,
    clock: FakeRelativeClock,
    counts: ObjectCounts,
    minor: u32,
    pub ledger: Ledger,
    pub extras: LruCache<Box<str>, Extra>,
    pub extras_other: Extra,
    pub windows: Windows,
    pub by_verb: HashMap<&'static str, Share>,
    pub by_resource: HashMap<String, Share>,
    pub streams: HashMap<&'static str, Streams>,
    started_ids: LruCache<Box<str>, ()>,
    pub refused_deletes: Vec<RefusedDelete>,
    pub deletes_refused: u64,
    pub unclassified: u64,
    pub lists_rewritten: u64,
    pub etcd_objects_avoided: u64,
    pub would_throttle: u64,
    pub would_refuse: u64,
    pub seconds: f64,
    pub etcd_seconds: f64,
    pub apf_wait_seconds: f64,
    /// First and last request time, µs since the epoch.
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    /// The replay's clock: `origin` is the first event's time.
    origin: Instant,
    clock_us: i64,
    /// Collection sizes came from the log's response objects.
    pub learned_sizes: u64,
    pub assumed_sizes: u64,
}

impl Analysis {
    pub fn new(s: Settings) -> Self {
        let facts = std::sync::Arc::new(UpstreamFacts::fixed(s.minor, WATCH_CACHED));
        let engine = PolicyEngine::new(s.policy, facts);
        // Given counts are what the LIST rewrite would have learned from live responses.
        for (resource, n) in s.counts.totals() {
            let summary = ScanSummary {
                format: Some(BodyKind::Json),
                items: n,
                ..ScanSummary::default()
            };
            engine
                .learner
                .record(resource, &scope_key(None), true, &summary);
        }
        let clock = FakeRelativeClock::default();
        let limits =
            (s.limits.mode != LimitMode::Off).then(|| Limits::with_clock(&s.limits, clock.clone()));
        let cap = NonZeroUsize::new(s.max_clients.max(1)).unwrap_or(NonZeroUsize::MIN);
        Analysis {
            engine,
            metrics: Metrics::new(),
            limits,
            clock,
            counts: s.counts,
            minor: s.minor,
            ledger: Ledger::new(s.max_clients, s.max_keys_per_client),
            extras: LruCache::new(cap),
            extras_other: Extra::default(),
            windows: Windows::new(s.window),
            by_verb: HashMap::new(),
            by_resource: HashMap::new(),
            streams: HashMap::new(),
            started_ids: LruCache::new(
                NonZeroUsize::new(STARTED_REMEMBERED).unwrap_or(NonZeroUsize::MIN),
            ),
            refused_deletes: Vec::new(),
            deletes_refused: 0,
            unclassified: 0,
            lists_rewritten: 0,
            etcd_objects_avoided: 0,
            would_throttle: 0,
            would_refuse: 0,
            seconds: 0.0,
            etcd_seconds: 0.0,
            apf_wait_seconds: 0.0,
            first_us: None,
            last_us: None,
            origin: Instant::now(),
            clock_us: 0,
            learned_sizes: 0,
            assumed_sizes: 0,
        }
    }

    /// One `ResponseComplete` or `ResponseStarted` event.
    pub fn event(&mut self, ev: &Event<'_>) {
        let Some(received) = micros(&ev.request_received_timestamp) else {
            return;
        };
        let finished = micros(&ev.stage_timestamp)
            .unwrap_or(received)
            .max(received);
        let uri = ev.request_uri.as_ref();
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let Ok(api) = classify(&method_of(&ev.verb), path, query) else {
            self.unclassified += 1;
            return;
        };
        let long = api.is_long_running();
        let started = ev.stage == "ResponseStarted";
        if long {
            let kind = stream_kind(api.verb);
            let s = self.streams.entry(kind).or_default();
            if started {
                s.started += 1;
                self.started_ids.put(ev.audit_id.as_ref().into(), ());
            } else {
                s.completed += 1;
                s.seconds += (finished - received) as f64 / 1e6;
                if self.started_ids.pop(ev.audit_id.as_ref()).is_some() {
                    // Priced when it started.
                    return;
                }
            }
        } else if started {
            return;
        }
        self.advance(received);
        let elapsed = if long {
            Duration::ZERO
        } else {
            Duration::from_micros(u64::try_from(finished - received).unwrap_or(0))
        };
        self.price(ev, &api, query, received, elapsed);
    }

    /// Moves the replay clock (limits, guard windows) forward to `t`; never back.
    fn advance(&mut self, t: i64) {
        let first = *self.first_us.get_or_insert(t);
        self.last_us = Some(self.last_us.map_or(t, |l| l.max(t)));
        let at = t - first;
        if at > self.clock_us {
            self.clock.advance(Duration::from_micros(
                u64::try_from(at - self.clock_us).unwrap_or(0),
            ));
            self.clock_us = at;
        }
    }

    fn now(&self) -> Instant {
        self.origin + Duration::from_micros(u64::try_from(self.clock_us).unwrap_or(0))
    }

    fn sizes<'s>(&'s self) -> impl Fn(&str, Option<&str>) -> Option<u64> + 's {
        move |resource: &str, ns: Option<&str>| {
            self.counts.size(resource, ns).or_else(|| {
                self.engine
                    .learner
                    .collection_size(resource, &scope_key(ns))
                    .map(|c| c.items)
            })
        }
    }

    fn price(
        &mut self,
        ev: &Event<'_>,
        api: &ApiRequest,
        query: Option<&str>,
        received: i64,
        elapsed: Duration,
    ) {
        let user = ev.effective_user();
        let identity = Identity {
            user: user.username.to_string(),
            groups: user.groups.iter().map(|g| g.to_string()).collect(),
            uid: None,
            extra: Default::default(),
            source: IdentitySource::Token,
        };
        let code = ev.code();
        let resource = api.resource_label();
        // Learn collection sizes from list responses when the log has them.
        if let Some((items, complete)) = ev.response_items()
            && api.verb == Verb::List
            && complete
            && code < 300
        {
            let o = &api.options;
            let unfiltered = o.label_selector.as_deref().is_none_or(str::is_empty)
                && o.field_selector.as_deref().is_none_or(str::is_empty);
            let summary = ScanSummary {
                format: Some(BodyKind::Json),
                items,
                ..ScanSummary::default()
            };
            let scope = scope_key(api.resource().and_then(|r| r.namespace.as_deref()));
            self.engine
                .learner
                .record(resource, &scope, unfiltered, &summary);
            self.learned_sizes += 1;
        }
        // A request refused before storage (4xx other than a version error) read nothing.
        let est = if (400..500).contains(&code) && code != 410 {
            Estimate::default()
        } else {
            estimate(api, self.minor, &self.sizes())
        };
        if !est.size_known {
            self.assumed_sizes += 1;
        }
        let now = self.now();
        let body = ev
            .dry_run_body()
            .then(|| bytes::Bytes::from_static(br#"{"dryRun":["All"]}"#));
        let headers = HeaderMap::new();
        let ctx = GuardCtx {
            identity: &identity,
            api,
            query,
            headers: &headers,
            user_agent: ev.user_agent.as_deref().unwrap_or(""),
            body: body.as_ref(),
            delete_lookup: None,
            now,
        };
        let decisions = self.engine.decide(&ctx, &self.metrics);
        let mut avoided = 0;
        let mut rewritten = None;
        let mut blocked = None;
        for d in &decisions.0 {
            if d.mode == Mode::Off {
                continue;
            }
            match &d.verdict {
                Verdict::Rewrite(r) => rewritten = Some(r.query.clone()),
                Verdict::Block(_) => blocked = Some(d.reason.clone()),
                Verdict::Throttle { .. } | Verdict::Forward => {}
            }
        }
        let mut after = est;
        if let Some(q) = &rewritten
            && let Ok(new_api) = classify(&Method::GET, api_path(ev), Some(q))
        {
            after = estimate(&new_api, self.minor, &self.sizes());
            avoided = est.etcd_objects.saturating_sub(after.etcd_objects);
            self.lists_rewritten += 1;
            self.etcd_objects_avoided += avoided;
        }
        let mut extra = Extra::default();
        if let Some(reason) = blocked {
            extra.deletes_refused += 1;
            self.deletes_refused += 1;
            if self.refused_deletes.len() < DELETES_LISTED {
                self.refused_deletes.push(RefusedDelete {
                    time: ev.request_received_timestamp.to_string(),
                    user: identity.user.clone(),
                    verb: api.verb.as_str().to_string(),
                    target: request_target(api),
                    code,
                    reason: reason.into_owned(),
                });
            }
        } else if let Some(limits) = &self.limits {
            match limits.check(&identity, api, &after) {
                Ok(_permit) => {}
                Err(Refusal::Throttle(_)) => {
                    extra.would_throttle += 1;
                    self.would_throttle += 1;
                }
                Err(Refusal::Refuse { .. }) => {
                    extra.would_refuse += 1;
                    self.would_refuse += 1;
                }
            }
        }
        if matches!(api.verb, Verb::List | Verb::Watch) && (code == 410 || code == 504) {
            // The relist-recovery window of the LIST rewrite (k8s-facts §1).
            self.engine
                .windows
                .mark_error(&identity.user, resource, now);
        }
        if let Some(a) = &ev.annotations {
            let secs = |v: &Option<std::borrow::Cow<'_, str>>| {
                v.as_deref()
                    .and_then(go_duration)
                    .map_or(0.0, |d| d.as_secs_f64())
            };
            extra.etcd_seconds = secs(&a.etcd);
            extra.apf_wait_seconds = secs(&a.apf_queue_wait);
            self.etcd_seconds += extra.etcd_seconds;
            self.apf_wait_seconds += extra.apf_wait_seconds;
        }
        let (items, items_exact) = returned(ev, api, &est);
        let mut rec = CostRecord::new(identity.user.clone(), api.verb, resource.to_string());
        rec.code = code;
        rec.items = items;
        rec.items_exact = items_exact;
        rec.duration = elapsed;
        rec.etcd_objects_read = est.etcd_objects;
        rec.etcd_objects_avoided = avoided;
        rec.rewritten = rewritten.is_some();
        self.ledger.record(&rec);
        let cost = est.etcd_objects as f64
            + 1.0
            + items as f64 / crate::cost::estimate::CACHE_OBJECTS_PER_UNIT as f64;
        let secs = elapsed.as_secs_f64();
        self.seconds += secs;
        self.windows.add(received, &identity.user, cost, secs);
        add_share(
            self.by_verb.entry(api.verb.as_str()).or_default(),
            cost,
            secs,
        );
        let key =
            if self.by_resource.len() < MAX_RESOURCES || self.by_resource.contains_key(resource) {
                resource.to_string()
            } else {
                "other".to_string()
            };
        add_share(self.by_resource.entry(key).or_default(), cost, secs);
        self.add_extra(&identity.user, &extra);
    }

    fn add_extra(&mut self, user: &str, extra: &Extra) {
        if let Some(e) = self.extras.get_mut(user) {
            e.merge(extra);
            return;
        }
        if let Some((_, evicted)) = self.extras.push(user.into(), extra.clone()) {
            self.extras_other.merge(&evicted);
        }
    }
}

fn add_share(s: &mut Share, cost: f64, secs: f64) {
    s.requests += 1;
    s.cost += cost;
    s.seconds += secs;
}

/// The path of the event's URI (the query is replaced by a rewrite).
fn api_path<'e>(ev: &'e Event<'_>) -> &'e str {
    ev.request_uri
        .split_once('?')
        .map_or(ev.request_uri.as_ref(), |(p, _)| p)
}

/// The HTTP method behind an audit verb (RequestInfo read backwards; k8s-facts §6).
fn method_of(verb: &str) -> Method {
    match verb {
        "create" => Method::POST,
        "update" => Method::PUT,
        "patch" => Method::PATCH,
        "delete" | "deletecollection" => Method::DELETE,
        _ => Method::GET,
    }
}

fn stream_kind(verb: Verb) -> &'static str {
    match verb {
        Verb::Watch => "watch",
        Verb::Exec | Verb::Attach => "exec/attach",
        Verb::PortForward => "portforward",
        Verb::Proxy => "proxy",
        _ => "logs -f",
    }
}

/// Objects the response returned: counted when the log has the response, else estimated.
fn returned(ev: &Event<'_>, api: &ApiRequest, est: &Estimate) -> (u64, bool) {
    if let Some((items, _)) = ev.response_items() {
        return (items, true);
    }
    if api.verb != Verb::List || ev.code() >= 300 {
        return (
            u64::from(
                matches!(
                    api.verb,
                    Verb::Get | Verb::Create | Verb::Update | Verb::Patch
                ) && ev.code() < 300,
            ),
            false,
        );
    }
    let n = match est.served_from {
        ServedFrom::Etcd => {
            let size = est.collection_size.unwrap_or(est.etcd_objects);
            api.options
                .limit
                .filter(|l| *l > 0)
                .map_or(size, |l| size.min(l))
        }
        ServedFrom::Cache => est.cache_objects,
        ServedFrom::Nothing => 0,
    };
    (n, false)
}

/// `namespace team-a`, `pods web-1 in namespace a`, `all pods in namespace a`.
fn request_target(api: &ApiRequest) -> String {
    let Some(r) = api.resource() else {
        return api.resource_label().to_string();
    };
    let kind = api.resource_label();
    let ns = if r.group.is_empty() && r.resource == "namespaces" {
        None
    } else {
        r.namespace.as_deref()
    };
    let kind = if kind == "namespaces" {
        "namespace".to_string()
    } else {
        kind.to_string()
    };
    match (&r.name, ns) {
        (Some(n), Some(ns)) => format!("{kind} {n} in namespace {ns}"),
        (Some(n), None) => format!("{kind} {n}"),
        (None, Some(ns)) => format!("all {kind} in namespace {ns}"),
        (None, None) => format!("all {kind}"),
    }
}
