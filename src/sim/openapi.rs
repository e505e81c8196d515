//! OpenAPI documents, as much as `kubectl apply` and `kubectl explain` need.
use super::registry::Registry;
use serde_json::Value;

/// `GET /openapi/v3`: the index of group-version documents.
pub fn v3_index(reg: &Registry) -> Value {
    let _ = reg;
    Value::Null
}

/// `GET /openapi/v3/<path>` where path is `api/v1` or `apis/<group>/<version>`.
pub fn v3_document(reg: &Registry, path: &str) -> Option<Value> {
    let _ = (reg, path);
    None
}

/// `GET /openapi/v2` as JSON (Swagger 2.0), or None to answer 404.
pub fn v2_document(reg: &Registry) -> Option<Value> {
    let _ = reg;
    None
}
