//! One test per never-rewrite rule of k8s-facts §1, and the strategy per upstream version.
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::*;
use crate::identity::Identity;
use crate::observe::{BodyKind, ScanSummary};
use crate::policy::{Policy, PolicySection};
use crate::request::classify;

struct Fixture {
    guard: ListRewrite,
    settings: ListRewriteSettings,
}

fn fixture(minor: u32) -> Fixture {
    let section: PolicySection = serde_norway::from_str("mode: enforce").unwrap();
    let policy = Policy::compile(&section).unwrap();
    Fixture {
        guard: ListRewrite {
            facts: Arc::new(UpstreamFacts::fixed(
                minor,
                &["pods", "nodes", "deployments.apps"],
            )),
            learner: Arc::new(Learner::new()),
            windows: Arc::new(ClientWindows::new(100)),
        },
        settings: policy.list_rewrite.clone(),
    }
}

impl Fixture {
    fn check_as(
        &self,
        user: &str,
        ua: &str,
        method: &str,
        path: &str,
        query: Option<&str>,
    ) -> Outcome {
        let api = classify(&method.parse().unwrap(), path, query).unwrap();
        let id = Identity::unverified(user);
        let headers = HeaderMap::new();
        let ctx = GuardCtx {
            identity: &id,
            api: &api,
            query,
            headers: &headers,
            user_agent: ua,
            body: None,
            delete_lookup: None,
            now: Instant::now(),
        };
        self.guard.check(&ctx, &self.settings)
    }
    fn check(&self, path: &str, query: Option<&str>) -> Outcome {
        self.check_as("alice", "kubectl/v1.32", "GET", path, query)
    }
    fn learn_size(&self, resource: &str, scope: &str, items: u64, rv: u64) {
        let s = ScanSummary {
            format: Some(BodyKind::Json),
            items,
            list_resource_version: Some(rv),
            ..Default::default()
        };
        self.guard.learner.record(resource, scope, true, &s);
    }
}

fn rewritten(o: &Outcome) -> Option<&str> {
    match &o.verdict {
        Verdict::Rewrite(r) => Some(&r.query),
        _ => None,
    }
}

#[test]
fn unlimited_unversioned_list_becomes_rv0_on_130() {
    let f = fixture(30);
    let o = f.check("/api/v1/pods", None);
    assert_eq!(rewritten(&o), Some("resourceVersion=0"));
    let o = f.check("/api/v1/namespaces/a/pods", Some("labelSelector=app%3Dx"));
    assert_eq!(
        rewritten(&o),
        Some("labelSelector=app%3Dx&resourceVersion=0")
    );
    assert!(!o.report_only);
}

#[test]
fn limited_list_needs_a_small_learned_collection() {
    let f = fixture(30);
    let o = f.check("/api/v1/pods", Some("limit=500"));
    assert_eq!(o.verdict, Verdict::Forward, "size unknown");
    f.learn_size("pods", "*", 100_000, 5);
    assert_eq!(
        f.check("/api/v1/pods", Some("limit=500")).verdict,
        Verdict::Forward
    );
    f.learn_size("pods", "*", 30, 5);
    let o = f.check("/api/v1/pods", Some("limit=500"));
    assert_eq!(rewritten(&o), Some("limit=500&resourceVersion=0"));
    // The size is per scope: a namespace's collection is not known.
    let o = f.check("/api/v1/namespaces/a/pods", Some("limit=500"));
    assert_eq!(o.verdict, Verdict::Forward);
}

#[test]
fn not_older_than_on_131_to_133_when_an_rv_is_known() {
    let f = fixture(32);
    let o = f.check("/api/v1/pods", Some("limit=500"));
    assert_eq!(
        o.verdict,
        Verdict::Forward,
        "no rv known, size unknown: as ≤1.30"
    );
    f.learn_size("pods", "*", 1_000_000, 4242);
    let o = f.check("/api/v1/pods", Some("limit=500"));
    assert_eq!(
        rewritten(&o),
        Some("limit=500&resourceVersion=4242&resourceVersionMatch=NotOlderThan")
    );
}

#[test]
fn from_134_only_reported() {
    let f = fixture(34);
    let o = f.check("/api/v1/pods", None);
    assert!(o.report_only);
    assert!(o.reason.contains("would save"), "{}", o.reason);
}

#[test]
fn never_with_a_continue_token() {
    let o = fixture(30).check("/api/v1/pods", Some("limit=500&continue=abc"));
    assert_eq!(o, Outcome::forward("continue token"));
}

#[test]
fn never_when_resource_version_or_match_is_set() {
    let f = fixture(30);
    for q in [
        "resourceVersion=0",
        "resourceVersion=123",
        "resourceVersion=5&resourceVersionMatch=Exact",
        "resourceVersionMatch=NotOlderThan",
    ] {
        assert_eq!(
            f.check("/api/v1/pods", Some(q)),
            Outcome::forward("resourceVersion already set"),
            "{q}"
        );
    }
}

#[test]
fn never_a_watch() {
    let f = fixture(30);
    assert_eq!(
        f.check("/api/v1/pods", Some("watch=true")).verdict,
        Verdict::Forward
    );
    assert_eq!(
        f.check("/api/v1/watch/pods", None).verdict,
        Verdict::Forward
    );
    assert_eq!(
        f.check("/api/v1/pods", Some("sendInitialEvents=true")),
        Outcome::forward("watch")
    );
}

#[test]
fn never_a_resource_outside_the_watch_cache() {
    let f = fixture(30);
    let o = f.check("/apis/metrics.k8s.io/v1beta1/pods", None);
    assert_eq!(o, Outcome::forward("not served from the watch cache"));
    let o = f.check("/api/v1/componentstatuses", None);
    assert_eq!(o, Outcome::forward("not served from the watch cache"));
}

#[test]
fn never_a_single_name_list() {
    let o = fixture(30).check(
        "/api/v1/namespaces/a/pods",
        Some("fieldSelector=metadata.name%3Dweb-0"),
    );
    assert_eq!(o, Outcome::forward("single-name list"));
}

#[test]
fn never_after_a_recent_410_for_that_client_and_resource() {
    let f = fixture(30);
    f.guard.windows.mark_error("alice", "pods", Instant::now());
    assert_eq!(f.check("/api/v1/pods", None).verdict, Verdict::Forward);
    assert!(rewritten(&f.check("/api/v1/nodes", None)).is_some());
    let bob = f.check_as("bob", "k", "GET", "/api/v1/pods", None);
    assert!(rewritten(&bob).is_some());
    let old = Instant::now() - Duration::from_secs(3600);
    let g = fixture(30);
    g.guard.windows.mark_error("alice", "pods", old);
    assert!(
        rewritten(&g.check("/api/v1/pods", None)).is_some(),
        "window over"
    );
}

#[test]
fn never_within_the_read_your_writes_window() {
    let f = fixture(30);
    f.guard
        .windows
        .mark_write("alice", "deployments.apps", Instant::now());
    let o = f.check("/apis/apps/v1/deployments", None);
    assert_eq!(
        o,
        Outcome::forward("client wrote to this resource recently (read-your-writes)")
    );
}

#[test]
fn never_for_a_consistency_sensitive_caller() {
    let f = fixture(30);
    let gc = "system:serviceaccount:kube-system:generic-garbage-collector";
    let o = f.check_as(gc, "kube-controller-manager", "GET", "/api/v1/pods", None);
    assert_eq!(o, Outcome::forward("consistency-sensitive caller"));
    let o = f.check_as("backup", "velero/v1.12", "GET", "/api/v1/pods", None);
    assert_eq!(o, Outcome::forward("consistency-sensitive caller"));
}

#[test]
fn never_before_version_and_discovery_are_known() {
    let mut f = fixture(30);
    f.guard.facts = Arc::new(UpstreamFacts::default());
    assert_eq!(f.check("/api/v1/pods", None).verdict, Verdict::Forward);
}

#[test]
fn query_rewrite_keeps_other_parameters() {
    assert_eq!(
        rewritten_query(Some("limit=5&resourceVersion=&timeoutSeconds=3"), "0", None),
        "limit=5&timeoutSeconds=3&resourceVersion=0"
    );
}
