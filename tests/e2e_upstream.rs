//! The upstream side: TLS verified against the kubeconfig's CA (HTTP/2 where offered), a wrong
//! certificate refused with a clear Status, and graceful shutdown with open watches.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use kubeguard::sim::SimOptions;

fn sim_opts(tls: bool) -> SimOptions {
    SimOptions {
        tls,
        nodes: 1,
        namespaces: 1,
        pods: 5,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    }
}

async fn get(c: &TestClient, url: String) -> (u16, serde_json::Value) {
    let resp = c
        .request(Request::get(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body = body_bytes(resp.into_body()).await;
    (
        code,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn tls_upstream_verified_against_the_kubeconfig_ca() {
    let sim = kubeguard::sim::start(sim_opts(true)).await.unwrap();
    assert!(sim.url.starts_with("https://"));
    // What `kubeguard serve --kubeconfig` loads: the emulator's kubeconfig with its CA.
    let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml(None)).unwrap();
    let upstream = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let config = kubeguard::config::FileConfig::from_yaml(
        "server:\n  listen: [\"https://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n",
        "test",
    )
    .unwrap();
    let kg = kubeguard::serve::start(&config, upstream).await.unwrap();
    for h2 in [false, true] {
        let (code, version) = get(&client(&kg, h2), format!("{}/version", tls_url(&kg))).await;
        assert_eq!(code, 200, "h2={h2}: {version}");
        assert_eq!(version["gitVersion"], "v1.30.4");
        let (code, pods) = get(&client(&kg, h2), format!("{}/api/v1/pods", tls_url(&kg))).await;
        assert_eq!(code, 200);
        assert_eq!(pods["items"].as_array().unwrap().len(), 5);
    }
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn upstream_with_an_untrusted_certificate_is_a_502_naming_the_certificate() {
    let sim = kubeguard::sim::start(sim_opts(true)).await.unwrap();
    // No CA given: the emulator's self-signed certificate is not trusted.
    let kg = start_kubeguard(&sim.url, "").await;
    let (code, status) = get(&client(&kg, false), format!("{}/version", tls_url(&kg))).await;
    assert_eq!(code, 502, "{status}");
    assert_eq!(status["kind"], "Status");
    let msg = status["message"].as_str().unwrap().to_lowercase();
    assert!(msg.contains("certificate"), "{msg}");
    kg.shutdown().await;
    sim.shutdown().await;
}

/// SIGTERM semantics: stop accepting at once, let in-flight requests finish within the grace
/// period (2 s in the test config), then close what is still open (watches).
#[tokio::test]
async fn shutdown_stops_accepting_and_closes_watches_after_the_grace_period() {
    let sim = kubeguard::sim::start(sim_opts(false)).await.unwrap();
    let kg = start_kubeguard(&sim.url, "").await;
    let url = tls_url(&kg);
    let c = client(&kg, false);
    let resp = c
        .request(
            Request::get(format!("{url}/api/v1/pods?watch=true&timeoutSeconds=600"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut watch = resp.into_body();
    // The watch delivers its initial events before shutdown starts.
    let first = tokio::time::timeout(Duration::from_secs(5), watch.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.is_data());

    let addr = kg.listeners.iter().find(|l| l.tls).unwrap().addr;
    let started = Instant::now();
    let shutdown = tokio::spawn(kg.shutdown());
    // New connections are refused promptly.
    let refused = kubeguard_test_poll(Duration::from_secs(5), || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(refused, "listener still accepting after shutdown began");
    // The open watch is ended by kubeguard after the grace period, not left hanging.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = watch.frame().await {}
    })
    .await;
    assert!(ended.is_ok(), "watch still open 10 s after shutdown");
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown finished")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
        "shutdown took {took:?}; the grace period is 2 s"
    );
    sim.shutdown().await;
}

async fn kubeguard_test_poll<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
