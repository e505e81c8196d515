//! Seeding: a realistic cluster (nodes, namespaces including `prod`, pods with owners, labels
//! and 2–4 KB of JSON each, a Service with its Endpoints and EndpointSlice per deployment, and
//! the cluster's infrastructure: see seed_cluster.rs) built in seconds.
//!
//! Everything is derived from the object's index with a fixed mixing function, so the same
//! spec always yields the same cluster, and objects are produced one deployment at a time: a
//! 100k-pod cluster never sits in memory as one `Vec`.
use serde_json::{Value, json};
use std::collections::VecDeque;

/// How big a cluster to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedSpec {
    pub nodes: usize,
    pub namespaces: usize,
    pub pods: usize,
}

/// One object to create: `(group, resource, object)`. Objects carry no resourceVersion or
/// creationTimestamp (the store assigns them). Owners (deployments, replicasets) carry the
/// placeholder `metadata.uid` that their dependents' `ownerReferences` name: a store that keeps a
/// given uid (or maps it to the one it assigns) gets a working garbage-collector cascade.
pub type SeedObject = (&'static str, &'static str, Value);

/// The namespaces every cluster has; `ns-1`, `ns-2`… follow up to `SeedSpec::namespaces`.
const FIXED_NAMESPACES: [&str; 3] = ["default", "kube-system", "prod"];

/// The kubelet version nodes report by default (the emulator's default `gitVersion`).
const KUBELET_VERSION: &str = "v1.30.4";

/// Time the seeded containers started; the store stamps creationTimestamp itself.
const START_TIME: &str = "2025-01-06T08:00:00Z";

/// The objects of a cluster of this size, in creation order (namespaces and nodes first).
pub fn objects(spec: SeedSpec) -> impl Iterator<Item = SeedObject> {
    objects_at(spec, KUBELET_VERSION, START_TIME)
}

/// Like [`objects`], with nodes reporting `kubelet_version` (e.g. the emulator's `gitVersion`)
/// and containers, conditions and events dated `start_time` (RFC 3339, e.g. the emulator's
/// start, so `kubectl describe` and `get events` agree with the objects' AGE).
pub fn objects_at(
    spec: SeedSpec,
    kubelet_version: &str,
    start_time: &str,
) -> impl Iterator<Item = SeedObject> + use<> {
    let kubelet_version = kubelet_version.to_string();
    let start = start_time.to_string();
    let node_start = start.clone();
    let ns_count = namespace_count(spec);
    let namespaces = (0..ns_count).map(|i| ("", "namespaces", namespace(&namespace_name(i))));
    let nodes = (0..spec.nodes).map(move |i| ("", "nodes", node(i, &kubelet_version, &node_start)));
    let per_namespace = (0..ns_count).flat_map(|i| namespace_defaults(&namespace_name(i)));
    let infrastructure = cluster::objects(spec.nodes, &start);
    namespaces
        .chain(nodes)
        .chain(per_namespace)
        .chain(std::iter::once(("", "services", kubernetes_service())))
        .chain(cluster::kubernetes_endpoints())
        .chain(infrastructure)
        .chain(Workloads::new(spec, start))
}

#[path = "seed_cluster.rs"]
mod cluster;

/// What the service account controller puts in every namespace: the `default` ServiceAccount.
/// (The `kube-root-ca.crt` ConfigMap is left out: tests count the configmaps they create.)
fn namespace_defaults(ns: &str) -> [SeedObject; 1] {
    [(
        "",
        "serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "default", "namespace": ns}}),
    )]
}

/// `default/kubernetes`, the apiserver's own Service.
fn kubernetes_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                 "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}},
    })
}

fn namespace_count(spec: SeedSpec) -> usize {
    spec.namespaces.max(FIXED_NAMESPACES.len())
}

fn namespace_name(i: usize) -> String {
    match FIXED_NAMESPACES.get(i) {
        Some(n) => (*n).to_string(),
        None => format!("ns-{}", i + 1 - FIXED_NAMESPACES.len()),
    }
}

/// splitmix64's increment (the golden ratio in 64 bits).
pub(crate) const SPLITMIX_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64: a cheap, well-mixed hash of an index (the seed of every per-object choice).
/// Randomized tests use it as their generator: output `mix(state)`, then the state moves on
/// by `SPLITMIX_STEP` (splitmix64's sequence).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(SPLITMIX_STEP);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The generator of the randomized tests: splitmix64's sequence (output `mix(state)`, then the
/// state moves on by `SPLITMIX_STEP`). Deterministic, so a failure names its case.
#[cfg(test)]
pub(crate) struct TestRng(pub u64);

#[cfg(test)]
impl TestRng {
    pub(crate) fn next(&mut self) -> u64 {
        let out = mix(self.0);
        self.0 = self.0.wrapping_add(SPLITMIX_STEP);
        out
    }

    /// A number below `n` (> 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index below `n` (> 0).
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True once in `n` times.
    pub(crate) fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// True `percent` times in 100.
    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.index(100) < percent
    }

    /// One of `of` (not empty).
    pub(crate) fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[self.index(of.len())]
    }

    /// `n` random bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// FNV-1a of a name: the same image always gets the same digest.
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pick<T: Copy>(items: &[T], h: u64) -> T {
    items[(h % items.len() as u64) as usize]
}

/// The alphabet of generated name suffixes (k8s.io/apimachinery rand.SafeEncodeString).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn suffix(mut h: u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            let c = SAFE[(h % SAFE.len() as u64) as usize] as char;
            h /= SAFE.len() as u64;
            c
        })
        .collect()
}

/// A stable UUID-shaped placeholder for owner references.
fn fake_uid(h: u64) -> String {
    let a = mix(h);
    let b = mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn namespace(name: &str) -> Value {
    let env = match name {
        "prod" => "production",
        "kube-system" | "default" => "system",
        _ => "staging",
    };
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/metadata.name": name, "environment": env},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn node_name(i: usize) -> String {
    format!("node-{}", i + 1)
}

fn node(i: usize, kubelet_version: &str, start: &str) -> Value {
    let name = node_name(i);
    let h = mix(0x6e6f_6465 ^ i as u64);
    let zone = pick(&["a", "b", "c"], h);
    let mut labels = json!({
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "m5.2xlarge",
        "topology.kubernetes.io/region": "eu-west-1",
        "topology.kubernetes.io/zone": format!("eu-west-1{zone}"),
    });
    if i == 0 {
        labels["node-role.kubernetes.io/control-plane"] = json!("");
    }
    let ip = format!("10.0.{}.{}", (i >> 8) & 255, (i & 255) + 10);
    let condition = |ty: &str, status: &str, reason: &str, message: &str| {
        json!({"type": ty, "status": status, "lastHeartbeatTime": start,
               "lastTransitionTime": start, "reason": reason, "message": message})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "podCIDR": format!("10.244.{}.0/24", i & 255),
            "podCIDRs": [format!("10.244.{}.0/24", i & 255)],
            "providerID": format!("aws:///eu-west-1{zone}/i-{:017x}", h >> 4),
        },
        "status": {
            "capacity": {"cpu": "8", "ephemeral-storage": "104845292Ki", "hugepages-2Mi": "0",
                         "memory": "32386524Ki", "pods": "110"},
            "allocatable": {"cpu": "7910m", "ephemeral-storage": "95551679124", "hugepages-2Mi": "0",
                            "memory": "31369692Ki", "pods": "110"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:032x}", (h as u128) << 64 | mix(h) as u128),
                "systemUUID": fake_uid(h),
                "bootID": fake_uid(h ^ 1),
                "kernelVersion": "6.1.0-18-cloud-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.13",
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    })
}

const APPS: [&str; 16] = [
    "checkout",
    "cart",
    "catalog",
    "payments",
    "search",
    "auth",
    "billing",
    "frontend",
    "inventory",
    "notifications",
    "orders",
    "reviews",
    "shipping",
    "users",
    "gateway",
    "reports",
];

/// (container name, image, port).
const IMAGES: [(&str, &str, u16); 7] = [
    ("app", "ghcr.io/example/app:2.4.1", 8080),
    ("web", "nginx:1.25.3", 80),
    ("worker", "ghcr.io/example/worker:1.9.0", 9090),
    ("redis", "redis:7.2.4", 6379),
    ("envoy", "envoyproxy/envoy:v1.29.1", 9901),
    ("fluent-bit", "fluent/fluent-bit:2.2.2", 2020),
    ("metrics", "prom/statsd-exporter:v0.26.0", 9102),
];

const TIERS: [&str; 4] = ["frontend", "backend", "cache", "worker"];

/// One deployment's shape, from which its ReplicaSet and pods follow.
struct App {
    /// When its containers started (RFC 3339).
    start: String,
    index: usize,
    namespace: String,
    name: String,
    hash: String,
    tier: &'static str,
    replicas: usize,
    containers: Vec<(&'static str, &'static str, u16)>,
    /// The pod template's spec, built once: the deployment, its replica set and every pod
    /// carry a copy (cloning a tree is much cheaper than building it from `json!`).
    template: Value,
}

impl App {
    fn new(index: usize, spec: SeedSpec, replicas: usize, start: String) -> Self {
        let h = mix(index as u64);
        let namespace = namespace_name(index % namespace_count(spec));
        let name = format!("{}-{}", pick(&APPS, h), index + 1);
        let n_containers = 1 + (mix(h) % 3) as usize;
        let first = (h >> 8) as usize % IMAGES.len();
        let containers = (0..n_containers)
            .map(|k| IMAGES[(first + k * 3) % IMAGES.len()])
            .collect();
        let mut app = App {
            start,
            index,
            namespace,
            hash: suffix(mix(h ^ 0x7465_6d70), 10),
            tier: pick(&TIERS, h >> 16),
            replicas,
            containers,
            name,
            template: Value::Null,
        };
        app.template = app.build_template_spec();
        app
    }

    fn labels(&self) -> Value {
        json!({"app": self.name, "tier": self.tier})
    }

    fn pod_labels(&self) -> Value {
        json!({"app": self.name, "tier": self.tier, "pod-template-hash": self.hash})
    }

    fn uid(&self, salt: u64) -> String {
        fake_uid((self.index as u64) << 8 | salt)
    }

    fn container_spec(&self, k: usize, c: (&str, &str, u16)) -> Value {
        let (name, image, port) = c;
        let cpu = pick(
            &["50m", "100m", "250m", "500m"],
            mix(self.index as u64 + k as u64),
        );
        // Sidecars carry less configuration than the main container, as in real pods.
        let env = if k == 0 {
            json!([
                {"name": "APP_NAME", "value": self.name},
                {"name": "APP_TIER", "value": self.tier},
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
            ])
        } else {
            json!([{"name": "LOG_LEVEL", "value": "warn"}])
        };
        let mut c = json!({
            "name": name,
            "image": image,
            "ports": [{"containerPort": port, "protocol": "TCP"}],
            "env": env,
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        });
        if k == 0 {
            c["ports"][0]["name"] = json!("http");
            c["resources"] =
                json!({"limits": {"memory": "256Mi"}, "requests": {"cpu": cpu, "memory": "128Mi"}});
            c["volumeMounts"] = json!([{"name": "kube-api-access", "readOnly": true,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
        }
        c
    }

    fn template_spec(&self) -> Value {
        self.template.clone()
    }

    fn build_template_spec(&self) -> Value {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .enumerate()
            .map(|(k, c)| self.container_spec(k, *c))
            .collect();
        json!({
            "containers": containers,
            "volumes": [{
                "name": "kube-api-access",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                    ],
                    "defaultMode": 420,
                },
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        })
    }

    fn deployment(&self) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.name,
                "uid": self.uid(1),
                "namespace": self.namespace,
                "labels": self.labels(),
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "generation": 1,
            },
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app": self.name}},
                "template": {"metadata": {"labels": self.labels()}, "spec": self.template_spec()},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
            "status": {
                "observedGeneration": 1,
                "replicas": self.replicas,
                "updatedReplicas": self.replicas,
                "readyReplicas": self.replicas,
                "availableReplicas": self.replicas,
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                     "message": "Deployment has minimum availability.",
                     "lastUpdateTime": self.start, "lastTransitionTime": self.start},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                     "message": format!("ReplicaSet \"{}-{}\" has successfully progressed.", self.name, self.hash),
                     "lastUpdateTime": self.start, "lastTransitionTime": self.start},
                ],
            },
        })
    }

    /// The deployment controller's `ScalingReplicaSet` event for this app.
    fn scaled_event(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": format!("{}.{:016x}", self.name, mix(self.index as u64 ^ 0x6576)),
                "namespace": self.namespace,
            },
            "involvedObject": {
                "apiVersion": "apps/v1", "kind": "Deployment", "name": self.name,
                "namespace": self.namespace, "uid": self.uid(1),
            },
            "reason": "ScalingReplicaSet",
            "message": format!("Scaled up replica set {} to {}", self.rs_name(), self.replicas),
            "source": {"component": "deployment-controller"},
            "firstTimestamp": self.start,
            "lastTimestamp": self.start,
            "count": 1,
            "type": "Normal",
            "reportingComponent": "deployment-controller",
            "reportingInstance": "",
        })
    }

    /// A ClusterIP Service in front of the app's pods.
    fn service(&self) -> Value {
        let ip = format!("10.96.{}.{}", 1 + (self.index >> 8) % 250, self.index & 255);
        let port = self.containers.first().map_or(80, |c| c.2);
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid(3),
                         "labels": self.labels()},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ip,
                "clusterIPs": [ip],
                "selector": {"app": self.name},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        })
    }

    fn rs_name(&self) -> String {
        format!("{}-{}", self.name, self.hash)
    }

    fn replicaset(&self) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": self.rs_name(),
                "uid": self.uid(2),
                "namespace": self.namespace,
                "labels": self.pod_labels(),
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": self.replicas.to_string(),
                    "deployment.kubernetes.io/max-replicas": (self.replicas + self.replicas.div_ceil(4)).to_string(),
                    "deployment.kubernetes.io/revision": "1",
                },
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": self.name,
                    "uid": self.uid(1), "controller": true, "blockOwnerDeletion": true,
                }],
                "generation": 1,
            },
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app": self.name, "pod-template-hash": self.hash}},
                "template": {"metadata": {"labels": self.pod_labels()}, "spec": self.template_spec()},
            },
            "status": {
                "replicas": self.replicas,
                "fullyLabeledReplicas": self.replicas,
                "readyReplicas": self.replicas,
                "availableReplicas": self.replicas,
                "observedGeneration": 1,
            },
        })
    }

    /// A pod of this app; `global` is its index in the whole cluster (IPs, node placement).
    fn pod(&self, global: usize, nodes: usize) -> Value {
        let h = mix(global as u64 ^ 0x0070_6f64);
        let name = format!("{}-{}", self.rs_name(), suffix(h, 5));
        let pod_ip = format!(
            "10.{}.{}.{}",
            128 + ((global >> 16) & 63),
            (global >> 8) & 255,
            global & 255
        );
        let mut spec = self.template_spec();
        let mut status = json!({"phase": "Pending", "qosClass": "Burstable"});
        if nodes > 0 {
            let n = (h >> 20) as usize % nodes;
            let host_ip = format!("10.0.{}.{}", (n >> 8) & 255, (n & 255) + 10);
            spec["nodeName"] = json!(node_name(n));
            let statuses: Vec<Value> = self
                .containers
                .iter()
                .enumerate()
                .map(|(c, (cname, image, _))| {
                    let restarts = if mix(h ^ c as u64).is_multiple_of(10) { 1 } else { 0 };
                    json!({
                        "name": cname,
                        "state": {"running": {"startedAt": self.start}},
                        "lastState": {},
                        "ready": true,
                        "restartCount": restarts,
                        "image": format!("docker.io/{image}"),
                        "imageID": format!("docker.io/{image}@sha256:{:016x}{:016x}", mix(name_hash(image)), mix(name_hash(image) ^ 9)),
                        "containerID": format!("containerd://{:016x}{:016x}", mix(h ^ 3 ^ c as u64), mix(h ^ 5 ^ c as u64)),
                        "started": true,
                    })
                })
                .collect();
            let cond = |ty: &str| json!({"type": ty, "status": "True", "lastProbeTime": null, "lastTransitionTime": self.start});
            status = json!({
                "phase": "Running",
                "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
                               cond("ContainersReady"), cond("PodScheduled")],
                "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": self.start,
                "containerStatuses": statuses,
                "qosClass": "Burstable",
            });
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "generateName": format!("{}-", self.rs_name()),
                "namespace": self.namespace,
                "labels": self.pod_labels(),
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": self.rs_name(),
                    "uid": self.uid(2), "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": spec,
            "status": status,
        })
    }
}

/// Deployments, their ReplicaSets and pods, one deployment at a time.
struct Workloads {
    start: String,
    spec: SeedSpec,
    next_app: usize,
    pods_made: usize,
    buffer: VecDeque<SeedObject>,
}

impl Workloads {
    fn new(spec: SeedSpec, start: String) -> Self {
        Workloads {
            start,
            spec,
            next_app: 0,
            pods_made: 0,
            buffer: VecDeque::new(),
        }
    }

    fn fill(&mut self) {
        let left = self.spec.pods - self.pods_made;
        let replicas = (1 + (mix(self.next_app as u64 ^ 0x7265_706c) % 5) as usize).min(left);
        let app = App::new(self.next_app, self.spec, replicas, self.start.clone());
        self.next_app += 1;
        self.buffer
            .push_back(("apps", "deployments", app.deployment()));
        self.buffer
            .push_back(("apps", "replicasets", app.replicaset()));
        let service = app.service();
        self.buffer.push_back(("", "services", service.clone()));
        self.buffer.push_back(("", "events", app.scaled_event()));
        let first_pod = self.buffer.len();
        for _ in 0..replicas {
            let pod = app.pod(self.pods_made, self.spec.nodes);
            self.pods_made += 1;
            self.buffer.push_back(("", "pods", pod));
        }
        let backends = cluster::Backend::of_pods(self.buffer.range(first_pod..).map(|o| &o.2));
        let port = app.containers.first().map_or(80, |c| c.2);
        let endpoints = cluster::service_endpoints(&service, &backends, port, app.index as u64);
        self.buffer.extend(endpoints);
    }
}

impl Iterator for Workloads {
    type Item = SeedObject;

    fn next(&mut self) -> Option<SeedObject> {
        if self.buffer.is_empty() && self.pods_made < self.spec.pods {
            self.fill();
        }
        self.buffer.pop_front()
    }
}

#[cfg(test)]
#[path = "seed_tests.rs"]
mod tests;
