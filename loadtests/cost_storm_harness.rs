//! The cost-storm scenario, shared by the load test (`loadtests/cost_storm.rs`) and its smaller
//! integration test (`tests/cost_storm.rs`): good clients doing small GETs and LISTs at a steady
//! rate, one storm client firing parallel unversioned LISTs of every pod, all through kubeguard
//! in front of the emulator, each client a distinct user of the emulator's users file.
//!
//! Two ledgers are compared, both counting *etcd objects read* (the cost share's unit, see
//! loadtests/README.md): kubeguard's own (`/debug/costs`: its pre-request estimate of each
//! forwarded request, k8s-facts §2) and the emulator's ground truth (the objects each request
//! really read from its emulated etcd, reported per request by the `on_request` hook).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kubeguard::config::FileConfig;
use kubeguard::sim::{RequestHook, RequestRecord, SimOptions};

pub const STORM_USER: &str = "storm-controller";

/// What to run.
#[derive(Clone, Debug)]
pub struct StormConfig {
    pub good_clients: usize,
    /// Requests per second of each good client.
    pub good_rate: f64,
    /// Unversioned LISTs of all pods the storm client keeps in flight.
    pub storm_parallel: usize,
    /// How long the good clients run alone before the storm starts.
    pub warmup: Duration,
    /// How long the storm runs.
    pub storm: Duration,
    pub namespaces: usize,
    pub pods: usize,
    pub etcd_cost_per_object: Duration,
    /// The real `kubeguard` binary, run as `kubeguard top --once`.
    pub kubeguard_bin: PathBuf,
}

/// Per user: requests and etcd objects.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    pub etcd_objects: u64,
}

/// What was measured.
#[derive(Debug)]
pub struct StormReport {
    /// From the storm's start until `kubeguard top --once` first listed it first.
    pub storm_first_after: Option<Duration>,
    /// The first row of the last `top --once` run.
    pub top_first_row: String,
    /// Per user, by kubeguard's ledger.
    pub ledger: HashMap<String, Tally>,
    /// Per user, by the emulator.
    pub truth: HashMap<String, Tally>,
    pub storm_lists: u64,
    pub good_requests: u64,
    pub errors: u64,
    /// The process's VmRSS / VmHWM at the end, bytes (sim, kubeguard and clients together).
    pub rss: u64,
    pub rss_peak: u64,
}

impl StormReport {
    /// `user`'s share of the etcd objects read by all clients, by the given side.
    pub fn share(side: &HashMap<String, Tally>, user: &str) -> f64 {
        let total: u64 = side.values().map(|t| t.etcd_objects).sum();
        let mine = side.get(user).map_or(0, |t| t.etcd_objects);
        mine as f64 / total.max(1) as f64
    }

    /// The storm's share by kubeguard, by the emulator, and the relative difference.
    pub fn storm_shares(&self) -> (f64, f64, f64) {
        let kg = Self::share(&self.ledger, STORM_USER);
        let truth = Self::share(&self.truth, STORM_USER);
        (kg, truth, (kg - truth).abs() / truth.max(f64::MIN_POSITIVE))
    }

    /// The printed table (markdown).
    pub fn table(&self, cfg: &StormConfig) -> String {
        let (kg, truth, diff) = self.storm_shares();
        let good = |side: &HashMap<String, Tally>| -> Vec<u64> {
            let mut v: Vec<u64> = side
                .iter()
                .filter(|(u, _)| u.as_str() != STORM_USER)
                .map(|(_, t)| t.requests)
                .collect();
            v.sort_unstable();
            v
        };
        let (gk, gt) = (good(&self.ledger), good(&self.truth));
        let mid = |v: &[u64]| v.get(v.len() / 2).copied().unwrap_or(0);
        let storm =
            |side: &HashMap<String, Tally>| side.get(STORM_USER).copied().unwrap_or_default();
        let mut out = String::new();
        out.push_str(&format!(
            "{} good clients at {} req/s + 1 storm client ({} parallel unversioned LISTs of {} pods), {:?} warm-up + {:?} storm\n\n",
            cfg.good_clients, cfg.good_rate, cfg.storm_parallel, cfg.pods, cfg.warmup, cfg.storm
        ));
        out.push_str(
            "| measure | kubeguard | emulator (ground truth) | target |\n|---|---:|---:|---|\n",
        );
        out.push_str(&format!(
            "| storm client first in `kubeguard top --once` after | {} | | ≤ 10 s |\n",
            self.storm_first_after
                .map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
        ));
        out.push_str(&format!(
            "| storm client's share of etcd objects read | {:.2} % | {:.2} % | within 5 % (rel.): {:.2} % |\n",
            kg * 100.0,
            truth * 100.0,
            diff * 100.0
        ));
        out.push_str(&format!(
            "| storm client: requests / etcd objects | {} / {} | {} / {} | |\n",
            storm(&self.ledger).requests,
            storm(&self.ledger).etcd_objects,
            storm(&self.truth).requests,
            storm(&self.truth).etcd_objects
        ));
        out.push_str(&format!(
            "| good clients: requests per client min / median / max | {} / {} / {} | {} / {} / {} | |\n",
            gk.first().unwrap_or(&0),
            mid(&gk),
            gk.last().unwrap_or(&0),
            gt.first().unwrap_or(&0),
            mid(&gt),
            gt.last().unwrap_or(&0)
        ));
        out.push_str(&format!(
            "| good clients: requests total | {} | {} | |\n",
            gk.iter().sum::<u64>(),
            gt.iter().sum::<u64>()
        ));
        out.push_str(&format!(
            "| client errors | {} | | |\n| RSS at end / peak (whole process: emulator + kubeguard + clients) | {:.1} MB / {:.1} MB | | |\n",
            self.errors,
            self.rss as f64 / 1e6,
            self.rss_peak as f64 / 1e6
        ));
        out
    }
}

fn good_user(i: usize) -> String {
    format!("good-{i}")
}

fn users_yaml(good: usize) -> String {
    let mut y = String::from(
        "users:\n  - name: kubeguard\n    token: kubeguard-token\n    groups: [\"system:masters\"]\n",
    );
    y.push_str(&format!(
        "  - name: {STORM_USER}\n    token: {STORM_USER}-token\n    groups: [clients]\n"
    ));
    for i in 0..good {
        let u = good_user(i);
        y.push_str(&format!(
            "  - name: {u}\n    token: {u}-token\n    groups: [clients]\n"
        ));
    }
    y.push_str("groups:\n  - name: clients\n    rules:\n      - verbs: [get, list, watch]\n        resources: [pods]\n");
    y
}

fn client(url: &str, token: &str) -> kube::Client {
    let mut cfg = kube::Config::new(url.parse().unwrap());
    cfg.auth_info.token = Some(token.to_string().into());
    cfg.read_timeout = Some(Duration::from_secs(60));
    kube::Client::try_from(cfg).unwrap()
}

fn proc_status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The first client row of `kubeguard top --once`.
async fn top_first_row(bin: &PathBuf, admin: &str) -> String {
    let Ok(out) = tokio::process::Command::new(bin)
        .args(["top", "--once", "--admin", admin])
        .output()
        .await
    else {
        return String::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Runs the scenario once.
pub async fn run(cfg: &StormConfig) -> StormReport {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, users_yaml(cfg.good_clients)).unwrap();
    let truth: Arc<Mutex<HashMap<String, Tally>>> = Arc::default();
    let sink = truth.clone();
    let sim = kubeguard::sim::start(SimOptions {
        users: Some(users),
        namespaces: cfg.namespaces,
        pods: cfg.pods,
        nodes: 2,
        etcd_cost_per_object: cfg.etcd_cost_per_object,
        cache_cost_per_object: cfg.etcd_cost_per_object / 10,
        on_request: Some(RequestHook(Arc::new(move |r: &RequestRecord| {
            let Some(user) = &r.user else { return };
            let mut m = sink.lock().unwrap();
            let t = m.entry(user.clone()).or_default();
            t.requests += 1;
            t.etcd_objects += r.etcd_objects;
        }))),
        ..SimOptions::default()
    })
    .await
    .unwrap();

    // kubeguard verifies every caller's token (TokenReview) so its ledger names the same users
    // as the emulator; their own tokens go upstream (passthrough). Limits and policy shadow:
    // every request is forwarded unchanged, so both sides see the same traffic.
    let yaml = "server:\n  listen: [\"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 1s\n\
                identity:\n  sources: [token]\n  loopbackSources: [token]\n\
                policy:\n  mode: shadow\nlimits:\n  mode: shadow\n";
    let config = FileConfig::from_yaml(yaml, "cost_storm").unwrap();
    let mut upstream = kube::Config::new(sim.url.parse().unwrap());
    upstream.auth_info.token = Some("kubeguard-token".to_string().into());
    let kg = kubeguard::serve::start(&config, upstream).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kg.policy.facts.ready() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = kg.url();
    let admin = format!("http://{}", kg.admin_addr);

    // Which pod each good client reads. Read through kubeguard by its own user (left out of
    // both sides), once for all namespaces and once per namespace: kubeguard has then seen each
    // collection's size, as a gateway that has run for a minute has (a collection never seen
    // is estimated at 500 objects; loadtests/README.md shows what that cold start costs).
    let primer = client(&url, "kubeguard-token");
    let pods: Vec<(String, String)> = Api::<Pod>::all(primer.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.namespace?, p.metadata.name?)))
        .collect();
    let mut namespaces: Vec<&String> = pods.iter().map(|(ns, _)| ns).collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        Api::<Pod>::namespaced(primer.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
    }
    truth.lock().unwrap().clear();

    let stop = Arc::new(AtomicBool::new(false));
    let mut good = tokio::task::JoinSet::new();
    for i in 0..cfg.good_clients {
        let (stop, c) = (
            stop.clone(),
            client(&url, &format!("{}-token", good_user(i))),
        );
        let (ns, name) = pods[(i * 7) % pods.len()].clone();
        let period = Duration::from_secs_f64(1.0 / cfg.good_rate);
        good.spawn(async move {
            let api: Api<Pod> = Api::namespaced(c, &ns);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut n, mut errors, mut k) = (0u64, 0u64, i);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                k += 1;
                // A small GET most of the time; every fourth request a LIST of its namespace.
                let ok = if k % 4 == 0 {
                    api.list(&ListParams::default()).await.is_ok()
                } else {
                    api.get(&name).await.is_ok()
                };
                if ok { n += 1 } else { errors += 1 }
            }
            (n, errors)
        });
    }
    tokio::time::sleep(cfg.warmup).await;

    let storm_start = Instant::now();
    let storm_stop = Arc::new(AtomicBool::new(false));
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..cfg.storm_parallel {
        let (stop, c) = (
            storm_stop.clone(),
            client(&url, &format!("{STORM_USER}-token")),
        );
        storm.spawn(async move {
            let (mut n, mut errors) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                // An unversioned LIST of every pod, without limit: read whole from etcd on
                // v1.30 (k8s-facts §1). The body is drained, not decoded.
                let req = http::Request::get("/api/v1/pods")
                    .body(kube::client::Body::empty())
                    .unwrap();
                let ok = match c.send(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        resp.into_body().collect().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if ok { n += 1 } else { errors += 1 }
            }
            (n, errors)
        });
    }

    // Ask `kubeguard top --once` until the storm client is first.
    let mut storm_first_after = None;
    let storm_end = storm_start + cfg.storm;
    while Instant::now() < storm_end {
        if storm_first_after.is_none()
            && top_first_row(&cfg.kubeguard_bin, &admin)
                .await
                .starts_with(STORM_USER)
        {
            storm_first_after = Some(storm_start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    storm_stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let (mut storm_lists, mut good_requests, mut errors) = (0, 0, 0);
    while let Some(r) = storm.join_next().await {
        let (n, e) = r.unwrap();
        storm_lists += n;
        errors += e;
    }
    while let Some(r) = good.join_next().await {
        let (n, e) = r.unwrap();
        good_requests += n;
        errors += e;
    }

    // A record lands in kubeguard's ledger when its body ends: wait (bounded) until the ledger
    // holds as many client requests as the emulator served.
    let read_ledger = || async {
        let snap = kubeguard::top::fetch(&admin).await.unwrap();
        snap.clients
            .iter()
            .filter(|c| c.identity != "kubeguard")
            .map(|c| {
                (
                    c.identity.clone(),
                    Tally {
                        requests: c.totals.requests,
                        etcd_objects: c.totals.etcd_objects_read,
                    },
                )
            })
            .collect::<HashMap<_, _>>()
    };
    let truth_now = || {
        let mut t = truth.lock().unwrap().clone();
        t.remove("kubeguard");
        t
    };
    let requests = |m: &HashMap<String, Tally>| m.values().map(|t| t.requests).sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ledger = read_ledger().await;
    while requests(&ledger) < requests(&truth_now()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        ledger = read_ledger().await;
    }
    let top_first_row = top_first_row(&cfg.kubeguard_bin, &admin).await;
    let report = StormReport {
        storm_first_after,
        top_first_row,
        ledger,
        truth: truth_now(),
        storm_lists,
        good_requests,
        errors,
        rss: proc_status("VmRSS:"),
        rss_peak: proc_status("VmHWM:"),
    };
    kg.shutdown().await;
    sim.shutdown().await;
    report
}
