//! /usr/bin/kubectl through kubeguard in front of the emulated apiserver: every command gives
//! the same result as going direct.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kubeguard::serve::RunningServe;
use kubeguard::sim::{RunningSim, SimOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

struct Env {
    sim: RunningSim,
    kg: RunningServe,
    direct: PathBuf,
    guarded: PathBuf,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    env_with("").await
}

/// The environment with `server:` keys added to kubeguard's config.
async fn env_with(server_yaml: &str) -> Env {
    let sim = kubeguard::sim::start(SimOptions {
        nodes: 3,
        namespaces: 4,
        pods: 40,
        namespace_cleanup_delay: Duration::from_millis(20),
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        log_interval: Duration::from_millis(100),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(&sim.url, server_yaml).await;
    let dir = tempfile::tempdir().unwrap();
    let direct = dir.path().join("direct.kubeconfig");
    std::fs::write(&direct, sim.kubeconfig_yaml(None)).unwrap();
    let guarded = dir.path().join("kubeguard.kubeconfig");
    let mut kc = kg.client_kubeconfig();
    // A token keeps kubectl from prompting for a username on an https server; the emulator
    // runs without authentication and ignores it.
    kc.auth_infos[0].auth_info.as_mut().unwrap().token = Some("e2e".to_string().into());
    kubeguard::kubeconfig::write(&guarded, &kc).unwrap();
    Env {
        sim,
        kg,
        direct,
        guarded,
        _dir: dir,
    }
}

/// Runs kubectl with a kubeconfig; returns stdout, failing the test with stderr on error.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        common::kubectl_with(kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("kubectl finished within 60 s")
    .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Table output with the AGE-like cells (`5s`, `3m2s`, `2d3h`) blanked, so two runs a second
/// apart compare equal.
fn without_ages(table: &str) -> String {
    let age = |t: &str| {
        let t = t.trim_start_matches(|c: char| c.is_ascii_digit());
        !t.is_empty()
            && t.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
            && t.starts_with(['s', 'm', 'h', 'd', 'y'])
    };
    table
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| if age(t) { "AGE" } else { t })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn reads_are_identical_through_kubeguard() {
    let e = env().await;
    for args in [
        vec!["get", "pods", "-A"],
        vec!["get", "pods", "-A", "-o", "wide"],
        vec!["get", "nodes"],
        vec!["get", "namespaces"],
        vec!["get", "deployments", "-A"],
        vec!["get", "pods", "-n", "prod", "--show-labels"],
        vec!["get", "all", "-A"],
        vec!["get", "pv", "-o", "wide"],
        vec!["get", "pvc,endpoints,leases", "-A"],
    ] {
        let direct = kubectl(&e.direct, &args).await;
        let guarded = kubectl(&e.guarded, &args).await;
        assert_eq!(
            without_ages(&direct),
            without_ages(&guarded),
            "kubectl {args:?} differs through kubeguard"
        );
        assert!(direct.lines().count() > 1, "{args:?}: {direct}");
    }
    // JSON output: the same objects at the same resourceVersions.
    let direct: serde_json::Value =
        serde_json::from_str(&kubectl(&e.direct, &["get", "pods", "-A", "-o", "json"]).await)
            .unwrap();
    let guarded: serde_json::Value =
        serde_json::from_str(&kubectl(&e.guarded, &["get", "pods", "-A", "-o", "json"]).await)
            .unwrap();
    assert_eq!(direct["items"].as_array().unwrap().len(), 40);
    assert_eq!(direct["items"], guarded["items"]);
    // Non-resource paths and discovery.
    assert_eq!(
        kubectl(&e.direct, &["get", "--raw", "/version"]).await,
        kubectl(&e.guarded, &["get", "--raw", "/version"]).await
    );
    assert_eq!(
        kubectl(&e.direct, &["api-resources"]).await,
        kubectl(&e.guarded, &["api-resources"]).await
    );
    let explain = kubectl(&e.guarded, &["explain", "pods.spec.containers"]).await;
    assert!(
        explain.contains("KIND:") && explain.contains("Pod"),
        "{explain}"
    );
    e.kg.shutdown().await;
    e.sim.shutdown().await;
}

#[tokio::test]
async fn writes_through_kubeguard_land_in_the_apiserver() {
    writes_land_in_the_apiserver(env().await).await;
}

/// The same through hyper's h2 server (`server.h2Server: hyper`; kubeguard's own is the
/// default): kubectl speaks h2 over TLS.
#[tokio::test]
async fn writes_through_hypers_h2_server_land_in_the_apiserver() {
    writes_land_in_the_apiserver(env_with("  h2Server: hyper\n").await).await;
}

async fn writes_land_in_the_apiserver(e: Env) {
    let g = &e.guarded;
    kubectl(g, &["create", "namespace", "e2e"]).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: e2e\ndata:\n  a: \"1\"\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    assert!(kubectl(g, &["apply", "-f", m]).await.contains("created"));
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: e2e\ndata:\n  a: \"2\"\n",
    )
    .unwrap();
    assert!(kubectl(g, &["apply", "-f", m]).await.contains("configured"));
    kubectl(g, &["apply", "--server-side", "-f", m]).await;
    kubectl(g, &["label", "-n", "e2e", "configmap", "app", "team=core"]).await;
    kubectl(
        g,
        &[
            "patch",
            "-n",
            "e2e",
            "configmap",
            "app",
            "--type=merge",
            "-p",
            r#"{"data":{"b":"3"}}"#,
        ],
    )
    .await;
    kubectl(
        g,
        &[
            "create",
            "configmap",
            "-n",
            "e2e",
            "second",
            "--from-literal=x=y",
        ],
    )
    .await;
    // Read back directly from the apiserver.
    let cm: serde_json::Value = serde_json::from_str(
        &kubectl(
            &e.direct,
            &["get", "-n", "e2e", "configmap", "app", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(cm["data"]["a"], "2");
    assert_eq!(cm["data"]["b"], "3");
    assert_eq!(cm["metadata"]["labels"]["team"], "core");
    let out = kubectl(g, &["delete", "-n", "e2e", "configmap", "second"]).await;
    assert!(out.contains("deleted"), "{out}");
    let names = kubectl(&e.direct, &["get", "-n", "e2e", "configmaps", "-o", "name"]).await;
    assert!(!names.contains("configmap/second"), "{names}");
    assert!(names.contains("configmap/app"), "{names}");
    e.kg.shutdown().await;
    e.sim.shutdown().await;
}

/// `kubectl get -w` through kubeguard prints an event for an object created afterwards.
#[tokio::test]
async fn watch_receives_live_events() {
    let e = env().await;
    // One object so the initial listing prints a line: once it has, the watch is running from
    // the list's resourceVersion, and anything created later is delivered (no race, no sleep).
    kubectl(
        &e.direct,
        &[
            "create",
            "configmap",
            "-n",
            "prod",
            "before",
            "--from-literal=k=v",
        ],
    )
    .await;
    let mut child = common::kubectl_with(&e.guarded)
        .args([
            "get",
            "configmaps",
            "-n",
            "prod",
            "-w",
            "--output-watch-events",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The watch is established once the initial listing printed its header line.
    let listed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("before") {
                return true;
            }
        }
        false
    })
    .await
    .expect("kubectl printed the initial list");
    assert!(listed, "kubectl ended before listing");
    kubectl(
        &e.direct,
        &[
            "create",
            "configmap",
            "-n",
            "prod",
            "live-one",
            "--from-literal=k=v",
        ],
    )
    .await;
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("live-one") {
                return line;
            }
        }
        String::new()
    })
    .await
    .expect("the live event arrived through kubeguard");
    assert!(seen.contains("ADDED"), "{seen}");
    child.kill().await.unwrap();
    e.kg.shutdown().await;
    e.sim.shutdown().await;
}

/// `kubectl logs -f` streams line by line and `kubectl exec` (WebSocket) works through kubeguard.
#[tokio::test]
async fn logs_follow_and_exec() {
    let e = env().await;
    let pod = first_prod_pod(&e.guarded).await;

    let hello = kubectl(
        &e.guarded,
        &[
            "exec",
            "-n",
            "prod",
            &pod,
            "--",
            "echo",
            "hello",
            "kubeguard",
        ],
    )
    .await;
    assert_eq!(hello.trim(), "hello kubeguard");
    // A non-zero exit code comes back through the bridged stream.
    let out = common::kubectl_with(&e.guarded)
        .args(["exec", "-n", "prod", &pod, "--", "sh", "-c", "exit 3"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = common::kubectl_with(&e.guarded)
        .args(["logs", "-f", "--tail=1", "-n", "prod", &pod])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The tail line, then lines written after the request started: streamed, not buffered.
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        let mut got = Vec::new();
        while got.len() < 4 {
            match lines.next_line().await {
                Ok(Some(l)) => got.push(l),
                _ => break,
            }
        }
        got
    })
    .await
    .expect("log lines stream through kubeguard");
    assert_eq!(got.len(), 4, "{got:?}");
    child.kill().await.unwrap();
    e.kg.shutdown().await;
    e.sim.shutdown().await;
}

/// The name of the first pod in `prod`.
async fn first_prod_pod(kubeconfig: &Path) -> String {
    let pods = kubectl(kubeconfig, &["get", "pods", "-n", "prod", "-o", "name"]).await;
    pods.lines()
        .next()
        .expect("a pod in prod")
        .trim_start_matches("pod/")
        .to_string()
}

/// Runs kubectl through kubeguard with `input` on stdin; returns (success, stdout, stderr).
async fn kubectl_with_input(
    kubeconfig: &Path,
    args: &[&str],
    input: &str,
) -> (bool, String, String) {
    let mut child = common::kubectl_with(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("kubectl finished within 30 s")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl auth`, `kubectl attach` and `kubectl debug` work through kubeguard as they do direct.
#[tokio::test]
async fn auth_attach_and_debug_through_kubeguard() {
    let e = env().await;
    for args in [
        vec!["auth", "whoami"],
        vec!["auth", "can-i", "list", "pods"],
        vec!["auth", "can-i", "--list"],
    ] {
        let direct = kubectl(&e.direct, &args).await;
        let guarded = kubectl(&e.guarded, &args).await;
        assert_eq!(direct, guarded, "{args:?}");
    }
    let me = kubectl(&e.guarded, &["auth", "whoami"]).await;
    assert!(me.contains("system:anonymous"), "{me}");
    // `--as` with identity checks off: refused with the way out, never run as the caller.
    let direct = kubectl(&e.direct, &["auth", "whoami", "--as=jane"]).await;
    assert!(direct.contains("jane"), "{direct}");
    // (`auth whoami` words any 403 as its own "no permission"; other commands print ours.)
    let (ok, _, err) = kubectl_with_input(&e.guarded, &["auth", "whoami", "--as=jane"], "").await;
    assert!(!ok && err.contains("permission"), "{err}");
    for args in [
        ["get", "pods", "-n", "prod"],
        ["delete", "pod/nonexistent", "-n", "prod"],
    ] {
        let args = [&args[..], &["--as=jane"]].concat();
        let (ok, out, err) = kubectl_with_input(&e.guarded, &args, "").await;
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(
            err.contains("Forbidden")
                && err.contains("impersonation")
                && err.contains("identity.sources"),
            "{args:?}: {err}"
        );
    }

    let pod = first_prod_pod(&e.guarded).await;
    // attach: the container's log from now on, line by line through the bridged WebSocket.
    let mut child = common::kubectl_with(&e.guarded)
        .args(["attach", "-n", "prod", &pod])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a log line within 20 s")
        .unwrap()
        .unwrap();
    assert!(first.ends_with("request served n=20"), "{first}");
    child.kill().await.unwrap();

    // debug -i: an ephemeral container, running at once, with a shell attached.
    let (ok, out, err) = kubectl_with_input(
        &e.guarded,
        &[
            "debug",
            "-i",
            "-n",
            "prod",
            &pod,
            "--image=busybox",
            "-c",
            "dbg",
        ],
        "echo debugging through kubeguard\nexit\n",
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert_eq!(out, "debugging through kubeguard\n");
    let statuses = kubectl(
        &e.direct,
        &[
            "get",
            "pod",
            "-n",
            "prod",
            &pod,
            "-o",
            "jsonpath={.status.ephemeralContainerStatuses[*].name}",
        ],
    )
    .await;
    assert_eq!(statuses, "dbg");
    e.kg.shutdown().await;
    e.sim.shutdown().await;
}

#[test]
fn ages_are_blanked_and_nothing_else() {
    assert_eq!(without_ages("p1 Running 0 5s"), "p1 Running 0 AGE");
    assert_eq!(
        without_ages("p1 Running 0 3m2s 10.0.0.1"),
        "p1 Running 0 AGE 10.0.0.1"
    );
    assert_eq!(
        without_ages("node-1 Ready 2d3h v1.30.4"),
        "node-1 Ready AGE v1.30.4"
    );
    assert_eq!(without_ages("p 1/1 Running"), "p 1/1 Running");
}
