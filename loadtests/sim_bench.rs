//! `cargo run --release --example sim_bench`: the emulator's own numbers, in-process on
//! 127.0.0.1, bounded (about 30 s). Prints one table:
//!
//! 1. small GETs/s: many keep-alive HTTP/1.1 clients GET one ConfigMap by name as fast as they can;
//! 2. seeding 100k pods (`SIM_BENCH_PODS` to change): wall time and resident memory it added;
//! 3. the LIST-storm effect on that cluster: the p50/p99 latency of ordinary clients (paced GETs
//!    by name, one etcd read each) alone, during a storm of unversioned LISTs (each scans every
//!    pod in "etcd" and holds a permit for it, so the GETs queue behind them), and during a
//!    storm of the same LISTs with `resourceVersion=0` (served from the watch cache: no queue).
//!
//! The storm LISTs carry a label selector so that they return a handful of pods: what is
//! measured is the etcd scan, not the cost of shipping 300 MB per LIST.
use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use kubeguard::sim::{self, RunningSim, SimOptions};
use tokio::net::TcpStream;

type BoxError = Box<dyn Error + Send + Sync>;

/// Concurrent keep-alive connections of the throughput phase.
const GET_CLIENTS: usize = 64;
const GET_PHASE: Duration = Duration::from_secs(3);
/// Ordinary clients of the storm phases, each sending one GET every `PACE`.
const ORDINARY_CLIENTS: usize = 8;
const PACE: Duration = Duration::from_millis(10);
const STORM_CLIENTS: usize = 16;
/// Each storm client sends one LIST every `STORM_PACE` (or as soon as the last one answered).
const STORM_PACE: Duration = Duration::from_millis(500);
const STORM_PHASE: Duration = Duration::from_secs(4);
const SMALL_CM: &str = "/api/v1/namespaces/default/configmaps/small";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let pods: usize = std::env::var("SIM_BENCH_PODS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(100_000);

    // 1. Small GETs/s against an empty emulator with the default cost model.
    let small = sim::start(SimOptions::default()).await?;
    create_small_configmap(&small).await?;
    let gets = get_throughput(&small).await?;
    small.shutdown().await;

    // 2. Seeding: the generator alone (objects built and dropped), then the whole start.
    let t0 = Instant::now();
    let spec = sim::seed::SeedSpec {
        nodes: 100,
        namespaces: 50,
        pods,
    };
    let generated = sim::seed::objects_at(spec, "v1.30.4", "2025-01-06T08:00:00Z").count();
    let generate_time = t0.elapsed();
    let rss_before = rss_mib();
    let t0 = Instant::now();
    let big = sim::start(SimOptions {
        nodes: 100,
        namespaces: 50,
        pods,
        ..SimOptions::default()
    })
    .await?;
    let seed_time = t0.elapsed();
    let rss_seeded = rss_mib().saturating_sub(rss_before);
    create_small_configmap(&big).await?;

    // 3. The storm phases.
    let selector = format!("labelSelector=app%3D{}", first_app(&big).await?);
    let base = storm_phase(&big, None).await?;
    let s0 = big.stats();
    let unversioned = storm_phase(&big, Some(format!("/api/v1/pods?{selector}"))).await?;
    let s1 = big.stats();
    let cached = storm_phase(
        &big,
        Some(format!("/api/v1/pods?{selector}&resourceVersion=0")),
    )
    .await?;
    let s2 = big.stats();
    big.shutdown().await;

    println!("| sim_bench ({} cores) | result |", cores());
    println!("|---|---|");
    println!(
        "| small GETs by name ({GET_CLIENTS} keep-alive HTTP/1.1 clients, {} s) | {:.0} /s |",
        GET_PHASE.as_secs(),
        gets
    );
    println!(
        "| seed {pods} pods (100 nodes, 50 namespaces) | {:.2} s, RSS +{rss_seeded} MiB |",
        seed_time.as_secs_f64()
    );
    println!(
        "| the seed generator alone, run before ({generated} objects built and dropped) | {:.2} s |",
        generate_time.as_secs_f64()
    );
    let row = |name: &str, p: &Phase| {
        println!(
            "| ordinary GET p50 / p99, {name} | {:.2} ms / {:.2} ms ({} GETs{}) |",
            ms(p.p50),
            ms(p.p99),
            p.samples,
            if p.storm_lists > 0 {
                format!(", {} storm LISTs", p.storm_lists)
            } else {
                String::new()
            }
        )
    };
    row("baseline", &base);
    row(
        &format!("{STORM_CLIENTS} clients storming unversioned LISTs"),
        &unversioned,
    );
    row(
        &format!("{STORM_CLIENTS} clients storming resourceVersion=0 LISTs"),
        &cached,
    );
    println!(
        "| etcd during the unversioned storm | {} objects read, {:.1} s queue wait |",
        s1.etcd_objects_read - s0.etcd_objects_read,
        s1.etcd_queue_wait_seconds - s0.etcd_queue_wait_seconds
    );
    println!(
        "| etcd during the RV=0 storm | {} objects read, {:.1} s queue wait; {} objects from cache |",
        s2.etcd_objects_read - s1.etcd_objects_read,
        s2.etcd_queue_wait_seconds - s1.etcd_queue_wait_seconds,
        s2.cache_objects_served - s1.cache_objects_served
    );
    Ok(())
}

/// One keep-alive HTTP/1.1 connection to the emulator.
struct Conn {
    tx: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(sim: &RunningSim) -> Result<Conn, BoxError> {
        let tcp = TcpStream::connect(sim.addr).await?;
        tcp.set_nodelay(true)?;
        let (tx, conn) = http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(Conn {
            tx,
            host: sim.addr.to_string(),
        })
    }

    /// Sends one request and reads the whole body; returns the status code.
    async fn send(&mut self, method: &str, path: &str, body: Bytes) -> Result<u16, BoxError> {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.host)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.tx.ready().await?;
        let resp = self.tx.send_request(req).await?;
        let code = resp.status().as_u16();
        resp.into_body().collect().await?;
        Ok(code)
    }

    async fn get(&mut self, path: &str) -> Result<u16, BoxError> {
        self.send("GET", path, Bytes::new()).await
    }
}

async fn create_small_configmap(sim: &RunningSim) -> Result<(), BoxError> {
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"small"},"data":{"k":"v"}}"#;
    let code = Conn::open(sim)
        .await?
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Bytes::from_static(body.as_bytes()),
        )
        .await?;
    if code != 201 {
        return Err(format!("creating the ConfigMap answered {code}").into());
    }
    Ok(())
}

/// The `app` label of the first seeded deployment (a selector matching a handful of pods).
async fn first_app(sim: &RunningSim) -> Result<String, BoxError> {
    let mut conn = Conn::open(sim).await?;
    let req = http::Request::get("/apis/apps/v1/deployments?limit=1")
        .header(http::header::HOST, &conn.host)
        .body(Full::new(Bytes::new()))?;
    conn.tx.ready().await?;
    let body = conn
        .tx
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?;
    let list: serde_json::Value = serde_json::from_slice(&body.to_bytes())?;
    list.pointer("/items/0/metadata/labels/app")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "no seeded deployment".into())
}

/// GETs/s of `GET_CLIENTS` connections looping for `GET_PHASE`.
async fn get_throughput(sim: &RunningSim) -> Result<f64, BoxError> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + GET_PHASE;
    let mut tasks = Vec::new();
    for _ in 0..GET_CLIENTS {
        let mut conn = Conn::open(sim).await?;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if conn.get(SMALL_CM).await? != 200 {
                    return Err::<(), BoxError>("GET did not answer 200".into());
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let t0 = Instant::now();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64())
}

/// Latencies of the ordinary clients in one phase.
struct Phase {
    p50: Duration,
    p99: Duration,
    samples: usize,
    storm_lists: u64,
}

/// Runs the ordinary clients for `STORM_PHASE`, with `STORM_CLIENTS` looping on `storm` if given.
async fn storm_phase(sim: &RunningSim, storm: Option<String>) -> Result<Phase, BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let lists = Arc::new(AtomicU64::new(0));
    let mut stormers = Vec::new();
    if let Some(path) = storm {
        for _ in 0..STORM_CLIENTS {
            let mut conn = Conn::open(sim).await?;
            let (stop, lists, path) = (stop.clone(), lists.clone(), path.clone());
            stormers.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(STORM_PACE);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    if conn.get(&path).await? != 200 {
                        return Err::<(), BoxError>("storm LIST did not answer 200".into());
                    }
                    lists.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        // Let the storm build its queue before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + STORM_PHASE;
    let mut clients = Vec::new();
    for _ in 0..ORDINARY_CLIENTS {
        let mut conn = Conn::open(sim).await?;
        clients.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut tick = tokio::time::interval(PACE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < deadline {
                tick.tick().await;
                let t = Instant::now();
                if conn.get(SMALL_CM).await? != 200 {
                    return Err::<Vec<Duration>, BoxError>("GET did not answer 200".into());
                }
                lat.push(t.elapsed());
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await??);
    }
    stop.store(true, Ordering::Relaxed);
    for s in stormers {
        s.await??;
    }
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Phase {
        p50: at(0.50),
        p99: at(0.99),
        samples: all.len(),
        storm_lists: lists.load(Ordering::Relaxed),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Resident memory of this process (Linux), 0 elsewhere.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
