use std::time::Duration;

use governor::clock::FakeRelativeClock;
use http::Method;

use super::*;
use crate::cost::estimate;
use crate::request::classify;

fn cfg(yaml: &str) -> LimitsSection {
    serde_norway::from_str(yaml).unwrap()
}

fn req(method: Method, path: &str, query: Option<&str>) -> (ApiRequest, Estimate) {
    let api = classify(&method, path, query).unwrap();
    let sizes = |r: &str, _ns: Option<&str>| (r == "pods").then_some(10_000);
    let est = estimate(&api, 30, &sizes);
    (api, est)
}

#[test]
fn a_client_over_its_cost_budget_is_throttled_and_recovers() {
    let clock = FakeRelativeClock::default();
    let limits = Limits::with_clock(
        &cfg("mode: enforce\ncostPerSecond: 10000\ncostBurst: 20000\n"),
        clock.clone(),
    );
    let storm = Identity::unverified("storm");
    let quiet = Identity::unverified("quiet");
    let (list, est) = req(Method::GET, "/api/v1/pods", Some("limit=500"));
    assert_eq!(est.units(), 10_000);
    assert!(limits.check(&storm, &list, &est).is_ok());
    assert!(limits.check(&storm, &list, &est).is_ok());
    let Err(Refusal::Throttle(t)) = limits.check(&storm, &list, &est) else {
        panic!("third full scan within a second must be throttled");
    };
    assert_eq!((t.limit, t.retry_after_secs), ("costRate", 1));
    let status = t.to_status();
    assert_eq!(
        (status.code, status.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert!(status.message.contains("storm"), "{}", status.message);
    // Other clients have budgets of their own.
    assert!(limits.check(&quiet, &list, &est).is_ok());
    // After the Retry-After, the storm client may go on.
    clock.advance(Duration::from_secs(u64::from(t.retry_after_secs)));
    assert!(limits.check(&storm, &list, &est).is_ok());
}

#[test]
fn request_rate_retry_after_is_an_integer_from_the_limiter() {
    let clock = FakeRelativeClock::default();
    let limits = Limits::with_clock(
        &cfg("mode: enforce\nrequestsPerSecond: 1\nrequestBurst: 2\n"),
        clock.clone(),
    );
    let who = Identity::unverified("alice");
    let (get, est) = req(Method::GET, "/api/v1/namespaces/a/pods/p", None);
    assert!(limits.check(&who, &get, &est).is_ok());
    assert!(limits.check(&who, &get, &est).is_ok());
    let Err(Refusal::Throttle(t)) = limits.check(&who, &get, &est) else {
        panic!("over the burst");
    };
    assert_eq!((t.limit, t.retry_after_secs), ("requestRate", 1));
    clock.advance(Duration::from_millis(1000));
    assert!(limits.check(&who, &get, &est).is_ok());
    assert_eq!(retry_after(Duration::from_millis(1)), 1);
    assert_eq!(retry_after(Duration::from_millis(2500)), 3);
}

#[test]
fn expensive_requests_are_capped_per_client_while_they_run() {
    let limits = Limits::new(&cfg("mode: enforce\nmaxConcurrentExpensive: 2\n"));
    let who = Identity::unverified("watcher");
    let (watch, est) = req(Method::GET, "/api/v1/pods", Some("watch=1"));
    let a = limits.check(&who, &watch, &est).unwrap();
    let _b = limits.check(&who, &watch, &est).unwrap();
    let Err(Refusal::Throttle(t)) = limits.check(&who, &watch, &est) else {
        panic!("third watch");
    };
    assert_eq!(t.limit, "concurrentExpensive");
    // A cheap GET is not expensive.
    let (get, gest) = req(Method::GET, "/api/v1/namespaces/a/pods/p", None);
    assert!(limits.check(&who, &get, &gest).is_ok());
    drop(a);
    assert!(limits.check(&who, &watch, &est).is_ok());
}

#[test]
fn unchunked_lists_of_large_collections_can_be_refused() {
    let limits = Limits::new(&cfg("mode: enforce\nrefuseUnchunkedListsAbove: 5000\n"));
    let who = Identity::unverified("old-controller");
    let (list, est) = req(Method::GET, "/api/v1/pods", None);
    let Err(r @ Refusal::Refuse { .. }) = limits.check(&who, &list, &est) else {
        panic!("unchunked LIST of 10000 pods");
    };
    assert_eq!(r.to_status().code, 403);
    let warning = r.warning();
    let warning = warning.to_str().expect("a warning is ASCII");
    assert!(
        warning.starts_with("299 - \"kubeguard (shadow): would refuse: "),
        "{warning}"
    );
    assert!(warning.contains("--chunk-size"), "{warning}");
    let (paged, est) = req(Method::GET, "/api/v1/pods", Some("limit=500"));
    assert!(limits.check(&who, &paged, &est).is_ok());
}

#[test]
fn exempt_users_and_groups_and_off_mode_are_never_limited() {
    let limits = Limits::new(&cfg(
        "mode: enforce\nrequestBurst: 1\nexemptUsers: [root]\nexemptGroups: [system:masters]\n",
    ));
    let (get, est) = req(Method::GET, "/api/v1/namespaces/a/pods/p", None);
    let root = Identity::unverified("root");
    let mut admin = Identity::unverified("admin");
    admin.groups.push("system:masters".into());
    for _ in 0..10 {
        assert!(limits.check(&root, &get, &est).is_ok());
        assert!(limits.check(&admin, &get, &est).is_ok());
    }
    let off = Limits::new(&cfg("mode: off\nrequestBurst: 1\n"));
    let who = Identity::unverified("x");
    for _ in 0..10 {
        assert!(off.check(&who, &get, &est).is_ok());
    }
}

#[test]
fn limiter_state_is_bounded_by_lru() {
    let limits = Limits::new(&cfg("mode: enforce\nmaxClients: 64\n"));
    let (get, est) = req(Method::GET, "/api/v1/namespaces/a/pods/p", None);
    for i in 0..10_000 {
        let _ = limits.check(&Identity::unverified(format!("u{i}")), &get, &est);
    }
    let kept: usize = limits.shards.iter().map(|s| s.lock().unwrap().len()).sum();
    assert!(kept <= 64, "{kept}");
}

#[test]
fn with_redis_the_local_fallback_is_the_replicas_share_of_the_budget() {
    let clock = FakeRelativeClock::default();
    let limits = Limits::with_clock(
        &cfg(
            "mode: enforce\nrequestsPerSecond: 10\nrequestBurst: 9\nredis:\n  url: redis://127.0.0.1:1\n  replicas: 3\n",
        ),
        clock,
    );
    let who = Identity::unverified("alice");
    let (get, est) = req(Method::GET, "/api/v1/namespaces/a/pods/p", None);
    let allowed = (0..9)
        .filter(|_| limits.check(&who, &get, &est).is_ok())
        .count();
    assert_eq!(allowed, 3, "burst 9 over 3 replicas");
    assert!(
        !limits.shared().unwrap().is_up(),
        "not connected before its task runs"
    );
}

#[test]
fn redis_settings_are_checked_at_load() {
    let err =
        crate::config::FileConfig::from_yaml("limits:\n  redis:\n    url: http://x\n", "k.yaml")
            .unwrap_err()
            .to_string();
    assert!(err.contains("limits.redis.url"), "{err}");
    let ok = cfg("redis:\n  url: redis://127.0.0.1:6379\n");
    let r = ok.redis.unwrap();
    assert_eq!(
        (r.replicas.get(), r.timeout),
        (2, Duration::from_millis(50))
    );
}
