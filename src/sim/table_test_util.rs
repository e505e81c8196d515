//! What the printer tests share: a Table of objects, as column names and rows.
use serde_json::{Value, json};

use crate::sim::registry::Registry;
use crate::sim::table::{IncludeObject, table};

/// 2024-01-01T00:00:00Z
pub const T0: i64 = 1_704_067_200;
/// `T0` as a creationTimestamp.
pub const CREATED: &str = "2024-01-01T00:00:00Z";

/// (column names with their priority, the cells of each object) of a Table of `objects` of
/// `group`/v1 `resource`, printed `age` seconds after `T0`.
pub fn print_at(
    group: &str,
    resource: &str,
    objects: &[Value],
    age: i64,
) -> (Vec<(String, u64)>, Vec<Value>) {
    let reg = Registry::builtin();
    let rt = reg.find(group, "v1", resource).unwrap();
    let t = table(rt, objects, json!({}), IncludeObject::None, "v1", T0 + age);
    let cols = col_names(&t);
    let rows = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"].clone())
        .collect();
    (cols, rows)
}

/// A Table's columns: name and priority.
pub fn col_names(t: &Value) -> Vec<(String, u64)> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The names of the columns of one priority (0: `kubectl get`, 1: added by `-o wide`).
pub fn names(cols: &[(String, u64)], priority: u64) -> Vec<&str> {
    cols.iter()
        .filter(|c| c.1 == priority)
        .map(|c| c.0.as_str())
        .collect()
}
