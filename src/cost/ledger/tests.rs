use std::time::Duration;

use super::*;
use crate::request::Verb;

fn rec(identity: &str, verb: Verb, resource: &str, etcd: u64) -> CostRecord {
    CostRecord {
        code: 200,
        bytes_out: 1000,
        items: 10,
        items_exact: true,
        duration: Duration::from_millis(20),
        etcd_objects_read: etcd,
        ..CostRecord::new(identity, verb, resource)
    }
}

#[test]
fn records_add_up_per_identity_and_per_verb_resource() {
    let l = Ledger::new(100, 16);
    l.record(&rec("alice", Verb::List, "pods", 500));
    l.record(&rec("alice", Verb::List, "pods", 500));
    l.record(&rec("alice", Verb::Get, "pods", 1));
    let mut watch = rec("bob", Verb::Watch, "pods", 0);
    watch.long_running_seconds = 30.0;
    l.record(&watch);
    let mut throttled = rec("bob", Verb::List, "pods", 0);
    throttled.code = 429;
    throttled.throttled = true;
    l.record(&throttled);
    let mut failed = rec("bob", Verb::Get, "pods", 1);
    failed.code = 502;
    l.record(&failed);

    let s = l.snapshot(None);
    assert_eq!(s.clients[0].identity, "alice");
    let a = &s.clients[0].totals;
    assert_eq!(
        (a.requests, a.etcd_objects_read, a.bytes_out),
        (3, 1001, 3000)
    );
    assert_eq!(s.clients[0].by_request[0].verb, "list");
    assert_eq!(s.clients[0].by_request[0].counters.requests, 2);
    let b = &s.clients[1].totals;
    assert_eq!((b.requests, b.throttled, b.errors), (3, 1, 1));
    assert_eq!(b.watch_seconds, 30.0);
    assert_eq!(s.total().requests, 6);
}

#[test]
fn a_million_identities_stay_bounded_and_the_expensive_one_stays_exact() {
    let l = Ledger::new(1000, 8);
    for i in 0..1_000_000u32 {
        l.record(&rec(&format!("user-{i}"), Verb::Get, "pods", 1));
        if i % 1000 == 0 {
            l.record(&rec("storm", Verb::List, "pods", 10_000));
        }
    }
    let tracked = l.tracked();
    assert!(tracked <= 1000 + SHARDS, "{tracked}");
    let s = l.snapshot(None);
    assert_eq!(s.clients[0].identity, "storm");
    assert_eq!(s.clients[0].totals.requests, 1000);
    assert_eq!(s.clients[0].totals.etcd_objects_read, 10_000_000);
    // Nothing is lost: folded identities are counted in "other".
    assert_eq!(s.total().requests, 1_001_000);
    assert_eq!(s.other_clients as usize + s.clients.len(), 1_000_001);
}

#[test]
fn verb_resource_pairs_per_identity_are_capped() {
    let l = Ledger::new(10, 2);
    for r in ["pods", "services", "secrets", "configmaps"] {
        l.record(&rec("alice", Verb::List, r, 1));
    }
    let s = l.snapshot(None);
    let keys: Vec<_> = s.clients[0]
        .by_request
        .iter()
        .map(|r| (r.verb.as_str(), r.resource.as_str(), r.counters.requests))
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&("other", "other", 2)), "{keys:?}");
}

#[test]
fn a_snapshot_top_folds_the_rest_into_other() {
    let l = Ledger::new(100, 8);
    for (i, who) in ["a", "b", "c", "d"].iter().enumerate() {
        l.record(&rec(who, Verb::List, "pods", 100 * (i as u64 + 1)));
    }
    let s = l.snapshot(Some(2));
    let names: Vec<_> = s.clients.iter().map(|c| c.identity.as_str()).collect();
    assert_eq!(names, ["d", "c"]);
    assert_eq!((s.other_clients, s.other.etcd_objects_read), (2, 300));
}

#[test]
fn a_restored_snapshot_equals_the_original() {
    let l = Ledger::new(100, 8);
    l.record(&rec("alice", Verb::List, "pods", 500));
    l.record(&rec("bob", Verb::Watch, "deployments.apps", 0));
    let before = l.snapshot(None);
    let json = serde_json::to_string(&before).unwrap();
    let back: LedgerSnapshot = serde_json::from_str(&json).unwrap();
    let l2 = Ledger::new(100, 8);
    l2.restore(&back);
    assert_eq!(l2.snapshot(None), before);
}
