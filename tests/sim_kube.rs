//! The emulator driven by a real client: the `kube` crate.
#![allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)

#[path = "common/sim.rs"]
mod simc;

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;
use simc::{client, fast_opts, poll, start};

const T: Duration = Duration::from_secs(10);

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}
    }))
    .unwrap()
}

fn err_code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn pods_create_get_list_replace_delete() {
    let sim = start(fast_opts()).await;
    let pods: Api<Pod> = Api::namespaced(client(&sim), "default");
    let created = pods
        .create(&PostParams::default(), &pod("p1"))
        .await
        .unwrap();
    let md = &created.metadata;
    assert!(md.uid.is_some() && md.creation_timestamp.is_some());
    let rv1: u64 = md.resource_version.as_deref().unwrap().parse().unwrap();
    assert_eq!(md.generation, Some(1));

    let got = pods.get("p1").await.unwrap();
    assert_eq!(got.metadata.uid, md.uid);
    assert_eq!(
        err_code(
            pods.create(&PostParams::default(), &pod("p1"))
                .await
                .unwrap_err()
        ),
        409
    );
    assert_eq!(err_code(pods.get("nope").await.unwrap_err()), 404);

    // Replace with the current RV works and bumps it; the old RV is then stale → 409 Conflict.
    let mut p = got.clone();
    p.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    let replaced = pods
        .replace("p1", &PostParams::default(), &p)
        .await
        .unwrap();
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(replaced.metadata.generation, Some(2));
    let err = pods
        .replace("p1", &PostParams::default(), &p)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        e => panic!("{e:?}"),
    }

    let list = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let all: Api<Pod> = Api::all(client(&sim));
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // generateName
    let mut g = pod("");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let gen_pod = pods.create(&PostParams::default(), &g).await.unwrap();
    assert!(gen_pod.metadata.name.unwrap().starts_with("gen-"));

    pods.delete("p1", &DeleteParams::default()).await.unwrap();
    assert_eq!(err_code(pods.get("p1").await.unwrap_err()), 404);
    // Namespaced objects in a missing namespace.
    let ghost: Api<Pod> = Api::namespaced(client(&sim), "ghost");
    let e = ghost
        .create(&PostParams::default(), &pod("x"))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => assert_eq!(
            (s.code, s.message.as_str()),
            (404, "namespaces \"ghost\" not found")
        ),
        e => panic!("{e:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn list_pages_rv_semantics_and_cost_sources() {
    let sim = start(fast_opts()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    for i in 0..5 {
        cms.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), json!({"i": i.to_string()})),
        )
        .await
        .unwrap();
    }
    let before = sim.stats();
    // Unversioned LIST with limit: served by "etcd" on v1.30, in pages.
    let p1 = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.metadata.remaining_item_count, Some(3));
    let token = p1.metadata.continue_.clone().unwrap();
    let p2 = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(p2.items[0].metadata.name.as_deref(), Some("c2"));
    assert_eq!(p2.metadata.resource_version, p1.metadata.resource_version);
    let after_etcd = sim.stats();
    assert_eq!(after_etcd.lists_from_etcd - before.lists_from_etcd, 2);
    assert!(after_etcd.etcd_objects_read - before.etcd_objects_read >= 10);

    // RV=0 ignores limit and is served from the cache: no etcd read.
    // (kube drops RV=0 when a limit is set, so send the query by hand.)
    let req = http::Request::get("/api/v1/namespaces/default/configmaps?limit=2&resourceVersion=0")
        .body(Vec::new())
        .unwrap();
    let any: kube::core::ObjectList<ConfigMap> = client(&sim).request(req).await.unwrap();
    assert_eq!(any.items.len(), 5);
    assert!(any.metadata.continue_.is_none());
    let after_cache = sim.stats();
    assert_eq!(after_cache.etcd_objects_read, after_etcd.etcd_objects_read);
    assert_eq!(
        after_cache.lists_from_cache - after_etcd.lists_from_cache,
        1
    );
    assert_eq!(
        after_cache.cache_objects_served - after_etcd.cache_objects_served,
        5
    );

    // A page read at the token's revision does not see later writes.
    cms.create(&PostParams::default(), &cm("c9", json!({})))
        .await
        .unwrap();
    let p3 = cms
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(p3.items.len(), 3, "snapshot at the token's revision");

    // Selectors.
    let sel = cms
        .list(&ListParams::default().labels("i in (1,3)"))
        .await
        .unwrap();
    assert_eq!(sel.items.len(), 2);
    let f = cms
        .list(&ListParams::default().fields("metadata.name=c4"))
        .await
        .unwrap();
    assert_eq!(f.items.len(), 1);

    // After a compaction the token has expired: 410.
    sim.compact();
    let e = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (410, "Expired"));
            assert!(
                s.message.contains("continue parameter is too old"),
                "{}",
                s.message
            );
        }
        e => panic!("{e:?}"),
    }
    // RV + Exact with RV=0 is refused.
    let req = http::Request::get(
        "/api/v1/namespaces/default/configmaps?resourceVersion=0&resourceVersionMatch=Exact",
    )
    .body(Vec::new())
    .unwrap();
    let e = client(&sim)
        .request::<serde_json::Value>(req)
        .await
        .unwrap_err();
    assert_eq!(err_code(e), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_sees_live_events_and_old_rv_is_410() {
    let sim = start(fast_opts()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("w1", json!({})))
        .await
        .unwrap();
    cms.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v2"}})),
    )
    .await
    .unwrap();
    cms.delete("w1", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(T, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(o) => seen.push(("ADDED", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(("MODIFIED", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", "w1".to_string()),
            ("MODIFIED", "w1".into()),
            ("DELETED", "w1".into())
        ]
    );

    // Too old after a compaction: one ERROR event with 410 Expired.
    sim.compact();
    let mut old = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(T, old.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn patches_merge_json_strategic_and_apply() {
    let sim = start(fast_opts()).await;
    let c = client(&sim);
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(&PostParams::default(), &cm("p", json!({"a": "1"})))
        .await
        .unwrap();
    let m = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"b": "2"}}})),
        )
        .await
        .unwrap();
    assert_eq!(m.metadata.labels.unwrap().len(), 2);
    let ops = json!([{"op": "replace", "path": "/data/k", "value": "j"}]);
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/p")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&ops).unwrap())
        .unwrap();
    let j = c.request::<ConfigMap>(req).await.unwrap();
    assert_eq!(j.data.unwrap()["k"], "j");

    // Server-side apply creates when absent, merges when present.
    let pp = PatchParams::apply("test").force();
    let applied = cms
        .patch("sa", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sa"}, "data": {"x": "1"}})))
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["x"], "1");
    let again = cms
        .patch("sa", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sa"}, "data": {"x": "2"}})))
        .await
        .unwrap();
    assert_eq!(again.data.unwrap()["x"], "2");
    // Apply without a field manager: 422, like the apiserver.
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/sa")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"{}".to_vec())
        .unwrap();
    let e = c.request::<ConfigMap>(req).await.unwrap_err();
    assert_eq!(err_code(e), 422);

    // Strategic merge on a deployment merges containers by name.
    let deps: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
          "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}
    }))
    .unwrap();
    deps.create(&PostParams::default(), &d).await.unwrap();
    let s = deps
        .patch("d", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}})))
        .await
        .unwrap();
    let cs = s.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[1].image.as_deref(), Some("b:2"));
    assert_eq!(s.metadata.generation, Some(2));
    // Scale subresource.
    let sc = deps
        .patch_scale(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(sc.spec.unwrap().replicas, Some(3));
    assert_eq!(deps.get("d").await.unwrap().spec.unwrap().replicas, Some(3));
    sim.shutdown().await;
}

#[tokio::test]
async fn deletes_dry_run_collection_and_namespace_cascade() {
    let sim = start(fast_opts()).await;
    let c = client(&sim);
    let nss: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "team");
    for i in 0..4 {
        let tier = if i % 2 == 0 { "a" } else { "b" };
        cms.create(
            &PostParams::default(),
            &cm(&format!("c{i}"), json!({"tier": tier})),
        )
        .await
        .unwrap();
    }
    // Dry-run delete changes nothing.
    cms.delete("c0", &DeleteParams::default().dry_run())
        .await
        .unwrap();
    cms.get("c0").await.unwrap();
    // deletecollection with a selector.
    let gone = cms
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=b"),
        )
        .await
        .unwrap();
    assert_eq!(gone.left().unwrap().items.len(), 2);
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    // Namespace deletion: Terminating at once, creates refused, content then namespace gone.
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    let t = nss.get("team").await.unwrap();
    assert_eq!(t.status.unwrap().phase.as_deref(), Some("Terminating"));
    let e = cms
        .create(&PostParams::default(), &cm("late", json!({})))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message.contains("because it is being terminated"),
                "{}",
                s.message
            );
        }
        e => panic!("{e:?}"),
    }
    let done = poll(T, || async {
        matches!(nss.get("team").await, Err(kube::Error::Api(s)) if s.code == 404).then_some(())
    })
    .await;
    assert!(done.is_some(), "namespace still there");
    let all: Api<ConfigMap> = Api::all(c);
    let left = all.list(&ListParams::default()).await.unwrap();
    assert!(
        left.items
            .iter()
            .all(|c| c.metadata.namespace.as_deref() != Some("team"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn crds_register_types_for_dynamic_objects() {
    let sim = start(fast_opts()).await;
    let c = client(&sim);
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
          "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
          "versions": [{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let crds_ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let crds: Api<DynamicObject> = Api::all_with(c.clone(), &crds_ar);
    let created = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
    let conds = &created.data["status"]["conditions"];
    assert!(
        conds
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established")
    );

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let mut w = DynamicObject::new("w1", &ar);
    w.data = json!({"spec": {"size": 3}});
    widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        err_code(widgets.list(&ListParams::default()).await.unwrap_err()),
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn version_health_and_protobuf_fallbacks() {
    let sim = start(fast_opts()).await;
    let c = client(&sim);
    let v = c.apiserver_version().await.unwrap();
    assert_eq!(
        (v.major.as_str(), v.minor.as_str(), v.git_version.as_str()),
        ("1", "30", "v1.30.4")
    );
    // Protobuf-only Accept → 406; protobuf body → 415.
    let req = http::Request::get("/api/v1/namespaces")
        .header("accept", "application/vnd.kubernetes.protobuf")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        err_code(c.request::<serde_json::Value>(req).await.unwrap_err()),
        406
    );
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/vnd.kubernetes.protobuf")
        .body(vec![0x6b, 0x38, 0x73, 0x00])
        .unwrap();
    assert_eq!(
        err_code(c.request::<serde_json::Value>(req).await.unwrap_err()),
        415
    );
    let req = http::Request::get("/healthz").body(Vec::new()).unwrap();
    assert_eq!(c.request_text(req).await.unwrap(), "ok");
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_bookmarks_and_initial_events_end() {
    let opts = simc::fast_opts();
    let sim = start(kubeguard::sim::SimOptions {
        bookmark_interval: Duration::from_millis(100),
        ..opts
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    cms.create(&PostParams::default(), &cm("b1", json!({})))
        .await
        .unwrap();
    // WatchList: initial ADDED events, then the initial-events-end bookmark.
    let wp = WatchParams::default().initial_events().timeout(5);
    let mut s = cms.watch(&wp, "").await.unwrap().boxed();
    let first = tokio::time::timeout(T, s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(first, WatchEvent::Added(ref o) if o.metadata.name.as_deref() == Some("b1")),
        "{first:?}"
    );
    let second = tokio::time::timeout(T, s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match second {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata
                .annotations
                .get("k8s.io/initial-events-end")
                .map(String::as_str),
            Some("true")
        ),
        other => panic!("{other:?}"),
    }
    // Periodic bookmarks follow (interval 100 ms here).
    let third = tokio::time::timeout(T, s.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(third, WatchEvent::Bookmark(_)), "{third:?}");
    sim.shutdown().await;
}

/// Resident memory of this process, from /proc (Linux).
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb / 1024
}

/// 100k seeded pods load in seconds and stay well under 1 GB. Slow in a debug build: run with
/// `cargo test --test sim_kube -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn seeding_100k_pods_fits_in_memory() {
    let before = rss_mib();
    let t0 = std::time::Instant::now();
    let sim = start(kubeguard::sim::SimOptions {
        nodes: 100,
        namespaces: 50,
        pods: 100_000,
        ..fast_opts()
    })
    .await;
    let seeded = t0.elapsed();
    let after = rss_mib();
    let pods: Api<Pod> = Api::all(client(&sim));
    let t1 = std::time::Instant::now();
    let page = pods.list(&ListParams::default().limit(500)).await.unwrap();
    let page_time = t1.elapsed();
    // The full unversioned list, counted as it streams (not decoded: the client would dominate).
    let t2 = std::time::Instant::now();
    let req = http::Request::get("/api/v1/pods").body(Vec::new()).unwrap();
    let mut body = client(&sim).request_stream(req).await.unwrap();
    let mut bytes = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = futures_util::AsyncReadExt::read(&mut body, &mut buf)
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        bytes += n;
    }
    let all_time = t2.elapsed();
    println!(
        "seeded 100k pods in {seeded:?}; RSS {before} MiB -> {after} MiB; first page of 500 in {page_time:?}; full list ({} MB) in {all_time:?}; RSS now {} MiB; stats {:?}",
        bytes / 1_000_000,
        rss_mib(),
        sim.stats()
    );
    assert_eq!(page.items.len(), 500);
    assert!(bytes > 200_000_000);
    assert!(
        after - before < 1024,
        "store too big: {} MiB",
        after - before
    );
    sim.shutdown().await;
}

const USERS: &str = r#"
users:
  - name: alice
    token: alice-token
    rules:
      - verbs: [get, list, watch]
        resources: [configmaps]
        namespaces: [default]
  - name: admin
    token: admin-token
    groups: [system:masters]
    canImpersonate: true
"#;

fn token_client(sim: &kubeguard::sim::RunningSim, token: &str) -> kube::Client {
    let mut cfg = kube::Config::new(sim.url.parse().unwrap());
    cfg.auth_info.token = Some(token.to_string().into());
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test]
async fn auth_tokens_rbac_impersonation_and_token_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, USERS).unwrap();
    let sim = start(kubeguard::sim::SimOptions {
        users: Some(path),
        ..fast_opts()
    })
    .await;
    // No credentials: 401.
    let anon: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    assert_eq!(
        err_code(anon.list(&ListParams::default()).await.unwrap_err()),
        401
    );
    // alice may read configmaps in default, not write them, not read elsewhere.
    let alice: Api<ConfigMap> = Api::namespaced(token_client(&sim, "alice-token"), "default");
    alice.list(&ListParams::default()).await.unwrap();
    let e = alice
        .create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message
                    .contains("User \"alice\" cannot create resource \"configmaps\""),
                "{}",
                s.message
            );
        }
        e => panic!("{e:?}"),
    }
    let admin = token_client(&sim, "admin-token");
    let admin_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    admin_cms
        .create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    // Impersonating alice, admin is alice.
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("impersonate-user", "alice")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&cm("y", json!({}))).unwrap())
        .unwrap();
    assert_eq!(
        err_code(admin.request::<ConfigMap>(req).await.unwrap_err()),
        403
    );
    // alice cannot impersonate.
    let req = http::Request::get("/api/v1/namespaces/default/configmaps")
        .header("impersonate-user", "admin")
        .body(Vec::new())
        .unwrap();
    let e = token_client(&sim, "alice-token")
        .request::<serde_json::Value>(req)
        .await
        .unwrap_err();
    assert_eq!(err_code(e), 403);
    // TokenReview, counted in stats.
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": "alice-token"}});
    let req = http::Request::post("/apis/authentication.k8s.io/v1/tokenreviews")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&review).unwrap())
        .unwrap();
    let answer: serde_json::Value = admin.request(req).await.unwrap();
    assert_eq!(answer["status"]["authenticated"], true);
    assert_eq!(answer["status"]["user"]["username"], "alice");
    assert_eq!(sim.stats().token_reviews, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_users_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, "users:\n  - name: x\n    bogus: 1\n").unwrap();
    let err = kubeguard::sim::start(kubeguard::sim::SimOptions {
        users: Some(path.clone()),
        ..fast_opts()
    })
    .await
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(msg.matches("users.yaml").count(), 1, "{msg}");
}

#[tokio::test]
async fn tls_serves_the_kube_client() {
    let sim = start(kubeguard::sim::SimOptions {
        tls: true,
        ..fast_opts()
    })
    .await;
    assert!(sim.url.starts_with("https://127.0.0.1:"), "{}", sim.url);
    let ca = sim.ca_pem.clone().unwrap();
    let ders = kubeguard::tls::certs_from_pem(ca.as_bytes(), "sim CA").unwrap();
    let mut cfg = kube::Config::new(sim.url.parse().unwrap());
    cfg.root_cert = Some(ders.iter().map(|d| d.to_vec()).collect());
    let c = kube::Client::try_from(cfg).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(&PostParams::default(), &cm("tls", json!({})))
        .await
        .unwrap();
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // The kubeconfig carries the CA.
    let kc = sim.kubeconfig_yaml(Some("t0ken"));
    assert!(
        kc.contains("certificate-authority-data") && kc.contains("t0ken"),
        "{kc}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let sim = start(fast_opts()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    let mut w = cms
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("s", json!({})))
        .await
        .unwrap();
    let first = tokio::time::timeout(T, w.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Some(WatchEvent::Added(_))));
    let t0 = std::time::Instant::now();
    tokio::time::timeout(T, sim.shutdown()).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // The stream ends (cleanly or with a connection error), it does not hang.
    let end = tokio::time::timeout(T, async {
        loop {
            match w.try_next().await {
                Ok(Some(WatchEvent::Bookmark(_))) => continue,
                Ok(Some(other)) => break Some(format!("{other:?}")),
                Ok(None) | Err(_) => break None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end, None);
}

#[tokio::test]
async fn v1_31_serves_unversioned_lists_from_cache_after_a_revision_check() {
    let sim = start(kubeguard::sim::SimOptions {
        server_version: "v1.31.1".into(),
        ..fast_opts()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    for i in 0..3 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    let before = sim.stats();
    let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let after = sim.stats();
    assert_eq!(after.lists_from_cache - before.lists_from_cache, 1);
    assert_eq!(after.lists_from_etcd, before.lists_from_etcd);
    assert_eq!(after.etcd_objects_read, before.etcd_objects_read);
    // The continue page goes to etcd on 1.31–1.33.
    let token = page.metadata.continue_.unwrap();
    let p2 = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert_eq!(sim.stats().lists_from_etcd - after.lists_from_etcd, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_metrics_report_the_cost_model() {
    let sim = start(fast_opts()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    cms.list(&ListParams::default()).await.unwrap();
    let text = admin_get(sim.admin_addr, "/metrics").await;
    for needle in [
        "sim_etcd_objects_read_total",
        "sim_cache_objects_served_total",
        "sim_etcd_busy_seconds_total",
        "sim_etcd_queue_wait_seconds_total",
        "sim_lists_total{source=\"etcd\"} 1",
        "sim_requests_total{verb=\"list\",code=\"200\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(admin_get(sim.admin_addr, "/healthz").await.ends_with("ok"));
    sim.shutdown().await;
}

/// A bare HTTP/1.1 GET (the admin listener is plain HTTP); returns the whole response text.
async fn admin_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(T, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn h2_over_tls_streams_watch_events_as_they_happen() {
    use http_body_util::BodyExt;
    let sim = start(kubeguard::sim::SimOptions {
        tls: true,
        ..fast_opts()
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    for c in kubeguard::tls::certs_from_pem(sim.ca_pem.as_ref().unwrap().as_bytes(), "ca").unwrap()
    {
        roots.add(c).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(kubeguard::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(sim.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!(
        "{}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={}",
        sim.url,
        sim.resource_version()
    ))
    .body(http_body_util::Empty::<bytes::Bytes>::new())
    .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let mut body = resp.into_body();
    let cms: Api<ConfigMap> = Api::namespaced(
        {
            let mut c = kube::Config::new(sim.url.parse().unwrap());
            c.root_cert = Some(vec![
                kubeguard::tls::certs_from_pem(sim.ca_pem.as_ref().unwrap().as_bytes(), "ca")
                    .unwrap()[0]
                    .to_vec(),
            ]);
            kube::Client::try_from(c).unwrap()
        },
        "default",
    );
    cms.create(&PostParams::default(), &cm("h2", json!({})))
        .await
        .unwrap();
    let frame = tokio::time::timeout(T, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let data = frame.into_data().unwrap();
    let ev: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("h2"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn request_hook_sees_every_request() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hook = kubeguard::sim::RequestHook(std::sync::Arc::new(
        move |r: &kubeguard::sim::RequestRecord| {
            sink.lock().unwrap().push((r.verb, r.uri.clone(), r.code));
        },
    ));
    let sim = start(kubeguard::sim::SimOptions {
        on_request: Some(hook),
        ..fast_opts()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim), "default");
    cms.list(&ListParams::default().limit(7)).await.unwrap();
    assert_eq!(
        cms.get("none").await.map(|_| ()).map_err(err_code),
        Err(404)
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "list");
    assert!(seen[0].1.contains("limit=7"), "{seen:?}");
    assert_eq!((seen[1].0, seen[1].2), ("get", 404));
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_an_owner_cascades_unless_orphaned() {
    let sim = start(fast_opts()).await;
    let c = client(&sim);
    let deps: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let mk = |name: &str| -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"a": name}},
            "template": {"metadata": {"labels": {"a": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
        .unwrap()
    };
    for name in ["gc", "orphan"] {
        let d = deps
            .create(&PostParams::default(), &mk(name))
            .await
            .unwrap();
        let mut p = pod(&format!("{name}-pod"));
        p.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: name.into(),
                uid: d.metadata.uid.clone().unwrap(),
                ..Default::default()
            },
        ]);
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    deps.delete("gc", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(err_code(pods.get("gc-pod").await.unwrap_err()), 404);
    deps.delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    pods.get("orphan-pod").await.unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn list_storm_queues_on_etcd_but_not_on_the_cache() {
    let sim = start(kubeguard::sim::SimOptions {
        nodes: 3,
        namespaces: 2,
        pods: 300,
        etcd_concurrency: 1,
        etcd_cost_per_object: Duration::from_micros(50),
        cache_cost_per_object: Duration::ZERO,
        ..fast_opts()
    })
    .await;
    let pods: Api<Pod> = Api::all(client(&sim));
    let before = sim.stats();
    // 4 unversioned lists at once: each scans 300 pods (15 ms) holding the only etcd slot.
    let lists = (0..4).map(|_| {
        let pods = pods.clone();
        async move { pods.list(&ListParams::default().limit(10)).await.unwrap() }
    });
    let pages = futures_util::future::join_all(lists).await;
    assert!(pages.iter().all(|p| p.items.len() == 10));
    let s = sim.stats();
    assert_eq!(s.lists_from_etcd - before.lists_from_etcd, 4);
    assert_eq!(s.etcd_objects_read - before.etcd_objects_read, 4 * 300);
    assert!(
        s.etcd_busy_seconds - before.etcd_busy_seconds >= 0.059,
        "{s:?}"
    );
    // The other three waited for the slot: at least 15 + 30 + 45 ms in total.
    assert!(
        s.etcd_queue_wait_seconds - before.etcd_queue_wait_seconds >= 0.08,
        "{s:?}"
    );
    // The same storm with RV=0 never touches etcd.
    let any = (0..4).map(|_| {
        let pods = pods.clone();
        async move { pods.list(&ListParams::default().match_any()).await.unwrap() }
    });
    let pages = futures_util::future::join_all(any).await;
    assert!(pages.iter().all(|p| p.items.len() == 300));
    let after = sim.stats();
    assert_eq!(after.etcd_objects_read, s.etcd_objects_read);
    assert_eq!(after.cache_objects_served - s.cache_objects_served, 4 * 300);
    sim.shutdown().await;
}
