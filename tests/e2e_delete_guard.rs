//! The delete guard (issue [6 of 8]) with /usr/bin/kubectl through kubeguard in front of the
//! emulated apiserver: destructive deletes are refused until a person confirms them.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use kubeguard::serve::RunningServe;
use kubeguard::sim::{RunningSim, SimOptions};

struct Env {
    _sim: RunningSim,
    kg: RunningServe,
    direct: PathBuf,
    alice: PathBuf,
    bob: PathBuf,
    _dir: tempfile::TempDir,
}

/// Sim + kubeguard with `guard_yaml` as the `policy.guards.deleteGuard` body (indented 6).
async fn env(policy_yaml: &str) -> Env {
    let sim = kubeguard::sim::start(SimOptions {
        nodes: 1,
        namespaces: 4,
        pods: 40,
        namespace_cleanup_delay: Duration::from_millis(20),
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(&sim.url, policy_yaml).await;
    let dir = tempfile::tempdir().unwrap();
    let direct = dir.path().join("direct.kubeconfig");
    std::fs::write(&direct, sim.kubeconfig_yaml(None)).unwrap();
    // Two callers: identity is the (unverified) token's hash, so two tokens are two people.
    let mut paths = Vec::new();
    for who in ["alice", "bob"] {
        let p = dir.path().join(format!("{who}.kubeconfig"));
        let mut kc = kg.client_kubeconfig();
        kc.auth_infos[0].auth_info.as_mut().unwrap().token = Some(format!("{who}-token").into());
        kubeguard::kubeconfig::write(&p, &kc).unwrap();
        paths.push(p);
    }
    let bob = paths.pop().unwrap();
    let alice = paths.pop().unwrap();
    Env {
        _sim: sim,
        kg,
        direct,
        alice,
        bob,
        _dir: dir,
    }
}

const ENFORCE: &str = "policy:\n  mode: enforce\n";

async fn run(kubeconfig: &Path, args: &[&str]) -> Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        common::kubectl_with(kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("kubectl finished within 60 s")
    .unwrap()
}

async fn ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = run(kubeconfig, args).await;
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command fails; its stderr.
async fn refused(kubeconfig: &Path, args: &[&str]) -> String {
    let out = run(kubeconfig, args).await;
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "kubectl {args:?} should have been refused; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

async fn pod_count(kubeconfig: &Path, ns: &str) -> usize {
    ok(kubeconfig, &["get", "pods", "-n", ns, "-o", "name"])
        .await
        .lines()
        .count()
}

/// The namespace is gone (or terminating) as seen directly, within a bound.
async fn namespace_goes(direct: &Path, ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = run(
            direct,
            &["get", "namespace", ns, "-o", "jsonpath={.status.phase}"],
        )
        .await;
        let phase = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() || phase == "Terminating" {
            return;
        }
        assert!(Instant::now() < deadline, "namespace {ns} still {phase}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_delete_is_refused_with_counts_and_commands() {
    let e = env(ENFORCE).await;
    let pods_before = pod_count(&e.direct, "prod").await;
    assert!(pods_before > 0, "the seed puts pods in prod");
    let err = refused(&e.alice, &["delete", "namespace", "prod"]).await;
    assert!(err.contains("Forbidden"), "{err}");
    assert!(
        err.contains("kubectl delete namespace prod --dry-run=server")
            && err.contains("then `kubectl delete namespace prod` within 5 minutes"),
        "{err}"
    );
    assert!(
        err.contains("kubectl annotate namespace prod kubeguard.io/confirm-delete=$(date -u +%Y-%m-%dT%H:%M:%SZ) --overwrite"),
        "{err}"
    );
    assert!(err.contains(&format!("{pods_before} pods")), "{err}");
    // Nothing happened: prod and all its pods are still there.
    ok(&e.direct, &["get", "namespace", "prod"]).await;
    assert_eq!(pod_count(&e.direct, "prod").await, pods_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_then_delete_passes_once() {
    let e = env(ENFORCE).await;
    ok(
        &e.alice,
        &["delete", "namespace", "prod", "--dry-run=server"],
    )
    .await;
    // The dry run deleted nothing.
    ok(&e.direct, &["get", "namespace", "prod"]).await;
    ok(&e.alice, &["delete", "namespace", "prod", "--wait=false"]).await;
    namespace_goes(&e.direct, "prod").await;
    // Used up: the next guarded delete needs its own confirmation.
    refused(&e.alice, &["delete", "namespace", "ns-1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_dry_run_does_not_confirm() {
    let e = env(ENFORCE).await;
    ok(&e.bob, &["delete", "namespace", "prod", "--dry-run=server"]).await;
    refused(&e.alice, &["delete", "namespace", "prod"]).await;
    ok(&e.direct, &["get", "namespace", "prod"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_dry_run_does_not_confirm() {
    let window = Duration::from_secs(1);
    let e = env(&format!(
        "{ENFORCE}  guards:\n    deleteGuard:\n      confirmWindow: 1s\n"
    ))
    .await;
    ok(
        &e.alice,
        &["delete", "namespace", "prod", "--dry-run=server"],
    )
    .await;
    // The intent was recorded before the dry run's answer came back: wait until the window
    // has surely passed since then.
    let past = Instant::now() + window + Duration::from_millis(100);
    tokio::time::sleep_until(past.into()).await;
    let err = refused(&e.alice, &["delete", "namespace", "prod"]).await;
    assert!(err.contains("within 1 second"), "{err}");
    ok(&e.direct, &["get", "namespace", "prod"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_annotation_confirms() {
    let e = env(ENFORCE).await;
    // A stale annotation does not.
    ok(
        &e.alice,
        &[
            "annotate",
            "namespace",
            "prod",
            "kubeguard.io/confirm-delete=2020-01-01T00:00:00Z",
        ],
    )
    .await;
    refused(&e.alice, &["delete", "namespace", "prod"]).await;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    ok(
        &e.alice,
        &[
            "annotate",
            "namespace",
            "prod",
            &format!("kubeguard.io/confirm-delete={now}"),
            "--overwrite",
        ],
    )
    .await;
    // Another person's delete passes too: the annotation is on the object.
    ok(&e.bob, &["delete", "namespace", "prod", "--wait=false"]).await;
    namespace_goes(&e.direct, "prod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletecollection_is_refused_and_ordinary_deletes_pass() {
    let e = env(ENFORCE).await;
    let before = pod_count(&e.direct, "prod").await;
    // kubectl deletes one by one; a deletecollection is what controllers and client
    // libraries send: DELETE on the collection.
    let client = common::client(&e.kg, false);
    let req = hyper::Request::delete(format!(
        "{}/api/v1/namespaces/prod/pods",
        common::tls_url(&e.kg)
    ))
    .header("authorization", "Bearer alice-token")
    .body(http_body_util::Full::new(bytes::Bytes::new()))
    .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = common::body_bytes(resp.into_body()).await;
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Forbidden");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("deleting all pods in namespace prod is protected"),
        "{status}"
    );
    assert_eq!(pod_count(&e.direct, "prod").await, before);
    // The DeleteOptions body is read up to 64 KiB; beyond, 413 and nothing deleted.
    let big = format!(
        "{{\"kind\":\"DeleteOptions\",\"x\":\"{}\"}}",
        "a".repeat(70 * 1024)
    );
    let req = hyper::Request::delete(format!("{}/api/v1/namespaces/prod", common::tls_url(&e.kg)))
        .header("authorization", "Bearer alice-token")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(big)))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 413);
    ok(&e.direct, &["get", "namespace", "prod"]).await;
    let direct_pods = ok(&e.direct, &["get", "pods", "-n", "prod", "-o", "name"]).await;
    let one = direct_pods
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("pod/")
        .to_string();
    ok(
        &e.alice,
        &["delete", "pod", &one, "-n", "prod", "--wait=false"],
    )
    .await;
    assert!(pod_count(&e.direct, "prod").await < before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_lets_it_through_with_a_warning() {
    let e = env("policy:\n  mode: shadow\n").await;
    let out = run(&e.alice, &["delete", "namespace", "prod", "--wait=false"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: kubeguard (shadow): would block this request: unconfirmed delete of namespace prod"),
        "{stderr}"
    );
    namespace_goes(&e.direct, "prod").await;
}

/// Automation cannot answer a dry-run prompt: a service account (verified by TokenReview
/// against the emulator's users file) is refused even after a dry run, and passes with the
/// annotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_needs_the_annotation() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        r#"users:
  - name: admin
    token: admin-token
    groups: ["system:masters"]
  - serviceAccount: {namespace: ci, name: helm}
    token: helm-token
    rules:
      - verbs: [get, list, delete, patch]
        resources: [namespaces, pods]
"#,
    )
    .unwrap();
    let sim = kubeguard::sim::start(SimOptions {
        users: Some(users),
        nodes: 1,
        namespaces: 4,
        pods: 20,
        namespace_cleanup_delay: Duration::from_millis(20),
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let yaml = format!(
        "server:\n  listen: [\"https://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 2s\nidentity:\n  sources: [token]\n  loopbackSources: [token]\n{ENFORCE}"
    );
    let config = kubeguard::config::FileConfig::from_yaml(&yaml, "test").unwrap();
    let mut upstream = kube::Config::new(sim.url.parse().unwrap());
    // kubeguard's own credentials read the object and count what a namespace holds.
    upstream.auth_info.token = Some("admin-token".to_string().into());
    let kg = kubeguard::serve::start(&config, upstream).await.unwrap();
    let helm = dir.path().join("helm.kubeconfig");
    let mut kc = kg.client_kubeconfig();
    kc.auth_infos[0].auth_info.as_mut().unwrap().token = Some("helm-token".to_string().into());
    kubeguard::kubeconfig::write(&helm, &kc).unwrap();

    ok(&helm, &["delete", "namespace", "prod", "--dry-run=server"]).await;
    let err = refused(&helm, &["delete", "namespace", "prod"]).await;
    assert!(err.contains("kubeguard.io/confirm-delete"), "{err}");
    assert!(!err.contains("--dry-run=server"), "{err}");
    // Still there (GETs pass kubeguard untouched).
    ok(&helm, &["get", "namespace", "prod"]).await;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    ok(
        &helm,
        &[
            "annotate",
            "namespace",
            "prod",
            &format!("kubeguard.io/confirm-delete={now}"),
            "--overwrite",
        ],
    )
    .await;
    ok(&helm, &["delete", "namespace", "prod", "--wait=false"]).await;
    namespace_goes(&helm, "prod").await;
    drop(kg);
}

/// `kubectl delete pv` through `kubeguard demo`'s gateway settings (config/demo.yaml) in front of
/// the demo's emulated cluster: refused with the guard's message until confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_volume_delete_is_refused_in_the_demo() {
    let sim = kubeguard::sim::start(kubeguard::demo::demo_sim_options())
        .await
        .unwrap();
    let config =
        kubeguard::config::FileConfig::from_yaml(kubeguard::demo::DEMO_CONFIG, "demo").unwrap();
    let upstream = kube::Config::new(sim.url.parse().unwrap());
    let kg = kubeguard::serve::start(&config, upstream).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo.kubeconfig");
    let mut kc = kg.client_kubeconfig();
    kc.auth_infos[0].auth_info.as_mut().unwrap().token = Some("kubeguard-demo".to_string().into());
    kubeguard::kubeconfig::write(&demo, &kc).unwrap();
    let direct = dir.path().join("direct.kubeconfig");
    std::fs::write(&direct, sim.kubeconfig_yaml(None)).unwrap();

    let pvs = ok(&demo, &["get", "pv", "-o", "name"]).await;
    assert!(
        pvs.contains("persistentvolume/nfs-archive"),
        "the demo has volumes: {pvs}"
    );
    let bound = pvs
        .lines()
        .find_map(|l| l.strip_prefix("persistentvolume/pvc-"))
        .map(|uid| format!("pvc-{uid}"))
        .expect("a dynamically provisioned volume");
    for (name, short) in [("nfs-archive", "pv"), (bound.as_str(), "persistentvolume")] {
        let err = refused(&demo, &["delete", short, name]).await;
        assert!(err.contains("Error from server (Forbidden)"), "{err}");
        assert!(
            err.contains(&format!(
                "kubeguard: deleting persistentvolumes {name} is protected: it would remove persistent volume {name} and, by its reclaim policy, possibly its data. To confirm,"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "run `kubectl delete persistentvolumes {name} --dry-run=server` then `kubectl delete persistentvolumes {name}` within 5 minutes"
            )),
            "{err}"
        );
        ok(&direct, &["get", "pv", name]).await;
    }
    // The usual confirmation works for volumes too.
    ok(&demo, &["delete", "pv", "nfs-archive", "--dry-run=server"]).await;
    ok(&direct, &["get", "pv", "nfs-archive"]).await;
    ok(&demo, &["delete", "pv", "nfs-archive"]).await;
    let gone = run(&direct, &["get", "pv", "nfs-archive"]).await;
    assert!(
        !gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{gone:?}"
    );
    kg.shutdown().await;
    sim.shutdown().await;
}
