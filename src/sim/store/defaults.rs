//! What the apiserver fills in on the way to storage, per kind: the versioned defaults
//! (k8s.io/kubernetes `pkg/apis/<group>/v1/defaults.go`, applied on every write because every
//! decode applies them), what a strategy's `PrepareForCreate` does on create only
//! (`pkg/registry/<group>/<resource>/strategy.go`: reset status, generate a Job's selector) and the
//! DefaultStorageClass admission plugin. Only what the emulator's Tables, `kubectl describe`
//! and the tests read is filled in; the pod templates inside workloads are left as sent.

use super::*;

const RBAC: &str = "rbac.authorization.k8s.io";
/// The DefaultStorageClass admission plugin's and `kubectl get sc`'s marker of the default.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// Create-time defaults, for a POST and for seeded objects alike: the strategies' namespace and
/// pod status, then the versioned defaults.
pub(super) fn defaults_on_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => {
            if obj["spec"]["finalizers"].is_null() {
                set(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            }
            set(obj, &["status"], json!({"phase": "Active"}));
        }
        ("", "pods") => or_default(obj, &["status", "phase"], json!("Pending")),
        _ => {}
    }
    set_defaults(rt, obj);
}

/// The versioned defaults (`SetDefaults_<Kind>`): fills fields that are absent, never replaces
/// one that is set. Applied on create and on every update.
pub(super) fn set_defaults(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "persistentvolumes") => {
            or_default(
                obj,
                &["spec", "persistentVolumeReclaimPolicy"],
                json!("Retain"),
            );
            or_default(obj, &["spec", "volumeMode"], json!("Filesystem"));
            or_default(obj, &["status", "phase"], json!("Pending"));
        }
        ("", "persistentvolumeclaims") => {
            or_default(obj, &["spec", "volumeMode"], json!("Filesystem"));
            or_default(obj, &["status", "phase"], json!("Pending"));
        }
        ("", "endpoints") => {
            for subset in items_mut(obj, &["subsets"]) {
                for port in items_mut(subset, &["ports"]) {
                    or_default(port, &["protocol"], json!("TCP"));
                }
            }
        }
        ("discovery.k8s.io", "endpointslices") => {
            for port in items_mut(obj, &["ports"]) {
                or_default(port, &["protocol"], json!("TCP"));
            }
        }
        ("apps", "statefulsets") => {
            or_default(obj, &["spec", "replicas"], json!(1));
            or_default(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
            or_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            or_default(
                obj,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            if obj["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
                or_default(
                    obj,
                    &["spec", "updateStrategy", "rollingUpdate", "partition"],
                    json!(0),
                );
            }
            for when in ["whenDeleted", "whenScaled"] {
                let path = ["spec", "persistentVolumeClaimRetentionPolicy", when];
                or_default(obj, &path, json!("Retain"));
            }
        }
        ("apps", "daemonsets") => {
            or_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            or_default(
                obj,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            if obj["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
                for (field, value) in [("maxUnavailable", 1), ("maxSurge", 0)] {
                    let path = ["spec", "updateStrategy", "rollingUpdate", field];
                    or_default(obj, &path, json!(value));
                }
            }
        }
        ("batch", "jobs") => job_defaults(obj),
        ("batch", "cronjobs") => {
            or_default(obj, &["spec", "concurrencyPolicy"], json!("Allow"));
            or_default(obj, &["spec", "suspend"], json!(false));
            or_default(obj, &["spec", "successfulJobsHistoryLimit"], json!(3));
            or_default(obj, &["spec", "failedJobsHistoryLimit"], json!(1));
        }
        ("storage.k8s.io", "storageclasses") => {
            or_default(obj, &["reclaimPolicy"], json!("Delete"));
            or_default(obj, &["volumeBindingMode"], json!("Immediate"));
        }
        (RBAC, "rolebindings" | "clusterrolebindings") => {
            for subject in items_mut(obj, &["subjects"]) {
                if matches!(subject["kind"].as_str(), Some("User" | "Group")) {
                    or_default(subject, &["apiGroup"], json!(RBAC));
                }
            }
        }
        _ => {}
    }
}

/// `SetDefaults_Job`: both completions and parallelism 1 when neither is set.
fn job_defaults(obj: &mut Value) {
    if obj["spec"]["completions"].is_null() && obj["spec"]["parallelism"].is_null() {
        set(obj, &["spec", "completions"], json!(1));
    }
    or_default(obj, &["spec", "parallelism"], json!(1));
    or_default(obj, &["spec", "backoffLimit"], json!(6));
    or_default(obj, &["spec", "completionMode"], json!("NonIndexed"));
    or_default(obj, &["spec", "suspend"], json!(false));
    or_default(obj, &["spec", "manualSelector"], json!(false));
    or_default(
        obj,
        &["spec", "podReplacementPolicy"],
        json!("TerminatingOrFailed"),
    );
    // The job takes its template's labels when it has none of its own.
    let template_labels = obj["spec"]["template"]["metadata"]["labels"].clone();
    let own = obj["metadata"]["labels"]
        .as_object()
        .is_some_and(|m| !m.is_empty());
    if template_labels.is_object() && !own {
        set(obj, &["metadata", "labels"], template_labels);
    }
}

/// What a strategy's `PrepareForCreate` does beyond defaults: status starts empty (the
/// controllers own it), and a Job without `manualSelector` gets a selector on its own uid and
/// the matching template labels. Only for POSTs: seeded objects keep the status they carry.
pub(super) fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    let empty_status = match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "persistentvolumes") => {
            json!({"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()})
        }
        ("", "persistentvolumeclaims") => json!({"phase": "Pending"}),
        ("apps", "statefulsets") => json!({"replicas": 0, "availableReplicas": 0}),
        ("apps", "daemonsets") => json!({
            "currentNumberScheduled": 0, "numberMisscheduled": 0,
            "desiredNumberScheduled": 0, "numberReady": 0,
        }),
        ("batch", "jobs") => {
            if obj["spec"]["manualSelector"] != true {
                generate_job_selector(obj);
            }
            json!({})
        }
        ("batch", "cronjobs") => json!({}),
        _ => return,
    };
    set(obj, &["status"], empty_status);
}

/// The job strategy's `generateSelector`: pods are found by the job's uid.
fn generate_job_selector(obj: &mut Value) {
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        let path = ["spec", "template", "metadata", "labels", key];
        or_default(obj, &path, value.clone());
    }
    let selector = [
        "spec",
        "selector",
        "matchLabels",
        "batch.kubernetes.io/controller-uid",
    ];
    or_default(obj, &selector, uid);
    // Decoding on read copies the (now complete) template labels to a job without labels.
    let own = obj["metadata"]["labels"]
        .as_object()
        .is_some_and(|m| !m.is_empty());
    if !own {
        let template_labels = obj["spec"]["template"]["metadata"]["labels"].clone();
        set(obj, &["metadata", "labels"], template_labels);
    }
}

impl Inner {
    /// The DefaultStorageClass admission plugin: a claim that names no class (the field absent,
    /// not `""`) gets the default one, the newest if several are marked.
    pub(super) fn admit(&self, rt: &ResourceType, obj: &mut Value) {
        if !rt.is("", "persistentvolumeclaims") || obj["spec"].get("storageClassName").is_some() {
            return;
        }
        let classes = (
            String::from("storage.k8s.io"),
            String::from("storageclasses"),
        );
        let default = self
            .objects
            .get(&classes)
            .into_iter()
            .flat_map(|m| m.values())
            .map(|s| s.value())
            .filter(|c| c["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true")
            .max_by(|a, b| {
                let created = |v: &Value| {
                    v["metadata"]["creationTimestamp"]
                        .as_str()
                        .map(str::to_string)
                };
                created(a).cmp(&created(b))
            });
        if let Some(class) =
            default.and_then(|c| c["metadata"]["name"].as_str().map(str::to_string))
        {
            set(obj, &["spec", "storageClassName"], json!(class));
        }
    }
}

/// Sets `path` to `value` unless something is there already.
pub(super) fn or_default(obj: &mut Value, path: &[&str], value: Value) {
    if let Some((last, parents)) = path.split_last()
        && let Some(m) = object_at(obj, parents)
        && m.get(*last).is_none_or(Value::is_null)
    {
        m.insert((*last).to_string(), value);
    }
}

/// Sets `path` to `value`, creating the objects on the way.
fn set(obj: &mut Value, path: &[&str], value: Value) {
    if let Some((last, parents)) = path.split_last()
        && let Some(m) = object_at(obj, parents)
    {
        m.insert((*last).to_string(), value);
    }
}

/// The object at `path`, created where absent or null. None when something else (a string, an
/// array: input of the wrong shape) is in the way, so defaulting never panics on bad input;
/// validation reports it.
fn object_at<'a>(obj: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = obj;
    for key in path {
        if cur.is_null() {
            *cur = json!({});
        }
        cur = cur.as_object_mut()?.entry(*key).or_insert(Value::Null);
    }
    if cur.is_null() {
        *cur = json!({});
    }
    cur.as_object_mut()
}

/// The elements of the array at `path` (none when it is absent or not an array).
fn items_mut<'a>(obj: &'a mut Value, path: &[&str]) -> impl Iterator<Item = &'a mut Value> {
    let mut cur = Some(obj);
    for key in path {
        cur = cur.and_then(|c| c.get_mut(*key));
    }
    cur.and_then(Value::as_array_mut).into_iter().flatten()
}

#[cfg(test)]
#[path = "defaults_tests.rs"]
mod tests;
