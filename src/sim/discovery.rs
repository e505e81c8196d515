//! Discovery documents: /api, /apis, /apis/<g>, /api(s)/.../<v> and aggregated discovery.
//!
//! The shapes follow k8s.io/apimachinery `metav1.APIVersions`/`APIGroupList`/`APIGroup`/
//! `APIResourceList` and k8s.io/api `apidiscovery/v2` (`APIGroupDiscoveryList`), which kubectl
//! ≥ 1.26 asks for first and client-go caches under ~/.kube/cache/discovery.
use super::registry::{Registry, ResourceType};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The address advertised in `serverAddressByClientCIDRs` when the caller does not know its own.
const DEFAULT_SERVER_ADDRESS: &str = "127.0.0.1:6443";

/// `GET /api`: an `APIVersions` object.
pub fn core_versions() -> Value {
    core_versions_at(DEFAULT_SERVER_ADDRESS)
}

/// `GET /api` advertising `server_address` (`host:port` of the listener) for every client CIDR.
pub fn core_versions_at(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ]
    })
}

fn group_version_entry(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| group_version_entry(group, v))
        .collect();
    // The registry lists versions in the order they were added: the first is the preferred one.
    let preferred = entries.first().cloned().unwrap_or(Value::Null);
    json!({
        "name": group,
        "versions": entries,
        "preferredVersion": preferred,
    })
}

/// `GET /apis`: an `APIGroupList` (core group excluded).
pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| api_group(&g, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`: an `APIGroup`, or None when the group is not served.
pub fn group(reg: &Registry, group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let (name, versions) = reg.groups().into_iter().find(|(g, _)| g == group)?;
    let mut doc = api_group(&name, &versions);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("kind".into(), "APIGroup".into());
        obj.insert("apiVersion".into(), "v1".into());
    }
    Some(doc)
}

/// The apiserver's `storageVersionHash`: base64 of the first 8 bytes of
/// sha256("<group>/<version>/<kind>") of the storage version. Clients only compare it for
/// equality (the storage version migrator), so any stable value of that form serves.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// What one subresource returns and which verbs it takes, as the apiserver advertises them.
struct Subresource {
    group: &'static str,
    version: &'static str,
    kind: String,
    verbs: &'static [&'static str],
}

fn subresource(rt: &ResourceType, sub: &str) -> Subresource {
    let own = |verbs: &'static [&'static str]| Subresource {
        group: "",
        version: "",
        kind: rt.kind.clone(),
        verbs,
    };
    let other = |group, version, kind: &str, verbs| Subresource {
        group,
        version,
        kind: kind.to_string(),
        verbs,
    };
    const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
    const CONNECT: &[&str] = &["create", "get"];
    const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];
    match (rt.resource.as_str(), sub) {
        (_, "status") => own(GET_PATCH_UPDATE),
        ("pods", "log") => own(&["get"]),
        ("pods", "exec") => other("", "v1", "PodExecOptions", CONNECT),
        ("pods", "attach") => other("", "v1", "PodAttachOptions", CONNECT),
        ("pods", "portforward") => other("", "v1", "PodPortForwardOptions", CONNECT),
        ("pods", "binding") => other("", "v1", "Binding", &["create"]),
        ("pods", "eviction") => other("policy", "v1", "Eviction", &["create"]),
        ("pods", "ephemeralcontainers") => own(GET_PATCH_UPDATE),
        ("pods", "proxy") => other("", "v1", "PodProxyOptions", PROXY),
        ("services", "proxy") => other("", "v1", "ServiceProxyOptions", PROXY),
        ("nodes", "proxy") => other("", "v1", "NodeProxyOptions", PROXY),
        ("namespaces", "finalize") => own(&["update"]),
        ("serviceaccounts", "token") => {
            other("authentication.k8s.io", "v1", "TokenRequest", &["create"])
        }
        (_, "scale") => other("autoscaling", "v1", "Scale", GET_PATCH_UPDATE),
        _ => own(&["get"]),
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn resource_entry(rt: &ResourceType) -> Value {
    let mut e = json!({
        "name": rt.resource,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": sorted(&rt.verbs),
    });
    if let Some(obj) = e.as_object_mut() {
        if !rt.short_names.is_empty() {
            obj.insert("shortNames".into(), json!(rt.short_names));
        }
        if !rt.categories.is_empty() {
            obj.insert("categories".into(), json!(rt.categories));
        }
        // Only stored types have a storage version (the reviews have none).
        if !rt.is_review() {
            obj.insert(
                "storageVersionHash".into(),
                storage_version_hash(&rt.group, &rt.version, &rt.kind).into(),
            );
        }
    }
    e
}

fn subresource_entry(rt: &ResourceType, sub: &str) -> Value {
    let s = subresource(rt, sub);
    let mut e = json!({
        "name": format!("{}/{}", rt.resource, sub),
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": s.kind,
        "verbs": s.verbs,
    });
    if let Some(obj) = e.as_object_mut()
        && (!s.group.is_empty() || !s.version.is_empty())
    {
        obj.insert("group".into(), s.group.into());
        obj.insert("version".into(), s.version.into());
    }
    e
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`: an `APIResourceList` (subresources listed as
/// `pods/log` etc.), or None when not served.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut types: Vec<&ResourceType> = reg.in_group_version(group, version).collect();
    if types.is_empty() {
        return None;
    }
    types.sort_by(|a, b| a.resource.cmp(&b.resource));
    let mut resources = Vec::new();
    for rt in types {
        resources.push(resource_entry(rt));
        for sub in sorted(&rt.subresources) {
            resources.push(subresource_entry(rt, &sub));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut doc =
        json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources});
    // The apiserver leaves apiVersion out of the core list and sets it for groups.
    if let Some(obj) = doc.as_object_mut()
        && !group.is_empty()
    {
        obj.insert("apiVersion".into(), "v1".into());
    }
    Some(doc)
}

/// The content type of an aggregated discovery answer of `version` (`v2` or `v2beta1`).
pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// Which aggregated discovery version an `Accept` header asks for (`v2` or `v2beta1`), if any.
///
/// The media ranges are taken in the client's order (kubectl lists v2 first, then v2beta1, then
/// plain JSON); a range for plain JSON before any discovery one means the legacy documents.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for params in super::http_util::json_media_ranges(accept) {
        match params {
            (None, None, None) => return None,
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                return Some("v2");
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                return Some("v2beta1");
            }
            _ => continue,
        }
    }
    None
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn resource_discovery(rt: &ResourceType) -> Value {
    let mut e = json!({
        "resource": rt.resource,
        "responseKind": gvk("", "", &rt.kind),
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": sorted(&rt.verbs),
    });
    let subs: Vec<Value> = sorted(&rt.subresources)
        .iter()
        .map(|sub| {
            let s = subresource(rt, sub);
            json!({
                "subresource": sub,
                "responseKind": gvk(s.group, s.version, &s.kind),
                "verbs": s.verbs,
            })
        })
        .collect();
    if let Some(obj) = e.as_object_mut() {
        if !rt.short_names.is_empty() {
            obj.insert("shortNames".into(), json!(rt.short_names));
        }
        if !rt.categories.is_empty() {
            obj.insert("categories".into(), json!(rt.categories));
        }
        if !subs.is_empty() {
            obj.insert("subresources".into(), Value::Array(subs));
        }
    }
    e
}

fn group_discovery(reg: &Registry, group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut types: Vec<&ResourceType> = reg.in_group_version(group, v).collect();
            types.sort_by(|a, b| a.resource.cmp(&b.resource));
            let resources: Vec<Value> = types.into_iter().map(resource_discovery).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": metadata, "versions": versions})
}

/// Aggregated discovery (`apidiscovery.k8s.io/<version>` `APIGroupDiscoveryList`) for `/api`
/// (`legacy = true`) or `/apis`.
pub fn aggregated(reg: &Registry, legacy: bool, version: &str) -> Value {
    let items: Vec<Value> = reg
        .groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == legacy)
        .map(|(g, versions)| group_discovery(reg, &g, &versions))
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
