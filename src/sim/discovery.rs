//! Discovery documents: /api, /apis, /apis/<g>, /api(s)/.../<v> and aggregated discovery.
use super::registry::Registry;
use serde_json::Value;

/// `GET /api`: an `APIVersions` object.
pub fn core_versions() -> Value {
    todo_doc()
}

/// `GET /apis`: an `APIGroupList` (core group excluded).
pub fn group_list(reg: &Registry) -> Value {
    let _ = reg;
    todo_doc()
}

/// `GET /apis/<group>`: an `APIGroup`, or None when the group is not served.
pub fn group(reg: &Registry, group: &str) -> Option<Value> {
    let _ = (reg, group);
    None
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`: an `APIResourceList` (subresources listed as
/// `pods/log` etc.), or None when not served.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let _ = (reg, group, version);
    None
}

/// Which aggregated discovery version an `Accept` header asks for (`v2` or `v2beta1`), if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    let _ = accept;
    None
}

/// Aggregated discovery (`apidiscovery.k8s.io/<version>` `APIGroupDiscoveryList`) for `/api`
/// (`legacy = true`) or `/apis`.
pub fn aggregated(reg: &Registry, legacy: bool, version: &str) -> Value {
    let _ = (reg, legacy, version);
    todo_doc()
}

fn todo_doc() -> Value {
    Value::Null
}
