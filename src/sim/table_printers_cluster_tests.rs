//! The storage, endpoints, lease and RBAC printers against rows printed by kubectl 1.32 from a
//! 1.30 apiserver.
use serde_json::{Value, json};

use crate::sim::table_test_util::{CREATED, names, print_at};

/// A Table of `objects`, 2 minutes after they were created.
fn print(group: &str, resource: &str, objects: &[Value]) -> (Vec<(String, u64)>, Vec<Value>) {
    print_at(group, resource, objects, 120)
}

#[test]
fn persistent_volumes_show_claim_class_and_policy() {
    let bound = json!({"metadata": {"name": "pvc-1", "creationTimestamp": CREATED},
        "spec": {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                 "claimRef": {"namespace": "prod", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}});
    let leaving = json!({"metadata": {"name": "old", "creationTimestamp": CREATED,
                                      "deletionTimestamp": CREATED,
                                      "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOncePod"], "storageClassName": "ignored",
                 "volumeAttributesClassName": "gold"},
        "status": {"phase": "Failed", "reason": "Recycler"}});
    let (cols, rows) = print("", "persistentvolumes", &[bound, leaving]);
    assert_eq!(
        names(&cols, 0),
        [
            "Name",
            "Capacity",
            "Access Modes",
            "Reclaim Policy",
            "Status",
            "Claim",
            "StorageClass",
            "VolumeAttributesClass",
            "Reason",
            "Age"
        ]
    );
    assert_eq!(names(&cols, 1), ["VolumeMode"]);
    assert_eq!(
        rows[0],
        json!([
            "pvc-1",
            "20Gi",
            "RWO,RWX",
            "Delete",
            "Bound",
            "prod/data",
            "standard",
            "<unset>",
            "",
            "2m",
            "Filesystem"
        ])
    );
    assert_eq!(
        rows[1],
        json!([
            "old",
            "1Gi",
            "RWOP",
            "",
            "Terminating",
            "",
            "legacy",
            "gold",
            "Recycler",
            "2m",
            "<unset>"
        ])
    );
}

#[test]
fn claims_show_capacity_only_once_bound() {
    let bound = json!({"metadata": {"name": "data", "creationTimestamp": CREATED},
        "spec": {"volumeName": "pvc-1", "storageClassName": "standard", "volumeMode": "Block",
                 "resources": {"requests": {"storage": "10Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"]}});
    let pending = json!({"metadata": {"name": "cache", "creationTimestamp": CREATED},
        "spec": {"resources": {"requests": {"storage": "5Gi"}}}, "status": {"phase": "Pending"}});
    let (cols, rows) = print("", "persistentvolumeclaims", &[bound, pending]);
    assert_eq!(
        names(&cols, 0),
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age"
        ]
    );
    assert_eq!(names(&cols, 1), ["VolumeMode"]);
    assert_eq!(
        rows[0],
        json!([
            "data", "Bound", "pvc-1", "20Gi", "RWO", "standard", "<unset>", "2m", "Block"
        ])
    );
    assert_eq!(
        rows[1],
        json!([
            "cache", "Pending", "", "", "", "", "<unset>", "2m", "<unset>"
        ])
    );
}

#[test]
fn storage_classes_mark_the_default() {
    let sc = json!({"metadata": {"name": "standard", "creationTimestamp": CREATED,
                                 "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                    "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
                    "allowVolumeExpansion": true});
    let plain =
        json!({"metadata": {"name": "slow", "creationTimestamp": CREATED}, "provisioner": "x"});
    let (cols, rows) = print("storage.k8s.io", "storageclasses", &[sc, plain]);
    assert_eq!(
        names(&cols, 0),
        [
            "Name",
            "Provisioner",
            "ReclaimPolicy",
            "VolumeBindingMode",
            "AllowVolumeExpansion",
            "Age"
        ]
    );
    assert_eq!(
        rows[0],
        json!([
            "standard (default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            true,
            "2m"
        ])
    );
    assert_eq!(
        rows[1],
        json!(["slow", "x", "Delete", "Immediate", false, "2m"])
    );
}

#[test]
fn endpoints_list_three_addresses_then_how_many_more() {
    let addrs = |ips: &[&str]| -> Value { ips.iter().map(|ip| json!({"ip": ip})).collect() };
    let many = json!({"metadata": {"name": "web", "creationTimestamp": CREATED},
        "subsets": [{"addresses": addrs(&["10.0.0.1", "10.0.0.2"]), "ports": [{"port": 80}, {"port": 443}]}]});
    let headless = json!({"metadata": {"name": "db", "creationTimestamp": CREATED},
        "subsets": [{"addresses": addrs(&["10.0.0.9", "fd00::1"])}]});
    let v6 = json!({"metadata": {"name": "v6"}, "subsets": [{"addresses": addrs(&["fd00::2"]), "ports": [{"port": 53}]}]});
    let empty = json!({"metadata": {"name": "none", "creationTimestamp": CREATED}});
    let (cols, rows) = print("", "endpoints", &[many, headless, v6, empty]);
    assert_eq!(names(&cols, 0), ["Name", "Endpoints", "Age"]);
    assert_eq!(
        rows[0][1],
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
    );
    assert_eq!(rows[1][1], "10.0.0.9,fd00::1");
    assert_eq!(rows[2][1], "[fd00::2]:53");
    assert_eq!(rows[3], json!(["none", "<none>", "2m"]));
}

#[test]
fn endpoint_slices_list_ports_and_addresses() {
    let slice = json!({"metadata": {"name": "web-abcde", "creationTimestamp": CREATED}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": "metrics"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}, {"addresses": ["10.0.0.3"]},
                      {"addresses": ["10.0.0.4"]}, {"addresses": ["10.0.0.5"]}]});
    let empty = json!({"metadata": {"name": "idle", "creationTimestamp": CREATED}, "addressType": "IPv4", "endpoints": []});
    let (cols, rows) = print("discovery.k8s.io", "endpointslices", &[slice, empty]);
    assert_eq!(
        names(&cols, 0),
        ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    );
    assert_eq!(
        rows[0],
        json!([
            "web-abcde",
            "IPv4",
            "8080,metrics",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...",
            "2m"
        ])
    );
    assert_eq!(rows[1], json!(["idle", "IPv4", "<unset>", "<unset>", "2m"]));
}

#[test]
fn leases_show_their_holder() {
    let l = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": CREATED},
                   "spec": {"holderIdentity": "cp-1_abc"}});
    let (cols, rows) = print("coordination.k8s.io", "leases", &[l]);
    assert_eq!(names(&cols, 0), ["Name", "Holder", "Age"]);
    assert_eq!(rows[0], json!(["kube-scheduler", "cp-1_abc", "2m"]));
}

#[test]
fn roles_use_the_default_convertor_and_bindings_list_subjects() {
    let role = json!({"metadata": {"name": "view", "creationTimestamp": CREATED}, "rules": []});
    let (cols, rows) = print("rbac.authorization.k8s.io", "clusterroles", &[role]);
    assert_eq!(names(&cols, 0), ["Name", "Created At"]);
    assert_eq!(rows[0], json!(["view", CREATED]));
    let binding = json!({"metadata": {"name": "devs", "creationTimestamp": CREATED},
        "roleRef": {"kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                     {"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "namespace": "ci", "name": "helm"}]});
    for resource in ["rolebindings", "clusterrolebindings"] {
        let (cols, rows) = print(
            "rbac.authorization.k8s.io",
            resource,
            std::slice::from_ref(&binding),
        );
        assert_eq!(names(&cols, 0), ["Name", "Role", "Age"]);
        assert_eq!(names(&cols, 1), ["Users", "Groups", "ServiceAccounts"]);
        assert_eq!(
            rows[0],
            json!([
                "devs",
                "ClusterRole/edit",
                "2m",
                "alice, bob",
                "devs",
                "ci/helm"
            ])
        );
    }
}
