//! Every manifest under deploy/ is checked three ways:
//! - schema: each object round-trips through its typed `k8s-openapi` struct unchanged (a field the
//!   API does not have, or a value of the wrong type, fails); the ServiceMonitor against its own
//!   strict struct; kubeconfigs through the `kube` crate's parser; kustomizations by `kubectl kustomize`;
//! - kubectl: `kubectl apply --dry-run=client` against the emulator for every kind the emulator
//!   serves, and the ServiceMonitor after its CRD was created there;
//! - meaning: each ConfigMap's kubeguard config passes the real loader (what `check-config` runs),
//!   the probes reach the admin port that config sets, the security context is locked down, the
//!   TLS certificate and config come from where the config says, the sidecar's controller talks
//!   to the sidecar.
#![allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)

#[path = "common/mod.rs"]
mod common;
#[path = "common/sim.rs"]
mod simc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubeguard::config::{FileConfig, ListenAddr};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// One object of one file.
struct Doc {
    file: PathBuf,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    fn typed<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.value.clone()).unwrap_or_else(|e| {
            panic!(
                "{}: {} {}: {e}",
                self.file.display(),
                self.kind(),
                self.name()
            )
        })
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn docs_of_text(text: &str, file: &Path) -> Vec<Doc> {
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(de).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if !value.is_null() {
            docs.push(Doc {
                file: file.to_path_buf(),
                value,
            });
        }
    }
    docs
}

fn all_docs() -> Vec<Doc> {
    let mut files = Vec::new();
    yaml_files(&deploy_dir(), &mut files);
    files.sort();
    assert!(files.len() >= 8, "deploy/ has too few manifests: {files:?}");
    files
        .iter()
        .flat_map(|f| docs_of_text(&std::fs::read_to_string(f).unwrap(), f))
        .collect()
}

/// Differences between what the file says and what survived the typed round trip.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => diff(&format!("{path}.{k}"), wv, gv, out),
                    None => out.push(format!("{path}.{k}: not a field of this kind")),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(&format!("{path}[{i}]"), wv, gv, out);
            }
        }
        _ if want == got => {}
        _ => out.push(format!("{path}: {want} became {got}")),
    }
}

fn round_trip<T: DeserializeOwned + serde::Serialize>(doc: &Doc) {
    let typed: T = doc.typed();
    let back = serde_json::to_value(&typed).unwrap();
    let mut problems = Vec::new();
    diff("", &doc.value, &back, &mut problems);
    assert!(
        problems.is_empty(),
        "{}: {} {}: {problems:#?}",
        doc.file.display(),
        doc.kind(),
        doc.name()
    );
}

/// The Prometheus Operator's ServiceMonitor, the fields deploy/ may use (unknown ones refused).
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    #[serde(default)]
    namespace_selector: Option<NamespaceSelector>,
    endpoints: Vec<ServiceMonitorEndpoint>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    #[serde(default)]
    any: bool,
    #[serde(default)]
    match_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorEndpoint {
    port: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    scrape_timeout: Option<String>,
}

/// The CRD the emulator needs before kubectl can validate a ServiceMonitor (a subset of the
/// Prometheus Operator's schema: the fields deploy/ uses).
fn service_monitor_crd() -> Value {
    let string = json!({"type": "string"});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"plural": "servicemonitors", "singular": "servicemonitor",
                      "kind": "ServiceMonitor", "listKind": "ServiceMonitorList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": string, "kind": string, "metadata": {"type": "object"},
                    "spec": {"type": "object", "required": ["selector", "endpoints"], "properties": {
                        "selector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "namespaceSelector": {"type": "object", "properties": {
                            "any": {"type": "boolean"},
                            "matchNames": {"type": "array", "items": string}}},
                        "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                            "port": string, "path": string, "interval": string,
                            "scrapeTimeout": string}}}
                    }}
                }}}
            }]
        }
    })
}

#[test]
fn every_object_matches_its_schema() {
    let docs = all_docs();
    let mut kinds = BTreeMap::<String, usize>::new();
    for doc in &docs {
        *kinds.entry(doc.kind().to_string()).or_default() += 1;
        match doc.kind() {
            "Namespace" => round_trip::<Namespace>(doc),
            "ServiceAccount" => round_trip::<ServiceAccount>(doc),
            "ConfigMap" => round_trip::<ConfigMap>(doc),
            "Secret" => round_trip::<Secret>(doc),
            "Service" => round_trip::<Service>(doc),
            "Deployment" => round_trip::<Deployment>(doc),
            "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(doc),
            "ClusterRole" => round_trip::<ClusterRole>(doc),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(doc),
            "ServiceMonitor" => {
                let sm: ServiceMonitor = doc.typed();
                assert_eq!(sm.api_version, "monitoring.coreos.com/v1");
            }
            "Config" => {
                let text = std::fs::read_to_string(&doc.file).unwrap();
                let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
                assert!(
                    kc.clusters.iter().all(|c| c
                        .cluster
                        .as_ref()
                        .and_then(|c| c.server.as_ref())
                        .is_some())
                );
            }
            "Kustomization" => check_kustomization(doc),
            other => panic!(
                "{}: kind {other:?} is not checked by this test",
                doc.file.display()
            ),
        }
    }
    for kind in [
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ConfigMap",
        "ServiceMonitor",
        "Config",
        "Kustomization",
    ] {
        assert!(kinds.contains_key(kind), "deploy/ has no {kind}: {kinds:?}");
    }
}

/// `kubectl kustomize DIR` renders, and holds every object of the files it lists.
fn check_kustomization(doc: &Doc) {
    let dir = doc.file.parent().unwrap();
    let out = std::process::Command::new(common::kubectl())
        .args(["kustomize", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = docs_of_text(&String::from_utf8(out.stdout).unwrap(), &doc.file);
    let listed: usize = doc.value["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = dir.join(r.as_str().unwrap());
            docs_of_text(&std::fs::read_to_string(&f).unwrap(), &f).len()
        })
        .sum();
    assert_eq!(rendered.len(), listed, "{}", doc.file.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_dry_run_accepts_every_manifest() {
    let kubectl = common::kubectl();
    let sim = simc::start(simc::fast_opts()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig_yaml(None)).unwrap();
    let run = |file: PathBuf| {
        let mut cmd = tokio::process::Command::new(&kubectl);
        cmd.args([
            "apply",
            "--dry-run=client",
            "--validate=strict",
            "-o",
            "name",
            "-f",
        ])
        .arg(file)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(std::time::Duration::from_secs(30), cmd.output())
                .await
                .expect("kubectl finishes in 30 s")
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    // The ServiceMonitor's kind must exist in the emulator first.
    let crd = dir.path().join("crd.json");
    std::fs::write(&crd, service_monitor_crd().to_string()).unwrap();
    let create = std::process::Command::new(&kubectl)
        .args(["create", "-f"])
        .arg(&crd)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        create.status.success(),
        "{}",
        String::from_utf8_lossy(&create.stderr)
    );
    let served = [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "ServiceMonitor",
    ];
    let mut checked = 0;
    let docs = tokio::task::spawn_blocking(all_docs).await.unwrap();
    for (i, doc) in docs.iter().enumerate() {
        if !served.contains(&doc.kind()) {
            continue; // PDB, RBAC, kubeconfigs, kustomizations: the schema test above
        }
        let one = dir.path().join(format!("{i}.json"));
        std::fs::write(&one, doc.value.to_string()).unwrap();
        let (ok, stdout, stderr) = run(one).await;
        assert!(
            ok,
            "kubectl apply --dry-run=client {} ({} {}): {stderr}",
            doc.file.display(),
            doc.kind(),
            doc.name()
        );
        assert!(stdout.contains(doc.name()), "{stdout}");
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} objects went through kubectl");
    sim.shutdown().await;
}

/// A kubeguard container and what its config says.
struct Gateway<'a> {
    container: &'a Container,
    config: FileConfig,
}

fn config_maps(docs: &[Doc]) -> BTreeMap<String, ConfigMap> {
    docs.iter()
        .filter(|d| d.kind() == "ConfigMap")
        .map(|d| (d.name().to_string(), d.typed::<ConfigMap>()))
        .collect()
}

/// The volume mounted at `path` in container `c`, and its mount: panics naming what is missing.
fn mounted<'p>(pod: &'p PodSpec, c: &'p Container, path: &str) -> (&'p VolumeMount, &'p Volume) {
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == path)
        .unwrap_or_else(|| panic!("{}: nothing mounted at {path}", c.name));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("{}: no volume {}", c.name, mount.name));
    (mount, volume)
}

/// Finds the config file a kubeguard container's `--config` names, through its volume mount
/// and the pod's ConfigMap volume, and loads it as `kubeguard serve` and `check-config` would.
fn gateway<'a>(pod: &PodSpec, c: &'a Container, cms: &BTreeMap<String, ConfigMap>) -> Gateway<'a> {
    let args = c.args.as_ref().unwrap();
    assert_eq!(args[0], "serve", "{}", c.name);
    let path = args
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .unwrap();
    let (dir, key) = path.rsplit_once('/').unwrap();
    let (_, volume) = mounted(pod, c, dir);
    let cm_name = &volume.config_map.as_ref().unwrap().name;
    let text = &cms[cm_name].data.as_ref().unwrap()[key];
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let config =
        FileConfig::load(file.path()).unwrap_or_else(|e| panic!("ConfigMap {cm_name}: {e}"));
    kubeguard::policy::reload::load_policy(file.path())
        .unwrap_or_else(|e| panic!("ConfigMap {cm_name}: {e}"));
    // Where the config reads its certificate from, a Secret is mounted.
    if let Some(cert) = &config.server.tls_cert {
        let cert_dir = cert.parent().unwrap().to_str().unwrap();
        let (_, v) = mounted(pod, c, cert_dir);
        assert!(
            v.secret.is_some(),
            "{}: the TLS certificate must come from a Secret",
            c.name
        );
    }
    Gateway {
        container: c,
        config,
    }
}

fn port_number(c: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => {
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("{}: no port named {name}", c.name))
                .container_port
        }
    }
}

/// Probes on the admin listener, which listens where the kubelet reaches it (the pod IP).
fn check_probes(g: &Gateway) {
    let c = g.container;
    let admin = g.config.server.admin_listen;
    assert!(
        admin.ip().is_unspecified(),
        "{}: adminListen {admin} is not reachable by the kubelet",
        c.name
    );
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path), "{}", c.name);
        assert_eq!(
            port_number(c, &get.port),
            i32::from(admin.port()),
            "{}: probe {path} misses the admin port",
            c.name
        );
    }
}

fn check_security(pod: &PodSpec, c: &Container) {
    let sc = c.security_context.as_ref().unwrap();
    let non_root = sc.run_as_non_root.or(pod
        .security_context
        .as_ref()
        .and_then(|p| p.run_as_non_root));
    assert_eq!(non_root, Some(true), "{}", c.name);
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
    assert_ne!(sc.privileged, Some(true), "{}", c.name);
    let drop = sc
        .capabilities
        .as_ref()
        .and_then(|caps| caps.drop.clone())
        .unwrap_or_default();
    assert_eq!(drop, vec!["ALL".to_string()], "{}", c.name);
    assert!(
        sc.capabilities
            .as_ref()
            .and_then(|caps| caps.add.as_ref())
            .is_none_or(|a| a.is_empty()),
        "{}",
        c.name
    );
    let res = c.resources.as_ref().unwrap();
    let requests = res.requests.as_ref().unwrap();
    assert!(
        requests.contains_key("cpu") && requests.contains_key("memory"),
        "{}",
        c.name
    );
    assert!(
        res.limits.as_ref().unwrap().contains_key("memory"),
        "{}",
        c.name
    );
}

fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

#[test]
fn shared_gateway_is_highly_available_and_locked_down() {
    let docs = all_docs();
    let cms = config_maps(&docs);
    let dep: Deployment = docs
        .iter()
        .find(|d| d.kind() == "Deployment" && d.name() == "kubeguard")
        .unwrap()
        .typed();
    let spec = dep.spec.as_ref().unwrap();
    assert!(spec.replicas.unwrap_or(1) >= 2);
    let pod = pod_spec(&dep);
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("kubeguard"),
        "deploy/rbac.yaml's ServiceAccount"
    );
    let c = pod
        .containers
        .iter()
        .find(|c| c.name == "kubeguard")
        .unwrap();
    let g = gateway(pod, c, &cms);
    check_probes(&g);
    check_security(pod, c);
    assert!(
        g.config.server.tls_cert.is_some(),
        "the shared gateway serves the Secret's certificate"
    );
    // Drain: the pod lives longer than kubeguard's own grace period.
    let grace = pod.termination_grace_period_seconds.unwrap();
    assert!(grace as u64 > g.config.server.shutdown_grace_period.as_secs());

    // The PDB and the Service select these pods; the Service reaches the TLS listener.
    let labels = dep
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let selects =
        |sel: &BTreeMap<String, String>| sel.iter().all(|(k, v)| labels.get(k) == Some(v));
    let pdb: PodDisruptionBudget = docs
        .iter()
        .find(|d| d.kind() == "PodDisruptionBudget")
        .unwrap()
        .typed();
    let pdb_spec = pdb.spec.unwrap();
    assert!(selects(&pdb_spec.selector.unwrap().match_labels.unwrap()));
    assert!(pdb_spec.min_available.is_some() || pdb_spec.max_unavailable.is_some());
    let svc: Service = docs.iter().find(|d| d.kind() == "Service").unwrap().typed();
    let svc_spec = svc.spec.unwrap();
    assert!(selects(&svc_spec.selector.unwrap()));
    let listen = ListenAddr::parse(&g.config.server.listen[0]).unwrap();
    assert!(listen.tls && listen.addr.ip().is_unspecified());
    let https = svc_spec
        .ports
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("https"))
        .unwrap();
    assert_eq!(
        port_number(c, &https.target_port.unwrap()),
        i32::from(listen.addr.port())
    );
    // The ServiceMonitor scrapes a Service port that leads to the admin listener.
    let sm: ServiceMonitor = docs
        .iter()
        .find(|d| d.kind() == "ServiceMonitor")
        .unwrap()
        .typed();
    assert!(
        sm.spec
            .endpoints
            .iter()
            .all(|e| e.port == "admin" && e.path.as_deref() == Some("/metrics"))
    );
    assert!(
        sm.spec
            .endpoints
            .iter()
            .all(|e| e.interval.is_some() && e.scrape_timeout.is_some())
    );
}

#[test]
fn sidecar_controller_talks_to_its_kubeguard() {
    let docs = all_docs();
    let cms = config_maps(&docs);
    let dep: Deployment = docs
        .iter()
        .find(|d| d.kind() == "Deployment" && d.name() != "kubeguard")
        .unwrap()
        .typed();
    let pod = pod_spec(&dep);
    let sidecar = pod
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "kubeguard")
        .unwrap();
    assert_eq!(
        sidecar.restart_policy.as_deref(),
        Some("Always"),
        "a native sidecar"
    );
    let g = gateway(pod, sidecar, &cms);
    check_probes(&g);
    check_security(pod, sidecar);
    let listen = ListenAddr::parse(&g.config.server.listen[0]).unwrap();
    assert!(!listen.tls && listen.addr.ip().is_loopback());
    // In-cluster upstream: no kubeconfig of its own, none inherited.
    assert!(g.config.upstream.kubeconfig.is_none());
    assert!(sidecar.env.iter().flatten().all(|e| e.name != "KUBECONFIG"));

    let controller = pod
        .containers
        .iter()
        .find(|c| c.name == "controller")
        .unwrap();
    let kc_path = controller
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "KUBECONFIG")
        .unwrap()
        .value
        .clone()
        .unwrap();
    let (mount, volume) = mounted(pod, controller, &kc_path);
    let cm = &cms[&volume.config_map.as_ref().unwrap().name];
    let text = &cm.data.as_ref().unwrap()[mount.sub_path.as_deref().unwrap()];
    let kc = kube::config::Kubeconfig::from_yaml(text).unwrap();
    let server = kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    assert_eq!(server, format!("http://127.0.0.1:{}", listen.addr.port()));
}

#[test]
fn kubeconfig_for_people_points_at_the_service() {
    let docs = all_docs();
    let svc: Service = docs.iter().find(|d| d.kind() == "Service").unwrap().typed();
    let (name, ns) = (svc.metadata.name.unwrap(), svc.metadata.namespace.unwrap());
    let port = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("https"))
        .unwrap()
        .port;
    let text = std::fs::read_to_string(deploy_dir().join("kubeconfig-people.yaml")).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let server = kc.clusters[0]
        .cluster
        .as_ref()
        .unwrap()
        .server
        .clone()
        .unwrap();
    assert_eq!(server, format!("https://{name}.{ns}.svc:{port}"));
}
