//! The `kube` crate (what Rust controllers use) through kubeguard, over TLS, in front of the
//! emulated apiserver: lists with paging, watches, writes, exec over WebSocket.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kubeguard::serve::RunningServe;
use kubeguard::sim::{RunningSim, SimOptions};
use tokio::io::AsyncReadExt;

async fn env() -> (RunningSim, RunningServe, kube::Client) {
    let sim = kubeguard::sim::start(SimOptions {
        nodes: 2,
        namespaces: 3,
        pods: 120,
        namespace_cleanup_delay: Duration::from_millis(20),
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(&sim.url, "").await;
    let kc = kg.client_kubeconfig();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert!(config.cluster_url.to_string().starts_with("https://"));
    let client = kube::Client::try_from(config).unwrap();
    (sim, kg, client)
}

#[tokio::test]
async fn paged_list_matches_the_whole_collection() {
    let (sim, kg, client) = env().await;
    let pods: Api<Pod> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(25);
    let mut pages = 0;
    loop {
        let page = pods.list(&params).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|p| p.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
        assert!(pages < 50, "paging does not end");
    }
    assert_eq!(names.len(), 120);
    assert!(pages >= 5, "limit=25 gave {pages} pages");
    let whole = pods.list(&ListParams::default()).await.unwrap();
    let mut all: Vec<String> = whole
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    all.sort();
    names.sort();
    assert_eq!(names, all);
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_create_patch_delete() {
    let (sim, kg, client) = env().await;
    let ns: Api<Namespace> = Api::all(client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "kube-e2e"}})).unwrap(),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-e2e");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut events = cms
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();

    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "c1"}, "data": {"k": "v"}
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"k": "v2"}})),
    )
    .await
    .unwrap();
    cms.delete("c1", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("event through kubeguard within 10 s")
            .unwrap()
            .expect("watch still open");
        match ev {
            WatchEvent::Added(c) => seen.push(("ADDED", c.data.unwrap()["k"].clone())),
            WatchEvent::Modified(c) => seen.push(("MODIFIED", c.data.unwrap()["k"].clone())),
            WatchEvent::Deleted(c) => seen.push(("DELETED", c.data.unwrap()["k"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", "v".to_string()),
            ("MODIFIED", "v2".to_string()),
            ("DELETED", "v2".to_string())
        ]
    );
    // A stale update is the apiserver's 409, passed through unchanged.
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut stale = cms.get("c1").await.unwrap();
    cms.patch(
        "c1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"k": "v3"}})),
    )
    .await
    .unwrap();
    stale.data = Some([("k".to_string(), "old".to_string())].into());
    let err = cms
        .replace("c1", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected a 409 Status, got {other:?}"),
    }
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn exec_over_websocket() {
    let (sim, kg, client) = env().await;
    let pods: Api<Pod> = Api::namespaced(client, "prod");
    let pod = pods
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .items
        .remove(0);
    let name = pod.metadata.name.clone().unwrap();
    let container = pod.spec.unwrap().containers[0].name.clone();
    let mut attached = pods
        .exec(
            &name,
            ["echo", "through", "kubeguard"],
            &AttachParams::default().container(container).stderr(false),
        )
        .await
        .unwrap();
    let mut out = String::new();
    attached
        .stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(out.trim(), "through kubeguard");
    assert_eq!(status.status.as_deref(), Some("Success"));
    kg.shutdown().await;
    sim.shutdown().await;
}
