//! Records a realistic apiserver audit log from the emulator's traffic, with an incident whose
//! culprit is known, for `kubeguard audit-report` (its tests use [`record`]).
//!
//! The traffic: 20 developers (`dev-01`…`dev-20`) GET single pods and open a watch; a
//! monitoring service account (`system:serviceaccount:monitoring:pod-scraper`) starts an
//! unversioned LIST storm of every pod in the cluster (the incident: each one a full etcd scan
//! on ≤1.30, k8s-facts §1); `alice` deletes namespace `prod` without confirmation (the delete
//! guard would refuse it) and deletes another namespace after a server dry run (confirmed).
//! Beside the log it writes the object counts per resource (what `--object-counts` wants),
//! counted from the emulator itself.
//!
//! ```text
//! cargo run --release --example audit_gen -- OUT_DIR                 # record
//! cargo run --release --example audit_gen -- OUT_DIR --synthetic-mb 1024
//!     # then repeat the recorded events (fresh auditIDs, shifted timestamps) into
//!     # OUT_DIR/big-audit.log until it holds that many MB: the 1 GB throughput test
//! ```
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, WatchParams};
use kubeguard::sim::audit::AuditWriter;
use kubeguard::sim::{RequestHook, SimOptions};

pub const CULPRIT: &str = "system:serviceaccount:monitoring:pod-scraper";
pub const DEVS: usize = 20;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub pods: usize,
    pub namespaces: usize,
    /// LISTs of all pods in the storm.
    pub storm_lists: usize,
    /// GETs per developer.
    pub gets_per_dev: usize,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            pods: 1500,
            namespaces: 4,
            storm_lists: 120,
            gets_per_dev: 30,
        }
    }
}

/// What was generated: the ground truth the report is checked against.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub log: PathBuf,
    pub counts: PathBuf,
    /// Pods in the cluster while the storm ran (counted by a LIST).
    pub pods: u64,
    pub storm_lists: u64,
    /// Successful GETs per developer.
    pub dev_gets: Vec<u64>,
    /// DELETE requests alice sent (dry runs included).
    pub alice_deletes: u64,
    /// `namespace prod`: the delete the guard would refuse.
    pub refused_namespace: String,
    /// The namespace deleted after a dry run (confirmed).
    pub confirmed_namespace: String,
    /// The emulator's own count of objects read from etcd while recording.
    pub sim_etcd_objects_read: u64,
}

fn users_yaml() -> String {
    let mut y = String::from(
        "users:\n  - name: alice\n    token: alice-token\n    groups: [\"system:masters\"]\n  - serviceAccount: {namespace: monitoring, name: pod-scraper}\n    token: scraper-token\n    rules:\n      - verbs: [get, list, watch]\n        resources: [pods]\n",
    );
    for i in 1..=DEVS {
        y.push_str(&format!(
            "  - name: dev-{i:02}\n    token: dev-{i:02}-token\n    groups: [developers]\n    rules:\n      - verbs: [get, list, watch]\n        resources: [pods]\n"
        ));
    }
    y
}

fn client(url: &str, token: &str) -> kube::Client {
    let mut cfg = kube::Config::new(url.parse().unwrap());
    cfg.auth_info.token = Some(token.to_string().into());
    cfg.read_timeout = Some(Duration::from_secs(60));
    kube::Client::try_from(cfg).unwrap()
}

/// Runs the scenario against a fresh emulator and records its audit log in `dir`.
pub async fn record(dir: &Path, s: &Scenario) -> Recorded {
    let users = dir.join("users.yaml");
    std::fs::write(&users, users_yaml()).unwrap();
    let log = dir.join("audit.log");
    let writer = AuditWriter::create(&log).unwrap();
    let recording = Arc::new(AtomicBool::new(false));
    let hook = {
        let (writer, recording) = (writer.clone(), recording.clone());
        RequestHook(Arc::new(move |r| {
            if recording.load(Ordering::Relaxed) {
                writer.write(r);
            }
        }))
    };
    let sim = kubeguard::sim::start(SimOptions {
        users: Some(users),
        nodes: 3,
        namespaces: s.namespaces,
        pods: s.pods,
        namespace_cleanup_delay: Duration::from_millis(50),
        on_request: Some(hook),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let admin = client(&sim.url, "alice-token");

    // Ground truth, before recording: the pods and namespaces there are.
    let pods: Vec<(String, String)> = Api::<Pod>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
            )
        })
        .collect();
    let namespaces: Vec<String> = Api::<Namespace>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    write_counts(&dir.join("object-counts.json"), &pods, namespaces.len());
    let confirmed_namespace = namespaces
        .iter()
        .find(|n| *n != "prod" && !n.starts_with("kube-") && *n != "default")
        .cloned()
        .unwrap_or_else(|| "default".into());

    let before = sim.stats().etcd_objects_read;
    recording.store(true, Ordering::Relaxed);
    // Background: developers GET pods, each also opening (and closing) a watch.
    let pods = Arc::new(pods);
    let mut devs = tokio::task::JoinSet::new();
    for i in 1..=DEVS {
        let (c, pods, n) = (
            client(&sim.url, &format!("dev-{i:02}-token")),
            pods.clone(),
            s.gets_per_dev,
        );
        devs.spawn(async move {
            let mut ok = 0u64;
            for k in 0..n {
                let (ns, name) = &pods[(i * 31 + k * 7) % pods.len()];
                if Api::<Pod>::namespaced(c.clone(), ns)
                    .get(name)
                    .await
                    .is_ok()
                {
                    ok += 1;
                }
                if k == n / 2 {
                    let wp = WatchParams::default().timeout(1);
                    let _ = Api::<Pod>::namespaced(c.clone(), ns).watch(&wp, "0").await;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (i, ok)
        });
    }
    // The incident: unversioned LISTs of every pod, four at a time.
    let scraper = client(&sim.url, "scraper-token");
    let mut storm = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (c, n) = (
            scraper.clone(),
            s.storm_lists / 4 + usize::from(w < s.storm_lists % 4),
        );
        storm.spawn(async move {
            for _ in 0..n {
                Api::<Pod>::all(c.clone())
                    .list(&ListParams::default())
                    .await
                    .unwrap();
            }
        });
    }
    storm.join_all().await;
    let mut dev_gets = vec![0u64; DEVS];
    for (i, ok) in devs.join_all().await {
        dev_gets[i - 1] = ok;
    }
    // Deletes: namespace prod without confirmation; another one after a server dry run.
    let ns_api = Api::<Namespace>::all(admin.clone());
    ns_api
        .delete("prod", &DeleteParams::default())
        .await
        .unwrap();
    let dry = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    ns_api.delete(&confirmed_namespace, &dry).await.unwrap();
    ns_api
        .delete(&confirmed_namespace, &DeleteParams::default())
        .await
        .unwrap();
    recording.store(false, Ordering::Relaxed);
    let sim_etcd_objects_read = sim.stats().etcd_objects_read - before;
    sim.shutdown().await;
    writer.flush().unwrap();
    Recorded {
        log,
        counts: dir.join("object-counts.json"),
        pods: pods.len() as u64,
        storm_lists: s.storm_lists as u64,
        dev_gets,
        alice_deletes: 3,
        refused_namespace: "prod".into(),
        confirmed_namespace,
        sim_etcd_objects_read,
    }
}

/// `{"pods": {"total": N, "namespaces": {...}}, "namespaces": M}`: the `--object-counts` file.
fn write_counts(path: &Path, pods: &[(String, String)], namespaces: usize) {
    let mut per_ns = serde_json::Map::new();
    for (ns, _) in pods {
        let n = per_ns.entry(ns.clone()).or_insert(serde_json::json!(0));
        *n = serde_json::json!(n.as_u64().unwrap_or(0) + 1);
    }
    let doc = serde_json::json!({
        "pods": {"total": pods.len(), "namespaces": per_ns},
        "namespaces": namespaces,
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// Repeats the events of `src` into `dst` until it holds `mb` megabytes: each pass gets fresh
/// auditIDs and timestamps shifted past the previous pass.
pub fn synthesize(src: &Path, dst: &Path, mb: u64) -> u64 {
    let lines: Vec<serde_json::Value> = std::io::BufReader::new(std::fs::File::open(src).unwrap())
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let ts = |v: &serde_json::Value, k: &str| -> jiff::Timestamp {
        v[k].as_str().unwrap().parse().unwrap()
    };
    let first = ts(&lines[0], "requestReceivedTimestamp");
    let last = lines.iter().map(|l| ts(l, "stageTimestamp")).max().unwrap();
    let span = (last.as_microsecond() - first.as_microsecond()).max(1_000_000) + 1_000_000;
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(dst).unwrap());
    let (mut written, mut pass) = (0u64, 0i64);
    let target = mb * 1_000_000;
    while written < target {
        for (n, l) in lines.iter().enumerate() {
            let mut e = l.clone();
            e["auditID"] = format!("{pass:08x}-{n:08x}").into();
            for k in ["requestReceivedTimestamp", "stageTimestamp"] {
                let t = jiff::Timestamp::from_microsecond(ts(l, k).as_microsecond() + pass * span)
                    .unwrap();
                e[k] = format!("{t:.6}").into();
            }
            let mut line = serde_json::to_string(&e).unwrap();
            line.push('\n');
            out.write_all(line.as_bytes()).unwrap();
            written += line.len() as u64;
        }
        pass += 1;
    }
    out.flush().unwrap();
    written
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: audit_gen OUT_DIR [--synthetic-mb N]");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir).unwrap();
    let r = record(&dir, &Scenario::default()).await;
    println!("{r:#?}");
    if let Some(i) = args.iter().position(|a| a == "--synthetic-mb") {
        let mb: u64 = args[i + 1].parse().unwrap();
        let big = dir.join("big-audit.log");
        let n = synthesize(&r.log, &big, mb);
        println!("wrote {} ({n} bytes)", big.display());
    }
}
