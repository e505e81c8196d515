//! 10,000 concurrent watches through one kubeguard: memory per watch, time to establish them,
//! and whether every event reaches every watch.
//!
//! The emulator runs in this process; kubeguard is the release binary next to this example
//! (`target/release/kubeguard`), started as a child so its RSS is its own. Watches travel over
//! h2 connections to kubeguard's plain loopback listener (250 streams each, kubeguard's
//! default), and kubeguard opens one HTTP/1.1 upstream connection per watch (see
//! src/upstream.rs), so both processes need about WATCHES + 100 descriptors: run with
//! `ulimit -n` at least that (`ulimit -n 20000`).
//!
//! `cargo build --release && cargo run --release --example watch_fleet [-- WATCHES [EVENTS]]`
#![allow(clippy::unwrap_used)]

#[path = "support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kubeguard::sim::SimOptions;
use tokio::net::TcpStream;

const STREAMS_PER_CONN: usize = 250;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let watches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

    let sim = kubeguard::sim::start(SimOptions {
        nodes: 1,
        namespaces: 1,
        pods: 10,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("sim.kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig_yaml(None)).unwrap();
    let port = free_port();
    let admin = free_port();
    let config = dir.path().join("kubeguard.yaml");
    // Per-identity limits off, and the whole-process cap on requests waiting for their response
    // head (default 2,000) above the fleet: this measures the proxy, not the limiter, which
    // would shed the excess of 10,000 watches opened at once with 429.
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: [\"http://127.0.0.1:{port}\"]\n  adminListen: 127.0.0.1:{admin}\n  shutdownGracePeriod: 1s\nupstream:\n  kubeconfig: {}\nlimits:\n  mode: \"off\"\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let binary = support::kubeguard_bin();
    let mut child = tokio::process::Command::new(&binary)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (cargo build --release first)",
                binary.display()
            )
        });
    let pid = child.id().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "kubeguard did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // h2 connections to kubeguard, warmed with one request each.
    let conns = watches.div_ceil(STREAMS_PER_CONN);
    let mut senders = Vec::new();
    for _ in 0..conns {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .max_concurrent_reset_streams(0)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        senders.push(sender);
    }
    let list = senders[0]
        .send_request(
            Request::get(format!(
                "http://127.0.0.1:{port}/api/v1/namespaces/default/pods"
            ))
            .body(Empty::new())
            .unwrap(),
        )
        .await
        .unwrap();
    let body = list.into_body().collect().await.unwrap().to_bytes();
    let rv =
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = support::rss_kib(pid);

    // Open the watches; each counts the event lines it receives.
    let delivered = Arc::new(AtomicU64::new(0));
    let established = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    for i in 0..watches {
        let mut sender = senders[i % conns].clone();
        let (delivered, established, failed) =
            (delivered.clone(), established.clone(), failed.clone());
        let uri = format!(
            "http://127.0.0.1:{port}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&timeoutSeconds=600"
        );
        tokio::spawn(async move {
            let resp = match sender
                .send_request(Request::get(uri).body(Empty::new()).unwrap())
                .await
            {
                Ok(r) if r.status() == 200 => r,
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            established.fetch_add(1, Ordering::Relaxed);
            let mut body = resp.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    let lines = d.iter().filter(|b| **b == b'\n').count() as u64;
                    delivered.fetch_add(lines, Ordering::Relaxed);
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while established.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < watches as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let establish_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_watches = support::rss_kib(pid);

    // Events: pods created directly on the emulator; every watch should see every one.
    let direct = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let sent_at = Instant::now();
    for n in 0..events {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("fleet-{n}"), "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        });
        let resp = direct
            .request(
                Request::post(format!("{}/api/v1/namespaces/default/pods", sim.url))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(pod.to_string())))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let expected = established.load(Ordering::Relaxed) * events;
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery_time = sent_at.elapsed();
    let rss_events = support::rss_kib(pid);
    let ok = established.load(Ordering::Relaxed);

    println!(
        "| watches | established | failed | time to establish | kubeguard RSS before | with watches | KiB per watch | events expected | delivered | time to deliver | RSS after events |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {watches} | {ok} | {} | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} | {expected} | {} | {:.2} s | {:.1} MiB |",
        failed.load(Ordering::Relaxed),
        establish_time.as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_watches as f64 / 1024.0,
        rss_watches.saturating_sub(rss_before) as f64 / ok.max(1) as f64,
        delivered.load(Ordering::Relaxed),
        delivery_time.as_secs_f64(),
        rss_events as f64 / 1024.0,
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
    sim.shutdown().await;
}
