//! Policy, shadow mode and the LIST rewrite, end to end: kubectl and raw HTTP clients through
//! kubeguard in front of the emulator, whose request hook records every URI that reaches it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use kubeguard::config::FileConfig;
use kubeguard::serve::RunningServe;
use kubeguard::sim::{RequestHook, RunningSim, SimOptions};
use tokio::process::Command;

struct Env {
    sim: RunningSim,
    kg: RunningServe,
    /// URIs of every LIST / WATCH the emulator served.
    uris: Arc<Mutex<Vec<String>>>,
    client: common::TestClient,
    dir: tempfile::TempDir,
}

fn sim_opts(uris: &Arc<Mutex<Vec<String>>>) -> SimOptions {
    let rec = uris.clone();
    SimOptions {
        nodes: 3,
        namespaces: 4,
        pods: 40,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        on_request: Some(RequestHook(Arc::new(move |r| {
            if r.verb == "list" || r.verb == "watch" {
                rec.lock().unwrap().push(r.uri.clone());
            }
        }))),
        ..SimOptions::default()
    }
}

/// kubeguard in front of a fresh emulator with `policy_yaml` as its `policy:` section, once it
/// has read the upstream's version and discovery.
async fn env(policy_yaml: &str) -> Env {
    let uris = Arc::new(Mutex::new(Vec::new()));
    let sim = kubeguard::sim::start(sim_opts(&uris)).await.unwrap();
    let kg = common::start_kubeguard(&sim.url, &format!("policy:\n{policy_yaml}")).await;
    wait_ready(&kg).await;
    let client = common::client(&kg, false);
    Env {
        sim,
        kg,
        uris,
        client,
        dir: tempfile::tempdir().unwrap(),
    }
}

async fn wait_ready(kg: &RunningServe) {
    for _ in 0..500 {
        if kg.policy.facts.ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("kubeguard did not read the upstream's version and discovery within 10 s");
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Env {
    /// GET `path_and_query` on the plain listener as the client with bearer token `who`.
    async fn get_as(&self, who: &str, ua: &str, pq: &str) -> Answer {
        let req = Request::get(format!("{}{pq}", common::plain_url(&self.kg)))
            .header("authorization", format!("Bearer {who}"))
            .header("user-agent", ua)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await
    }

    async fn get(&self, pq: &str) -> Answer {
        self.get_as("alice", "e2e/1.0", pq).await
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Answer {
        let resp = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .unwrap()
            .unwrap();
        let (parts, body) = resp.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: common::body_bytes(body).await,
        }
    }

    /// The URIs the emulator saw since the last call.
    fn take_uris(&self) -> Vec<String> {
        std::mem::take(&mut *self.uris.lock().unwrap())
    }

    fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.path().join("kg.kubeconfig");
        let mut kc = self.kg.client_kubeconfig();
        kc.auth_infos[0].auth_info.as_mut().unwrap().token = Some("e2e".to_string().into());
        kubeguard::kubeconfig::write(&path, &kc).unwrap();
        path
    }
}

fn decision(a: &Answer) -> &str {
    a.headers
        .get("x-kubeguard-decision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
}

/// Runs kubectl; returns (stdout, stderr), failing the test on error.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(common::kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            // Its own discovery cache: ~/.kube/cache is keyed by host:port and shared by
            // every run on the machine (common::kubectl_with).
            .arg("--cache-dir")
            .arg(kubeconfig.with_file_name("kube-cache"))
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "kubectl {args:?} failed: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

fn pod_lists(uris: &[String]) -> Vec<&String> {
    uris.iter()
        .filter(|u| u.starts_with("/api/v1/pods"))
        .collect()
}

#[tokio::test]
async fn kubectl_get_pods_all_namespaces_reaches_the_upstream_as_rv0_in_enforce() {
    let e = env("  mode: enforce\n").await;
    let kc = e.kubeconfig();
    // kubectl sends limit=500: RV=0 would ignore it, so the first LIST goes as it is and
    // kubeguard learns the collection's size from the response as it streams.
    let (first, _) = kubectl(&kc, &["get", "pods", "-A", "--no-headers"]).await;
    assert_eq!(first.lines().count(), 40);
    let uris = e.take_uris();
    let lists = pod_lists(&uris);
    assert_eq!(lists.len(), 1, "{uris:?}");
    assert!(!lists[0].contains("resourceVersion"), "{uris:?}");
    assert_eq!(
        e.kg.policy
            .learner
            .collection_size("pods", "*")
            .map(|c| c.items),
        Some(40)
    );

    let cache_before = e.sim.stats().lists_from_cache;
    let etcd_before = e.sim.stats().lists_from_etcd;
    let (second, _) = kubectl(&kc, &["get", "pods", "-A", "--no-headers"]).await;
    assert_eq!(second.lines().count(), 40);
    let uris = e.take_uris();
    let lists = pod_lists(&uris);
    assert_eq!(lists.len(), 1, "{uris:?}");
    assert!(lists[0].contains("limit=500"), "{uris:?}");
    assert!(lists[0].contains("resourceVersion=0"), "{uris:?}");
    assert_eq!(e.sim.stats().lists_from_cache, cache_before + 1);
    assert_eq!(e.sim.stats().lists_from_etcd, etcd_before);
    let metrics = e.kg.metrics.encode();
    assert!(
        metrics.contains(
            r#"kubeguard_decisions_total{guard="list_rewrite",verdict="rewrite",mode="enforce"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn shadow_mode_forwards_unchanged_and_kubectl_prints_the_warning() {
    let e = env("  mode: shadow\n").await;
    let kc = e.kubeconfig();
    kubectl(&kc, &["get", "pods", "-A"]).await;
    let (out, stderr) = kubectl(&kc, &["get", "pods", "-A", "--no-headers"]).await;
    assert_eq!(out.lines().count(), 40);
    assert!(
        stderr.contains("Warning: kubeguard (shadow): would rewrite this LIST to ?limit=500")
            && stderr.contains("resourceVersion=0"),
        "{stderr}"
    );
    let uris = e.take_uris();
    assert!(
        pod_lists(&uris)
            .iter()
            .all(|u| !u.contains("resourceVersion")),
        "{uris:?}"
    );
    let a = e.get("/api/v1/nodes").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(decision(&a), "would-rewrite=rv0");
    let metrics = e.kg.metrics.encode();
    assert!(
        metrics.contains(r#"verdict="rewrite",mode="shadow"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn every_response_says_what_was_decided() {
    let e = env("  mode: enforce\n").await;
    let a = e.get("/version").await;
    assert_eq!(decision(&a), "forward");
    let a = e.get("/api/v1/nodes").await;
    assert_eq!(decision(&a), "rewrite=rv0");
    assert!(a.headers.get("warning").is_none());
    let a = e.get("/api/v1/namespaces/nope/pods/nope").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(decision(&a), "forward");
}

/// Asserts that `pq` reaches the emulator exactly as sent, with no rewrite decided.
async fn assert_unchanged(e: &Env, who: &str, ua: &str, pq: &str) {
    e.take_uris();
    let a = e.get_as(who, ua, pq).await;
    assert_eq!(
        decision(&a),
        "forward",
        "{pq}: {}",
        String::from_utf8_lossy(&a.body)
    );
    let uris = e.take_uris();
    assert!(
        uris.iter().all(|u| !u.contains("resourceVersion=0")),
        "{pq} was rewritten: {uris:?}"
    );
}

#[tokio::test]
async fn never_rewrites_a_continue_page() {
    let e = env("  mode: enforce\n").await;
    let first = e.get("/api/v1/pods?limit=10").await;
    let v: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    let token = v["metadata"]["continue"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    assert_unchanged(
        &e,
        "alice",
        "e2e",
        &format!("/api/v1/pods?limit=10&continue={token}"),
    )
    .await;
}

#[tokio::test]
async fn never_rewrites_a_list_with_a_resource_version() {
    let e = env("  mode: enforce\n").await;
    let rv = e.sim.resource_version();
    assert_unchanged(
        &e,
        "alice",
        "e2e",
        &format!("/api/v1/pods?resourceVersion={rv}"),
    )
    .await;
    assert_unchanged(
        &e,
        "alice",
        "e2e",
        &format!("/api/v1/pods?resourceVersion={rv}&resourceVersionMatch=NotOlderThan"),
    )
    .await;
}

#[tokio::test]
async fn never_rewrites_a_watch() {
    let e = env("  mode: enforce\n").await;
    let rv = e.sim.resource_version();
    assert_unchanged(
        &e,
        "alice",
        "e2e",
        &format!("/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
    )
    .await;
    assert_unchanged(&e, "alice", "e2e", "/api/v1/watch/pods?timeoutSeconds=1").await;
}

#[tokio::test]
async fn never_rewrites_a_resource_outside_the_watch_cache() {
    let e = env("  mode: enforce\n").await;
    assert_unchanged(&e, "alice", "e2e", "/apis/metrics.k8s.io/v1beta1/pods").await;
}

#[tokio::test]
async fn never_rewrites_a_single_name_list() {
    let e = env("  mode: enforce\n").await;
    assert_unchanged(
        &e,
        "alice",
        "kubectl/v1.32 (wait)",
        "/api/v1/namespaces/prod/pods?fieldSelector=metadata.name%3Dpod-0",
    )
    .await;
}

#[tokio::test]
async fn never_rewrites_for_a_client_that_just_got_410() {
    let e = env("  mode: enforce\n").await;
    e.sim.compact();
    // A watch from a compacted resourceVersion: 410 Expired, as an ERROR event or a 410.
    let a = e
        .get_as(
            "informer",
            "e2e",
            "/api/v1/pods?watch=true&resourceVersion=1&timeoutSeconds=2",
        )
        .await;
    let text = String::from_utf8_lossy(&a.body);
    assert!(
        a.status == StatusCode::GONE || text.contains("410"),
        "{} {text}",
        a.status
    );
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Bearer informer"));
    let user = kubeguard::proxy::identify(&h).user;
    let windows = e.kg.policy.windows.clone();
    let mut marked = false;
    for _ in 0..250 {
        if windows.recent_error(
            &user,
            "pods",
            Duration::from_secs(300),
            std::time::Instant::now(),
        ) {
            marked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(marked, "the 410 was not remembered");
    // The relist recovery of that client goes to etcd as it asked…
    assert_unchanged(&e, "informer", "e2e", "/api/v1/pods").await;
    // …while another client's LIST is still rewritten.
    let a = e.get_as("someone-else", "e2e", "/api/v1/pods").await;
    assert_eq!(decision(&a), "rewrite=rv0");
}

#[tokio::test]
async fn never_rewrites_within_the_read_your_writes_window() {
    let e = env("  mode: enforce\n").await;
    let cm =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"mine"},"data":{"a":"b"}}"#;
    let req = Request::post(format!(
        "{}/api/v1/namespaces/prod/configmaps",
        common::plain_url(&e.kg)
    ))
    .header("authorization", "Bearer writer")
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(cm)))
    .unwrap();
    let created = e.send(req).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_unchanged(&e, "writer", "e2e", "/api/v1/namespaces/prod/configmaps").await;
    let a = e
        .get_as("reader", "e2e", "/api/v1/namespaces/prod/configmaps")
        .await;
    assert_eq!(decision(&a), "rewrite=rv0");
}

#[tokio::test]
async fn never_rewrites_for_a_consistency_sensitive_caller() {
    let e = env(
        "  mode: enforce\n  guards:\n    listRewrite:\n      consistencySensitive:\n        - userAgents: [{prefix: \"velero/\"}]\n",
    )
    .await;
    assert_unchanged(&e, "backup", "velero/v1.12.0", "/api/v1/pods").await;
    let a = e.get_as("backup", "kubectl/v1.32", "/api/v1/pods").await;
    assert_eq!(decision(&a), "rewrite=rv0");
}

#[tokio::test]
async fn rules_choose_the_mode_per_caller() {
    let e = env(
        "  mode: enforce\n  rules:\n    - name: ci-shadow\n      match: {userAgents: [{regex: \"^argocd/\"}]}\n      mode: shadow\n    - name: off-for-nodes\n      match: {resources: [nodes]}\n      mode: \"off\"\n",
    )
    .await;
    let a = e.get_as("ci", "argocd/2.9", "/api/v1/pods").await;
    assert_eq!(decision(&a), "would-rewrite=rv0");
    let warning = a.headers.get("warning").unwrap().to_str().unwrap();
    assert!(
        warning.starts_with("299 - \"kubeguard (shadow): would rewrite"),
        "{warning}"
    );
    let a = e.get_as("ci", "kubectl", "/api/v1/nodes").await;
    assert_eq!(decision(&a), "forward");
    let a = e.get_as("ci", "kubectl", "/api/v1/pods").await;
    assert_eq!(decision(&a), "rewrite=rv0");
}

/// kubeguard in front of an emulator of `version`, enforce mode.
async fn env_at(version: &str) -> Env {
    let uris = Arc::new(Mutex::new(Vec::new()));
    let sim = kubeguard::sim::start(SimOptions {
        server_version: version.into(),
        ..sim_opts(&uris)
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(&sim.url, "policy:\n  mode: enforce\n").await;
    wait_ready(&kg).await;
    let client = common::client(&kg, false);
    Env {
        sim,
        kg,
        uris,
        client,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test]
async fn upstream_1_32_gets_not_older_than_the_newest_rv_seen() {
    let e = env_at("v1.32.1").await;
    // Nothing seen yet and a limit: as up to 1.30 (size unknown → forwarded).
    let a = e.get("/api/v1/pods?limit=5").await;
    assert_eq!(decision(&a), "forward");
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    e.take_uris();
    let a = e.get("/api/v1/pods?limit=5").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(decision(&a), "rewrite=notOlderThan");
    let uris = e.take_uris();
    assert_eq!(
        pod_lists(&uris),
        vec![&format!(
            "/api/v1/pods?limit=5&resourceVersion={rv}&resourceVersionMatch=NotOlderThan"
        )]
    );
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        5,
        "the limit is honoured"
    );
}

#[tokio::test]
async fn upstream_1_34_is_only_reported_even_in_enforce() {
    let e = env_at("v1.34.0").await;
    let a = e.get("/api/v1/pods").await;
    assert_eq!(decision(&a), "would-rewrite=rv0");
    let warning = a.headers.get("warning").unwrap().to_str().unwrap();
    assert!(warning.contains("would save"), "{warning}");
    let uris = e.take_uris();
    assert_eq!(pod_lists(&uris), vec!["/api/v1/pods"]);
}

/// A config file for [`FileConfig::load`] (so kubeguard watches it).
fn config_file(policy_mode: &str) -> String {
    format!(
        "server:\n  listen: [\"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 2s\npolicy:\n  mode: {policy_mode}\n"
    )
}

#[tokio::test]
async fn reload_swaps_the_policy_under_load_and_a_bad_file_keeps_it() {
    let uris = Arc::new(Mutex::new(Vec::new()));
    let sim = kubeguard::sim::start(sim_opts(&uris)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeguard.yaml");
    std::fs::write(&path, config_file("shadow")).unwrap();
    let config = FileConfig::load(&path).unwrap();
    let kg = kubeguard::serve::start(&config, kube::Config::new(sim.url.parse().unwrap()))
        .await
        .unwrap();
    wait_ready(&kg).await;
    let url = format!("{}/api/v1/pods", common::plain_url(&kg));

    // Eight clients list pods in a loop while the policy changes under them.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = common::client(&kg, i % 2 == 0);
        let (url, stop) = (url.clone(), stop.clone());
        load.spawn(async move {
            let (mut ok, mut failed, mut rewritten) = (0u32, 0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = Request::get(&url)
                    .header("authorization", format!("Bearer load-{i}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match client.request(req).await {
                    Ok(resp) if resp.status() == StatusCode::OK => {
                        let d = resp.headers()["x-kubeguard-decision"]
                            .to_str()
                            .unwrap()
                            .to_string();
                        common::body_bytes(resp.into_body()).await;
                        ok += 1;
                        if d == "rewrite=rv0" {
                            rewritten += 1;
                        }
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed, rewritten)
        });
    }
    let kg_probe = common::client(&kg, false);
    let probe = |kg_probe: common::TestClient, url: String| async move {
        let req = Request::get(&url)
            .header("authorization", "Bearer probe")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = kg_probe.request(req).await.unwrap();
        resp.headers()["x-kubeguard-decision"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        probe(kg_probe.clone(), url.clone()).await,
        "would-rewrite=rv0"
    );

    std::fs::write(&path, config_file("enforce")).unwrap();
    let mut swapped = false;
    for _ in 0..250 {
        if probe(kg_probe.clone(), url.clone()).await == "rewrite=rv0" {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(swapped, "the new policy did not apply within 5 s");

    // A bad file: the running (enforce) policy stays, the failure is counted.
    std::fs::write(&path, "policy:\n  mode: enforcing-ish\n").unwrap();
    let mut counted = false;
    for _ in 0..250 {
        if kg
            .metrics
            .encode()
            .contains(r#"kubeguard_policy_reloads_total{result="error"} 1"#)
        {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counted, "{}", kg.metrics.encode());
    assert_eq!(probe(kg_probe.clone(), url.clone()).await, "rewrite=rv0");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed, mut rewritten) = (0, 0, 0);
    while let Some(r) = load.join_next().await {
        let (o, f, w) = r.unwrap();
        ok += o;
        failed += f;
        rewritten += w;
    }
    assert_eq!(failed, 0, "requests failed during reload");
    assert!(ok > 8 && rewritten > 0, "ok {ok}, rewritten {rewritten}");
    kg.shutdown().await;
    sim.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_even_when_the_mtime_did_not_change() {
    // Keep SIGHUP from ever reaching its default action (terminate) in this test process.
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let uris = Arc::new(Mutex::new(Vec::new()));
    let sim = kubeguard::sim::start(sim_opts(&uris)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeguard.yaml");
    std::fs::write(&path, config_file("shadow")).unwrap();
    let kg = kubeguard::serve::start(
        &FileConfig::load(&path).unwrap(),
        kube::Config::new(sim.url.parse().unwrap()),
    )
    .await
    .unwrap();
    wait_ready(&kg).await;
    // The new file replaces the old one with the old modification time: only SIGHUP sees it.
    let next = dir.path().join("next.yaml");
    std::fs::write(&next, config_file("enforce")).unwrap();
    let touched = std::process::Command::new("touch")
        .arg("-r")
        .arg(&path)
        .arg(&next)
        .status()
        .unwrap();
    assert!(touched.success());
    std::fs::rename(&next, &path).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        kg.policy.store.load().mode,
        kubeguard::policy::Mode::Shadow,
        "an unchanged mtime alone triggers nothing"
    );
    let sent = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(std::process::id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let mut reloaded = false;
    for _ in 0..250 {
        if kg.policy.store.load().mode == kubeguard::policy::Mode::Enforce {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reloaded, "SIGHUP did not reload the policy");
    kg.shutdown().await;
    sim.shutdown().await;
}

/// The per-client cost limit charges a LIST what it costs as it goes upstream: served from the
/// watch cache after an enforced rewrite, it costs a tenth of the etcd read it replaced, and
/// passes a budget the unrewritten LIST would exceed.
#[tokio::test]
async fn the_cost_limit_charges_a_rewritten_list_its_cache_read() {
    // 60 units of burst, one a second: a LIST of the 40 pods costs 40 from etcd, 4 from cache.
    let limits = "limits:\n  mode: enforce\n  costPerSecond: 1\n  costBurst: 60\n";
    for (policy, rewritten) in [("off", false), ("enforce", true)] {
        let e = env(&format!("  mode: {policy}\n{limits}")).await;
        // A LIST at resourceVersion=0 (500 assumed objects from cache: 50 units) teaches kubeguard
        // the collection's size and leaves about 10 units.
        let first = e.get("/api/v1/pods?resourceVersion=0").await;
        assert_eq!(
            first.status,
            200,
            "{}",
            String::from_utf8_lossy(&first.body)
        );
        assert_eq!(
            e.kg.policy
                .learner
                .collection_size("pods", "*")
                .map(|c| c.items),
            Some(40)
        );
        let list = e.get("/api/v1/pods").await;
        if rewritten {
            assert_eq!(list.status, 200, "{}", String::from_utf8_lossy(&list.body));
            assert!(decision(&list).contains("rewrite"), "{}", decision(&list));
        } else {
            assert_eq!(list.status, 429, "{}", String::from_utf8_lossy(&list.body));
            assert!(list.headers.contains_key("retry-after"));
        }
    }
}
