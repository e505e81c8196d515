//! The Loki pattern: all traffic lands on a few backends. Here, 20 clients (distinct identities:
//! distinct bearer tokens) each keep 16 expensive LISTs in flight against one apiserver whose
//! "etcd" serves 4 reads at once. Direct, every request reaches the apiserver at once; through
//! kubeguard with `limits.maxConcurrentExpensive: 2`, each client holds at most 2 upstream and
//! the rest are answered 429 + Retry-After at once. The emulator reports its own peak of requests
//! in flight.
//!
//! `cargo run --release --example few_backends [-- SECONDS]` (default 10 s a phase).
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
use hyper_util::rt::TokioExecutor;
use kubeguard::config::FileConfig;
use kubeguard::sim::SimOptions;

const CLIENTS: usize = 20;
const PER_CLIENT: usize = 16;
const CAP: usize = 2;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    throttled: AtomicU64,
    other: AtomicU64,
}

async fn phase(through_kubeguard: bool, secs: u64) -> (u64, Counts, Vec<Duration>) {
    let sim = kubeguard::sim::start(SimOptions {
        nodes: 20,
        namespaces: 10,
        pods: 2000,
        etcd_concurrency: 4,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = if through_kubeguard {
        let yaml = format!(
            "server:\n  listen: [\"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 1s\n\
             limits:\n  mode: enforce\n  maxConcurrentExpensive: {CAP}\n  expensiveListObjects: 100\n  \
             requestsPerSecond: 100000\n  requestBurst: 100000\n  costPerSecond: 100000000\n  costBurst: 100000000\n"
        );
        let config = FileConfig::from_yaml(&yaml, "few_backends").unwrap();
        let upstream = kube::Config::new(sim.url.parse().unwrap());
        Some(kubeguard::serve::start(&config, upstream).await.unwrap())
    } else {
        None
    };
    let base = match &kg {
        Some(kg) => {
            let l = kg.listeners.iter().find(|l| !l.tls).unwrap();
            format!("http://127.0.0.1:{}", l.addr.port())
        }
        None => sim.url.clone(),
    };
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CLIENTS * PER_CLIENT)
        .build_http::<Empty<Bytes>>();
    // One LIST first so kubeguard has learned the collection's size (an expensive LIST).
    let first = client
        .request(
            Request::get(format!("{base}/api/v1/pods"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let _ = first.into_body().collect().await;
    let peak_before = sim.stats().inflight_peak;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        for _ in 0..PER_CLIENT {
            let (client, base, stop, counts) =
                (client.clone(), base.clone(), stop.clone(), counts.clone());
            tasks.spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let req = Request::get(format!("{base}/api/v1/pods"))
                        .header("authorization", format!("Bearer backend-{c}"))
                        .body(Empty::new())
                        .unwrap();
                    match client.request(req).await {
                        Ok(resp) => {
                            let code = resp.status().as_u16();
                            let retry_after = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                            let _ = resp.into_body().collect().await;
                            match code {
                                200 => {
                                    counts.ok.fetch_add(1, Ordering::Relaxed);
                                    lat.push(started.elapsed());
                                }
                                429 => {
                                    counts.throttled.fetch_add(1, Ordering::Relaxed);
                                    // A well-behaved client waits as told (bounded for the run).
                                    let wait = retry_after.unwrap_or(1).min(1);
                                    tokio::time::sleep(Duration::from_millis(wait * 100)).await;
                                }
                                _ => {
                                    counts.other.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Err(_) => {
                            counts.other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat
            });
        }
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.unwrap());
    }
    let peak = sim.stats().inflight_peak.max(peak_before);
    if let Some(kg) = kg {
        kg.shutdown().await;
    }
    sim.shutdown().await;
    let counts = Arc::try_unwrap(counts).unwrap_or_default();
    (peak, counts, lat)
}

fn pct(lat: &mut [Duration], p: f64) -> f64 {
    if lat.is_empty() {
        return 0.0;
    }
    lat.sort();
    let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
    lat[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let secs = support::seconds_arg(10, 1, 600);
    println!(
        "{CLIENTS} clients × {PER_CLIENT} concurrent unversioned LISTs of 2,000 pods, {secs} s a phase; kubeguard cap {CAP} per client → upstream limit {}",
        CLIENTS * CAP
    );
    println!(
        "| phase | upstream peak in flight | configured limit | LISTs served | 429 | other errors | served p50 | served p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for through in [false, true] {
        let (peak, counts, mut lat) = phase(through, secs).await;
        let limit = if through {
            (CLIENTS * CAP).to_string()
        } else {
            "none".into()
        };
        println!(
            "| {} | {peak} | {limit} | {} | {} | {} | {:.1} ms | {:.1} ms |",
            if through {
                "through kubeguard (enforce)"
            } else {
                "direct"
            },
            counts.ok.load(Ordering::Relaxed),
            counts.throttled.load(Ordering::Relaxed),
            counts.other.load(Ordering::Relaxed),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
        );
    }
}
