//! The Datadog pattern: one controller firing parallel unversioned LISTs of nodes and pods while
//! 50 ordinary clients work (GET a pod, list their namespace's pods the way kubectl does).
//!
//! Four modes, each on a fresh emulator: direct (no kubeguard), through kubeguard in shadow
//! mode, in enforce mode (policy rewrites and the per-client limits enforced, `limits.*` at
//! their shipped defaults), and in enforce mode with a cost budget set for this cluster (BUDGET). kubeguard is the release binary run as a child process, so the RSS
//! sampled from /proc/PID/status every 100 ms is its own. Each mode has two halves: a baseline
//! (the ordinary clients alone) and the storm (the controller joins). The controller behaves as
//! client-go does on a 429: it waits `Retry-After` seconds before its next request.
//!
//! Reports, from the emulator's own counters, the etcd objects read during the storm; the
//! ordinary clients' p99 during the storm against their p99 without it (target: within 2x,
//! issue 9); 429s to the controller and to the ordinary clients (target: none); kubeguard's
//! RSS peak against RSS_CAP.
//!
//! `cargo build --release --bins --examples && target/release/examples/list_storm [SECONDS_PER_HALF]`
//! (default 10 s; `KUBEGUARD_BIN` overrides where the binary is looked for).
#![allow(clippy::unwrap_used)]

#[path = "support.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kubeguard::sim::{SimOptions, SimStats};

const CONTROLLER_PARALLELISM: usize = 8;
const ORDINARY_CLIENTS: usize = 50;
/// The RSS kubeguard must stay under (the same cap as `surge`; deploy/deployment.yaml requests
/// 256 Mi and limits it to 1 Gi).
const RSS_CAP: u64 = 150 * 1024 * 1024;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;
type Pods = Arc<Vec<(String, String)>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Shadow,
    Enforce,
    /// Enforce with an operator's cost budget for this cluster (BUDGET).
    EnforceBudget,
}

/// The cost budget of the last mode, set for this cluster as an operator would. A unit is one
/// object read from etcd (or ten served from the watch cache), and the limits charge a request
/// what it costs as it goes upstream: the controller's unversioned LIST of 4,000 pods, served
/// from the cache after the policy's rewrite, costs 400, so this budget allows one every 2 s; an
/// ordinary client's namespace LIST costs 20. At the shipped defaults (20,000/s, burst 100,000)
/// the controller may run dozens of pod LISTs a second.
const BUDGET: (u32, u32) = (200, 1000);

fn budget() -> (u32, u32) {
    std::env::var("LIST_STORM_BUDGET")
        .ok()
        .and_then(|b| {
            let (rate, burst) = b.split_once(',')?;
            Some((rate.trim().parse().ok()?, burst.trim().parse().ok()?))
        })
        .unwrap_or(BUDGET)
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::Direct => "direct (no kubeguard)".into(),
            Mode::Shadow => "kubeguard shadow".into(),
            Mode::Enforce => "kubeguard enforce (shipped limits)".into(),
            Mode::EnforceBudget => {
                let (rate, burst) = budget();
                format!("kubeguard enforce (costPerSecond {rate}, costBurst {burst})")
            }
        }
    }

    /// `LIST_STORM_MODES=direct,shadow,enforce,budget` (the default: all) picks the modes run;
    /// the "vs direct" columns compare with the first one run.
    fn selected(self) -> bool {
        let key = match self {
            Mode::Direct => "direct",
            Mode::Shadow => "shadow",
            Mode::Enforce => "enforce",
            Mode::EnforceBudget => "budget",
        };
        std::env::var("LIST_STORM_MODES").map_or(true, |m| m.split(',').any(|k| k.trim() == key))
    }
}

/// What one request came to.
enum Answer {
    Ok,
    /// 429, with its `Retry-After` in seconds (0 when absent).
    Throttled(u64),
    Failed,
}

#[derive(Default)]
struct Controller {
    lists: u64,
    throttled: u64,
    failed: u64,
}

#[derive(Default)]
struct Ordinary {
    latencies: Vec<Duration>,
    throttled: u64,
    failed: u64,
}

impl Ordinary {
    fn merge(&mut self, o: Ordinary) {
        self.latencies.extend(o.latencies);
        self.throttled += o.throttled;
        self.failed += o.failed;
    }
}

struct Outcome {
    /// The emulator's counters over the storm half.
    stats: SimStats,
    controller: Controller,
    baseline: Ordinary,
    storm: Ordinary,
    /// kubeguard's RSS (bytes) when idle, its peak in the baseline half and overall.
    rss: Option<(u64, u64, u64)>,
}

fn sim_options() -> SimOptions {
    SimOptions {
        nodes: 200,
        namespaces: 20,
        pods: 4000,
        ..SimOptions::default()
    }
}

async fn get(client: &HttpClient, url: &str, token: &str) -> Answer {
    let req = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .body(Empty::new())
        .unwrap();
    let Ok(resp) = client.request(req).await else {
        return Answer::Failed;
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    if resp.into_body().collect().await.is_err() {
        return Answer::Failed;
    }
    match status {
        200 => Answer::Ok,
        429 => Answer::Throttled(retry_after),
        _ => Answer::Failed,
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

/// kubeguard, the release binary, as a child process in front of `sim_url`; its URL.
async fn start_kubeguard(dir: &Path, mode: Mode, sim_url: &str) -> (tokio::process::Child, String) {
    let upstream = dir.join("upstream.kubeconfig");
    std::fs::write(
        &upstream,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {sim_url}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: sim\n  context:\n    cluster: sim\n    user: u\ncurrent-context: sim\n"
        ),
    )
    .unwrap();
    // Shadow: everything forwarded unchanged, decisions only told. Enforce: the policy's LIST
    // rewrite and every per-client limit at its shipped default (config/kubeguard.yaml).
    let name = if mode == Mode::Shadow {
        "shadow"
    } else {
        "enforce"
    };
    let config = dir.join("kubeguard.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: [\"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\npolicy:\n  mode: {name}\nlimits:\n  mode: {name}\n{}",
            if mode == Mode::EnforceBudget {
                let (rate, burst) = budget();
                format!("  costPerSecond: {rate}\n  costBurst: {burst}\n")
            } else {
                String::new()
            }
        ),
    )
    .unwrap();
    let out = dir.join("client.kubeconfig");
    let child = tokio::process::Command::new(support::kubeguard_bin())
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
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(&out)
            && let Some(url) = text.lines().find_map(|l| l.trim().strip_prefix("server: "))
        {
            return (child, url.trim().to_string());
        }
        assert!(Instant::now() < deadline, "kubeguard did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ordinary clients until `end`: each GETs a pod, and every third request lists its
/// namespace's pods the way kubectl does (`limit=500`), thinking 50 ms between requests.
async fn ordinary_clients(client: &HttpClient, base: &str, pods: &Pods, end: Instant) -> Ordinary {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..ORDINARY_CLIENTS {
        let (client, base, pods) = (client.clone(), base.to_string(), pods.clone());
        set.spawn(async move {
            let token = format!("user-{i}");
            let mut out = Ordinary::default();
            let mut k = i;
            while Instant::now() < end {
                let (ns, name) = &pods[k % pods.len()];
                k += 7;
                let url = if k % 3 == 0 {
                    format!("{base}/api/v1/namespaces/{ns}/pods?limit=500")
                } else {
                    format!("{base}/api/v1/namespaces/{ns}/pods/{name}")
                };
                let t = Instant::now();
                match get(&client, &url, &token).await {
                    Answer::Ok => out.latencies.push(t.elapsed()),
                    Answer::Throttled(_) => out.throttled += 1,
                    Answer::Failed => out.failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            out
        });
    }
    let mut all = Ordinary::default();
    while let Some(r) = set.join_next().await {
        all.merge(r.unwrap());
    }
    all
}

/// The controller until `end`: CONTROLLER_PARALLELISM loops of full unversioned LISTs (pods
/// without limit, nodes with `limit=500`), again and again; on a 429 a loop waits
/// `Retry-After` seconds, as client-go does.
async fn controller(client: &HttpClient, base: &str, end: Instant) -> Controller {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..CONTROLLER_PARALLELISM {
        let client = client.clone();
        let url = if i % 2 == 0 {
            format!("{base}/api/v1/pods")
        } else {
            format!("{base}/api/v1/nodes?limit=500")
        };
        set.spawn(async move {
            let mut out = Controller::default();
            while Instant::now() < end {
                match get(&client, &url, "datadog-cluster-agent").await {
                    Answer::Ok => out.lists += 1,
                    Answer::Throttled(secs) => {
                        out.throttled += 1;
                        let wait = Instant::now() + Duration::from_secs(secs.max(1));
                        tokio::time::sleep_until(wait.min(end).into()).await;
                    }
                    Answer::Failed => out.failed += 1,
                }
            }
            out
        });
    }
    let mut all = Controller::default();
    while let Some(r) = set.join_next().await {
        let c = r.unwrap();
        all.lists += c.lists;
        all.throttled += c.throttled;
        all.failed += c.failed;
    }
    all
}

fn delta(after: &SimStats, before: &SimStats) -> SimStats {
    SimStats {
        etcd_objects_read: after.etcd_objects_read - before.etcd_objects_read,
        cache_objects_served: after.cache_objects_served - before.cache_objects_served,
        lists_from_etcd: after.lists_from_etcd - before.lists_from_etcd,
        lists_from_cache: after.lists_from_cache - before.lists_from_cache,
        etcd_busy_seconds: after.etcd_busy_seconds - before.etcd_busy_seconds,
        etcd_queue_wait_seconds: after.etcd_queue_wait_seconds - before.etcd_queue_wait_seconds,
        ..after.clone()
    }
}

async fn run_mode(mode: Mode, half: Duration) -> Outcome {
    let sim = kubeguard::sim::start(sim_options()).await.unwrap();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let pods: Pods = Arc::new(pods(&client, &sim.url).await);
    let dir = tempfile::tempdir().unwrap();
    let mut child = None;
    let base = match mode {
        Mode::Direct => sim.url.clone(),
        Mode::Shadow | Mode::Enforce | Mode::EnforceBudget => {
            let (c, url) = start_kubeguard(dir.path(), mode, &sim.url).await;
            child = Some(c);
            url
        }
    };

    // kubeguard's RSS every 100 ms, throughout.
    let pid = child.as_ref().and_then(|c| c.id());
    let rss_idle = pid.map_or(0, |p| support::rss_kib(p) * 1024);
    let peak = Arc::new(AtomicU64::new(rss_idle));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while let Some(pid) = pid
                && sampling.load(Ordering::Relaxed)
            {
                peak.fetch_max(support::rss_kib(pid) * 1024, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Baseline: the ordinary clients alone (kubeguard also learns the collections' sizes).
    let baseline = ordinary_clients(&client, &base, &pods, Instant::now() + half).await;
    let rss_baseline = peak.load(Ordering::Relaxed);

    // The storm: the controller joins them.
    let before = sim.stats();
    let end = Instant::now() + half;
    let (controller, storm) = tokio::join!(
        controller(&client, &base, end),
        ordinary_clients(&client, &base, &pods, end)
    );
    let stats = delta(&sim.stats(), &before);
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    if let Some(mut c) = child {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    sim.shutdown().await;
    Outcome {
        stats,
        controller,
        baseline,
        storm,
        rss: pid.map(|_| (rss_idle, rss_baseline, peak.load(Ordering::Relaxed))),
    }
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
    let half = Duration::from_secs(seconds);
    println!(
        "list_storm: 1 controller x {CONTROLLER_PARALLELISM} parallel unversioned LISTs (pods, nodes) + {ORDINARY_CLIENTS} ordinary clients; per mode {seconds} s baseline (ordinary clients alone) then {seconds} s storm; emulator v1.30 (200 nodes, 4000 pods); kubeguard = release binary as a child, RSS cap {} MiB\n",
        RSS_CAP / 1048576
    );
    let mut rows = Vec::new();
    for mode in [
        Mode::Direct,
        Mode::Shadow,
        Mode::Enforce,
        Mode::EnforceBudget,
    ]
    .into_iter()
    .filter(|m| m.selected())
    {
        let mut o = run_mode(mode, half).await;
        o.baseline.latencies.sort();
        o.storm.latencies.sort();
        rows.push((mode, o));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mib = |b: u64| b as f64 / 1048576.0;
    let direct_read = rows[0].1.stats.etcd_objects_read.max(1) as f64;
    let direct_p99 = percentile(&rows[0].1.baseline.latencies, 0.99)
        .as_secs_f64()
        .max(1e-9);
    println!(
        "| mode | etcd objects read (storm) | vs direct | lists etcd/cache | controller LISTs ok / 429 | ordinary reqs baseline / storm | ordinary 429 | ordinary p50 / p99 baseline | ordinary p50 / p99 storm | p99 storm / baseline (target ≤ 2x) | p99 storm / direct baseline | kubeguard RSS idle / peak (cap {} MiB) | errors |",
        RSS_CAP / 1048576
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (mode, o) in &rows {
        let read = o.stats.etcd_objects_read;
        let (b, s) = (&o.baseline.latencies, &o.storm.latencies);
        let (b99, s99) = (percentile(b, 0.99), percentile(s, 0.99));
        let rss = o.rss.map_or("—".to_string(), |(idle, _, peak)| {
            format!(
                "{:.1} / {:.1} MiB{}",
                mib(idle),
                mib(peak),
                if peak < RSS_CAP { "" } else { " OVER" }
            )
        });
        println!(
            "| {} | {} | {:+.1} % | {}/{} | {} / {} | {} / {} | {} | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.2}x | {:.2}x | {} | {} |",
            mode.name(),
            read,
            (read as f64 / direct_read - 1.0) * 100.0,
            o.stats.lists_from_etcd,
            o.stats.lists_from_cache,
            o.controller.lists,
            o.controller.throttled,
            b.len(),
            s.len(),
            o.baseline.throttled + o.storm.throttled,
            ms(percentile(b, 0.5)),
            ms(b99),
            ms(percentile(s, 0.5)),
            ms(s99),
            s99.as_secs_f64() / b99.as_secs_f64().max(1e-9),
            s99.as_secs_f64() / direct_p99,
            rss,
            o.controller.failed + o.baseline.failed + o.storm.failed,
        );
    }
}
