//! The seeded cluster's infrastructure beyond workloads: what a kubeadm/kind cluster has from
//! the start (the bootstrap RBAC roles, a default StorageClass, leader-election and node
//! leases, the `kubernetes` Service's endpoints) and a little application state (claims bound
//! to volumes, a nightly CronJob with its last Job), plus the Endpoints and EndpointSlice the
//! endpoints controllers keep for each seeded Service.
//!
//! Like the rest of the seed, everything follows from the spec and the start time: no
//! randomness, placeholder uids where owner references need them.
use serde_json::{Value, json};

use super::{SeedObject, fake_uid, mix, node_name, suffix};

const RBAC: &str = "rbac.authorization.k8s.io";
const RBAC_V1: &str = "rbac.authorization.k8s.io/v1";
/// The default class, provisioned like kind's (the local-path provisioner).
const STORAGE_CLASS: &str = "standard";
const PROVISIONER: &str = "rancher.io/local-path";
/// The control plane's address, behind the `kubernetes` Service.
const APISERVER_IP: &str = "10.0.0.2";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Storage, RBAC, leases and batch objects of a cluster with `nodes` nodes started at `start`.
pub(super) fn objects(nodes: usize, start: &str) -> Vec<SeedObject> {
    let mut out = vec![("storage.k8s.io", "storageclasses", storage_class())];
    for (i, (ns, name, size)) in CLAIMS.iter().enumerate() {
        let claim = Claim {
            index: i as u64,
            namespace: ns,
            name,
            size,
        };
        out.push(("", "persistentvolumes", claim.volume(nodes)));
        out.push(("", "persistentvolumeclaims", claim.claim()));
    }
    out.push(("", "persistentvolumes", archive_volume()));
    out.extend(rbac());
    out.extend(leases(nodes, start));
    out.extend(nightly_report(start));
    out
}

/// The claims the seeded applications hold: (namespace, name, size).
const CLAIMS: [(&str, &str, &str); 3] = [
    ("prod", "postgres-data", "20Gi"),
    ("prod", "uploads", "50Gi"),
    ("default", "scratch", "1Gi"),
];

fn storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// A claim and the volume the provisioner made for it, bound to each other.
struct Claim {
    index: u64,
    namespace: &'static str,
    name: &'static str,
    size: &'static str,
}

impl Claim {
    fn uid(&self) -> String {
        fake_uid(0x7076_6300 | self.index)
    }

    /// Dynamically provisioned volumes are named after their claim's uid.
    fn volume_name(&self) -> String {
        format!("pvc-{}", self.uid())
    }

    fn claim(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid(),
                "annotations": {
                    "pv.kubernetes.io/bind-completed": "yes",
                    "pv.kubernetes.io/bound-by-controller": "yes",
                    "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER,
                    "volume.kubernetes.io/storage-provisioner": PROVISIONER,
                },
                "finalizers": ["kubernetes.io/pvc-protection"],
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": self.size}},
                "storageClassName": STORAGE_CLASS,
                "volumeMode": "Filesystem",
                "volumeName": self.volume_name(),
            },
            "status": {
                "phase": "Bound",
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": self.size},
            },
        })
    }

    fn volume(&self, nodes: usize) -> Value {
        let mut v = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": self.volume_name(),
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                "finalizers": ["kubernetes.io/pv-protection"],
            },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "capacity": {"storage": self.size},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "namespace": self.namespace, "name": self.name, "uid": self.uid()},
                "hostPath": {"path": format!("/var/local-path-provisioner/{}_{}_{}",
                                             self.volume_name(), self.namespace, self.name),
                             "type": "DirectoryOrCreate"},
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": "Filesystem",
            },
            "status": {"phase": "Bound"},
        });
        // Local volumes live on one node.
        if nodes > 0 {
            let node = node_name((mix(self.index) % nodes as u64) as usize);
            v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}});
        }
        v
    }
}

/// A statically provisioned NFS volume nobody claims yet.
fn archive_volume() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "nfs-archive", "labels": {"tier": "archive"},
                     "finalizers": ["kubernetes.io/pv-protection"]},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "capacity": {"storage": "500Gi"},
            "nfs": {"server": "10.0.0.50", "path": "/exports/archive"},
            "persistentVolumeReclaimPolicy": "Retain",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Available"},
    })
}

/// The bootstrap policy's best-known roles (their rules abridged) and bindings.
fn rbac() -> Vec<SeedObject> {
    let bootstrap = |name: &str| {
        json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
               "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
    };
    let role = |name: &str, rules: Value| json!({"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": bootstrap(name), "rules": rules});
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let workloads = json!([
        "pods",
        "services",
        "configmaps",
        "persistentvolumeclaims",
        "endpoints"
    ]);
    let apps = json!(["deployments", "replicasets", "statefulsets", "daemonsets"]);
    let cluster_roles = [
        role(
            "cluster-admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        role(
            "admin",
            json!([
                {"apiGroups": [""], "resources": workloads, "verbs": write},
                {"apiGroups": ["apps"], "resources": apps, "verbs": write},
                {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": write},
                {"apiGroups": ["", "apps", "batch", RBAC], "resources": ["*"], "verbs": read},
            ]),
        ),
        role(
            "edit",
            json!([
                {"apiGroups": [""], "resources": workloads, "verbs": write},
                {"apiGroups": ["apps", "batch"], "resources": ["*"], "verbs": write},
                {"apiGroups": ["", "apps", "batch"], "resources": ["*"], "verbs": read},
            ]),
        ),
        role(
            "view",
            json!([
                {"apiGroups": [""], "resources": workloads, "verbs": read},
                {"apiGroups": ["apps", "batch"], "resources": ["*"], "verbs": read},
            ]),
        ),
    ];
    let mut out: Vec<SeedObject> = cluster_roles
        .into_iter()
        .map(|r| (RBAC, "clusterroles", r))
        .collect();
    out.push((RBAC, "clusterrolebindings", json!({
        "apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", "metadata": bootstrap("cluster-admin"),
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}],
    })));
    out.push((RBAC, "clusterrolebindings", json!({
        "apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", "metadata": {"name": "ci-deployers"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "prod"},
                     {"apiGroup": RBAC, "kind": "User", "name": "deploy-bot"}],
    })));
    let reader = "extension-apiserver-authentication-reader";
    let mut role_md = bootstrap(reader);
    role_md["namespace"] = json!("kube-system");
    out.push((
        RBAC,
        "roles",
        json!({
            "apiVersion": RBAC_V1, "kind": "Role", "metadata": role_md,
            "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                       "resourceNames": ["extension-apiserver-authentication"], "verbs": read}],
        }),
    ));
    let mut binding_md = bootstrap(&format!("system::{reader}"));
    binding_md["namespace"] = json!("kube-system");
    out.push((RBAC, "rolebindings", json!({
        "apiVersion": RBAC_V1, "kind": "RoleBinding", "metadata": binding_md,
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": reader},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "system:kube-controller-manager"},
                     {"apiGroup": RBAC, "kind": "User", "name": "system:kube-scheduler"}],
    })));
    out
}

/// `2025-01-06T08:00:00Z` as a `MicroTime` (`…00.000000Z`), as leases carry their times.
fn micro_time(t: &str) -> String {
    match t.strip_suffix('Z') {
        Some(s) if !s.contains('.') => format!("{s}.000000Z"),
        _ => t.to_string(),
    }
}

/// Leader election of the controller manager and scheduler, and one heartbeat lease per node.
fn leases(nodes: usize, start: &str) -> Vec<SeedObject> {
    let at = micro_time(start);
    let leader = |name: &str, salt: u64| {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-system"},
            "spec": {"holderIdentity": format!("control-plane_{}", fake_uid(0x6c65_6100 | salt)),
                     "leaseDurationSeconds": 15, "acquireTime": at, "renewTime": at,
                     "leaseTransitions": 0},
        })
    };
    let mut out = vec![
        (
            "coordination.k8s.io",
            "leases",
            leader("kube-controller-manager", 1),
        ),
        ("coordination.k8s.io", "leases", leader("kube-scheduler", 2)),
    ];
    out.extend((0..nodes).map(|i| {
        let node = node_name(i);
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": at},
        });
        ("coordination.k8s.io", "leases", lease)
    }));
    out
}

/// How long the last nightly run took.
const RUN_SECONDS: i64 = 42;

/// `prod/nightly-report`, a CronJob, and the Job its last run left (Complete, owned by it).
fn nightly_report(start: &str) -> Vec<SeedObject> {
    let started = start.parse::<jiff::Timestamp>().ok();
    let unix = started.map_or(0, |t| t.as_second());
    let at = |offset: i64| {
        jiff::Timestamp::from_second(unix + offset)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| start.to_string())
    };
    let (scheduled, finished) = (at(-RUN_SECONDS), at(0));
    let cron_uid = fake_uid(0x636a_0001);
    let job_uid = fake_uid(0x636a_0002);
    // The CronJob controller names a run after its scheduled time in minutes.
    let job_name = format!("nightly-report-{}", (unix - RUN_SECONDS).div_euclid(60));
    let pod_spec = json!({
        "containers": [{"name": "report", "image": "ghcr.io/example/reports:1.4.0",
                        "args": ["--nightly", "--out=s3://reports/nightly"],
                        "imagePullPolicy": "IfNotPresent",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
        "restartPolicy": "OnFailure",
        "serviceAccountName": "default",
    });
    let cron = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly-report", "namespace": "prod", "uid": cron_uid,
                     "labels": {"app": "reports"}},
        "spec": {
            "schedule": "0 2 * * *",
            "concurrencyPolicy": "Forbid",
            "suspend": false,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"labels": {"app": "reports"}},
                            "spec": {"backoffLimit": 2,
                                     "template": {"metadata": {"labels": {"app": "reports"}}, "spec": pod_spec}}},
        },
        "status": {"lastScheduleTime": scheduled, "lastSuccessfulTime": finished},
    });
    let labels = json!({
        "app": "reports",
        "batch.kubernetes.io/controller-uid": job_uid,
        "batch.kubernetes.io/job-name": job_name,
        "controller-uid": job_uid,
        "job-name": job_name,
    });
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name, "namespace": "prod", "uid": job_uid, "labels": labels,
            "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": scheduled},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly-report",
                                 "uid": cron_uid, "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "parallelism": 1, "completions": 1, "backoffLimit": 2, "completionMode": "NonIndexed",
            "suspend": false, "manualSelector": false, "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": job_uid}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
        "status": {
            "conditions": [
                {"type": "Complete", "status": "True", "lastProbeTime": finished, "lastTransitionTime": finished},
            ],
            "startTime": scheduled,
            "completionTime": finished,
            "succeeded": 1,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        },
    });
    vec![("batch", "cronjobs", cron), ("batch", "jobs", job)]
}

/// One ready backend of a Service: a running pod's name, IP and node.
pub(super) struct Backend {
    pub name: String,
    pub ip: String,
    pub node: String,
}

impl Backend {
    /// The running pods among `pods` (pods without an IP have no endpoint yet).
    pub(super) fn of_pods<'a>(pods: impl Iterator<Item = &'a Value>) -> Vec<Backend> {
        pods.filter_map(|p| {
            Some(Backend {
                name: p["metadata"]["name"].as_str()?.to_string(),
                ip: p["status"]["podIP"].as_str()?.to_string(),
                node: p["spec"]["nodeName"].as_str()?.to_string(),
            })
        })
        .collect()
    }
}

/// What the endpoints and endpointslice controllers keep for `service`: its Endpoints and one
/// EndpointSlice (owned by the Service, so deleting it takes the slice along), listing
/// `backends` on `port` (the Service's target port). `salt` makes the slice's name suffix.
pub(super) fn service_endpoints(
    service: &Value,
    backends: &[Backend],
    port: u16,
    salt: u64,
) -> [SeedObject; 2] {
    let md = &service["metadata"];
    let (name, ns) = (
        md["name"].as_str().unwrap_or_default(),
        md["namespace"].as_str().unwrap_or_default(),
    );
    let target = |b: &Backend| json!({"kind": "Pod", "name": b.name, "namespace": ns});
    let ports = json!([{"name": "http", "port": port, "protocol": "TCP"}]);
    let mut endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": md["labels"]},
    });
    if !backends.is_empty() {
        let addresses: Vec<Value> = backends
            .iter()
            .map(|b| json!({"ip": b.ip, "nodeName": b.node, "targetRef": target(b)}))
            .collect();
        endpoints["subsets"] = json!([{"addresses": addresses, "ports": ports}]);
    }
    let mut labels = md["labels"].clone();
    labels["endpointslice.kubernetes.io/managed-by"] = json!(MANAGED_BY);
    labels["kubernetes.io/service-name"] = json!(name);
    let slice_endpoints: Vec<Value> = backends
        .iter()
        .map(|b| {
            json!({"addresses": [b.ip], "nodeName": b.node, "targetRef": target(b),
                        "conditions": {"ready": true, "serving": true, "terminating": false}})
        })
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-{}", suffix(mix(salt ^ 0x6570_736c), 5)),
            "generateName": format!("{name}-"),
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": md["uid"],
                                 "controller": true, "blockOwnerDeletion": true}],
        },
        "addressType": "IPv4",
        "endpoints": slice_endpoints,
        "ports": ports,
    });
    [
        ("", "endpoints", endpoints),
        ("discovery.k8s.io", "endpointslices", slice),
    ]
}

/// The apiserver's own endpoints behind `default/kubernetes` (the apiserver keeps them, not the
/// controllers: no owner, and the slice is named after the Service).
pub(super) fn kubernetes_endpoints() -> [SeedObject; 2] {
    let ports = json!([{"name": "https", "port": 6443, "protocol": "TCP"}]);
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": APISERVER_IP}], "ports": ports}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [APISERVER_IP], "conditions": {"ready": true}}],
        "ports": ports,
    });
    [
        ("", "endpoints", endpoints),
        ("discovery.k8s.io", "endpointslices", slice),
    ]
}
