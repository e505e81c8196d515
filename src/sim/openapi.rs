//! OpenAPI documents, as much as `kubectl apply` and `kubectl explain` need.
//!
//! What kubectl 1.32 fetches (k8s.io/kubectl cmd/explain, cmd/apply, cmd/util factory):
//! - `kubectl explain` reads `/openapi/v3`, then the group-version document named there, and
//!   finds the schema whose `x-kubernetes-group-version-kind` matches the resource's kind.
//! - `kubectl apply` (client- and server-side) builds a validator first: it downloads
//!   `/openapi/v2` as **protobuf** and fails ("failed to download openapi") when that is not
//!   there, then looks in the v3 document for a PATCH operation of the kind that takes the
//!   `fieldValidation` query parameter; found, it leaves validation to the server. Client-side
//!   apply then computes its strategic merge patch from the v3 schema's
//!   `x-kubernetes-patch-merge-key`/`-strategy` (falling back to compiled-in types).
//!
//! So v3 carries the schemas and the paths; v2 is served as a valid but definition-less
//! protobuf document ([`v2_protobuf`]), and as JSON Swagger for clients that ask for JSON.
use super::registry::{Registry, ResourceType};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

#[path = "openapi_schemas.rs"]
mod schemas;

use schemas::{META, ref_path};

/// Content type of the protobuf OpenAPI v2 document kubectl asks for.
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `GET /openapi/v3`: the index of group-version documents.
pub fn v3_index(reg: &Registry) -> Value {
    v3_index_with_crds(reg, &[])
}

/// The v3 index when `crds` (CustomResourceDefinition objects) give schemas to custom types:
/// the `hash` of each entry changes with its document, so clients refetch only what changed.
pub fn v3_index_with_crds(reg: &Registry, crds: &[Value]) -> Value {
    let mut paths = Map::new();
    for (group, versions) in reg.groups() {
        for version in versions {
            let path = gv_path(&group, &version);
            if let Some(doc) = v3_document_with_crds(reg, &path, crds) {
                let hash = hex_upper(&Sha256::digest(doc.to_string().as_bytes()));
                paths.insert(
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
                );
            }
        }
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/<path>` where path is `api/v1` or `apis/<group>/<version>`.
pub fn v3_document(reg: &Registry, path: &str) -> Option<Value> {
    v3_document_with_crds(reg, path, &[])
}

/// A group-version document where custom types take their schema from the
/// `openAPIV3Schema` of the matching CRD in `crds` (a generic object schema otherwise).
pub fn v3_document_with_crds(reg: &Registry, path: &str, crds: &[Value]) -> Option<Value> {
    let path = path.trim_start_matches('/');
    let path = path.split('?').next().unwrap_or(path);
    let (group, version) = parse_gv_path(path)?;
    let mut types: Vec<&ResourceType> = reg.in_group_version(group, version).collect();
    if types.is_empty() {
        return None;
    }
    types.sort_by(|a, b| a.resource.cmp(&b.resource));

    let mut components = Map::new();
    let mut paths = Map::new();
    for rt in types {
        let name = schema_name(rt);
        let schema = kind_schema(rt, crds);
        let list_gvk = (rt.group.as_str(), rt.version.as_str(), rt.list_kind());
        components.insert(
            format!("{name}List"),
            schemas::list_schema(&name, (list_gvk.0, list_gvk.1, &list_gvk.2)),
        );
        components.insert(name.clone(), schema);
        for (p, item) in paths_for(rt, &name) {
            paths.insert(p, item);
        }
    }
    add_referenced(&mut components, &paths);
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": components},
    }))
}

/// `GET /openapi/v2` as JSON (Swagger 2.0), or None to answer 404.
///
/// kubectl asks for protobuf ([`v2_protobuf`]); this JSON form carries the built-in
/// definitions for other clients.
pub fn v2_document(reg: &Registry) -> Option<Value> {
    let _ = reg;
    let defs = Value::Object(schemas::builtin().clone()).to_string();
    let defs: Value =
        serde_json::from_str(&defs.replace("#/components/schemas/", "#/definitions/"))
            .unwrap_or_else(|_| json!({}));
    Some(json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": {},
        "definitions": defs,
    }))
}

/// `GET /openapi/v2` as kubectl asks for it (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`):
/// a gnostic `openapi_v2.Document` with `swagger` and `info` only. kubectl only needs it to parse;
/// it checks field validation support and patch strategies in the v3 documents.
pub fn v2_protobuf(reg: &Registry) -> Vec<u8> {
    let _ = reg;
    let mut info = Vec::new();
    proto_string(&mut info, 1, "Kubernetes");
    proto_string(&mut info, 2, "unversioned");
    let mut doc = Vec::new();
    proto_string(&mut doc, 1, "2.0");
    proto_bytes(&mut doc, 2, &info);
    doc
}

fn proto_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn proto_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    proto_varint(out, (field << 3) | 2);
    proto_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn proto_string(out: &mut Vec<u8>, field: u64, s: &str) {
    proto_bytes(out, field, s.as_bytes());
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn parse_gv_path(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["api", v] if !v.is_empty() => Some(("", v)),
        ["apis", g, v] if !g.is_empty() && !v.is_empty() => Some((g, v)),
        _ => None,
    }
}

/// The upstream-style schema name of a type: the built-in one when the catalogue has the kind,
/// `io.k8s.api.<group>.<version>.<Kind>` for other Kubernetes groups, and the reversed group for
/// custom resources (`com.example.v1.Widget`), as the apiserver names CRD schemas.
fn schema_name(rt: &ResourceType) -> String {
    if let Some((name, _)) = builtin_for(rt) {
        return name.clone();
    }
    let group = rt.group.as_str();
    if group.is_empty() {
        return format!("io.k8s.api.core.{}.{}", rt.version, rt.kind);
    }
    if group.ends_with(".k8s.io") || !group.contains('.') {
        let short = group.trim_end_matches(".k8s.io").replace('.', "");
        return format!("io.k8s.api.{short}.{}.{}", rt.version, rt.kind);
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
}

fn builtin_for(rt: &ResourceType) -> Option<(&'static String, &'static Value)> {
    schemas::builtin().iter().find(|(_, s)| {
        s.get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .is_some_and(|gvks| {
                gvks.iter().any(|g| {
                    g["group"] == rt.group.as_str()
                        && g["version"] == rt.version.as_str()
                        && g["kind"] == rt.kind.as_str()
                })
            })
    })
}

fn kind_schema(rt: &ResourceType, crds: &[Value]) -> Value {
    if let Some((_, s)) = builtin_for(rt) {
        return s.clone();
    }
    let gvk = (rt.group.as_str(), rt.version.as_str(), rt.kind.as_str());
    match crd_schema(rt, crds) {
        Some(s) => custom_resource_schema(s, gvk),
        None => generic_schema(gvk),
    }
}

/// The `openAPIV3Schema` a CRD gives this version of `rt`, if any.
fn crd_schema<'a>(rt: &ResourceType, crds: &'a [Value]) -> Option<&'a Value> {
    let crd = crds.iter().find(|c| {
        c.pointer("/spec/group").and_then(Value::as_str) == Some(rt.group.as_str())
            && c.pointer("/spec/names/plural").and_then(Value::as_str) == Some(rt.resource.as_str())
    })?;
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(rt.version.as_str()))?
        .pointer("/schema/openAPIV3Schema")
}

/// A CRD's schema as the apiserver publishes it: its own fields, plus apiVersion, kind,
/// ObjectMeta and the GVK tag.
pub fn custom_resource_schema(schema: &Value, gvk: (&str, &str, &str)) -> Value {
    let mut s = schema.clone();
    if !s.is_object() {
        s = json!({"type": "object"});
    }
    let fields = [
        (
            "apiVersion",
            json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
        ),
        (
            "kind",
            json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
        ),
        (
            "metadata",
            json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                             "allOf": [{"$ref": ref_path(&format!("{META}.ObjectMeta"))}]}),
        ),
    ];
    if !s.get("properties").is_some_and(Value::is_object) {
        s["properties"] = json!({});
    }
    for (k, v) in fields {
        if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
            // metadata is always ObjectMeta, whatever the CRD says (as the apiserver does).
            if k == "metadata" || !props.contains_key(k) {
                props.insert(k.into(), v);
            }
        }
    }
    s["x-kubernetes-group-version-kind"] =
        json!([{"group": gvk.0, "kind": gvk.2, "version": gvk.1}]);
    s
}

/// For kinds without a detailed schema: an object that keeps every field.
fn generic_schema(gvk: (&str, &str, &str)) -> Value {
    let mut s = schemas::kind_schema(
        &format!(
            "{} is served by the kubeguard emulator without a detailed schema.",
            gvk.2
        ),
        gvk,
        vec![
            (
                "spec",
                json!({"type": "object", "description": "Specification of the desired behavior of the object.", "x-kubernetes-preserve-unknown-fields": true}),
            ),
            (
                "status",
                json!({"type": "object", "description": "Most recently observed status of the object.", "x-kubernetes-preserve-unknown-fields": true}),
            ),
        ],
    );
    s["x-kubernetes-preserve-unknown-fields"] = json!(true);
    s
}

/// Adds every built-in schema that the paths and schemas already present reference, transitively.
fn add_referenced(components: &mut Map<String, Value>, paths: &Map<String, Value>) {
    let mut pending: Vec<String> = Vec::new();
    for v in paths.values() {
        collect_refs(v, &mut pending);
    }
    for v in components.values() {
        collect_refs(v, &mut pending);
    }
    while let Some(name) = pending.pop() {
        if components.contains_key(&name) {
            continue;
        }
        if let Some(s) = schemas::builtin().get(&name) {
            collect_refs(s, &mut pending);
            components.insert(name, s.clone());
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(name) = x
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        out.push(name.to_string());
                    }
                } else {
                    collect_refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn camel(s: &str) -> String {
    s.split(['.', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn query_param(name: &str, desc: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "description": desc, "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// Query parameters of writes; kubectl's validator looks for `fieldValidation` on PATCH.
#[rustfmt::skip]
fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        query_param("dryRun", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed", "string"),
        query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes.", "string"),
        query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict", "string"),
    ];
    if patch {
        p.push(query_param("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.", "boolean"));
    }
    p
}

#[rustfmt::skip]
fn list_params() -> Vec<Value> {
    vec![
        query_param("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\".", "boolean"),
        query_param("continue", "The continue option should be set when retrieving more results from the server.", "string"),
        query_param("fieldSelector", "A selector to restrict the list of returned objects by their fields. Defaults to everything.", "string"),
        query_param("labelSelector", "A selector to restrict the list of returned objects by their labels. Defaults to everything.", "string"),
        query_param("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
        query_param("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from.", "string"),
        query_param("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls.", "string"),
        query_param("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
        query_param("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.", "boolean"),
    ]
}

fn json_content(schema_ref: &str) -> Value {
    let schema = json!({"$ref": ref_path(schema_ref)});
    json!({"application/json": {"schema": schema}, "application/yaml": {"schema": schema}})
}

/// The three kinds of path a resource has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PathKind {
    /// `.../{name}`
    Item,
    /// `.../namespaces/{namespace}/<resource>` (or `/<resource>` when cluster-scoped)
    Collection,
    /// `/<resource>` across namespaces: list and watch only.
    AllNamespaces,
}

/// What one operation takes and returns.
#[derive(Clone, Copy)]
enum Io {
    Read,
    Write,
    Patch,
    List,
}

/// (HTTP method, x-kubernetes-action, operationId verb, description prefix, parameters/body).
type Op = (&'static str, &'static str, &'static str, &'static str, Io);

/// The operations of a path the type serves: those whose verb it has (a review type has only
/// `post` on its collection).
#[rustfmt::skip]
fn ops_of(rt: &ResourceType, kind: PathKind) -> Vec<Op> {
    let all: Vec<Op> = match kind {
        PathKind::Item => vec![
            ("get", "get", "read", "read the specified", Io::Read),
            ("put", "put", "replace", "replace the specified", Io::Write),
            ("patch", "patch", "patch", "partially update the specified", Io::Patch),
            ("delete", "delete", "delete", "delete a", Io::Read),
        ],
        PathKind::Collection => vec![
            ("get", "list", "list", "list or watch objects of kind", Io::List),
            ("post", "post", "create", "create a", Io::Write),
            ("delete", "deletecollection", "deleteCollection", "delete collection of", Io::List),
        ],
        PathKind::AllNamespaces => vec![("get", "list", "list", "list or watch objects of kind", Io::List)],
    };
    all.into_iter()
        .filter(|(_, action, ..)| {
            let verb = match *action {
                "put" => "update",
                "post" => "create",
                other => other,
            };
            rt.has_verb(verb)
        })
        .collect()
}

/// The operations on one path of `rt`, tagged with the kind's GVK as the apiserver does.
fn operations(rt: &ResourceType, schema: &str, kind: PathKind) -> Value {
    let namespaced = rt.namespaced && kind != PathKind::AllNamespaces;
    // The apiserver names operations and tags by the group without `.k8s.io`
    // (`createAuthorizationV1SelfSubjectAccessReview`, tag `authorization_v1`).
    let short_group = rt.group.trim_end_matches(".k8s.io");
    let group = if rt.group.is_empty() {
        "Core".to_string()
    } else {
        camel(short_group)
    };
    let id_tail = format!(
        "{group}{}{}{}{}",
        camel(&rt.version),
        if namespaced { "Namespaced" } else { "" },
        rt.kind,
        if kind == PathKind::AllNamespaces {
            "ForAllNamespaces"
        } else {
            ""
        },
    );
    let tag = if rt.group.is_empty() {
        format!("core_{}", rt.version)
    } else {
        format!("{}_{}", short_group.replace('.', "_"), rt.version)
    };
    let patch_ref = json!({"schema": {"$ref": ref_path(&format!("{META}.Patch"))}});
    let mut ops = Map::new();
    for (method, action, verb, desc, io) in ops_of(rt, kind) {
        let response = match io {
            Io::List if action == "list" => format!("{schema}List"),
            _ => schema.to_string(),
        };
        let mut o = json!({
            "tags": [tag],
            "description": format!("{desc} {}", rt.kind),
            "operationId": format!("{verb}{id_tail}"),
            "parameters": match io {
                Io::Read => vec![],
                Io::Write => write_params(false),
                Io::Patch => write_params(true),
                Io::List => list_params(),
            },
            "responses": {"200": {"description": "OK", "content": json_content(&response)}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        });
        match io {
            Io::Write => {
                o["requestBody"] = json!({"content": {"*/*": {"schema": {"$ref": ref_path(schema)}}}, "required": true});
            }
            Io::Patch => {
                let content: Map<String, Value> = [
                    "application/apply-patch+yaml",
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ]
                .iter()
                .map(|ct| (ct.to_string(), patch_ref.clone()))
                .collect();
                o["requestBody"] = json!({"content": content, "required": true});
            }
            Io::Read | Io::List => {}
        }
        ops.insert(method.into(), o);
    }
    let mut params = Vec::new();
    if kind == PathKind::Item {
        params.push(path_param("name", &format!("name of the {}", rt.kind)));
    }
    if namespaced {
        params.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    params.push(query_param(
        "pretty",
        "If 'true', then the output is pretty printed.",
        "string",
    ));
    ops.insert("parameters".into(), Value::Array(params));
    Value::Object(ops)
}

fn paths_for(rt: &ResourceType, schema: &str) -> Vec<(String, Value)> {
    let prefix = format!("/{}", gv_path(&rt.group, &rt.version));
    let all = format!("{prefix}/{}", rt.resource);
    let coll = if rt.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", rt.resource)
    } else {
        all.clone()
    };
    let mut paths = vec![
        (format!("{coll}/{{name}}"), PathKind::Item),
        (coll, PathKind::Collection),
    ];
    if rt.namespaced {
        paths.push((all, PathKind::AllNamespaces));
    }
    paths
        .into_iter()
        .filter(|(_, kind)| !ops_of(rt, *kind).is_empty())
        .map(|(path, kind)| (path, operations(rt, schema, kind)))
        .collect()
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
