//! Cost accounting and whole-process protection through a running kubeguard in front of the
//! emulator: the in-flight cap sheds a surge with 429, the ledger's exports on the admin
//! listener (`/metrics`, `/debug/costs`), `kubeguard top --once`, and the ledger file surviving
//! a restart.
//!
//! The ledger is fed through `RunningServe::accounting` here: the proxy's response meter
//! records into it once the response scanner lands (see `cost::CostRecord`).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kubeguard::cost::{CostRecord, LedgerSnapshot};
use kubeguard::request::Verb;
use kubeguard::serve::RunningServe;
use kubeguard::sim::SimOptions;

async fn get(client: &common::TestClient, url: &str) -> (u16, http::HeaderMap, Bytes) {
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        common::body_bytes(body).await,
    )
}

fn admin_url(kg: &RunningServe) -> String {
    format!("http://{}", kg.admin_addr)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn record(kg: &RunningServe, who: &str, verb: Verb, etcd: u64, bytes: u64) {
    let mut r = CostRecord::new(who, verb, "pods");
    r.code = 200;
    r.etcd_objects_read = etcd;
    r.bytes_out = bytes;
    r.items = etcd / 10;
    r.items_exact = true;
    r.duration = Duration::from_millis(30);
    kg.accounting.ledger.record(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_is_shed_with_429_and_admitted_requests_stay_under_the_cap() {
    // One slow "etcd": every LIST of the 300 pods holds it for 15 ms, so requests pile up.
    let sim = kubeguard::sim::start(SimOptions {
        namespaces: 3,
        pods: 300,
        etcd_concurrency: 1,
        etcd_cost_per_object: Duration::from_micros(50),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let cap = 16;
    let kg = common::start_kubeguard(&sim.url, &format!("limits:\n  maxInflight: {cap}\n")).await;
    let url = format!("{}/api/v1/pods?limit=500", common::plain_url(&kg));
    let client = common::client(&kg, false);

    // Baseline: one LIST alone; its first pod is what the cheap GETs below read.
    let (code, _, body) = get(&client, &url).await;
    assert_eq!(code, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pod = format!(
        "{}/api/v1/namespaces/{}/pods/{}",
        common::plain_url(&kg),
        list["items"][0]["metadata"]["namespace"].as_str().unwrap(),
        list["items"][0]["metadata"]["name"].as_str().unwrap()
    );
    let rss_before = rss_kib();

    let peak = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, accounting) = (peak.clone(), sampling.clone(), kg.accounting.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(accounting.inflight.in_flight(), Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    let surge = 400;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..surge {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { get(&client, &url).await });
    }
    // Cheap requests in the middle of the LIST surge: the LISTs may take only half of the cap
    // (limits.expensiveInflightPercent), so GETs by name still find room.
    let mut cheap = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (client, pod) = (client.clone(), pod.clone());
        cheap.spawn(async move { get(&client, &pod).await.0 });
    }
    let cheap_codes: Vec<u16> = cheap.join_all().await;
    let (mut ok, mut shed) = (0, 0);
    while let Some(res) = tasks.join_next().await {
        let (code, headers, body) = res.unwrap();
        match code {
            200 => ok += 1,
            429 => {
                shed += 1;
                let retry: u32 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(retry >= 1);
                let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(status["kind"], "Status");
                assert_eq!(status["reason"], "TooManyRequests");
                assert_eq!(status["details"]["retryAfterSeconds"], retry);
            }
            other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let rss_after = rss_kib();
    eprintln!("surge of {surge}: {ok} admitted, {shed} shed; RSS {rss_before} -> {rss_after} KiB");
    assert_eq!(ok + shed, surge);
    assert!(shed > 0 && ok >= cap / 2, "ok {ok}, shed {shed}");
    assert!(peak.load(Ordering::Relaxed) <= cap, "peak {peak:?}");
    assert_eq!(
        cheap_codes,
        vec![200; 6],
        "GETs by name during the LIST surge"
    );
    assert_eq!(kg.accounting.inflight.shed_total(), shed as u64);
    // The shed requests cost nothing upstream: the emulator saw only the admitted ones.
    assert_eq!(sim.stats().lists_from_etcd, 1 + ok as u64);
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // A client-go-style retry after the Retry-After succeeds.
    let (code, _, _) = get(&client, &url).await;
    assert_eq!(code, 200);
    let (_, _, metrics) = get(&client, &format!("{}/metrics", admin_url(&kg))).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(
        metrics.contains(&format!("kubeguard_shed_requests_total {shed}")),
        "{metrics}"
    );
}

async fn costly_env(extra: &str) -> (kubeguard::sim::RunningSim, RunningServe) {
    let sim = kubeguard::sim::start(SimOptions::default()).await.unwrap();
    let kg = common::start_kubeguard(&sim.url, extra).await;
    record(&kg, "storm", Verb::List, 90_000, 1 << 20);
    for _ in 0..20 {
        record(&kg, "chatty", Verb::Get, 1, 3 << 20);
    }
    record(
        &kg,
        "system:serviceaccount:kube-system:quiet",
        Verb::Watch,
        0,
        100,
    );
    (sim, kg)
}

#[tokio::test]
async fn the_admin_listener_serves_the_ledger_as_prometheus_and_json() {
    let (_sim, kg) = costly_env("cost:\n  metricsTop: 2\n").await;
    let client = common::client(&kg, false);

    let (code, headers, body) = get(&client, &format!("{}/debug/costs", admin_url(&kg))).await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "application/json");
    let snap: LedgerSnapshot = serde_json::from_slice(&body).unwrap();
    let names: Vec<_> = snap.clients.iter().map(|c| c.identity.as_str()).collect();
    assert_eq!(names[0], "storm", "{names:?}");
    assert_eq!(snap.clients.len(), 3);
    assert_eq!(snap.clients[0].by_request[0].verb, "list");
    assert_eq!(snap.total().requests, 22);

    let (_, _, top1) = get(&client, &format!("{}/debug/costs?top=1", admin_url(&kg))).await;
    let top1: LedgerSnapshot = serde_json::from_slice(&top1).unwrap();
    assert_eq!((top1.clients.len(), top1.other_clients), (1, 2));
    let (code, _, _) = get(&client, &format!("{}/debug/costs?top=x", admin_url(&kg))).await;
    assert_eq!(code, 400);

    let (code, _, metrics) = get(&client, &format!("{}/metrics", admin_url(&kg))).await;
    assert_eq!(code, 200);
    let text = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(
        text.contains("kubeguard_client_etcd_objects_read_total{client=\"storm\"} 90000"),
        "{text}"
    );
    assert!(text.contains("kubeguard_client_requests_total{client=\"chatty\"} 20"));
    // metricsTop: 2 — the third identity shares the "other" label.
    assert!(!text.contains("kube-system:quiet"), "{text}");
    assert!(text.contains("kubeguard_client_requests_total{client=\"other\"} 1"));
    // The shared registry's series are still there, and the OpenMetrics end marker stays last.
    assert!(text.contains("kubeguard_inflight_requests"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[tokio::test]
async fn top_once_prints_who_costs_what() {
    let (_sim, kg) = costly_env("").await;
    let run = |sort: &'static str| {
        let admin = admin_url(&kg);
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubeguard"))
                .args(["top", "--once", "--admin", &admin, "--sort", sort])
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let by_etcd = run("etcd").await;
    let lines: Vec<&str> = by_etcd.lines().collect();
    assert!(lines[0].starts_with("CLIENT"), "{by_etcd}");
    assert!(lines[1].starts_with("storm "), "{by_etcd}");
    assert!(lines[1].contains("100.0%"), "{by_etcd}");
    assert!(lines.last().unwrap().starts_with("TOTAL"), "{by_etcd}");
    let by_bytes = run("bytes").await;
    assert!(
        by_bytes.lines().nth(1).unwrap().starts_with("chatty "),
        "{by_bytes}"
    );
    assert!(by_bytes.contains("60.0MiB"), "{by_bytes}");
    let by_requests = run("requests").await;
    assert!(by_requests.lines().nth(1).unwrap().starts_with("chatty "));

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubeguard"))
        .args(["top", "--once", "--admin", "http://127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/debug/costs"));
}

#[tokio::test]
async fn the_ledger_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.json");
    let extra = format!(
        "cost:\n  persistPath: {}\n  persistInterval: 1h\n",
        path.display()
    );
    let (sim, kg) = costly_env(&extra).await;
    // Written at shutdown, even long before the first interval.
    kg.shutdown().await;
    let kg = common::start_kubeguard(&sim.url, &extra).await;
    let client = common::client(&kg, false);
    let (_, _, body) = get(&client, &format!("{}/debug/costs", admin_url(&kg))).await;
    let snap: LedgerSnapshot = serde_json::from_slice(&body).unwrap();
    assert_eq!(snap.clients[0].identity, "storm");
    assert_eq!(snap.clients[0].totals.etcd_objects_read, 90_000);
    assert_eq!(snap.total().requests, 22);
}

/// A tiny OTLP/HTTP collector on 127.0.0.1: every POST's path, content type and body.
async fn collector() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, String, Bytes)>,
) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let ctype = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let _ = tx.send((path, ctype, body));
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::new()),
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_pushed_to_an_otlp_collector() {
    let (addr, mut received) = collector().await;
    let (_sim, kg) = costly_env(&format!(
        "cost:\n  otlpEndpoint: http://{addr}\n  otlpInterval: 200ms\n"
    ))
    .await;
    let (path, ctype, body) = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let got = received.recv().await.unwrap();
            // The first export may run before the records: wait for one that has them (spans
            // go to /v1/traces of the same collector).
            if got.0 == "/v1/metrics" && got.2.windows(5).any(|w| w == b"storm") {
                return got;
            }
        }
    })
    .await
    .expect("an OTLP export naming the storm client within 10 s");
    assert_eq!(path, "/v1/metrics");
    assert_eq!(ctype, "application/x-protobuf");
    let has = |s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has("kubeguard.client.etcd.objects_read"));
    assert!(has("kubeguard.client.requests"));
    assert!(has("system:serviceaccount:kube-system:quiet"));
    assert!(has("kubeguard"), "service.name");
    kg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_stream_is_charged_its_open_time() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams, ListParams};
    let sim = kubeguard::sim::start(SimOptions {
        namespaces: 1,
        pods: 3,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(&sim.url, "").await;
    let config = kube::Config::from_custom_kubeconfig(kg.client_kubeconfig(), &Default::default())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::all(kube::Client::try_from(config).unwrap());
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let pods: Api<Pod> = Api::namespaced(pods.into_client(), &pod.metadata.namespace.unwrap());
    // kube-rs exec over WebSocket through kubeguard: a command that keeps the stream open 1 s.
    let mut attached = pods
        .exec(
            &pod.metadata.name.unwrap(),
            ["sleep", "1"],
            &AttachParams::default().stderr(false),
        )
        .await
        .unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    attached.join().await.unwrap();

    // The record is written when the bridged connection closes.
    let c = common::client(&kg, false);
    let mut exec_seconds = 0.0;
    for _ in 0..100 {
        let (_, _, body) = get(&c, &format!("{}/debug/costs", admin_url(&kg))).await;
        let snap: LedgerSnapshot = serde_json::from_slice(&body).unwrap();
        exec_seconds = snap.total().exec_seconds;
        if exec_seconds > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        (0.9..5.0).contains(&exec_seconds),
        "exec seconds in /debug/costs: {exec_seconds}"
    );
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_becomes_an_otlp_span() {
    let (addr, mut received) = collector().await;
    let sim = kubeguard::sim::start(SimOptions {
        namespaces: 1,
        pods: 5,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(
        &sim.url,
        &format!("cost:\n  otlpEndpoint: http://{addr}\n  otlpInterval: 60s\n"),
    )
    .await;
    let c = common::client(&kg, false);
    let req = http::Request::get(format!("{}/api/v1/pods", common::tls_url(&kg)))
        .header("authorization", "Bearer span-client-token")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    common::body_bytes(resp.into_body()).await;
    let client_name = {
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "Bearer span-client-token".parse().unwrap());
        kubeguard::identity::unverified_name(&h)
    };
    // Spans are batched (up to 1 s): wait for the export naming this client.
    let (ctype, body) = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (path, ctype, body) = received.recv().await.unwrap();
            if path == "/v1/traces"
                && body
                    .windows(client_name.len())
                    .any(|w| w == client_name.as_bytes())
            {
                return (ctype, body);
            }
        }
    })
    .await
    .expect("a span for the LIST within 10 s");
    assert_eq!(ctype, "application/x-protobuf");
    let has = |s: &str| body.windows(s.len()).any(|w| w == s.as_bytes());
    for attr in [
        "kubeguard.client",
        "kubeguard.verb",
        "kubeguard.resource",
        "kubeguard.decision",
        "http.response.status_code",
        "http.response.body.size",
        "kubeguard.items",
        "list pods",
        "forward",
    ] {
        assert!(has(attr), "{attr} in the exported span");
    }
    // The exporter's own counters are on /metrics.
    let (_, _, metrics) = get(&c, &format!("{}/metrics", admin_url(&kg))).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("kubeguard_trace_spans_dropped_total 0"),
        "{metrics}"
    );
    kg.shutdown().await;
    sim.shutdown().await;
}
