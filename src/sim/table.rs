//! Server-side printing: `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`.
//!
//! Columns and cells follow the apiserver's printers (k8s.io/kubernetes
//! pkg/printers/internalversion): every row carries all cells, and the `-o wide` ones are the
//! columns with priority 1, which kubectl hides unless asked. Custom resources (and anything the
//! printers do not know) get `NAME AGE`, CRDs `NAME CREATED AT`, as the apiserver's default
//! table convertors do.
use super::registry::ResourceType;
use serde_json::{Map, Value, json};

/// What each row carries in `object` (`includeObject` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// The `includeObject` query value (`None`, `Metadata`, `Object`); unknown values → None.
    pub fn from_query(value: &str) -> Option<Self> {
        match value {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// Whether an `Accept` header asks for a Table, and which `meta.k8s.io` version (`v1`/`v1beta1`).
///
/// Media ranges are taken in the client's order: the first Table range wins, and a plain
/// `application/json` before any Table range means the client prefers the object itself.
pub fn wants_table(accept: &str) -> Option<&'static str> {
    for params in super::http_util::json_media_ranges(accept) {
        match params {
            (None, None, None) => return None,
            (Some("meta.k8s.io"), Some("v1"), Some("Table")) => return Some("v1"),
            (Some("meta.k8s.io"), Some("v1beta1"), Some("Table")) => return Some("v1beta1"),
            _ => continue,
        }
    }
    None
}

#[path = "table_printers.rs"]
mod printers;

use printers::{AGE_DOC, NAME_DOC, cells, columns};

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
    let defs: Vec<Value> = columns(rt)
        .into_iter()
        .map(|(name, ty, format, priority, description)| {
            json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(rt, o, include, table_version, now_unix))
        .collect();
    let metadata = table_metadata(&list_metadata);
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": metadata,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// A Table of `objects`: for a custom type (`printer_columns` from its CRD, see
/// [`crd_printer_columns`]) as the apiextensions-apiserver prints it, else the built-in printer.
pub fn table_of(
    rt: &ResourceType,
    printer_columns: Option<&[Value]>,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    table_version: &str,
    now_unix: i64,
) -> Value {
    match printer_columns {
        Some(cols) => custom_table(
            cols,
            objects,
            list_metadata,
            include,
            table_version,
            now_unix,
        ),
        None => table(rt, objects, list_metadata, include, table_version, now_unix),
    }
}

/// A Table of custom resources whose CRD version declares `additionalPrinterColumns`: `Name`,
/// then those columns (cells found by their `jsonPath`; `date` columns shown as ages), as the
/// apiextensions-apiserver prints them. With no printer columns this is `Name`, `Age`.
pub fn custom_table(
    printer_columns: &[Value],
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    table_version: &str,
    now_unix: i64,
) -> Value {
    let default_age = [
        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": AGE_DOC}),
    ];
    let cols = if printer_columns.is_empty() {
        &default_age[..]
    } else {
        printer_columns
    };
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DOC, "priority": 0}),
    ];
    for c in cols {
        defs.push(json!({
            "name": str_at(c, "/name"),
            "type": non_empty(str_at(c, "/type")).unwrap_or("string"),
            "format": str_at(c, "/format"),
            "description": str_at(c, "/description"),
            "priority": int_at(c, "/priority"),
        }));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![json!(str_at(o, "/metadata/name"))];
            for c in cols {
                let found = json_path(o, str_at(c, "/jsonPath"));
                cells.push(match (str_at(c, "/type"), found) {
                    (_, None) | (_, Some(Value::Null)) => Value::Null,
                    ("date", Some(Value::String(t))) => match timestamp(t) {
                        Some(ts) => json!(human_duration(now_unix - ts)),
                        None => json!(t),
                    },
                    (_, Some(v @ (Value::Object(_) | Value::Array(_)))) => json!(v.to_string()),
                    (_, Some(v)) => v.clone(),
                });
            }
            with_object(json!({"cells": cells}), o, include, table_version)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{table_version}"),
        "metadata": table_metadata(&list_metadata),
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// The `additionalPrinterColumns` a CRD object declares for `version` (empty when none).
pub fn crd_printer_columns(crd: &Value, version: &str) -> Vec<Value> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| str_at(v, "/name") == version))
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The subset of kubectl JSONPath that printer columns use: `.a.b`, `.a[0]`, `.a[-1]` and
/// `.a[?(@.type=="Ready")]` (first match), optionally wrapped in `{}`.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if !key.is_empty() {
                cur = cur.get(key)?;
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            // A filter's value may itself hold `]`; filters end at `)]`.
            let (inner, after) = if r.starts_with("?(") {
                let close = r.find(")]")?;
                (&r[..close + 1], &r[close + 2..])
            } else {
                (&r[..end], &r[end + 1..])
            };
            cur = index(cur, inner)?;
            rest = after;
        } else {
            return None;
        }
    }
    Some(cur)
}

fn index<'a>(cur: &'a Value, inner: &str) -> Option<&'a Value> {
    let arr = cur.as_array()?;
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let (lhs, rhs) = filter.split_once("==")?;
        let field = lhs.trim().strip_prefix("@.")?;
        let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
        return arr.iter().find(|e| {
            json_path(e, &format!(".{field}")).is_some_and(|v| match v {
                Value::String(s) => s == want,
                other => serde_json::from_str::<Value>(want).ok().as_ref() == Some(other),
            })
        });
    }
    let i: i64 = inner.trim().parse().ok()?;
    let i = if i < 0 { arr.len() as i64 + i } else { i };
    arr.get(usize::try_from(i).ok()?)
}

fn table_metadata(list_metadata: &Value) -> Map<String, Value> {
    let mut metadata = Map::new();
    if let Some(m) = list_metadata.as_object() {
        for key in ["resourceVersion", "continue", "remainingItemCount"] {
            match m.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() => {}
                Some(v) => {
                    metadata.insert(key.into(), v.clone());
                }
            }
        }
    }
    metadata
}

fn with_object(mut r: Value, obj: &Value, include: IncludeObject, tv: &str) -> Value {
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => r["object"] = obj.clone(),
        IncludeObject::Metadata => {
            let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{tv}"), "metadata": metadata});
        }
    }
    r
}

fn row(rt: &ResourceType, obj: &Value, include: IncludeObject, tv: &str, now: i64) -> Value {
    let mut r = Map::new();
    r.insert("cells".into(), Value::Array(cells(rt, obj, now)));
    if rt.group.is_empty() && rt.resource == "pods" {
        let phase = str_at(obj, "/status/phase");
        let (reason, message) = match phase {
            "Succeeded" => ("Succeeded", "The pod has completed successfully."),
            "Failed" => ("Failed", "The pod failed."),
            _ => ("", ""),
        };
        if !reason.is_empty() {
            r.insert(
                "conditions".into(),
                json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]),
            );
        }
    }
    with_object(Value::Object(r), obj, include, tv)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn len_at(v: &Value, ptr: &str) -> usize {
    match v.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn or_none(s: &str) -> &str {
    non_empty(s).unwrap_or("<none>")
}

fn timestamp(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// `translateTimestampSince`: `<unknown>` without a timestamp, else the age in kubectl's format.
fn age_at(o: &Value, ptr: &str, now: i64) -> String {
    match timestamp(str_at(o, ptr)) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// kubectl's `duration.HumanDuration` (k8s.io/apimachinery/pkg/util/duration): two significant
/// units at most, coarser as the duration grows (`5s`, `3m2s`, `15m`, `5h3m`, `2d3h`, `45d`, `2y3d`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
