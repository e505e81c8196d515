//! Server-side printing: `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`.
use super::registry::ResourceType;
use serde_json::Value;

/// What each row carries in `object` (`includeObject` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

/// Whether an `Accept` header asks for a Table, and which `meta.k8s.io` version (`v1`/`v1beta1`).
pub fn wants_table(accept: &str) -> Option<&'static str> {
    let _ = accept;
    None
}

/// A `meta.k8s.io/<version>` Table of `objects` of type `rt`, with `list_metadata`
/// (resourceVersion, continue, remainingItemCount) copied into the table's metadata.
/// `now_unix` is the time used for AGE columns.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    table_version: &str,
    now_unix: i64,
) -> Value {
    let _ = (rt, objects, list_metadata, include, table_version, now_unix);
    Value::Null
}
