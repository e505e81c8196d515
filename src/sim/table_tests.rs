use super::*;
use crate::sim::registry::Registry;
use crate::sim::table_test_util::{T0, col_names};

const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn rt(group: &str, resource: &str) -> ResourceType {
    Registry::builtin()
        .find(group, "v1", resource)
        .unwrap()
        .clone()
}

fn running_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "prod", "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "42"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "envoy"}]},
        "status": {
            "phase": "Running", "podIP": "10.0.0.7",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:01:00Z"}}},
                {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}}
            ]
        }
    })
}

#[test]
fn accept_negotiation() {
    assert_eq!(wants_table(KUBECTL_ACCEPT), Some("v1"));
    assert_eq!(
        wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
        Some("v1beta1")
    );
    assert_eq!(wants_table("application/json"), None);
    assert_eq!(
        wants_table("application/json, application/json;as=Table;v=v1;g=meta.k8s.io"),
        None
    );
    assert_eq!(wants_table("*/*"), None);
    assert_eq!(
        IncludeObject::from_query("Object"),
        Some(IncludeObject::Object)
    );
    assert_eq!(IncludeObject::from_query("all"), None);
}

#[test]
fn human_duration_matches_kubectl() {
    for (secs, want) in [
        (-5, "<invalid>"),
        (-1, "0s"),
        (5, "5s"),
        (119, "119s"),
        (182, "3m2s"),
        (300, "5m"),
        (900, "15m"),
        (3 * 3600 + 180, "3h3m"),
        (10 * 3600, "10h"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (45 * 86400, "45d"),
        (2 * 365 * 86400 + 3 * 86400, "2y3d"),
        (9 * 365 * 86400, "9y"),
    ] {
        assert_eq!(human_duration(secs), want, "{secs}s");
    }
}

#[test]
fn pod_table_has_kubectl_columns_and_cells() {
    let t = table(
        &rt("", "pods"),
        &[running_pod()],
        json!({"resourceVersion": "99", "continue": "abc", "remainingItemCount": 3}),
        IncludeObject::Metadata,
        "v1",
        T0 + 182,
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "99", "continue": "abc", "remainingItemCount": 3})
    );
    let cols = col_names(&t);
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(cols[4].1, 0);
    assert_eq!(cols[5].1, 1);
    let c = &t["columnDefinitions"][0];
    assert_eq!(c["format"], "name");
    assert!(c["description"].as_str().unwrap().len() > 10);
    let row = &t["rows"][0];
    assert_eq!(
        row["cells"],
        json!([
            "web-1",
            "2/2",
            "Running",
            "2 (2m2s ago)",
            "3m2s",
            "10.0.0.7",
            "node-1",
            "<none>",
            "<none>"
        ])
    );
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(row["object"]["metadata"]["namespace"], "prod");
    assert!(row.get("conditions").is_none());
}

#[test]
fn pod_status_reasons() {
    let mut p = running_pod();
    p["status"]["containerStatuses"][1]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    p["status"]["containerStatuses"][1]["ready"] = json!(false);
    let t = table(
        &rt("", "pods"),
        std::slice::from_ref(&p),
        json!({}),
        IncludeObject::None,
        "v1",
        T0,
    );
    assert_eq!(t["rows"][0]["cells"][1], "1/2");
    assert_eq!(t["rows"][0]["cells"][2], "CrashLoopBackOff");
    assert!(t["rows"][0].get("object").is_none());
    assert_eq!(t["metadata"], json!({}));

    p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let t = table(
        &rt("", "pods"),
        &[p],
        json!({}),
        IncludeObject::None,
        "v1",
        T0,
    );
    assert_eq!(t["rows"][0]["cells"][2], "Terminating");

    let done = json!({"metadata": {"name": "job"}, "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": "a", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}});
    let t = table(
        &rt("", "pods"),
        &[done],
        json!({}),
        IncludeObject::Object,
        "v1beta1",
        T0,
    );
    let row = &t["rows"][0];
    assert_eq!(row["cells"][2], "Completed");
    assert_eq!(row["cells"][4], "<unknown>");
    assert_eq!(row["conditions"][0]["type"], "Completed");
    assert_eq!(row["object"]["metadata"]["name"], "job");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
}

#[test]
fn node_namespace_and_workload_rows() {
    let node = json!({"metadata": {"name": "node-1", "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node-1"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "10.1.0.1"}, {"type": "Hostname", "address": "node-1"}],
            "nodeInfo": {"kubeletVersion": "v1.30.4", "osImage": "Ubuntu 22.04.4 LTS", "kernelVersion": "6.5.0", "containerRuntimeVersion": "containerd://1.7.13"}}});
    let t = table(
        &rt("", "nodes"),
        &[node],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0 + 2 * 86400 + 3 * 3600,
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane",
            "2d3h",
            "v1.30.4",
            "10.1.0.1",
            "<none>",
            "Ubuntu 22.04.4 LTS",
            "6.5.0",
            "containerd://1.7.13"
        ])
    );
    assert_eq!(col_names(&t).len(), 10);

    let ns = json!({"metadata": {"name": "prod", "creationTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Active"}});
    let t = table(
        &rt("", "namespaces"),
        &[ns],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0 + 5,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["prod", "Active", "5s"]));

    let deploy = json!({"metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "a", "image": "nginx:1"}, {"name": "b", "image": "envoy:2"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    let apps = rt("apps", "deployments");
    let t = table(
        &apps,
        std::slice::from_ref(&deploy),
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0 + 45 * 86400,
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "2/3",
            3,
            2,
            "45d",
            "a,b",
            "nginx:1,envoy:2",
            "app=web"
        ])
    );
    let names: Vec<String> = col_names(&t).into_iter().map(|c| c.0).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );

    let mut rs = deploy;
    rs["status"]["replicas"] = json!(3);
    let t = table(
        &rt("apps", "replicasets"),
        &[rs],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0,
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["web", 3, 3, 2, "0s", "a,b", "nginx:1,envoy:2", "app=web"])
    );
}

#[test]
fn config_secret_service_and_default_rows() {
    let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    let t = table(
        &rt("", "configmaps"),
        &[cm],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["cfg", 3, "<unknown>"]));

    let s = json!({"metadata": {"name": "tok"}, "type": "Opaque", "data": {"a": "MQ=="}});
    let t = table(
        &rt("", "secrets"),
        &[s],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0,
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["tok", "Opaque", 1, "<unknown>"])
    );

    let svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
        "selector": {"app": "web"}, "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
    let t = table(
        &rt("", "services"),
        &[svc],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0,
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80:30080/TCP,53/UDP",
            "<unknown>",
            "app=web"
        ])
    );

    let sa = json!({"metadata": {"name": "default"}});
    let t = table(
        &rt("", "serviceaccounts"),
        &[sa],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["default", 0, "<unknown>"]));

    let crd = json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-01-01T00:00:00Z"}});
    let t = table(
        &rt("apiextensions.k8s.io", "customresourcedefinitions"),
        &[crd],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0,
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!(["widgets.example.com", "2024-01-01T00:00:00Z"])
    );
    assert_eq!(t["columnDefinitions"][1]["type"], "date");

    let mut widget = rt("", "configmaps");
    widget.group = "example.com".into();
    widget.resource = "widgets".into();
    let w = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-01-01T00:00:00Z"}});
    let t = table(
        &widget,
        &[w],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0 + 60,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["w1", "60s"]));
}

#[test]
fn event_rows_carry_every_column() {
    let ev = json!({"metadata": {"name": "web-1.17a"}, "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
        "source": {"component": "kubelet", "host": "node-1"}, "message": "Back-off restarting ",
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:01:00Z", "count": 4});
    let t = table(
        &rt("", "events"),
        &[ev],
        json!({}),
        IncludeObject::Metadata,
        "v1",
        T0 + 120,
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "60s",
            "Warning",
            "BackOff",
            "pod/web-1",
            "spec.containers{a}",
            "kubelet, node-1",
            "Back-off restarting",
            "2m",
            4,
            "web-1.17a"
        ])
    );
    assert_eq!(col_names(&t).len(), 10);
}

#[test]
fn json_path_subset() {
    let o = json!({"spec": {"size": 3, "tags": ["a", "b"]},
        "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
    assert_eq!(json_path(&o, ".spec.size"), Some(&json!(3)));
    assert_eq!(json_path(&o, "{.spec.tags[1]}"), Some(&json!("b")));
    assert_eq!(json_path(&o, ".spec.tags[-1]"), Some(&json!("b")));
    assert_eq!(
        json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
        Some(&json!("True"))
    );
    assert_eq!(
        json_path(&o, ".status.conditions[?(@.type=='Gone')].status"),
        None
    );
    assert_eq!(json_path(&o, ".spec.missing"), None);
    assert_eq!(json_path(&o, ".spec.tags[9]"), None);
}

#[test]
fn custom_resources_print_their_columns() {
    let cols = [
        json!({"name": "Size", "type": "integer", "jsonPath": ".spec.size"}),
        json!({"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1}),
        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
    ];
    let w = json!({"metadata": {"name": "w1", "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"size": 3}});
    let t = custom_table(
        &cols,
        std::slice::from_ref(&w),
        json!({"resourceVersion": "7"}),
        IncludeObject::Metadata,
        "v1",
        T0 + 300,
    );
    assert_eq!(t["rows"][0]["cells"], json!(["w1", 3, null, "5m"]));
    assert_eq!(t["columnDefinitions"][2]["priority"], 1);
    assert_eq!(t["columnDefinitions"][1]["type"], "integer");
    assert_eq!(t["metadata"]["resourceVersion"], "7");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let t = custom_table(&[], &[w], json!({}), IncludeObject::None, "v1", T0 + 300);
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Age"]);
    assert_eq!(t["rows"][0]["cells"], json!(["w1", "5m"]));
}

#[test]
fn printer_columns_come_from_the_served_version() {
    let crd = json!({"spec": {"versions": [
        {"name": "v1alpha1"},
        {"name": "v1", "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
    ]}});
    assert_eq!(crd_printer_columns(&crd, "v1")[0]["name"], "Size");
    assert!(crd_printer_columns(&crd, "v1alpha1").is_empty());
    assert!(crd_printer_columns(&json!({}), "v1").is_empty());
}
