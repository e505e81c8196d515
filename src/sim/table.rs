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
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/json") {
            continue;
        }
        let (mut g, mut v, mut r#as) = (None, None, None);
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                let val = val.trim().trim_matches('"');
                match k.trim() {
                    "g" => g = Some(val),
                    "v" => v = Some(val),
                    "as" => r#as = Some(val),
                    _ => {}
                }
            }
        }
        match (g, v, r#as) {
            (None, None, None) => return None,
            (Some("meta.k8s.io"), Some("v1"), Some("Table")) => return Some("v1"),
            (Some("meta.k8s.io"), Some("v1beta1"), Some("Table")) => return Some("v1beta1"),
            _ => continue,
        }
    }
    None
}

/// One column: (name, type, format, priority, description).
type Column = (&'static str, &'static str, &'static str, u8, &'static str);

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

const NAME: Column = ("Name", "string", "name", 0, NAME_DOC);
const AGE: Column = ("Age", "string", "", 0, AGE_DOC);

// One line per column reads like the printers' column tables; rustfmt would split every tuple.
#[rustfmt::skip]
fn columns(rt: &ResourceType) -> Vec<Column> {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "pods") => vec![
            NAME,
            ("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            ("IP", "string", "", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            ("Node", "string", "", 1, "NodeName indicates in which node this pod is scheduled."),
            ("Nominated Node", "string", "", 1, "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
            ("Readiness Gates", "string", "", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        ("", "namespaces") => vec![NAME, ("Status", "string", "", 0, "The status of the namespace"), AGE],
        ("", "nodes") => vec![
            NAME,
            ("Status", "string", "", 0, "The status of the node"),
            ("Roles", "string", "", 0, "The roles of the node"),
            AGE,
            ("Version", "string", "", 0, "Kubelet Version reported by the node."),
            ("Internal-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            ("External-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            ("OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            ("Kernel-Version", "string", "", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            ("Container-Runtime", "string", "", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        ("apps", "deployments") => vec![
            NAME,
            ("Ready", "string", "", 0, "Number of the pod with ready state"),
            ("Up-to-date", "integer", "", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            ("Available", "integer", "", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            ("Containers", "string", "", 1, "Names of each container in the template."),
            ("Images", "string", "", 1, "Images referenced by each container in the template."),
            ("Selector", "string", "", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        ("apps", "replicasets") => vec![
            NAME,
            ("Desired", "integer", "", 0, "Replicas is the number of desired replicas."),
            ("Current", "integer", "", 0, "Replicas is the most recently observed number of replicas."),
            ("Ready", "integer", "", 0, "The number of ready replicas for this replica set."),
            AGE,
            ("Containers", "string", "", 1, "Names of each container in the template."),
            ("Images", "string", "", 1, "Images referenced by each container in the template."),
            ("Selector", "string", "", 1, "Selector is a label query over pods that should match the replica count."),
        ],
        ("", "services") => vec![
            NAME,
            ("Type", "string", "", 0, "type determines how the Service is exposed."),
            ("Cluster-IP", "string", "", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
            ("External-IP", "string", "", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            ("Port(s)", "string", "", 0, "The list of ports that are exposed by this service."),
            AGE,
            ("Selector", "string", "", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        ("", "configmaps") => vec![NAME, ("Data", "integer", "", 0, "Data contains the configuration data."), AGE],
        ("", "secrets") => vec![
            NAME,
            ("Type", "string", "", 0, "Used to facilitate programmatic handling of secret data."),
            ("Data", "integer", "", 0, "Data contains the secret data."),
            AGE,
        ],
        ("", "serviceaccounts") => vec![
            NAME,
            ("Secrets", "integer", "", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            AGE,
        ],
        ("", "events") => vec![
            ("Last Seen", "string", "", 0, "The time at which the most recent occurrence of this event was recorded."),
            ("Type", "string", "", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
            ("Reason", "string", "", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            ("Object", "string", "", 0, "The object that this event is about."),
            ("Subobject", "string", "", 1, "The subobject of the involved object this event is about."),
            ("Source", "string", "", 1, "The component reporting this event."),
            ("Message", "string", "", 0, "A human-readable description of the status of this operation."),
            ("First Seen", "string", "", 1, "The time at which the event was first recorded."),
            ("Count", "integer", "", 1, "The number of times this event has occurred."),
            ("Name", "string", "name", 1, NAME_DOC),
        ],
        ("apiextensions.k8s.io", "customresourcedefinitions") => vec![NAME, ("Created At", "date", "", 0, AGE_DOC)],
        _ => vec![NAME, AGE],
    }
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

fn cells(rt: &ResourceType, o: &Value, now: i64) -> Vec<Value> {
    let name = json!(str_at(o, "/metadata/name"));
    let age = json!(age_at(o, "/metadata/creationTimestamp", now));
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "pods") => pod_cells(o, name, age, now),
        ("", "namespaces") => vec![name, json!(str_at(o, "/status/phase")), age],
        ("", "nodes") => node_cells(o, name, age),
        ("apps", "deployments") => {
            let desired = int_at(o, "/spec/replicas");
            let mut c = vec![
                name,
                json!(format!(
                    "{}/{}",
                    int_at(o, "/status/readyReplicas"),
                    desired
                )),
                json!(int_at(o, "/status/updatedReplicas")),
                json!(int_at(o, "/status/availableReplicas")),
                age,
            ];
            c.extend(template_cells(o));
            c
        }
        ("apps", "replicasets") => {
            let mut c = vec![
                name,
                json!(int_at(o, "/spec/replicas")),
                json!(int_at(o, "/status/replicas")),
                json!(int_at(o, "/status/readyReplicas")),
                age,
            ];
            c.extend(template_cells(o));
            c
        }
        ("", "services") => service_cells(o, name, age),
        ("", "configmaps") => vec![
            name,
            json!(len_at(o, "/data") + len_at(o, "/binaryData")),
            age,
        ],
        ("", "secrets") => vec![
            name,
            json!(str_at(o, "/type")),
            json!(len_at(o, "/data")),
            age,
        ],
        ("", "serviceaccounts") => vec![name, json!(len_at(o, "/secrets")), age],
        ("", "events") => event_cells(o, name, now),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![name, json!(str_at(o, "/metadata/creationTimestamp"))]
        }
        _ => vec![name, age],
    }
}

fn pod_cells(o: &Value, name: Value, age: Value, now: i64) -> Vec<Value> {
    let total = len_at(o, "/spec/containers");
    let mut reason = str_at(o, "/status/phase").to_string();
    if let Some(r) = non_empty(str_at(o, "/status/reason")) {
        reason = r.to_string();
    }
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<i64> = None;
    let mut has_running = false;
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for c in statuses.iter().rev() {
        restarts += int_at(c, "/restartCount");
        if let Some(t) = timestamp(str_at(c, "/lastState/terminated/finishedAt")) {
            last_restart = Some(last_restart.map_or(t, |l| l.max(t)));
        }
        let waiting = str_at(c, "/state/waiting/reason");
        let terminated = c.pointer("/state/terminated");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if let Some(t) = terminated {
            reason = match non_empty(str_at(t, "/reason")) {
                Some(r) => r.to_string(),
                None if int_at(t, "/signal") != 0 => format!("Signal:{}", int_at(t, "/signal")),
                None => format!("ExitCode:{}", int_at(t, "/exitCode")),
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some()
        {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = if has_condition(o, "Ready", "True") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    let phase = str_at(o, "/status/phase");
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        if str_at(o, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_duration(now - t))
        }
        _ => restarts.to_string(),
    };
    let gates: Vec<&str> = o
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .map(|g| g.iter().map(|x| str_at(x, "/conditionType")).collect())
        .unwrap_or_default();
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates.iter().filter(|g| has_condition(o, g, "True")).count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age,
        json!(or_none(str_at(o, "/status/podIP"))),
        json!(or_none(str_at(o, "/spec/nodeName"))),
        json!(or_none(str_at(o, "/status/nominatedNodeName"))),
        json!(gates_cell),
    ]
}

fn node_cells(o: &Value, name: Value, age: Value) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = conditions(o).find(|c| str_at(c, "/type") == "Ready") {
        status.push(if str_at(c, "/status") == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = o.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role"
                && let Some(v) = v.as_str().and_then(non_empty)
            {
                roles.push(v.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    let address = |kind: &str| {
        o.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| str_at(x, "/type") == kind))
            .map(|x| str_at(x, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = |field: &str| {
        non_empty(str_at(o, &format!("/status/nodeInfo/{field}")))
            .unwrap_or("<unknown>")
            .to_string()
    };
    vec![
        name,
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        age,
        json!(str_at(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

fn service_cells(o: &Value, name: Value, age: Value) -> Vec<Value> {
    let ty = non_empty(str_at(o, "/spec/type")).unwrap_or("ClusterIP");
    let external_ips: Vec<&str> = o
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let external = match ty {
        "ExternalName" => str_at(o, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            non_empty(str_at(i, "/ip"))
                                .or(non_empty(str_at(i, "/hostname")))
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external_ips.iter().map(|s| s.to_string()));
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ if !external_ips.is_empty() => external_ips.join(","),
        _ => "<none>".into(),
    };
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| {
                    let proto = non_empty(str_at(p, "/protocol")).unwrap_or("TCP");
                    match int_at(p, "/nodePort") {
                        0 => format!("{}/{proto}", int_at(p, "/port")),
                        np => format!("{}:{np}/{proto}", int_at(p, "/port")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    vec![
        name,
        json!(ty),
        json!(or_none(str_at(o, "/spec/clusterIP"))),
        json!(external),
        json!(if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(",")
        }),
        age,
        json!(map_selector(o.pointer("/spec/selector"))),
    ]
}

fn event_cells(o: &Value, name: Value, now: i64) -> Vec<Value> {
    let mut first = age_at(o, "/firstTimestamp", now);
    if timestamp(str_at(o, "/firstTimestamp")).is_none() {
        first = age_at(o, "/eventTime", now);
    }
    let mut last = age_at(o, "/lastTimestamp", now);
    if timestamp(str_at(o, "/lastTimestamp")).is_none() {
        last = first.clone();
    }
    let mut count = int_at(o, "/count");
    if o.pointer("/series").is_some_and(|s| !s.is_null()) {
        last = age_at(o, "/series/lastObservedTime", now);
        count = int_at(o, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(o, "/involvedObject/kind").to_ascii_lowercase();
    let target = match non_empty(str_at(o, "/involvedObject/name")) {
        Some(n) => format!("{kind}/{n}"),
        None => kind,
    };
    let mut source = non_empty(str_at(o, "/source/component"))
        .or(non_empty(str_at(o, "/reportingComponent")))
        .unwrap_or("")
        .to_string();
    if let Some(host) =
        non_empty(str_at(o, "/source/host")).or(non_empty(str_at(o, "/reportingInstance")))
    {
        source = format!("{source}, {host}");
    }
    vec![
        json!(last),
        json!(str_at(o, "/type")),
        json!(str_at(o, "/reason")),
        json!(target),
        json!(str_at(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(o, "/message").trim()),
        json!(first),
        json!(count),
        name,
    ]
}

/// CONTAINERS, IMAGES and SELECTOR of a workload with a pod template.
fn template_cells(o: &Value) -> Vec<Value> {
    let containers = o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    vec![
        json!(names.join(",")),
        json!(images.join(",")),
        json!(label_selector(o.pointer("/spec/selector"))),
    ]
}

/// A `metav1.LabelSelector` as kubectl prints it (`app=web,tier in (a,b)`).
fn label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = str_at(e, "/key");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match str_at(e, "/operator") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "DoesNotExist" => format!("!{key}"),
                _ => key.to_string(),
            });
        }
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// A plain `map[string]string` selector (Services) as `k=v,k2=v2`.
fn map_selector(sel: Option<&Value>) -> String {
    let parts: Vec<String> = sel
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn conditions(o: &Value) -> impl Iterator<Item = &Value> {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn has_condition(o: &Value, ty: &str, status: &str) -> bool {
    conditions(o).any(|c| str_at(c, "/type") == ty && str_at(c, "/status") == status)
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
