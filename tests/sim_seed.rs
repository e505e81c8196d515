//! The emulator's seeded cluster and OpenAPI v2 negotiation, driven with the kube crate.
#![allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)

#[path = "common/sim.rs"]
mod simc;

use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kubeguard::sim::SimOptions;
use simc::{client, fast_opts, start};

fn seeded(version: &str) -> SimOptions {
    SimOptions {
        nodes: 3,
        namespaces: 4,
        pods: 40,
        server_version: version.into(),
        ..fast_opts()
    }
}

#[tokio::test]
async fn openapi_v2_is_served_as_protobuf_when_asked() {
    let sim = start(fast_opts()).await;
    let c = client(&sim);
    let req = http::Request::get("/openapi/v2")
        .header(
            "accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = c.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        kubeguard::sim::openapi::V2_PROTOBUF_CONTENT_TYPE
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    // Field 1 (swagger), length 3, "2.0".
    assert_eq!(&body[..5], b"\x0a\x032.0");
    // JSON is still there for clients that ask for it.
    let req = http::Request::get("/openapi/v2").body(Vec::new()).unwrap();
    let doc: serde_json::Value = c.request(req).await.unwrap();
    assert_eq!(doc["swagger"], "2.0");
    sim.shutdown().await;
}

#[tokio::test]
async fn seeded_objects_carry_the_server_version_and_start_time() {
    let sim = start(seeded("v1.31.2")).await;
    let c = client(&sim);
    let nodes: Api<Node> = Api::all(c.clone());
    let nodes = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(nodes.items.len(), 3);
    for n in &nodes.items {
        let info = n.status.as_ref().unwrap().node_info.as_ref().unwrap();
        assert_eq!(info.kubelet_version, "v1.31.2");
    }
    let pods: Api<Pod> = Api::all(c.clone());
    let pods = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(pods.items.len(), 40);
    let now = jiff::Timestamp::now();
    for p in &pods.items {
        let created = p.metadata.creation_timestamp.as_ref().unwrap().0;
        // Seeded "now": the pod's AGE and its containers' start agree.
        assert!(now.duration_since(created).as_secs() < 60, "{created}");
        let started = p.status.as_ref().unwrap().start_time.as_ref().unwrap().0;
        assert_eq!(started, created);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn seeded_owner_uids_are_kept_and_cascade() {
    let sim = start(seeded("v1.30.4")).await;
    let c = client(&sim);
    let deps: Api<Deployment> = Api::all(c.clone());
    let dep = deps.list(&ListParams::default()).await.unwrap().items[0].clone();
    let ns = dep.metadata.namespace.clone().unwrap();
    let dep_uid = dep.metadata.uid.clone().unwrap();
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), &ns);
    let owned_by =
        |refs: &Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
         uid: &str| { refs.iter().flatten().any(|o| o.uid == uid) };
    let rs = rss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|r| owned_by(&r.metadata.owner_references, &dep_uid))
        .expect("the deployment's replicaset names its real uid");
    let rs_uid = rs.metadata.uid.clone().unwrap();
    let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
    let owned_pods = || async {
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| owned_by(&p.metadata.owner_references, &rs_uid))
            .count()
    };
    assert!(owned_pods().await > 0);
    let total_before = pods.list(&ListParams::default()).await.unwrap().items.len();
    let deps_ns: Api<Deployment> = Api::namespaced(c.clone(), &ns);
    deps_ns
        .delete(
            dep.metadata.name.as_deref().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    assert!(
        rss.get_opt(rs.metadata.name.as_deref().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(owned_pods().await, 0);
    // Only that deployment's pods went.
    let total_after = pods.list(&ListParams::default()).await.unwrap().items.len();
    assert!(total_after < total_before && total_after + 5 >= total_before);
    sim.shutdown().await;
}
