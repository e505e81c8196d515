//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch
//! (merge, with the well-known lists merged by their key) and server-side apply (approximated
//! as a strategic merge of the applied configuration; enough for `kubectl apply --server-side`).

use serde_json::{Map, Value};

use crate::status::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Parses a patch body (apply patches are YAML, a superset of JSON).
pub fn parse_body(ty: PatchType, body: &[u8]) -> Result<Value, Status> {
    let parsed = match ty {
        PatchType::Apply => serde_norway::from_slice::<Value>(body).map_err(|e| e.to_string()),
        _ => serde_json::from_slice::<Value>(body).map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))
}

/// Applies `patch` to `doc`.
pub fn apply(ty: PatchType, doc: &mut Value, patch: &Value) -> Result<(), Status> {
    match ty {
        PatchType::Merge => {
            json_patch::merge(doc, patch);
            Ok(())
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
                Status::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
            json_patch::patch(doc, &ops).map_err(|e| {
                Status::failure(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err(Status::bad_request(
                    "the body of the patch must be a JSON object",
                ));
            }
            strategic(doc, patch);
            Ok(())
        }
    }
}

/// The merge key of the lists strategic merge patch merges element-wise.
fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        _ => None,
    }
}

fn is_directive(k: &str) -> bool {
    k.starts_with('$')
}

/// Strategic merge: maps merge recursively, `null` deletes, keyed lists merge by key (with
/// `$patch: delete` elements removing), other lists replace; `$`-directives are dropped.
pub fn strategic(doc: &mut Value, patch: &Value) {
    let (Some(d), Some(p)) = (doc.as_object_mut(), patch.as_object()) else {
        *doc = clean(patch);
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        *d = clean(patch).as_object().cloned().unwrap_or_default();
        return;
    }
    for (k, pv) in p {
        if is_directive(k) {
            continue;
        }
        if pv.is_null() {
            d.remove(k);
            continue;
        }
        match (d.get_mut(k), pv) {
            (Some(Value::Array(da)), Value::Array(pa)) => {
                match merge_key(k, pa.first().or(da.first())) {
                    Some(key) => merge_list(da, pa, key),
                    None => *da = pa.iter().map(clean).collect(),
                }
            }
            (Some(dv), Value::Object(_)) if dv.is_object() => strategic(dv, pv),
            _ => {
                d.insert(k.clone(), clean(pv));
            }
        }
    }
}

fn merge_list(da: &mut Vec<Value>, pa: &[Value], key: &str) {
    for pe in pa {
        let Some(kv) = pe.get(key) else {
            da.push(clean(pe));
            continue;
        };
        let pos = da.iter().position(|de| de.get(key) == Some(kv));
        let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                da.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic(&mut da[i], pe),
            (None, false) => da.push(clean(pe)),
        }
    }
}

/// A patch value without directives and nulls, as it lands in the object.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, v)| !is_directive(k) && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
        v => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut doc = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}, "metadata": {"labels": {"x": "1", "y": "2"}}});
        let patch = json!({
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "c:1"}
            ]},
            "metadata": {"labels": {"y": null, "z": "3"}}
        });
        apply(PatchType::Strategic, &mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}
            ]}, "metadata": {"labels": {"x": "1", "z": "3"}}})
        );
    }

    #[test]
    fn merge_and_json_patches() {
        let mut doc = json!({"a": {"b": 1, "c": [1, 2]}});
        apply(
            PatchType::Merge,
            &mut doc,
            &json!({"a": {"b": null, "c": [3]}}),
        )
        .unwrap();
        assert_eq!(doc, json!({"a": {"c": [3]}}));
        let ops = json!([{"op": "add", "path": "/a/d", "value": "x"}, {"op": "remove", "path": "/a/c/0"}]);
        apply(PatchType::Json, &mut doc, &ops).unwrap();
        assert_eq!(doc, json!({"a": {"c": [], "d": "x"}}));
        let bad = json!([{"op": "remove", "path": "/nope"}]);
        assert_eq!(
            apply(PatchType::Json, &mut doc, &bad).unwrap_err().code,
            422
        );
    }

    #[test]
    fn apply_bodies_are_yaml() {
        let v = parse_body(
            PatchType::Apply,
            b"apiVersion: v1\nkind: ConfigMap\ndata:\n  k: v\n",
        )
        .unwrap();
        assert_eq!(v["data"]["k"], "v");
        assert_eq!(parse_body(PatchType::Merge, b"{").unwrap_err().code, 400);
    }
}
