//! Two kubeguard replicas in front of one emulator keep ledgers of their own; the aggregate is
//! `kubeguard top` over both admin endpoints and the sum of both replicas' Prometheus counters.
//! Both must equal the emulator's ground truth: the requests each user really made and the
//! objects they really read from its etcd (`RequestRecord`, reported per request).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kubeguard::config::FileConfig;
use kubeguard::serve::RunningServe;
use kubeguard::sim::{RequestHook, RequestRecord, SimOptions};

/// kubeguard's own user upstream (TokenReviews, its priming LISTs): left out of both sides.
const OWN: &str = "kubeguard";
const USERS: usize = 6;

/// Per user: (requests, etcd objects read).
type Tally = HashMap<String, (u64, u64)>;

fn users_yaml() -> String {
    let mut y = format!(
        "users:\n  - name: {OWN}\n    token: {OWN}-token\n    groups: [\"system:masters\"]\n"
    );
    for i in 0..USERS {
        y.push_str(&format!(
            "  - name: u-{i}\n    token: u-{i}-token\n    groups: [clients]\n"
        ));
    }
    y.push_str("groups:\n  - name: clients\n    rules:\n      - verbs: [get, list]\n        resources: [pods]\n");
    y
}

fn client(url: &str, token: &str) -> kube::Client {
    let mut cfg = kube::Config::new(url.parse().unwrap());
    cfg.auth_info.token = Some(token.to_string().into());
    kube::Client::try_from(cfg).unwrap()
}

/// A replica verifying every caller by TokenReview, so its ledger names the emulator's users;
/// policy and limits in shadow mode, so every request reaches the emulator unchanged.
async fn replica(sim_url: &str) -> RunningServe {
    let yaml = "server:\n  listen: [\"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 1s\n\
                identity:\n  sources: [token]\n  loopbackSources: [token]\n\
                policy:\n  mode: shadow\nlimits:\n  mode: shadow\n";
    let config = FileConfig::from_yaml(yaml, "replicas").unwrap();
    let mut upstream = kube::Config::new(sim_url.parse().unwrap());
    upstream.auth_info.token = Some(format!("{OWN}-token").into());
    let kg = kubeguard::serve::start(&config, upstream).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kg.policy.facts.ready() {
        assert!(Instant::now() < deadline, "kubeguard learned no facts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kg
}

/// Lists every pod and each namespace's pods through `kg` as kubeguard's own user: the replica
/// then knows each collection's size (a collection it has never seen is estimated at 500
/// objects, loadtests/README.md), as a replica that has run for a minute does.
async fn prime(kg: &RunningServe) -> Vec<(String, String)> {
    let own = client(&kg.url(), &format!("{OWN}-token"));
    let pods: Vec<(String, String)> = Api::<Pod>::all(own.clone())
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
        Api::<Pod>::namespaced(own.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap();
    }
    pods
}

/// User `i`'s traffic through one replica: GETs of a pod, LISTs of its namespace, and for
/// some users a LIST of every pod.
async fn traffic(url: String, i: usize, rounds: usize, pods: Arc<Vec<(String, String)>>) {
    let c = client(&url, &format!("u-{i}-token"));
    for k in 0..rounds {
        let (ns, name) = &pods[(i * 31 + k * 7) % pods.len()];
        let api: Api<Pod> = Api::namespaced(c.clone(), ns);
        api.get(name).await.unwrap();
        if k % 3 == 0 {
            api.list(&ListParams::default()).await.unwrap();
        }
        if i % 2 == 1 && k % 5 == 0 {
            Api::<Pod>::all(c.clone())
                .list(&ListParams::default())
                .await
                .unwrap();
        }
    }
}

/// `kubeguard top --once` (the real binary) over `admins`: per client, (REQUESTS, ETCD-OBJ).
async fn top_once(admins: &[&str]) -> Tally {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubeguard"));
    cmd.args(["top", "--once", "--rows", "100", "--sort", "etcd"]);
    for a in admins {
        cmd.args(["--admin", a]);
    }
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_top(&String::from_utf8_lossy(&out.stdout))
}

fn parse_top(table: &str) -> Tally {
    let mut rows = Tally::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // CLIENT REQUESTS ERRORS THROTL ETCD-OBJ …; "other (N clients)" and TOTAL are not clients.
        if cols[0] == "TOTAL" || cols[0] == "other" {
            continue;
        }
        rows.insert(
            cols[0].to_string(),
            (cols[1].parse().unwrap(), cols[4].parse().unwrap()),
        );
    }
    rows.remove(OWN);
    rows
}

/// `kubeguard_client_{requests,etcd_objects_read}_total` of one replica's `/metrics`, per client.
async fn prometheus(admin: &str) -> Tally {
    let http: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let resp = http
        .get(format!("{admin}/metrics").parse().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let mut out = Tally::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once("{client=\"") else {
            continue;
        };
        let who = labels.trim_end_matches("\"}").to_string();
        let v: u64 = value.parse().unwrap_or(0);
        match name {
            "kubeguard_client_requests_total" => out.entry(who).or_default().0 += v,
            "kubeguard_client_etcd_objects_read_total" => out.entry(who).or_default().1 += v,
            _ => {}
        }
    }
    out.remove(OWN);
    out.retain(|_, t| *t != (0, 0));
    out
}

fn sum(a: Tally, b: Tally) -> Tally {
    let mut out = a;
    for (k, (r, e)) in b {
        let t = out.entry(k).or_default();
        t.0 += r;
        t.1 += e;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_over_two_replicas_and_their_prometheus_sums_match_the_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, users_yaml()).unwrap();
    let truth: Arc<Mutex<Tally>> = Arc::default();
    let sink = truth.clone();
    let sim = kubeguard::sim::start(SimOptions {
        users: Some(users),
        namespaces: 4,
        pods: 120,
        nodes: 2,
        etcd_cost_per_object: Duration::ZERO,
        on_request: Some(RequestHook(Arc::new(move |r: &RequestRecord| {
            let Some(user) = &r.user else { return };
            let mut m = sink.lock().unwrap();
            let t = m.entry(user.clone()).or_default();
            t.0 += 1;
            t.1 += r.etcd_objects;
        }))),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let (a, b) = (replica(&sim.url).await, replica(&sim.url).await);
    let pods = Arc::new(prime(&a).await);
    prime(&b).await;

    // Users 0 and 1 use replica a only, 4 and 5 replica b only, 2 and 3 both (as a Service
    // spreads one client's connections), with different amounts on each side.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..USERS {
        if i < 4 {
            set.spawn(traffic(a.url(), i, 6 + i, pods.clone()));
        }
        if i >= 2 {
            set.spawn(traffic(b.url(), i, 4 + 2 * i, pods.clone()));
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let truth = {
        let mut t = truth.lock().unwrap().clone();
        t.remove(OWN);
        t
    };
    assert_eq!(truth.len(), USERS, "{truth:?}");
    // Every user read from etcd; the odd ones listed every pod (120) at least once.
    assert!(truth.values().all(|t| t.1 > 0), "{truth:?}");
    assert!(truth["u-1"].1 > 120 && truth["u-5"].1 > 120, "{truth:?}");

    let (admin_a, admin_b) = (
        format!("http://{}", a.admin_addr),
        format!("http://{}", b.admin_addr),
    );
    // A record reaches a ledger when its response body ends: poll (bounded) until the sums
    // hold every request the emulator served.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut summed = top_once(&[&admin_a, &admin_b]).await;
    while summed != truth && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        summed = top_once(&[&admin_a, &admin_b]).await;
    }
    assert_eq!(summed, truth, "top over both replicas vs the emulator");

    // Neither replica alone sees the whole: the users on both are split between them.
    let (only_a, only_b) = (top_once(&[&admin_a]).await, top_once(&[&admin_b]).await);
    for shared in ["u-2", "u-3"] {
        let (ra, rb) = (only_a[shared], only_b[shared]);
        assert!(ra.0 > 0 && rb.0 > 0, "{shared}: {ra:?} {rb:?}");
        assert_eq!((ra.0 + rb.0, ra.1 + rb.1), truth[shared]);
    }
    assert!(!only_a.contains_key("u-5") && !only_b.contains_key("u-0"));
    // One comma-separated --admin is the same as two.
    assert_eq!(top_once(&[&format!("{admin_a},{admin_b}")]).await, truth);

    let scraped = sum(prometheus(&admin_a).await, prometheus(&admin_b).await);
    assert_eq!(scraped, truth, "both replicas' Prometheus counters summed");

    a.shutdown().await;
    b.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn top_once_fails_when_a_replica_does_not_answer() {
    let sim = kubeguard::sim::start(SimOptions {
        pods: 2,
        nodes: 1,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = replica(&sim.url).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubeguard"))
        .args(["top", "--once", "--admin"])
        .arg(format!("http://{},{dead}", kg.admin_addr))
        .output()
        .await
        .unwrap();
    // A partial sum is never printed as if it were the whole.
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&dead),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kg.shutdown().await;
    sim.shutdown().await;
}
