//! `pods/<p>/ephemeralcontainers`: what `kubectl debug POD --image=…` patches.
//!
//! As kube-apiserver's `podEphemeralContainersStrategy`: a GET returns the pod; a PUT or PATCH
//! (kubectl sends a strategic merge patch) is applied to the whole pod, but only
//! `spec.ephemeralContainers` of the result is kept, and the answer is the updated pod.
//! Validation follows `ValidatePodEphemeralContainersUpdate`: an existing ephemeral container
//! may not be removed or changed; a new one needs a name unique among all the pod's
//! containers and an image, and may not set ports, probes, lifecycle or resources. All
//! failures are one 422 `Pod "<p>" is invalid`, every field in its causes.
//!
//! Then the kubelet: [`started`] is the pod's status with every new ephemeral container
//! running at once (`ephemeralContainerStatuses`), written by the emulator as a second update,
//! so `kubectl debug -it` sees the container Running and attaches (exec/attach.rs runs a shell
//! in it).

// `Status` is the error every caller turns straight into a response (see logs.rs).
#![allow(clippy::result_large_err)]

use http::StatusCode;
use serde_json::{Value, json};

use crate::status::{Status, StatusCause, StatusDetails};

/// Fields an ephemeral container may not have (`validateEphemeralContainers`).
const FORBIDDEN: [&str; 6] = [
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
];

/// The pod an ephemeral-containers write leaves: `old` with `new`'s
/// `spec.ephemeralContainers` (and `new`'s resourceVersion, the write's precondition), or the
/// 422 of the apiserver when the change is not allowed.
pub fn merge(old: &Value, new: &Value) -> Result<Value, Status> {
    let wanted = new["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let causes = check(old, &wanted);
    if !causes.is_empty() {
        let name = old["metadata"]["name"].as_str().unwrap_or_default();
        return Err(invalid(name, causes));
    }
    let mut pod = old.clone();
    pod["spec"]["ephemeralContainers"] = Value::Array(wanted);
    if let Some(rv) = new["metadata"].get("resourceVersion") {
        pod["metadata"]["resourceVersion"] = rv.clone();
    }
    Ok(pod)
}

fn check(old: &Value, wanted: &[Value]) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let mut cause = |reason: &str, field: String, message: String| {
        causes.push(StatusCause {
            reason: reason.into(),
            message,
            field,
        })
    };
    let existing = containers(old, "ephemeralContainers");
    for before in &existing {
        let name = before["name"].as_str().unwrap_or_default();
        match wanted.iter().find(|c| c["name"].as_str() == Some(name)) {
            None => cause(
                "FieldValueForbidden",
                "spec.ephemeralContainers".into(),
                format!("Forbidden: existing ephemeral containers {name:?} may not be removed"),
            ),
            Some(after) if after != before => cause(
                "FieldValueForbidden",
                format!("spec.ephemeralContainers[{name}]"),
                format!("Forbidden: existing ephemeral containers {name:?} may not be changed"),
            ),
            Some(_) => {}
        }
    }
    let mut taken: Vec<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|key| old["spec"][key].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    for (i, c) in wanted.iter().enumerate() {
        let at = format!("spec.ephemeralContainers[{i}]");
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            cause(
                "FieldValueRequired",
                format!("{at}.name"),
                "Required value".into(),
            );
        } else if taken.contains(&name) {
            cause(
                "FieldValueDuplicate",
                format!("{at}.name"),
                format!("Duplicate value: {name:?}"),
            );
        } else {
            taken.push(name);
        }
        if c["image"].as_str().unwrap_or_default().is_empty() {
            cause(
                "FieldValueRequired",
                format!("{at}.image"),
                "Required value".into(),
            );
        }
        for field in FORBIDDEN.iter().filter(|f| c.get(**f).is_some_and(is_set)) {
            cause(
                "FieldValueForbidden",
                format!("{at}.{field}"),
                "Forbidden: cannot be set for an Ephemeral Container".into(),
            );
        }
    }
    causes
}

/// Set to something other than its zero value (kubectl sends `"resources": {}`, which is
/// allowed: the apiserver compares with the zero value).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

fn containers(pod: &Value, key: &str) -> Vec<Value> {
    pod["spec"][key].as_array().cloned().unwrap_or_default()
}

/// The kubelet's answer to new ephemeral containers: `pod`'s status with each one that has no
/// status yet running since `now`; `None` when every one has a status already.
pub fn started(pod: &Value, now: &str) -> Option<Value> {
    let mut statuses = pod["status"]["ephemeralContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let before = statuses.len();
    for c in containers(pod, "ephemeralContainers") {
        let name = c["name"].as_str().unwrap_or_default();
        if statuses.iter().any(|s| s["name"].as_str() == Some(name)) {
            continue;
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        statuses.push(json!({
            "name": name,
            "state": {"running": {"startedAt": now}},
            "lastState": {},
            "ready": false,
            "restartCount": 0,
            "image": c["image"],
            "imageID": "",
            "containerID": format!("containerd://{id}{id}"),
        }));
    }
    if statuses.len() == before {
        return None;
    }
    let mut status = pod.get("status").cloned().unwrap_or_else(|| json!({}));
    status["ephemeralContainerStatuses"] = Value::Array(statuses);
    Some(status)
}

fn invalid(pod: &str, causes: Vec<StatusCause>) -> Status {
    let list: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let joined = match list.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    Status::failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("Pod {pod:?} is invalid: {joined}"),
    )
    .with_details(StatusDetails {
        name: pod.into(),
        kind: "Pod".into(),
        causes,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
