//! The emulator's storage, network, batch, coordination and RBAC types and the TokenRequest
//! API, driven with /usr/bin/kubectl (tables as kubectl prints them, `-o wide`, create, apply,
//! scale, explain, create token) and the kube crate (a lease's optimistic concurrency).
#![allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)

mod common;
#[path = "common/sim.rs"]
mod simc;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use kubeguard::sim::SimOptions;
use serde_json::Value;
use simc::{Env, client, env, fast_opts, start};
use tokio::process::Command;

fn seeded() -> SimOptions {
    SimOptions {
        nodes: 2,
        namespaces: 3,
        pods: 12,
        ..fast_opts()
    }
}

impl Env {
    /// Runs kubectl to completion (bounded): (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        run_with(&self.kubeconfig, self.dir.path(), args).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }

    /// The command fails; its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(!ok, "kubectl {args:?} should fail; stdout:\n{out}");
        err
    }

    fn file(&self, name: &str, body: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    }
}

async fn run_with(kubeconfig: &Path, home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(common::kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--request-timeout=30s")
            .args(args)
            .env("HOME", home)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each line with its columns joined by one space (empty cells vanish, as when reading them).
fn squeezed(table: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The line that starts with `start` (squeezed).
fn line<'a>(lines: &'a [String], start: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in {lines:#?}"))
}

/// A token for the trailing cell of `line` (`3s`, `2m5s`): ages change between runs.
fn without_age(line: &str) -> &str {
    line.rsplit_once(' ').map_or(line, |(head, _)| head)
}

#[tokio::test]
async fn storage_tables_are_the_printers() {
    let e = env(seeded()).await;
    let pv = squeezed(&e.ok(&["get", "pv"]).await);
    assert_eq!(
        pv[0],
        "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE"
    );
    assert_eq!(pv.len(), 5, "{pv:#?}");
    assert_eq!(
        without_age(line(&pv, "nfs-archive")),
        "nfs-archive 500Gi RWX Retain Available <unset>"
    );
    let bound = line(&pv, "pvc-");
    assert!(bound.contains(" RWO Delete Bound "), "{bound}");
    let wide = squeezed(&e.ok(&["get", "pv", "-o", "wide"]).await);
    assert!(wide[0].ends_with("REASON AGE VOLUMEMODE"), "{}", wide[0]);
    assert!(line(&wide, "nfs-archive").ends_with(" Filesystem"));

    let pvc = squeezed(&e.ok(&["get", "pvc", "-n", "prod"]).await);
    assert_eq!(
        pvc[0],
        "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE"
    );
    let data = line(&pvc, "postgres-data");
    assert!(
        data.starts_with("postgres-data Bound pvc-")
            && data.contains(" 20Gi RWO standard <unset> ")
    );

    let sc = squeezed(&e.ok(&["get", "sc"]).await);
    assert_eq!(
        sc[0],
        "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE"
    );
    assert_eq!(
        without_age(&sc[1]),
        "standard (default) rancher.io/local-path Delete WaitForFirstConsumer false"
    );

    // A claim that names no class gets the default one; the volume defaults to Retain.
    let claim = e.file(
        "claim.yaml",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: cache, namespace: prod}\n\
         spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}\n\
         ---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: scratch-disk}\n\
         spec: {capacity: {storage: 2Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /mnt/scratch}}\n",
    );
    e.ok(&["apply", "-f", &claim]).await;
    let cache = squeezed(&e.ok(&["get", "pvc", "cache", "-n", "prod"]).await);
    assert_eq!(without_age(&cache[1]), "cache Pending standard <unset>");
    let disk = squeezed(&e.ok(&["get", "pv", "scratch-disk"]).await);
    assert_eq!(
        without_age(&disk[1]),
        "scratch-disk 2Gi RWO Retain Pending <unset>"
    );
    // A volume without a source is refused as the apiserver refuses it.
    let bad = e.file(
        "bad-pv.yaml",
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: nowhere}\n\
         spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce]}\n",
    );
    let err = e.fails(&["create", "-f", &bad]).await;
    assert!(
        err.contains("PersistentVolume \"nowhere\" is invalid: spec: Required value: must specify a volume type"),
        "{err}"
    );
    e.sim.shutdown().await;
}

#[tokio::test]
async fn endpoints_leases_and_rbac_tables_are_the_printers() {
    let e = env(seeded()).await;
    let ep = squeezed(&e.ok(&["get", "ep", "-n", "default"]).await);
    assert_eq!(ep[0], "NAME ENDPOINTS AGE");
    assert_eq!(
        without_age(line(&ep, "kubernetes ")),
        "kubernetes 10.0.0.2:6443"
    );
    let slices = squeezed(&e.ok(&["get", "endpointslices", "-A"]).await);
    assert_eq!(slices[0], "NAMESPACE NAME ADDRESSTYPE PORTS ENDPOINTS AGE");
    assert_eq!(
        without_age(line(&slices, "default kubernetes ")),
        "default kubernetes IPv4 6443 10.0.0.2"
    );
    // One Endpoints and one slice per Service, the slices named after it.
    let services = e
        .ok(&["get", "svc", "-A", "-o", "name"])
        .await
        .lines()
        .count();
    assert_eq!(slices.len() - 1, services);
    assert_eq!(
        e.ok(&["get", "ep", "-A", "-o", "name"])
            .await
            .lines()
            .count(),
        services
    );

    let leases = squeezed(&e.ok(&["get", "leases", "-A"]).await);
    assert_eq!(leases[0], "NAMESPACE NAME HOLDER AGE");
    assert_eq!(
        without_age(line(&leases, "kube-node-lease node-2")),
        "kube-node-lease node-2 node-2"
    );
    assert!(line(&leases, "kube-system kube-scheduler control-plane_").len() > 30);

    let roles = squeezed(&e.ok(&["get", "clusterroles"]).await);
    assert_eq!(roles[0], "NAME CREATED AT");
    for r in ["admin ", "cluster-admin ", "edit ", "view "] {
        assert!(line(&roles, r).ends_with('Z'), "{r}");
    }
    let bindings = squeezed(&e.ok(&["get", "clusterrolebindings", "-o", "wide"]).await);
    assert_eq!(bindings[0], "NAME ROLE AGE USERS GROUPS SERVICEACCOUNTS");
    let admin = line(&bindings, "cluster-admin ");
    assert!(
        admin.starts_with("cluster-admin ClusterRole/cluster-admin ")
            && admin.ends_with(" system:masters"),
        "{admin}"
    );
    let ci = line(&bindings, "ci-deployers ");
    assert!(ci.ends_with(" deploy-bot prod/default"), "{ci}");
    let ns_rbac = squeezed(
        &e.ok(&["get", "roles,rolebindings", "-n", "kube-system"])
            .await,
    );
    line(
        &ns_rbac,
        "role.rbac.authorization.k8s.io/extension-apiserver-authentication-reader ",
    );
    line(
        &ns_rbac,
        "rolebinding.rbac.authorization.k8s.io/system::extension-apiserver-authentication-reader Role/",
    );
    e.sim.shutdown().await;
}

const WORKLOADS: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: prod}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, image: postgres:16}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: prod}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers: [{name: agent, image: fluent/fluent-bit:2.2.2}]
";

#[tokio::test]
async fn get_all_lists_category_all_and_sets_apply_and_scale() {
    let e = env(seeded()).await;
    let categories = e
        .ok(&["api-resources", "--categories=all", "-o", "name"])
        .await;
    assert_eq!(
        categories.lines().collect::<Vec<_>>(),
        [
            "pods",
            "services",
            "daemonsets.apps",
            "deployments.apps",
            "replicasets.apps",
            "statefulsets.apps",
            "cronjobs.batch",
            "jobs.batch"
        ]
    );
    let f = e.file("workloads.yaml", WORKLOADS);
    let out = e.ok(&["apply", "-f", &f]).await;
    assert!(
        out.contains("statefulset.apps/db created") && out.contains("daemonset.apps/agent created"),
        "{out}"
    );
    let again = e.ok(&["apply", "-f", &f]).await;
    assert!(
        again.contains("statefulset.apps/db unchanged")
            && again.contains("daemonset.apps/agent unchanged"),
        "{again}"
    );

    let all = e.ok(&["get", "all", "-n", "prod"]).await;
    for kind in [
        "pod/",
        "service/",
        "deployment.apps/",
        "replicaset.apps/",
        "statefulset.apps/db ",
        "daemonset.apps/agent ",
        "cronjob.batch/nightly-report ",
        "job.batch/nightly-report-",
    ] {
        assert!(all.contains(kind), "{kind} missing from get all:\n{all}");
    }
    assert!(
        !all.contains("endpoints/") && !all.contains("persistentvolumeclaim"),
        "{all}"
    );

    let sts = squeezed(&e.ok(&["get", "sts", "-n", "prod", "-o", "wide"]).await);
    assert_eq!(sts[0], "NAME READY AGE CONTAINERS IMAGES");
    assert!(line(&sts, "db ").starts_with("db 0/2 ") && sts[1].ends_with(" pg postgres:16"));
    let ds = squeezed(&e.ok(&["get", "ds", "-n", "prod", "-o", "wide"]).await);
    assert_eq!(
        ds[0],
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE CONTAINERS IMAGES SELECTOR"
    );
    assert!(
        ds[1].starts_with("agent 0 0 0 0 0 kubernetes.io/os=linux "),
        "{}",
        ds[1]
    );
    // The scale subresource, as `kubectl scale` uses it.
    e.ok(&["scale", "statefulset", "db", "-n", "prod", "--replicas=3"])
        .await;
    let scaled = squeezed(&e.ok(&["get", "sts", "db", "-n", "prod"]).await);
    assert!(scaled[1].starts_with("db 0/3 "), "{scaled:?}");
    let defaults = e
        .ok(&[
            "get",
            "sts",
            "db",
            "-n",
            "prod",
            "-o",
            "jsonpath={.spec.podManagementPolicy} {.spec.updateStrategy.type} {.status.replicas}",
        ])
        .await;
    assert_eq!(defaults, "OrderedReady RollingUpdate 0");
    let explain = e
        .ok(&["explain", "statefulset.spec.volumeClaimTemplates"])
        .await;
    assert!(
        explain.contains("FIELD: volumeClaimTemplates <[]PersistentVolumeClaim>"),
        "{explain}"
    );
    e.sim.shutdown().await;
}

#[tokio::test]
async fn jobs_and_cron_jobs_are_created_explained_and_validated() {
    let e = env(seeded()).await;
    e.ok(&[
        "create",
        "job",
        "hello",
        "--image=busybox",
        "--",
        "echo",
        "hi",
    ])
    .await;
    let uid = e
        .ok(&["get", "job", "hello", "-o", "jsonpath={.metadata.uid}"])
        .await;
    let job = squeezed(&e.ok(&["get", "job", "hello", "-o", "wide"]).await);
    assert_eq!(
        job[0],
        "NAME STATUS COMPLETIONS DURATION AGE CONTAINERS IMAGES SELECTOR"
    );
    let row = &job[1];
    assert!(row.starts_with("hello Running 0/1 "), "{row}");
    assert!(
        row.ends_with(&format!(
            " hello busybox batch.kubernetes.io/controller-uid={uid}"
        )),
        "{row}"
    );
    let labels = e
        .ok(&[
            "get",
            "job",
            "hello",
            "-o",
            "jsonpath={.spec.template.metadata.labels.job-name}",
        ])
        .await;
    assert_eq!(labels, "hello");

    // From the seeded CronJob, as `kubectl create job --from` does it: owned by the CronJob.
    e.ok(&[
        "create",
        "job",
        "manual-run",
        "-n",
        "prod",
        "--from=cronjob/nightly-report",
    ])
    .await;
    let owner = e
        .ok(&[
            "get",
            "job",
            "manual-run",
            "-n",
            "prod",
            "-o",
            "jsonpath={.metadata.ownerReferences[0].name}",
        ])
        .await;
    assert_eq!(owner, "nightly-report");

    e.ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "date",
    ])
    .await;
    let cj = squeezed(&e.ok(&["get", "cj", "tick"]).await);
    assert_eq!(
        cj[0],
        "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE"
    );
    assert_eq!(
        without_age(&cj[1]),
        "tick */5 * * * * <none> False 0 <none>"
    );
    let err = e
        .fails(&[
            "create",
            "cronjob",
            "bad",
            "--image=busybox",
            "--schedule=every day",
        ])
        .await;
    assert!(
        err.contains("CronJob.batch \"bad\" is invalid: spec.schedule: Invalid value: \"every day\": expected exactly 5 fields, found 2"),
        "{err}"
    );
    let bad_job = e.file(
        "always.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: forever}\n\
         spec: {template: {spec: {containers: [{name: c, image: busybox}]}}}\n",
    );
    let err = e.fails(&["create", "-f", &bad_job]).await;
    assert!(
        err.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\""),
        "{err}"
    );

    let explain = e.ok(&["explain", "cronjob.spec.schedule"]).await;
    assert!(
        explain.contains("FIELD: schedule <string>")
            && explain.contains("The schedule in Cron format"),
        "{explain}"
    );
    // Deleting the CronJob takes its Jobs along (the garbage collector's cascade).
    e.ok(&["delete", "cronjob", "nightly-report", "-n", "prod"])
        .await;
    let left = e.ok(&["get", "jobs", "-n", "prod", "-o", "name"]).await;
    assert!(left.trim().is_empty(), "{left}");
    e.sim.shutdown().await;
}

/// The claims of a token (its middle part).
fn claims(token: &str) -> Value {
    let body = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn create_token_answers_a_token_request() {
    let e = env(seeded()).await;
    let token = e.ok(&["create", "token", "default"]).await;
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let c = claims(token);
    assert_eq!(c["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        c["aud"],
        serde_json::json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);
    let long = e
        .ok(&[
            "create",
            "token",
            "default",
            "-n",
            "prod",
            "--duration=2h",
            "--audience=vault",
        ])
        .await;
    let c = claims(long.trim());
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        7200
    );
    assert_eq!(c["aud"], serde_json::json!(["vault"]));
    assert_eq!(c["kubernetes.io"]["namespace"], "prod");

    let err = e
        .fails(&["create", "token", "default", "--duration=5m"])
        .await;
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = e.fails(&["create", "token", "nobody"]).await;
    assert!(
        err.contains("serviceaccounts \"nobody\" not found"),
        "{err}"
    );
    e.sim.shutdown().await;
}

const USERS: &str = r#"users:
  - name: admin
    token: admin-token
    groups: ["system:masters"]
  - serviceAccount: {namespace: prod, name: deployer}
    token: deployer-static-token
    rules:
      - verbs: [get, list]
        apiGroups: [apps]
        resources: [deployments]
        namespaces: [prod]
"#;

/// kubectl with `--token` (over the kubeconfig's placeholder).
async fn with_token(e: &Env, token: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["--token", token.trim()];
    all.extend_from_slice(args);
    e.run(&all).await
}

#[tokio::test]
async fn minted_tokens_authenticate_as_their_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, USERS).unwrap();
    // kubectl sends bearer tokens over TLS only.
    let e = env(SimOptions {
        users: Some(users),
        tls: true,
        ..seeded()
    })
    .await;
    let admin = "admin-token";
    for args in [
        &["create", "serviceaccount", "deployer", "-n", "prod"][..],
        &["get", "serviceaccount", "default", "-n", "prod"],
    ] {
        let (ok, _, err) = with_token(&e, admin, args).await;
        assert!(ok, "{args:?}: {err}");
    }
    let (ok, token, err) =
        with_token(&e, admin, &["create", "token", "deployer", "-n", "prod"]).await;
    assert!(ok, "{err}");
    let (ok, other, err) =
        with_token(&e, admin, &["create", "token", "default", "-n", "prod"]).await;
    assert!(ok, "{err}");

    // The minted token is the service account, with the rules the users file gives it.
    let (ok, out, err) = with_token(
        &e,
        &token,
        &["get", "deployments", "-n", "prod", "-o", "name"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.lines().count() > 0, "{out}");
    let (ok, _, err) = with_token(&e, &token, &["get", "pods", "-n", "prod"]).await;
    assert!(!ok);
    assert!(
        err.contains("User \"system:serviceaccount:prod:deployer\" cannot list resource \"pods\""),
        "{err}"
    );
    // A service account the users file does not know authenticates and may do nothing.
    let (ok, _, err) = with_token(&e, &other, &["get", "deployments", "-n", "prod"]).await;
    assert!(!ok);
    assert!(
        err.contains("User \"system:serviceaccount:prod:default\" cannot list"),
        "{err}"
    );
    // A token that only looks like one is nobody.
    let forged = format!("{}x", token.trim());
    let (ok, _, err) = with_token(&e, &forged, &["get", "deployments", "-n", "prod"]).await;
    assert!(!ok);
    assert!(err.contains("Unauthorized"), "{err}");
    e.sim.shutdown().await;
}

#[tokio::test]
async fn a_lease_update_with_a_stale_resource_version_conflicts() {
    let sim = start(seeded()).await;
    let leases: Api<Lease> = Api::namespaced(client(&sim), "kube-system");
    // client-go's leader election: get, then update with the resourceVersion read.
    let read = leases.get("kube-scheduler").await.unwrap();
    let mut mine = read.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("scheduler-b".into());
    let taken = leases
        .replace("kube-scheduler", &PostParams::default(), &mine)
        .await
        .unwrap();
    assert_ne!(
        taken.metadata.resource_version,
        read.metadata.resource_version
    );
    // The other candidate still holds the old resourceVersion: 409 Conflict.
    let mut theirs = read.clone();
    theirs.spec.as_mut().unwrap().holder_identity = Some("scheduler-c".into());
    let err = leases
        .replace("kube-scheduler", &PostParams::default(), &theirs)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(
                s.message
                    .contains("leases.coordination.k8s.io \"kube-scheduler\""),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    let now = leases.get("kube-scheduler").await.unwrap();
    assert_eq!(
        now.spec.unwrap().holder_identity.as_deref(),
        Some("scheduler-b")
    );
    // A new lease is created and then renewed the same way.
    let fresh: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "my-controller"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15},
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &fresh).await.unwrap();
    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().lease_transitions = Some(1);
    leases
        .replace("my-controller", &PostParams::default(), &renewed)
        .await
        .unwrap();
    let again = leases
        .replace("my-controller", &PostParams::default(), &renewed)
        .await
        .unwrap_err();
    assert!(
        matches!(again, kube::Error::Api(ref s) if s.code == 409),
        "{again:?}"
    );
    sim.shutdown().await;
}
