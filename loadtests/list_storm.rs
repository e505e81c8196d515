//! The Datadog pattern: one controller firing parallel unversioned LISTs of nodes and pods while
//! 50 ordinary clients work (GET a pod, list their namespace's pods the way kubectl does). Run
//! three times against a fresh emulator: direct (no kubeguard), through kubeguard in shadow
//! mode, and in enforce mode. Reports, from the emulator's own counters, the etcd objects read,
//! and the ordinary clients' p50/p99 latency.
//!
//! `cargo run --release --example list_storm [-- SECONDS_PER_PHASE]` (default 10 s a phase).
#![allow(clippy::unwrap_used)]

#[path = "support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kubeguard::config::FileConfig;
use kubeguard::sim::{SimOptions, SimStats};

const CONTROLLER_PARALLELISM: usize = 8;
const ORDINARY_CLIENTS: usize = 50;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Direct,
    Shadow,
    Enforce,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Direct => "direct (no kubeguard)",
            Phase::Shadow => "kubeguard shadow",
            Phase::Enforce => "kubeguard enforce",
        }
    }
}

struct Outcome {
    stats: SimStats,
    controller_lists: u64,
    ordinary: Vec<Duration>,
    errors: u64,
}

fn sim_options() -> SimOptions {
    SimOptions {
        nodes: 200,
        namespaces: 20,
        pods: 4000,
        ..SimOptions::default()
    }
}

async fn get(client: &HttpClient, url: &str, token: &str) -> Result<(), String> {
    let req = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("{url}: {status}"))
    }
}

/// (namespace, pod name) of every seeded pod, read directly from the emulator.
async fn pods(client: &HttpClient, sim_url: &str) -> Vec<(String, String)> {
    let req = Request::get(format!("{sim_url}/api/v1/pods?resourceVersion=0"))
        .body(Empty::new())
        .unwrap();
    let body = client
        .request(req)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["namespace"].as_str().unwrap().to_string(),
                p["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn run_phase(phase: Phase, seconds: u64) -> Outcome {
    let sim = kubeguard::sim::start(sim_options()).await.unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let pods = Arc::new(pods(&client, &sim.url).await);
    let mut kg = None;
    let base = match phase {
        Phase::Direct => sim.url.clone(),
        Phase::Shadow | Phase::Enforce => {
            let mode = if phase == Phase::Shadow {
                "shadow"
            } else {
                "enforce"
            };
            let yaml = format!(
                "server:\n  listen: [\"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 1s\npolicy:\n  mode: {mode}\n"
            );
            let config = FileConfig::from_yaml(&yaml, "list_storm").unwrap();
            let running =
                kubeguard::serve::start(&config, kube::Config::new(sim.url.parse().unwrap()))
                    .await
                    .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !running.policy.facts.ready() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let url = running.url();
            kg = Some(running);
            url
        }
    };
    let before = sim.stats();
    let stop = Arc::new(AtomicBool::new(false));
    let mut controller = tokio::task::JoinSet::new();
    for i in 0..CONTROLLER_PARALLELISM {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        controller.spawn(async move {
            let (mut n, mut errors) = (0u64, 0u64);
            // The controller's informer-less pattern: a full unversioned LIST, again and again.
            let url = if i % 2 == 0 {
                format!("{base}/api/v1/pods")
            } else {
                format!("{base}/api/v1/nodes?limit=500")
            };
            while !stop.load(Ordering::Relaxed) {
                match get(&client, &url, "datadog-cluster-agent").await {
                    Ok(()) => n += 1,
                    Err(_) => errors += 1,
                }
            }
            (n, errors)
        });
    }
    let mut ordinary = tokio::task::JoinSet::new();
    for i in 0..ORDINARY_CLIENTS {
        let (client, base, stop, pods) = (client.clone(), base.clone(), stop.clone(), pods.clone());
        ordinary.spawn(async move {
            let token = format!("user-{i}");
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut k = i;
            while !stop.load(Ordering::Relaxed) {
                let (ns, name) = &pods[k % pods.len()];
                k += 7;
                let url = if k % 3 == 0 {
                    format!("{base}/api/v1/namespaces/{ns}/pods?limit=500")
                } else {
                    format!("{base}/api/v1/namespaces/{ns}/pods/{name}")
                };
                let t = Instant::now();
                match get(&client, &url, &token).await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
                // An ordinary client thinks between requests.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (latencies, errors)
        });
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        stats: SimStats::default(),
        controller_lists: 0,
        ordinary: Vec::new(),
        errors: 0,
    };
    while let Some(r) = controller.join_next().await {
        let (n, e) = r.unwrap();
        out.controller_lists += n;
        out.errors += e;
    }
    while let Some(r) = ordinary.join_next().await {
        let (l, e) = r.unwrap();
        out.ordinary.extend(l);
        out.errors += e;
    }
    let after = sim.stats();
    out.stats = SimStats {
        etcd_objects_read: after.etcd_objects_read - before.etcd_objects_read,
        cache_objects_served: after.cache_objects_served - before.cache_objects_served,
        lists_from_etcd: after.lists_from_etcd - before.lists_from_etcd,
        lists_from_cache: after.lists_from_cache - before.lists_from_cache,
        etcd_busy_seconds: after.etcd_busy_seconds - before.etcd_busy_seconds,
        etcd_queue_wait_seconds: after.etcd_queue_wait_seconds - before.etcd_queue_wait_seconds,
        ..after
    };
    if let Some(kg) = kg {
        kg.shutdown().await;
    }
    sim.shutdown().await;
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let seconds = support::seconds_arg(10, 1, 120);
    println!(
        "list_storm: 1 controller x {CONTROLLER_PARALLELISM} parallel unversioned LISTs (pods, nodes) + {ORDINARY_CLIENTS} ordinary clients, {seconds} s per phase, emulator v1.30 (200 nodes, 4000 pods)\n"
    );
    let mut rows = Vec::new();
    for phase in [Phase::Direct, Phase::Shadow, Phase::Enforce] {
        let mut o = run_phase(phase, seconds).await;
        o.ordinary.sort();
        rows.push((phase, o));
    }
    let base = rows[0].1.stats.etcd_objects_read.max(1) as f64;
    println!(
        "| phase | etcd objects read | vs direct | etcd objects/controller LIST | lists etcd/cache | controller LISTs | ordinary reqs | ordinary p50 | ordinary p99 | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (phase, o) in &rows {
        let read = o.stats.etcd_objects_read;
        println!(
            "| {} | {} | {:+.1} % | {:.0} | {}/{} | {} | {} | {:.1} ms | {:.1} ms | {} |",
            phase.name(),
            read,
            (read as f64 / base - 1.0) * 100.0,
            read as f64 / o.controller_lists.max(1) as f64,
            o.stats.lists_from_etcd,
            o.stats.lists_from_cache,
            o.controller_lists,
            o.ordinary.len(),
            percentile(&o.ordinary, 0.5).as_secs_f64() * 1e3,
            percentile(&o.ordinary, 0.99).as_secs_f64() * 1e3,
            o.errors,
        );
    }
}
