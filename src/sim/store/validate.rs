//! The apiserver's validation (k8s.io/kubernetes `pkg/apis/<group>/validation`) for the kinds
//! whose fields the emulator reads: what makes `kubectl create`/`apply` fail with a 422
//! `Invalid` naming every bad field, as the real API does. A subset: the required fields, the
//! enumerations and the immutable fields a Table or a controller would trip over; a body of the
//! wrong shape (a string where an object belongs) is a 400, as a failed decode is.

use super::cron::check_cron;
use super::*;
use crate::sim::registry::ResourceType;

const RBAC: &str = "rbac.authorization.k8s.io";

/// The field errors of one object, collected like `field.ErrorList`.
#[derive(Default)]
struct Errors(Vec<StatusCause>);

impl Errors {
    fn push(&mut self, field: &str, reason: &str, message: String) {
        self.0.push(StatusCause {
            reason: reason.into(),
            message,
            field: field.into(),
        });
    }

    fn required(&mut self, field: &str, detail: &str) {
        let message = match detail {
            "" => "Required value".to_string(),
            d => format!("Required value: {d}"),
        };
        self.push(field, "FieldValueRequired", message);
    }

    fn invalid(&mut self, field: &str, value: &Value, detail: &str) {
        self.push(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {value}: {detail}"),
        );
    }

    fn unsupported(&mut self, field: &str, value: &Value, supported: &[&str]) {
        let quoted: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        self.push(
            field,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {value}: supported values: {}",
                quoted.join(", ")
            ),
        );
    }

    fn forbidden(&mut self, field: &str, detail: &str) {
        self.push(field, "FieldValueForbidden", format!("Forbidden: {detail}"));
    }

    /// `value` (a string) is one of `allowed`; absent values are left to `required`.
    fn one_of(&mut self, field: &str, value: &Value, allowed: &[&str]) {
        if let Some(s) = value.as_str()
            && !allowed.contains(&s)
        {
            self.unsupported(field, value, allowed);
        }
    }

    fn non_negative(&mut self, field: &str, value: &Value) {
        if value.as_i64().is_some_and(|n| n < 0) {
            self.invalid(field, value, "must be greater than or equal to 0");
        }
    }
}

/// The checks of one kind: field errors of `obj` (with the stored `old` on update).
type Check = fn(&mut Errors, &Value, Option<&Value>, &ResourceType);

/// Checks `obj` (already defaulted) as the apiserver would on create (`old` None) or update.
/// Kinds without checks here (the first built-ins, custom resources) are accepted as they are.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Result<(), Status> {
    let Some(check) = checks(rt) else {
        return Ok(());
    };
    check_shape(rt, obj)?;
    let mut e = Errors::default();
    check(&mut e, obj, old, rt);
    if e.0.is_empty() {
        return Ok(());
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    Err(errors::invalid_causes(rt, name, e.0))
}

fn checks(rt: &ResourceType) -> Option<Check> {
    let check: Check = match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "persistentvolumes") => |e, o, _, _| persistent_volume(e, &o["spec"]),
        ("", "persistentvolumeclaims") => |e, o, _, _| claim(e, &o["spec"]),
        ("", "endpoints") => |_, _, _, _| {},
        ("apps", "statefulsets" | "daemonsets") => |e, o, _, _| {
            workload(e, &o["spec"]);
            e.non_negative("spec.replicas", &o["spec"]["replicas"]);
        },
        ("batch", "jobs") => |e, o, _, _| job_spec(e, "spec", &o["spec"]),
        ("batch", "cronjobs") => |e, o, _, _| cron_job(e, &o["spec"]),
        ("coordination.k8s.io", "leases") => |e, o, _, _| lease(e, &o["spec"]),
        ("discovery.k8s.io", "endpointslices") => |e, o, _, _| endpoint_slice(e, o),
        (RBAC, "roles" | "clusterroles") => |e, o, _, rt| rules(e, o, rt.namespaced),
        (RBAC, "rolebindings" | "clusterrolebindings") => {
            |e, o, old, rt| binding(e, o, old, rt.namespaced)
        }
        ("storage.k8s.io", "storageclasses") => |e, o, old, _| storage_class(e, o, old),
        _ => return None,
    };
    Some(check)
}

fn claim(e: &mut Errors, spec: &Value) {
    if is_empty(&spec["accessModes"]) {
        e.required("spec.accessModes", "at least 1 access mode is required");
    }
    access_modes(e, "spec.accessModes", &spec["accessModes"]);
    if spec["resources"]["requests"]["storage"].is_null() {
        e.required("spec.resources[storage]", "");
    }
}

fn cron_job(e: &mut Errors, spec: &Value) {
    match spec["schedule"].as_str() {
        None | Some("") => e.required("spec.schedule", ""),
        Some(s) => {
            if let Err(why) = check_cron(s) {
                e.invalid("spec.schedule", &spec["schedule"], &why);
            }
        }
    }
    job_spec(e, "spec.jobTemplate.spec", &spec["jobTemplate"]["spec"]);
}

fn lease(e: &mut Errors, spec: &Value) {
    let duration = &spec["leaseDurationSeconds"];
    if duration.as_i64().is_some_and(|d| d <= 0) {
        e.invalid(
            "spec.leaseDurationSeconds",
            duration,
            "must be greater than 0",
        );
    }
    e.non_negative("spec.leaseTransitions", &spec["leaseTransitions"]);
}

/// The fields that must be objects or arrays if present: anything else would fail to decode
/// into the Go types (400, as the apiserver's decoder answers).
fn check_shape(rt: &ResourceType, obj: &Value) -> Result<(), Status> {
    const OBJECTS: &[&str] = &[
        "/spec",
        "/status",
        "/roleRef",
        "/spec/template",
        "/spec/selector",
    ];
    const ARRAYS: &[&str] = &[
        "/spec/accessModes",
        "/subsets",
        "/ports",
        "/endpoints",
        "/rules",
        "/subjects",
    ];
    let wrong = |ptrs: &[&'static str], ok: fn(&Value) -> bool| {
        ptrs.iter()
            .copied()
            .find(|p| obj.pointer(p).is_some_and(|v| !v.is_null() && !ok(v)))
    };
    let (ptr, want) = match (
        wrong(OBJECTS, Value::is_object),
        wrong(ARRAYS, Value::is_array),
    ) {
        (Some(p), _) => (p, "object"),
        (None, Some(p)) => (p, "array"),
        (None, None) => return Ok(()),
    };
    let actual = match obj.pointer(ptr) {
        Some(Value::String(_)) => "string",
        Some(Value::Number(_)) => "number",
        Some(Value::Bool(_)) => "bool",
        Some(Value::Array(_)) => "array",
        _ => "object",
    };
    let kind = &rt.kind;
    Err(Status::bad_request(format!(
        "{kind} in version \"{}\" cannot be handled as a {kind}: json: cannot unmarshal {actual} into Go struct field {kind}.{} of type {want}",
        rt.version,
        ptr.trim_start_matches('/').replace('/', "."),
    )))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn elements(v: &Value) -> impl Iterator<Item = (usize, &Value)> {
    v.as_array().into_iter().flatten().enumerate()
}

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn access_modes(e: &mut Errors, field: &str, modes: &Value) {
    for (_, m) in elements(modes) {
        e.one_of(field, m, ACCESS_MODES);
    }
}

/// The volume sources a PersistentVolume may name (exactly one is required).
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

fn persistent_volume(e: &mut Errors, spec: &Value) {
    if spec["capacity"]["storage"].is_null() {
        e.required("spec.capacity", "");
    }
    if is_empty(&spec["accessModes"]) {
        e.required("spec.accessModes", "");
    }
    access_modes(e, "spec.accessModes", &spec["accessModes"]);
    e.one_of(
        "spec.persistentVolumeReclaimPolicy",
        &spec["persistentVolumeReclaimPolicy"],
        &["Delete", "Recycle", "Retain"],
    );
    if !VOLUME_SOURCES
        .iter()
        .any(|s| spec.get(*s).is_some_and(|v| !v.is_null()))
    {
        e.required("spec", "must specify a volume type");
    }
}

/// StatefulSet and DaemonSet specs: a selector its template's labels match, and containers.
fn workload(e: &mut Errors, spec: &Value) {
    let selector = &spec["selector"];
    if selector.is_null() {
        e.required("spec.selector", "");
    } else if is_empty(&selector["matchLabels"]) && is_empty(&selector["matchExpressions"]) {
        e.invalid(
            "spec.selector",
            &json!("null"),
            "empty selector is invalid for this resource",
        );
    } else {
        let labels = &spec["template"]["metadata"]["labels"];
        let matches = selector["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        if !matches {
            e.invalid(
                "spec.template.metadata.labels",
                labels,
                "`selector` does not match template `labels`",
            );
        }
    }
    if is_empty(&spec["template"]["spec"]["containers"]) {
        e.required("spec.template.spec.containers", "");
    }
}

/// A Job's spec, or a CronJob's job template, at `at`.
fn job_spec(e: &mut Errors, at: &str, spec: &Value) {
    let pod = &spec["template"]["spec"];
    if is_empty(&pod["containers"]) {
        e.required(&format!("{at}.template.spec.containers"), "");
    }
    // Pod templates default restartPolicy to Always, which a Job refuses.
    let policy = match &pod["restartPolicy"] {
        Value::Null => json!("Always"),
        p => p.clone(),
    };
    if !matches!(policy.as_str(), Some("OnFailure" | "Never")) {
        e.unsupported(
            &format!("{at}.template.spec.restartPolicy"),
            &policy,
            &["OnFailure", "Never"],
        );
    }
    for f in ["parallelism", "completions", "backoffLimit"] {
        e.non_negative(&format!("{at}.{f}"), &spec[f]);
    }
}

fn endpoint_slice(e: &mut Errors, obj: &Value) {
    let ty = &obj["addressType"];
    if is_empty(ty) {
        e.required("addressType", "");
    } else {
        e.one_of("addressType", ty, &["FQDN", "IPv4", "IPv6"]);
    }
    for (i, ep) in elements(&obj["endpoints"]) {
        if is_empty(&ep["addresses"]) {
            e.required(
                &format!("endpoints[{i}].addresses"),
                "must contain at least 1 address",
            );
        }
    }
}

fn rules(e: &mut Errors, obj: &Value, namespaced: bool) {
    for (i, r) in elements(&obj["rules"]) {
        let at = format!("rules[{i}]");
        if is_empty(&r["verbs"]) {
            e.required(
                &format!("{at}.verbs"),
                "verbs must contain at least one value",
            );
        }
        let urls = &r["nonResourceURLs"];
        if !is_empty(urls) {
            if namespaced {
                e.invalid(
                    &format!("{at}.nonResourceURLs"),
                    urls,
                    "namespaced rules cannot apply to non-resource URLs",
                );
            } else if !is_empty(&r["resources"]) || !is_empty(&r["apiGroups"]) {
                e.invalid(
                    &format!("{at}.nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if is_empty(&r["apiGroups"]) {
            e.required(
                &format!("{at}.apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if is_empty(&r["resources"]) {
            e.required(
                &format!("{at}.resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

fn binding(e: &mut Errors, obj: &Value, old: Option<&Value>, namespaced: bool) {
    let role_ref = &obj["roleRef"];
    e.one_of("roleRef.apiGroup", &role_ref["apiGroup"], &[RBAC]);
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    match &role_ref["kind"] {
        Value::Null => e.required("roleRef.kind", ""),
        k => e.one_of("roleRef.kind", k, kinds),
    }
    if is_empty(&role_ref["name"]) {
        e.required("roleRef.name", "");
    }
    if let Some(old) = old
        && old["roleRef"] != *role_ref
    {
        e.invalid("roleRef", role_ref, "cannot change roleRef");
    }
    for (i, s) in elements(&obj["subjects"]) {
        let at = format!("subjects[{i}]");
        if is_empty(&s["name"]) {
            e.required(&format!("{at}.name"), "");
        }
        e.one_of(
            &format!("{at}.kind"),
            &s["kind"],
            &["ServiceAccount", "User", "Group"],
        );
        if s["kind"] == "ServiceAccount" && !namespaced && is_empty(&s["namespace"]) {
            e.required(&format!("{at}.namespace"), "");
        }
    }
}

fn storage_class(e: &mut Errors, obj: &Value, old: Option<&Value>) {
    if is_empty(&obj["provisioner"]) {
        e.required("provisioner", "");
    }
    e.one_of(
        "reclaimPolicy",
        &obj["reclaimPolicy"],
        &["Delete", "Retain"],
    );
    e.one_of(
        "volumeBindingMode",
        &obj["volumeBindingMode"],
        &["Immediate", "WaitForFirstConsumer"],
    );
    let Some(old) = old else { return };
    for f in ["parameters", "provisioner", "reclaimPolicy"] {
        if old.get(f) != obj.get(f) {
            e.forbidden(f, &format!("updates to {f} are forbidden."));
        }
    }
    if old.get("volumeBindingMode") != obj.get("volumeBindingMode") {
        e.invalid(
            "volumeBindingMode",
            &obj["volumeBindingMode"],
            "field is immutable",
        );
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
