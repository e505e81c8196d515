//! The emulator driven by the real kubectl (/usr/bin/kubectl, v1.32).
#![allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)

#[path = "common/sim.rs"]
mod simc;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kubeguard::sim::SimOptions;
use serde_json::{Value, json};
use simc::{Env, client, fast_opts, start};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";
const T: Duration = Duration::from_secs(30);

async fn env(opts: SimOptions) -> Env {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: the kubectl end-to-end tests need it"
    );
    simc::env(opts).await
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KUBECTL);
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl to completion (bounded); returns (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(T, self.cmd(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    fn file(&self, name: &str, body: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    }
}

fn seeded() -> SimOptions {
    SimOptions {
        nodes: 2,
        namespaces: 2,
        pods: 6,
        ..fast_opts()
    }
}

#[tokio::test]
async fn get_pods_all_namespaces_wide_and_json() {
    let e = env(seeded()).await;
    let out = e.ok(&["get", "pods", "-A"]).await;
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("NAMESPACE") && header.contains("STATUS"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 7, "{out}");
    let wide = e.ok(&["get", "pods", "-A", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().contains("NODE"), "{wide}");
    let js: Value =
        serde_json::from_str(&e.ok(&["get", "pods", "-A", "-o", "json"]).await).unwrap();
    assert_eq!(js["items"].as_array().unwrap().len(), 6);
    let nodes = e.ok(&["get", "nodes"]).await;
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    e.sim.shutdown().await;
}

#[tokio::test]
async fn raw_version_api_resources_and_explain() {
    let e = env(fast_opts()).await;
    let v: Value = serde_json::from_str(&e.ok(&["get", "--raw", "/version"]).await).unwrap();
    assert_eq!(v["gitVersion"], "v1.30.4");
    let res = e.ok(&["api-resources"]).await;
    for r in [
        "pods",
        "deployments",
        "customresourcedefinitions",
        "namespaces",
    ] {
        assert!(res.contains(r), "{r} missing in:\n{res}");
    }
    let ex = e.ok(&["explain", "pods.spec.containers"]).await;
    assert!(ex.contains("KIND:") && ex.contains("Pod"), "{ex}");
    e.sim.shutdown().await;
}

#[tokio::test]
async fn create_apply_label_patch_delete() {
    let e = env(fast_opts()).await;
    assert!(
        e.ok(&["create", "namespace", "demo"])
            .await
            .contains("namespace/demo created")
    );
    let f = e.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\ndata:\n  k: v\n",
    );
    assert!(
        e.ok(&["apply", "-f", &f])
            .await
            .contains("configmap/settings created")
    );
    assert!(
        e.ok(&["apply", "-f", &f])
            .await
            .contains("configmap/settings unchanged")
    );
    let f2 = e.file(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\ndata:\n  k: v2\n",
    );
    assert!(
        e.ok(&["apply", "-f", &f2])
            .await
            .contains("configmap/settings configured")
    );
    let f3 = e.file(
        "ssa.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: demo\ndata:\n  a: b\n",
    );
    assert!(
        e.ok(&["apply", "--server-side", "-f", &f3])
            .await
            .contains("serverside-applied")
    );
    assert!(
        e.ok(&["label", "-n", "demo", "cm", "settings", "team=core"])
            .await
            .contains("labeled")
    );
    e.ok(&[
        "patch",
        "-n",
        "demo",
        "cm",
        "settings",
        "-p",
        r#"{"data":{"k":"v3"}}"#,
    ])
    .await;
    let got: Value = serde_json::from_str(
        &e.ok(&["get", "-n", "demo", "cm", "settings", "-o", "json"])
            .await,
    )
    .unwrap();
    assert_eq!(got["data"]["k"], "v3");
    assert_eq!(got["metadata"]["labels"]["team"], "core");
    let dry = e
        .ok(&["delete", "-n", "demo", "cm", "settings", "--dry-run=server"])
        .await;
    assert!(dry.contains("deleted (server dry run)"), "{dry}");
    assert!(
        e.ok(&["delete", "-n", "demo", "cm", "settings"])
            .await
            .contains("deleted")
    );
    let (ok, _, err) = e.run(&["get", "-n", "demo", "cm", "settings"]).await;
    assert!(!ok && err.contains("not found"), "{err}");
    e.sim.shutdown().await;
}

#[tokio::test]
async fn get_watch_prints_live_events() {
    let e = env(fast_opts()).await;
    let mut child = e
        .cmd(&[
            "get",
            "configmaps",
            "-n",
            "default",
            "-w",
            "--output-watch-events",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let cms: Api<ConfigMap> = Api::namespaced(client(&e.sim), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "live-one"}, "data": {"a": "b"}}))
            .unwrap();
    // kubectl may not have opened its watch yet: create until the event shows (bounded).
    let deadline = tokio::time::Instant::now() + T;
    let mut created = 0;
    let found = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no watch event within {T:?}"
        );
        if created == 0 {
            cms.create(&PostParams::default(), &cm).await.unwrap();
            created += 1;
        }
        match tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await {
            Ok(Ok(Some(line))) if line.contains("live-one") => break line,
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(other) => panic!("kubectl ended: {other:?}"),
        }
    };
    assert!(found.contains("ADDED"), "{found}");
    let _ = child.kill().await;
    e.sim.shutdown().await;
}

#[tokio::test]
async fn logs_follow_and_exec() {
    let e = env(SimOptions {
        log_interval: Duration::from_millis(50),
        ..fast_opts()
    })
    .await;
    let f = e.file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  containers:\n  - name: app\n    image: nginx\n    env:\n    - name: GREETING\n      value: hello\n",
    );
    e.ok(&["apply", "-f", &f]).await;
    let logs = e.ok(&["logs", "web", "--tail=3"]).await;
    assert_eq!(logs.lines().count(), 3, "{logs}");
    // logs -f: more lines than the tail arrive while following.
    let mut child = e
        .cmd(&["logs", "-f", "web", "--tail=1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        let l = tokio::time::timeout(T, lines.next_line())
            .await
            .unwrap()
            .unwrap();
        assert!(l.is_some());
    }
    let _ = child.kill().await;
    let out = e.ok(&["exec", "web", "--", "echo", "hi", "there"]).await;
    assert_eq!(out.trim(), "hi there");
    let env_out = e.ok(&["exec", "web", "-c", "app", "--", "env"]).await;
    assert!(env_out.contains("GREETING=hello"), "{env_out}");
    let (ok, _, err) = e.run(&["exec", "web", "--", "sh", "-c", "exit 3"]).await;
    assert!(!ok && err.contains("exit code 3"), "{err}");
    e.sim.shutdown().await;
}

#[tokio::test]
async fn kubectl_over_tls_and_h2() {
    let e = env(SimOptions {
        tls: true,
        ..fast_opts()
    })
    .await;
    let v: Value = serde_json::from_str(&e.ok(&["get", "--raw", "/version"]).await).unwrap();
    assert_eq!(v["gitVersion"], "v1.30.4");
    e.ok(&["create", "configmap", "over-tls", "--from-literal=a=b"])
        .await;
    let out = e.ok(&["get", "cm", "over-tls", "-v=6"]).await;
    assert!(out.contains("over-tls"), "{out}");
    e.sim.shutdown().await;
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            description: The widget's wishes.
            properties:
              size: {type: integer, description: How many cogs the widget turns.}
              color: {type: string}
"#;

#[tokio::test]
async fn crd_schema_in_explain_and_printer_columns_in_get() {
    let e = env(fast_opts()).await;
    let crd = e.file("crd.yaml", WIDGET_CRD);
    e.ok(&["apply", "-f", &crd]).await;
    let w = e.file(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: default\nspec:\n  size: 7\n  color: blue\n",
    );
    e.ok(&["apply", "-f", &w]).await;

    let ex = e.ok(&["explain", "widgets.spec"]).await;
    assert!(ex.contains("The widget's wishes."), "{ex}");
    assert!(ex.contains("How many cogs the widget turns."), "{ex}");

    let get = e.ok(&["get", "widgets"]).await;
    let mut lines = get.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE"], "{get}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row, ["w1", "7"], "{get}");
    let wide = e.ok(&["get", "widgets", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().ends_with("COLOR"), "{wide}");
    assert!(wide.contains("blue"), "{wide}");
    e.sim.shutdown().await;
}

#[tokio::test]
async fn delete_seeded_deployment_cascades() {
    let e = env(seeded()).await;
    let deps: Value =
        serde_json::from_str(&e.ok(&["get", "deployments", "-A", "-o", "json"]).await).unwrap();
    let dep = &deps["items"][0];
    let (ns, name) = (
        dep["metadata"]["namespace"].as_str().unwrap(),
        dep["metadata"]["name"].as_str().unwrap(),
    );
    let owned_pods = |pods: &Value| {
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["labels"]["app"] == name)
            .count()
    };
    let pods: Value =
        serde_json::from_str(&e.ok(&["get", "pods", "-n", ns, "-o", "json"]).await).unwrap();
    assert!(owned_pods(&pods) > 0, "{pods}");
    e.ok(&["delete", "deployment", "-n", ns, name]).await;
    let rs = e.ok(&["get", "replicasets", "-n", ns, "-o", "name"]).await;
    assert!(!rs.contains(name), "{rs}");
    let pods: Value =
        serde_json::from_str(&e.ok(&["get", "pods", "-n", ns, "-o", "json"]).await).unwrap();
    assert_eq!(owned_pods(&pods), 0, "{pods}");
    e.sim.shutdown().await;
}

/// Splits a kubectl table into rows of cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn auth_commands_without_authentication_see_always_allow() {
    let e = env(fast_opts()).await;
    assert_eq!(e.ok(&["auth", "can-i", "list", "pods"]).await, "yes\n");
    assert_eq!(
        e.ok(&["auth", "can-i", "delete", "nodes", "--all-namespaces"])
            .await,
        "yes\n"
    );
    let list = e.ok(&["auth", "can-i", "--list"]).await;
    assert_eq!(
        rows(&list),
        vec![
            vec![
                "Resources",
                "Non-Resource",
                "URLs",
                "Resource",
                "Names",
                "Verbs"
            ],
            vec!["*.*", "[]", "[]", "[*]"],
            vec!["[*]", "[]", "[*]"],
        ],
        "{list}"
    );
    let me = e.ok(&["auth", "whoami"]).await;
    assert_eq!(
        rows(&me),
        vec![
            vec!["ATTRIBUTE", "VALUE"],
            vec!["Username", "system:anonymous"],
            vec!["Groups", "[system:unauthenticated]"],
        ],
        "{me}"
    );
    // AlwaysAllow lets anyone impersonate: --as is who the apiserver sees.
    let jane: Value = serde_json::from_str(
        &e.ok(&[
            "auth",
            "whoami",
            "--as=jane",
            "--as-group=devs",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(jane["kind"], "SelfSubjectReview");
    assert_eq!(
        jane["status"]["userInfo"],
        json!({"username": "jane", "groups": ["devs", "system:authenticated"]})
    );
    let res = e
        .ok(&[
            "api-resources",
            "--api-group=authorization.k8s.io",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(
        res,
        "localsubjectaccessreviews.authorization.k8s.io\nselfsubjectaccessreviews.authorization.k8s.io\n\
         selfsubjectrulesreviews.authorization.k8s.io\nsubjectaccessreviews.authorization.k8s.io\n"
    );
    // A review is answered, not stored: there is nothing to read back.
    let (ok, _, err) = e.run(&["get", "selfsubjectreviews"]).await;
    assert!(!ok && err.contains("MethodNotAllowed"), "{err}");
    e.sim.shutdown().await;
}

const USERS: &str = r#"
users:
  - name: alice
    token: alice-token
    uid: "1001"
    groups: [devs]
    rules:
      - verbs: [get, list, watch]
        resources: [pods]
        namespaces: [prod]
groups:
  - name: devs
    rules:
      - verbs: [get]
        nonResourceURLs: [/metrics]
"#;

#[tokio::test]
async fn auth_commands_with_a_users_file_see_the_users_rules() {
    let mut e = env(fast_opts()).await;
    let users = e.file("users.yaml", USERS);
    e.sim.shutdown().await;
    // Over TLS: kubectl sends no bearer token to a plain-http server.
    e.sim = start(SimOptions {
        users: Some(users.into()),
        tls: true,
        ..fast_opts()
    })
    .await;
    std::fs::write(&e.kubeconfig, e.sim.kubeconfig_yaml(Some("alice-token"))).unwrap();

    let me = e.ok(&["auth", "whoami"]).await;
    assert_eq!(
        rows(&me),
        vec![
            vec!["ATTRIBUTE", "VALUE"],
            vec!["Username", "alice"],
            vec!["UID", "1001"],
            vec!["Groups", "[devs", "system:authenticated]"],
        ],
        "{me}"
    );
    assert_eq!(
        e.ok(&["auth", "can-i", "watch", "pods", "-n", "prod"])
            .await,
        "yes\n"
    );
    let (ok, out, _) = e.run(&["auth", "can-i", "list", "pods", "-n", "dev"]).await;
    assert!(!ok && out == "no\n", "{out}");
    assert_eq!(
        e.ok(&["auth", "can-i", "create", "selfsubjectreviews"])
            .await,
        "yes\n"
    );

    let prod = rows(&e.ok(&["auth", "can-i", "--list", "-n", "prod"]).await);
    let has = |table: &[Vec<String>], row: &[&str]| table.iter().any(|r| r == row);
    // No apiGroups in the users file means any group: RBAC's `*`.
    assert!(
        has(&prod, &["pods.*", "[]", "[]", "[get", "list", "watch]"]),
        "{prod:?}"
    );
    assert!(
        has(
            &prod,
            &[
                "selfsubjectreviews.authentication.k8s.io",
                "[]",
                "[]",
                "[create]"
            ]
        ),
        "{prod:?}"
    );
    assert!(has(&prod, &["[/metrics]", "[]", "[get]"]), "{prod:?}");
    assert!(has(&prod, &["[/apis/*]", "[]", "[get]"]), "{prod:?}");
    let dev = rows(&e.ok(&["auth", "can-i", "--list", "-n", "dev"]).await);
    assert!(!dev.iter().any(|r| r[0] == "pods.*"), "{dev:?}");
    e.sim.shutdown().await;
}

/// Reads lines of a child's stdout until one contains `wanted` (bounded).
async fn line_with(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    wanted: &str,
) -> String {
    tokio::time::timeout(T, async {
        loop {
            match lines.next_line().await.unwrap() {
                Some(l) if l.contains(wanted) => return l,
                Some(_) => {}
                None => panic!("kubectl ended before printing {wanted:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} within {T:?}"))
}

#[tokio::test]
async fn attach_streams_the_log_echoes_stdin_and_ends_with_the_pod() {
    let e = env(SimOptions {
        log_interval: Duration::from_millis(50),
        ..fast_opts()
    })
    .await;
    let f = e.file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  containers:\n  - name: app\n    image: nginx\n",
    );
    e.ok(&["apply", "-f", &f]).await;

    let mut child = e
        .cmd(&["attach", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // New lines of the container's log, from the moment of attaching (the history ends at 19).
    let first = line_with(&mut lines, "request served").await;
    assert!(
        first.ends_with("INFO app=app pod=web request served n=20"),
        "{first}"
    );
    line_with(&mut lines, "n=21").await;
    // The pod goes away: the session ends and kubectl with it, successfully.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client(&e.sim), "default");
    pods.delete("web", &Default::default()).await.unwrap();
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut err)
        .await
        .unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("If you don't see a command prompt"), "{err}");

    // With -i, what is typed comes back on stdout.
    e.ok(&["apply", "-f", &f]).await;
    let mut child = e
        .cmd(&["attach", "-i", "web"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"hello from stdin\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(line_with(&mut lines, "hello").await, "hello from stdin");
    let _ = child.kill().await;
    e.sim.shutdown().await;
}

#[tokio::test]
async fn debug_adds_a_running_ephemeral_container_and_attaches_a_shell() {
    let e = env(fast_opts()).await;
    let f = e.file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  containers:\n  - name: app\n    image: nginx\n",
    );
    e.ok(&["apply", "-f", &f]).await;

    // Without -i kubectl patches pods/ephemeralcontainers and is done.
    let (ok, out, err) = e
        .run(&["debug", "web", "--image=busybox", "-c", "dbg"])
        .await;
    assert!(ok, "{out}\n{err}");
    let pod: Value =
        serde_json::from_str(&e.ok(&["get", "pod", "web", "-o", "json"]).await).unwrap();
    assert_eq!(pod["spec"]["ephemeralContainers"][0]["name"], "dbg");
    assert_eq!(pod["spec"]["ephemeralContainers"][0]["image"], "busybox");
    let status = &pod["status"]["ephemeralContainerStatuses"][0];
    assert_eq!(status["name"], "dbg");
    assert!(
        status["state"]["running"]["startedAt"].is_string(),
        "{status}"
    );
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");

    // Removing it is refused with the apiserver's 422.
    let mut without = pod.clone();
    without["spec"]["ephemeralContainers"] = json!([]);
    let body = e.file("without.json", &without.to_string());
    let (ok, _, err) = e
        .run(&[
            "replace",
            "--raw",
            "/api/v1/namespaces/default/pods/web/ephemeralcontainers",
            "-f",
            &body,
        ])
        .await;
    assert!(
        !ok && err.contains("existing ephemeral containers \"dbg\" may not be removed"),
        "{err}"
    );

    // With -i kubectl waits for the container to run, then attaches: the debug image's shell.
    let mut child = e
        .cmd(&["debug", "-i", "web", "--image=busybox", "-c", "shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"echo hello from debug\nhostname\nexit\n")
        .await
        .unwrap();
    let out = tokio::time::timeout(T, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "hello from debug\nweb\n");
    e.sim.shutdown().await;
}

#[tokio::test]
async fn port_forward_and_cp_say_they_are_not_emulated() {
    let e = env(seeded()).await;
    let pods: Value =
        serde_json::from_str(&e.ok(&["get", "pods", "-A", "-o", "json"]).await).unwrap();
    let pod = &pods["items"][0]["metadata"];
    let (ns, name) = (
        pod["namespace"].as_str().unwrap(),
        pod["name"].as_str().unwrap(),
    );
    assert_eq!(pods["items"][0]["status"]["phase"], "Running");

    let (ok, _, err) = e.run(&["port-forward", "-n", ns, name, "0:80"]).await;
    assert!(
        !ok && err.contains("pods/portforward is not emulated by kubeguard sim"),
        "{err}"
    );
    let out = e.dir.path().join("copied");
    let from = format!("{ns}/{name}:/etc/hostname");
    let (ok, stdout, stderr) = e.run(&["cp", &from, out.to_str().unwrap()]).await;
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("tar: not emulated by kubeguard sim"),
        "{stdout}\n{stderr}"
    );
    e.sim.shutdown().await;
}
