//! CustomResourceDefinitions: a created CRD registers its types.

use super::*;

/// A created CRD registers its served versions and is Established at once.
pub(super) fn register_crd(reg: &mut Registry, crd: &mut Value) -> Result<(), Status> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err(Status::failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "CustomResourceDefinition is invalid: spec.group, spec.names.plural and spec.names.kind are required",
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut stored_versions = Vec::new();
    for v in spec["versions"].as_array().cloned().unwrap_or_default() {
        let Some(version) = v["name"].as_str() else {
            continue;
        };
        if v["storage"].as_bool() == Some(true) {
            stored_versions.push(version.to_string());
        }
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let mut subresources = Vec::new();
        if v["subresources"]["status"].is_object() {
            subresources.push("status".to_string());
        }
        if v["subresources"]["scale"].is_object() {
            subresources.push("scale".to_string());
        }
        reg.add(ResourceType {
            group: group.clone(),
            version: version.into(),
            resource: plural.clone(),
            kind: kind.clone(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_ascii_lowercase()),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            verbs: [
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            subresources,
        });
    }
    let now = now_rfc3339();
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored_versions,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    Ok(())
}
