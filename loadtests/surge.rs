//! A 10× surge against kubeguard's whole-process caps: the real release binary `kubeguard serve`
//! runs as a child process in front of the in-process emulator, so the RSS read from
//! /proc/PID/status is kubeguard's own.
//!
//! Phase 1 (baseline): GOOD clients GET a pod each at a steady rate; their p99 is measured.
//! Phase 2 (surge): the good clients go on while other clients add 10× their QPS, open loop
//! (a request is fired on every tick whether or not earlier ones have been answered), each a
//! LIST of a namespace's pods (~100 objects). kubeguard runs with `limits.maxInflight` and
//! `server.maxConnections`; the excess must be shed with 429, kubeguard's RSS stay under
//! RSS_CAP, and the good clients' p99 stay within 2× of the baseline.
//!
//! `cargo build --release && cargo run --release --example surge [-- SECONDS_PER_PHASE]`
//! (`KUBEGUARD_BIN` overrides where the binary is looked for: next to `examples/`).
#![allow(clippy::unwrap_used)]

#[path = "support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kubeguard::sim::SimOptions;

const GOOD: usize = 20;
/// Requests per second of each good client.
const GOOD_RATE: f64 = 5.0;
/// The surge adds this many times the good clients' total QPS.
/// (`SURGE_FACTOR=40` in the environment for a heavier one.)
const SURGE_FACTOR: f64 = 10.0;
const SURGE_CLIENTS: usize = 50;
const MAX_INFLIGHT: u32 = 64;
const MAX_CONNECTIONS: usize = 1024;
/// The RSS kubeguard must stay under.
const RSS_CAP: u64 = 150 * 1024 * 1024;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    shed: AtomicU64,
    other: AtomicU64,
}

async fn get(c: &HttpClient, url: &str, token: &str) -> Result<u16, ()> {
    let req = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .body(Empty::new())
        .unwrap();
    let resp = c.request(req).await.map_err(|_| ())?;
    let code = resp.status().as_u16();
    resp.into_body().collect().await.map_err(|_| ())?;
    Ok(code)
}

/// Resident memory of process `pid` in bytes.
fn rss_of(pid: u32) -> u64 {
    support::rss_kib(pid) * 1024
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Good clients for `phase`: each GETs its pod every 1/GOOD_RATE s; latencies of 200s.
async fn good_clients(
    c: &HttpClient,
    base: &str,
    pods: &[(String, String)],
    phase: Duration,
) -> (Vec<Duration>, u64, u64) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..GOOD {
        let (c, (ns, name)) = (c.clone(), pods[(i * 13) % pods.len()].clone());
        let url = format!("{base}/api/v1/namespaces/{ns}/pods/{name}");
        set.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / GOOD_RATE));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let end = Instant::now() + phase;
            let (mut lat, mut shed, mut failed) = (Vec::new(), 0, 0);
            while Instant::now() < end {
                tick.tick().await;
                let t = Instant::now();
                match get(&c, &url, &format!("good-{i}")).await {
                    Ok(200) => lat.push(t.elapsed()),
                    Ok(429) => shed += 1,
                    _ => failed += 1,
                }
            }
            (lat, shed, failed)
        });
    }
    let (mut all, mut shed, mut failed) = (Vec::new(), 0, 0);
    while let Some(r) = set.join_next().await {
        let (l, s, f) = r.unwrap();
        all.extend(l);
        shed += s;
        failed += f;
    }
    (all, shed, failed)
}

#[tokio::main]
async fn main() {
    let seconds = support::seconds_arg(10, 2, 120);
    let phase = Duration::from_secs(seconds);
    let bin = support::kubeguard_bin();
    let sim = kubeguard::sim::start(SimOptions {
        namespaces: 20,
        pods: 2000,
        nodes: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream.kubeconfig");
    std::fs::write(
        &upstream,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: sim\n  context:\n    cluster: sim\n    user: u\ncurrent-context: sim\n",
            sim.url
        ),
    )
    .unwrap();
    let config = dir.path().join("kubeguard.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: [\"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  maxConnections: {MAX_CONNECTIONS}\nlimits:\n  mode: off\n  maxInflight: {MAX_INFLIGHT}\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("client.kubeconfig");
    let mut child = tokio::process::Command::new(&bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--kubeconfig")
        .arg(&upstream)
        .arg("--kubeconfig-out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let base = loop {
        if let Ok(text) = std::fs::read_to_string(&out)
            && let Some(url) = text.lines().find_map(|l| l.trim().strip_prefix("server: "))
        {
            break url.trim().to_string();
        }
        assert!(Instant::now() < deadline, "kubeguard did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let list: serde_json::Value = serde_json::from_slice(
        &client
            .get(
                format!("{}/api/v1/pods?resourceVersion=0", sim.url)
                    .parse()
                    .unwrap(),
            )
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes(),
    )
    .unwrap();
    let pods: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["namespace"].as_str().unwrap().to_string(),
                p["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let rss_idle = rss_of(pid);

    // Sample kubeguard's RSS every 100 ms throughout.
    let peak = Arc::new(AtomicU64::new(rss_idle));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Phase 1: baseline.
    let (mut base_lat, base_shed, base_failed) = good_clients(&client, &base, &pods, phase).await;
    let rss_baseline = peak.load(Ordering::Relaxed);

    // Phase 2: the surge, open loop, from other clients.
    let surge = Arc::new(Counts::default());
    let factor: f64 = std::env::var("SURGE_FACTOR")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(SURGE_FACTOR);
    let surge_rate = factor * GOOD as f64 * GOOD_RATE;
    let surge_task = {
        let (client, base, pods, surge) =
            (client.clone(), base.clone(), pods.clone(), surge.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / surge_rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + phase;
            let mut inflight = tokio::task::JoinSet::new();
            let mut k = 0usize;
            while Instant::now() < end {
                tick.tick().await;
                k += 1;
                let (c, surge) = (client.clone(), surge.clone());
                let ns = &pods[(k * 31) % pods.len()].0;
                let url = format!("{base}/api/v1/namespaces/{ns}/pods?limit=500");
                let token = format!("surge-{}", k % SURGE_CLIENTS);
                inflight.spawn(async move {
                    match get(&c, &url, &token).await {
                        Ok(200) => surge.ok.fetch_add(1, Ordering::Relaxed),
                        Ok(429) => surge.shed.fetch_add(1, Ordering::Relaxed),
                        _ => surge.other.fetch_add(1, Ordering::Relaxed),
                    };
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        })
    };
    let (mut surge_lat, surge_shed, surge_failed) =
        good_clients(&client, &base, &pods, phase).await;
    surge_task.await.unwrap();
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let rss_peak = peak.load(Ordering::Relaxed);
    let _ = child.start_kill();
    let _ = child.wait().await;
    sim.shutdown().await;

    let (b50, b99) = (
        percentile(&mut base_lat, 0.5),
        percentile(&mut base_lat, 0.99),
    );
    let (s50, s99) = (
        percentile(&mut surge_lat, 0.5),
        percentile(&mut surge_lat, 0.99),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mb = |b: u64| b as f64 / 1048576.0;
    println!(
        "surge: {GOOD} good clients x {GOOD_RATE} GET/s; surge {surge_rate:.0} LIST/s ({factor}x) from {SURGE_CLIENTS} other clients, open loop; {seconds} s per phase; limits.maxInflight {MAX_INFLIGHT}, server.maxConnections {MAX_CONNECTIONS}, RSS cap {:.0} MiB\n",
        mb(RSS_CAP)
    );
    println!("| measure | baseline | surge | target |\n|---|---:|---:|---|");
    println!(
        "| good clients p50 / p99 | {:.1} / {:.1} ms | {:.1} / {:.1} ms | p99 within 2x: {:.2}x |",
        ms(b50),
        ms(b99),
        ms(s50),
        ms(s99),
        s99.as_secs_f64() / b99.as_secs_f64().max(1e-9)
    );
    println!(
        "| good clients ok / 429 / failed | {} / {base_shed} / {base_failed} | {} / {surge_shed} / {surge_failed} | |",
        base_lat.len(),
        surge_lat.len()
    );
    println!(
        "| surge requests ok / shed 429 / failed | | {} / {} / {} | excess shed with 429 |",
        surge.ok.load(Ordering::Relaxed),
        surge.shed.load(Ordering::Relaxed),
        surge.other.load(Ordering::Relaxed)
    );
    println!(
        "| kubeguard RSS (idle {:.1} MiB) peak | {:.1} MiB | {:.1} MiB | < {:.0} MiB |",
        mb(rss_idle),
        mb(rss_baseline),
        mb(rss_peak),
        mb(RSS_CAP)
    );
}
