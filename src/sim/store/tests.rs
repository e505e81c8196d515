use super::*;

fn setup() -> (Store, ResourceType) {
    let store = Store::new(Registry::builtin(), 1000);
    let reg = store.registry();
    store
        .create(
            reg.find("", "v1", "namespaces").unwrap(),
            "",
            json!({"metadata": {"name": "ns"}}),
            false,
        )
        .unwrap();
    (store, reg.find("", "v1", "configmaps").unwrap().clone())
}

fn gr() -> Gr {
    (String::new(), "configmaps".into())
}

fn names(p: &ListPage) -> Vec<&str> {
    p.items.iter().map(|o| &*o.name).collect()
}

fn cm(name: &str, app: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}})
}

#[test]
fn resource_versions_increase_and_objects_carry_metadata() {
    let (store, rt) = setup();
    let a = store.create(&rt, "ns", cm("a", "x"), false).unwrap();
    let b = store.create(&rt, "ns", cm("b", "x"), false).unwrap();
    assert!(b.rv > a.rv);
    let v = a.value();
    assert_eq!(v["metadata"]["resourceVersion"], a.rv.to_string());
    assert!(v["metadata"]["uid"].is_string());
    assert!(
        v["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(v["kind"], "ConfigMap");
    assert_eq!(store.current_rv(), b.rv);
}

#[test]
fn dry_run_changes_nothing() {
    let (store, rt) = setup();
    let rv = store.current_rv();
    store.create(&rt, "ns", cm("a", "x"), true).unwrap();
    assert!(store.get(&gr(), "ns", "a").is_none());
    assert_eq!(store.current_rv(), rv);
}

#[test]
fn errors_are_apiserver_shaped() {
    let (store, rt) = setup();
    store.create(&rt, "ns", cm("a", "x"), false).unwrap();
    let e = store.create(&rt, "ns", cm("a", "x"), false).unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"a\" already exists");
    let e = store.create(&rt, "nope", cm("b", "x"), false).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let e = store
        .create(&rt, "ns", json!({"metadata": {}}), false)
        .unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("name or generateName is required"),
        "{}",
        e.message
    );
    let e = store
        .create(&rt, "ns", cm("Bad_Name", "x"), false)
        .unwrap_err();
    assert_eq!(e.code, 422);
    let mut stale = cm("a", "y");
    stale["metadata"]["resourceVersion"] = json!("1");
    let e = store
        .update(&rt, "ns", "a", stale, false, false)
        .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    let e = store
        .update(&rt, "ns", "zz", cm("zz", "y"), false, false)
        .unwrap_err();
    assert_eq!(e.message, "configmaps \"zz\" not found");
}

#[test]
fn no_op_updates_keep_the_resource_version() {
    let (store, rt) = setup();
    let a = store.create(&rt, "ns", cm("a", "x"), false).unwrap();
    let same = store
        .update(&rt, "ns", "a", a.value(), false, false)
        .unwrap();
    assert_eq!(same.rv, a.rv);
    let changed = store
        .update(&rt, "ns", "a", cm("a", "y"), false, false)
        .unwrap();
    assert!(changed.rv > a.rv);
}

#[test]
fn pages_and_snapshots_at_a_past_revision() {
    let (store, rt) = setup();
    for n in ["a", "b", "c", "d"] {
        store.create(&rt, "ns", cm(n, "x"), false).unwrap();
    }
    let q = ListQuery {
        namespace: Some("ns".into()),
        limit: Some(2),
        ..Default::default()
    };
    let p1 = store.list(&gr(), &q).unwrap();
    assert_eq!(names(&p1), ["a", "b"]);
    assert_eq!(p1.remaining, Some(2));
    // Later writes: delete c, modify d, add e. The next page at p1.rv sees the old state.
    store
        .delete(&rt, "ns", "c", None, None, false)
        .map(|_| ())
        .unwrap_or_else(|e| panic!("{e:?}"));
    store
        .update(&rt, "ns", "d", cm("d", "changed"), false, false)
        .unwrap();
    store.create(&rt, "ns", cm("e", "x"), false).unwrap();
    let q2 = ListQuery {
        namespace: Some("ns".into()),
        limit: Some(10),
        start_after: p1.next.clone(),
        at: Some(p1.rv),
        ..Default::default()
    };
    let p2 = store.list(&gr(), &q2).unwrap();
    assert_eq!(names(&p2), ["c", "d"]);
    assert_eq!(
        p2.items[1].labels.as_ref(),
        [(Arc::from("app"), Arc::from("x"))]
    );
    assert!(p2.next.is_none());
    // Compaction makes that revision unreadable.
    store.compact();
    assert!(matches!(
        store.list(&gr(), &q2),
        Err(ReadError::Compacted { .. })
    ));
    let future = ListQuery {
        at: Some(store.current_rv() + 10),
        ..Default::default()
    };
    assert!(matches!(
        store.list(&gr(), &future),
        Err(ReadError::TooLarge { .. })
    ));
}

#[test]
fn selectors_filter_and_hide_remaining_count() {
    let (store, rt) = setup();
    for (n, app) in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "x")] {
        store.create(&rt, "ns", cm(n, app), false).unwrap();
    }
    let q = ListQuery {
        filter: Filter {
            labels: LabelSelector::parse("app=x").unwrap(),
            ..Default::default()
        },
        limit: Some(2),
        ..Default::default()
    };
    let p = store.list(&gr(), &q).unwrap();
    assert_eq!(names(&p), ["a", "c"]);
    assert!(p.next.is_some());
    assert_eq!(p.remaining, None);
    assert_eq!(p.scanned, 4);
}

#[tokio::test]
async fn watchers_get_changes_translated_by_their_selector() {
    let (store, rt) = setup();
    store.create(&rt, "ns", cm("a", "x"), false).unwrap();
    let filter = Filter {
        labels: LabelSelector::parse("app=x").unwrap(),
        ..Default::default()
    };
    let mut w = store
        .watch(&gr(), filter, WatchFrom::Now { initial: true })
        .unwrap();
    assert_eq!(w.replay.len(), 1);
    store
        .update(&rt, "ns", "a", cm("a", "y"), false, false)
        .unwrap(); // leaves: DELETED
    store
        .update(&rt, "ns", "a", cm("a", "x"), false, false)
        .unwrap(); // enters: ADDED
    store.create(&rt, "ns", cm("b", "other"), false).unwrap(); // never seen
    let kinds: Vec<EventType> = [w.rx.recv().await.unwrap(), w.rx.recv().await.unwrap()]
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventType::Deleted, EventType::Added]);
    assert!(w.rx.try_recv().is_err());
}

#[test]
fn watch_from_a_revision_replays_history_and_old_ones_expire() {
    let (store, rt) = setup();
    let start = store.current_rv();
    store.create(&rt, "ns", cm("a", "x"), false).unwrap();
    store
        .delete(&rt, "ns", "a", None, None, false)
        .map(|_| ())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let w = store
        .watch(&gr(), Filter::default(), WatchFrom::Rv(start))
        .unwrap();
    let kinds: Vec<EventType> = w.replay.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventType::Added, EventType::Deleted]);
    store.compact();
    assert!(matches!(
        store.watch(&gr(), Filter::default(), WatchFrom::Rv(start)),
        Err(ReadError::Compacted { .. })
    ));
}

#[test]
fn a_watcher_that_cannot_keep_up_is_closed() {
    let (store, rt) = setup();
    let mut w = store
        .watch(&gr(), Filter::default(), WatchFrom::Now { initial: false })
        .unwrap();
    for i in 0..WATCHER_QUEUE + 10 {
        store
            .create(&rt, "ns", cm(&format!("c{i}"), "x"), false)
            .unwrap();
    }
    assert_eq!(store.watcher_count(), 0);
    // The queued events drain, then the stream ends.
    let mut n = 0;
    while w.rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, WATCHER_QUEUE);
    assert!(w.rx.is_closed());
}

#[test]
fn namespaces_terminate_then_purge() {
    let (store, rt) = setup();
    let reg = store.registry();
    let ns_rt = reg.find("", "v1", "namespaces").unwrap();
    store.create(&rt, "ns", cm("a", "x"), false).unwrap();
    match store
        .delete(ns_rt, "", "ns", None, None, false)
        .unwrap_or_else(|e| panic!("{e:?}"))
    {
        Deleted::Terminating(o) => assert_eq!(o.value()["status"]["phase"], "Terminating"),
        Deleted::Gone(_) => panic!("namespaces terminate first"),
    }
    let e = store.create(&rt, "ns", cm("b", "x"), false).unwrap_err();
    assert_eq!(e.code, 403);
    store.purge_namespace("ns");
    assert!(store.get(&gr(), "ns", "a").is_none());
    assert!(store.get(&ns_gr(), "", "ns").is_none());
}

#[test]
fn status_updates_touch_only_status_and_spec_changes_bump_generation() {
    let store = Store::new(Registry::builtin(), 100);
    let reg = store.registry();
    store
        .create(
            reg.find("", "v1", "namespaces").unwrap(),
            "",
            json!({"metadata": {"name": "ns"}}),
            false,
        )
        .unwrap();
    let rt = reg.find("apps", "v1", "deployments").unwrap();
    let d = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}, "status": {"replicas": 0}});
    let c = store.create(rt, "ns", d, false).unwrap();
    assert_eq!(c.value()["metadata"]["generation"], 1);
    let s = store
        .update(
            rt,
            "ns",
            "d",
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 9}, "status": {"replicas": 1}}),
            true,
            false,
        )
        .unwrap();
    let v = s.value();
    assert_eq!(
        (
            v["spec"]["replicas"].as_i64(),
            v["status"]["replicas"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(v["metadata"]["generation"], 1);
    let m = store
        .update(
            rt,
            "ns",
            "d",
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 2}, "status": {"replicas": 7}}),
            false,
            false,
        )
        .unwrap();
    let v = m.value();
    assert_eq!(
        (
            v["spec"]["replicas"].as_i64(),
            v["status"]["replicas"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(v["metadata"]["generation"], 2);
}
