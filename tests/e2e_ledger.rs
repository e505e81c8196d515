//! Per-client cost from real traffic through kubeguard: the ledger records what each client's
//! requests cost (requests, bytes, items counted as the body streams, estimated etcd objects),
//! `kubeguard top --once` puts the expensive client first, and an enforced cost budget answers
//! 429 with an integer Retry-After after which a retry succeeds, while other clients go on.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use kubeguard::sim::SimOptions;

async fn sim() -> kubeguard::sim::RunningSim {
    kubeguard::sim::start(SimOptions {
        nodes: 2,
        namespaces: 3,
        pods: 60,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

async fn get_as(c: &common::TestClient, url: &str, token: &str) -> (u16, http::HeaderMap, Bytes) {
    let req = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        common::body_bytes(body).await,
    )
}

fn user_of(token: &str) -> String {
    let mut h = http::HeaderMap::new();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    kubeguard::identity::unverified_name(&h)
}

#[tokio::test]
async fn the_ledger_counts_real_traffic_and_top_shows_the_storm_client_first() {
    let sim = sim().await;
    let kg = common::start_kubeguard(&sim.url, "").await;
    let c = common::client(&kg, true);
    let url = common::tls_url(&kg);
    for _ in 0..12 {
        let (code, _, body) = get_as(&c, &format!("{url}/api/v1/pods"), "storm-token").await;
        assert_eq!(code, 200);
        assert!(body.len() > 10_000);
    }
    for _ in 0..3 {
        let (code, _, _) = get_as(&c, &format!("{url}/version"), "quiet-token").await;
        assert_eq!(code, 200);
    }
    // Records are written when each body ends; the last ones may land a moment after the client
    // has read them.
    let admin = format!("http://{}", kg.admin_addr);
    let snapshot = common_poll(|| async {
        let (_, _, body) = get_as(&c, &format!("{admin}/debug/costs"), "x").await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let storm = v["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["identity"] == user_of("storm-token"))
            .cloned();
        storm.filter(|s| s["totals"]["requests"] == 12).map(|_| v)
    })
    .await
    .expect("the storm client's 12 LISTs are in the ledger");
    let clients = snapshot["clients"].as_array().unwrap();
    assert_eq!(clients[0]["identity"], user_of("storm-token"), "{snapshot}");
    let storm = &clients[0]["totals"];
    // 12 LISTs of 60 pods, counted from the streamed bodies.
    assert_eq!(storm["items"], 12 * 60, "{storm}");
    assert!(
        storm["bytesOut"].as_u64().unwrap() > 12 * 60 * 1000,
        "{storm}"
    );
    // Unversioned LISTs read every stored pod from etcd (v1.30 semantics).
    assert!(
        storm["etcdObjectsRead"].as_u64().unwrap() >= 12 * 60,
        "{storm}"
    );
    let quiet = clients
        .iter()
        .find(|e| e["identity"] == user_of("quiet-token"))
        .unwrap();
    assert_eq!(quiet["totals"]["requests"], 3);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubeguard"))
        .args(["top", "--once", "--admin", &admin])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let first_row = text
        .lines()
        .find(|l| l.contains("token-sha256:"))
        .unwrap_or_default();
    assert!(
        first_row.contains(&user_of("storm-token")),
        "storm client first:\n{text}"
    );
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_over_its_cost_budget_gets_429_and_a_retry_succeeds() {
    let sim = sim().await;
    // A small budget: each unversioned LIST of 60 pods costs 60 units; 100 units of burst,
    // refilled at 100 per second.
    let kg = common::start_kubeguard(
        &sim.url,
        "limits:\n  mode: enforce\n  costPerSecond: 100\n  costBurst: 100\n",
    )
    .await;
    let c = common::client(&kg, false);
    let url = common::tls_url(&kg);
    // Learn the collection size first (an estimate needs it), then spend the budget.
    let mut throttled = None;
    for _ in 0..10 {
        let (code, headers, body) = get_as(&c, &format!("{url}/api/v1/pods"), "greedy").await;
        if code == 429 {
            throttled = Some((headers, body));
            break;
        }
        assert_eq!(code, 200);
    }
    let (headers, body) = throttled.expect("the greedy client was throttled");
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is an integer (client-go honours only integers)");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["code"], 429);

    // Another client is unaffected.
    let (code, _, _) = get_as(&c, &format!("{url}/api/v1/pods"), "polite").await;
    assert_eq!(code, 200);

    // What client-go and kube-rs do: wait Retry-After, then retry — and it succeeds.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (code, _, _) = get_as(&c, &format!("{url}/api/v1/pods"), "greedy").await;
    assert_eq!(code, 200, "the retry after Retry-After succeeds");

    // The ledger counted the throttled request.
    let admin = format!("http://{}", kg.admin_addr);
    let (_, _, body) = get_as(&c, &format!("{admin}/debug/costs"), "x").await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let greedy = v["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["identity"] == user_of("greedy"))
        .unwrap();
    assert!(
        greedy["totals"]["throttled"].as_u64().unwrap() >= 1,
        "{greedy}"
    );
    kg.shutdown().await;
    sim.shutdown().await;
}

async fn common_poll<T, F, Fut>(mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn in_shadow_mode_a_client_over_its_request_rate_is_served_and_warned() {
    let sim = sim().await;
    // Two requests of burst, then one per second: the third of a quick series is over.
    let kg = common::start_kubeguard(
        &sim.url,
        "limits:\n  mode: shadow\n  requestsPerSecond: 1\n  requestBurst: 2\n",
    )
    .await;
    let url = common::tls_url(&kg);
    let expected = format!(
        "299 - \"kubeguard (shadow): would refuse: user '{}' is over its request rate limit\"",
        user_of("eager-token")
    );
    // Through the HTTP/1.1 front end and through hyper (h2), each with its own identity.
    for (h2, token) in [(false, "eager-token"), (true, "eager-token-h2")] {
        let c = common::client(&kg, h2);
        let target = format!("{url}/api/v1/namespaces/default");
        let mut warnings = Vec::new();
        for _ in 0..5 {
            let (code, headers, _) = get_as(&c, &target, token).await;
            assert_eq!(code, 200, "shadow mode serves every request");
            warnings.extend(
                headers
                    .get_all("warning")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string()),
            );
        }
        assert!(
            warnings.len() >= 2,
            "h2={h2}: the requests past the burst are warned: {warnings:?}"
        );
        let expected = expected.replace(&user_of("eager-token"), &user_of(token));
        assert!(
            warnings.iter().all(|w| *w == expected),
            "h2={h2}: {warnings:?}, expected {expected}"
        );
    }
    kg.shutdown().await;
    sim.shutdown().await;
}
