//! Per-kind columns and cells, after the apiserver's printers (k8s.io/kubernetes
//! pkg/printers/internalversion/printers.go): every row carries all cells; the `-o wide` ones
//! are the columns with priority 1.
use super::{age_at, human_duration, int_at, len_at, non_empty, or_none, str_at, timestamp};
use crate::sim::registry::ResourceType;
use serde_json::{Value, json};

/// One column: (name, type, format, priority, description).
pub(super) type Column = (&'static str, &'static str, &'static str, u8, &'static str);

pub(super) const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(super) const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

const NAME: Column = ("Name", "string", "name", 0, NAME_DOC);
const AGE: Column = ("Age", "string", "", 0, AGE_DOC);
const CONTAINERS: Column = (
    "Containers",
    "string",
    "",
    1,
    "Names of each container in the template.",
);
const IMAGES: Column = (
    "Images",
    "string",
    "",
    1,
    "Images referenced by each container in the template.",
);

#[path = "table_printers_cluster.rs"]
mod cluster;
#[path = "table_printers_workloads.rs"]
mod workloads;

/// One kind's printer as a table entry: its columns and the cells of one object (`now` for
/// ages). The kinds added to the emulator later are described this way; the first ones keep
/// their `match` arms below.
pub(super) struct Printer {
    pub group: &'static str,
    pub resource: &'static str,
    pub columns: &'static [Column],
    pub cells: fn(&Value, i64) -> Vec<Value>,
}

fn printer(rt: &ResourceType) -> Option<&'static Printer> {
    workloads::PRINTERS
        .iter()
        .chain(cluster::PRINTERS)
        .find(|p| rt.is(p.group, p.resource))
}

fn name_cell(o: &Value) -> Value {
    json!(str_at(o, "/metadata/name"))
}

fn age_cell(o: &Value, now: i64) -> Value {
    json!(age_at(o, "/metadata/creationTimestamp", now))
}

// One line per column reads like the printers' column tables; rustfmt would split every tuple.
#[rustfmt::skip]
pub(super) fn columns(rt: &ResourceType) -> Vec<Column> {
    if let Some(p) = printer(rt) {
        return p.columns.to_vec();
    }
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

pub(super) fn cells(rt: &ResourceType, o: &Value, now: i64) -> Vec<Value> {
    if let Some(p) = printer(rt) {
        return (p.cells)(o, now);
    }
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
    let [names, images] = container_cells(o, "/spec/template");
    vec![
        names,
        images,
        json!(label_selector(o.pointer("/spec/selector"))),
    ]
}

/// CONTAINERS and IMAGES of the pod template at `template` (`layoutContainerCells`).
fn container_cells(o: &Value, template: &str) -> [Value; 2] {
    let containers = o
        .pointer(&format!("{template}/spec/containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    [json!(names.join(",")), json!(images.join(","))]
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
