//! Storage, endpoints, leases and RBAC, after `printPersistentVolume`, `printPersistentVolumeClaim`,
//! `printStorageClass`, `printEndpoints`, `printEndpointSlice`, `printLease`, `printRoleBinding`
//! and `printClusterRoleBinding` (pkg/printers/internalversion/printers.go). Roles and
//! ClusterRoles have no printer: the apiserver's default table convertor shows `NAME CREATED AT`.
use super::super::{int_at, non_empty, str_at};
use super::{AGE, AGE_DOC, Column, NAME, Printer, age_cell, name_cell};
use serde_json::{Value, json};

const STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];
const RBAC: &str = "rbac.authorization.k8s.io";

const VOLUME_MODE: &str = "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.";
const VOLUME_ATTRIBUTES_CLASS: &str = "VolumeAttributesClass of the pv";
const CREATED_AT: Column = ("Created At", "date", "", 0, AGE_DOC);

const BINDING_COLUMNS: &[Column] = &[
    NAME,
    (
        "Role",
        "string",
        "",
        0,
        "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
    ),
    AGE,
    ("Users", "string", "", 1, "Users in the roleBinding"),
    ("Groups", "string", "", 1, "Groups in the roleBinding"),
    (
        "ServiceAccounts",
        "string",
        "",
        1,
        "ServiceAccounts in the roleBinding",
    ),
];

// One line per column, as the printers' column tables read.
#[rustfmt::skip]
pub(super) const PRINTERS: &[Printer] = &[
    Printer {
        group: "",
        resource: "persistentvolumes",
        columns: &[
            NAME,
            ("Capacity", "string", "", 0, "capacity is the description of the persistent volume's resources and capacity."),
            ("Access Modes", "string", "", 0, "accessModes contains all ways the volume can be mounted."),
            ("Reclaim Policy", "string", "", 0, "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated)."),
            ("Status", "string", "", 0, "phase indicates if a volume is available, bound to a claim, or released by a claim."),
            ("Claim", "string", "", 0, "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
            ("StorageClass", "string", "", 0, "StorageClass of the pv"),
            ("VolumeAttributesClass", "string", "", 0, VOLUME_ATTRIBUTES_CLASS),
            ("Reason", "string", "", 0, "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
            AGE,
            ("VolumeMode", "string", "", 1, VOLUME_MODE),
        ],
        cells: persistent_volume,
    },
    Printer {
        group: "",
        resource: "persistentvolumeclaims",
        columns: &[
            NAME,
            ("Status", "string", "", 0, "phase represents the current phase of PersistentVolumeClaim."),
            ("Volume", "string", "", 0, "volumeName is the binding reference to the PersistentVolume backing this claim."),
            ("Capacity", "string", "", 0, "capacity represents the actual resources of the underlying volume."),
            ("Access Modes", "string", "", 0, "accessModes contains the actual access modes the volume backing the PVC has."),
            ("StorageClass", "string", "", 0, "StorageClass of the pvc"),
            ("VolumeAttributesClass", "string", "", 0, "VolumeAttributesClass of the pvc"),
            AGE,
            ("VolumeMode", "string", "", 1, VOLUME_MODE),
        ],
        cells: claim,
    },
    Printer {
        group: "storage.k8s.io",
        resource: "storageclasses",
        columns: &[
            NAME,
            ("Provisioner", "string", "", 0, "provisioner indicates the type of the provisioner."),
            ("ReclaimPolicy", "string", "", 0, "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
            ("VolumeBindingMode", "string", "", 0, "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used."),
            ("AllowVolumeExpansion", "string", "", 0, "allowVolumeExpansion shows whether the storage class allow volume expand."),
            AGE,
        ],
        cells: storage_class,
    },
    Printer {
        group: "",
        resource: "endpoints",
        columns: &[NAME, ("Endpoints", "string", "", 0, "The set of all endpoints is the union of all subsets."), AGE],
        cells: endpoints,
    },
    Printer {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        columns: &[
            NAME,
            ("AddressType", "string", "", 0, "addressType specifies the type of address carried by this EndpointSlice."),
            ("Ports", "string", "", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),
            ("Endpoints", "string", "", 0, "endpoints is a list of unique endpoints in this slice."),
            AGE,
        ],
        cells: endpoint_slice,
    },
    Printer {
        group: "coordination.k8s.io",
        resource: "leases",
        columns: &[NAME, ("Holder", "string", "", 0, "holderIdentity contains the identity of the holder of a current lease."), AGE],
        cells: lease,
    },
    Printer { group: RBAC, resource: "roles", columns: &[NAME, CREATED_AT], cells: created_at },
    Printer { group: RBAC, resource: "clusterroles", columns: &[NAME, CREATED_AT], cells: created_at },
    Printer { group: RBAC, resource: "rolebindings", columns: BINDING_COLUMNS, cells: binding },
    Printer { group: RBAC, resource: "clusterrolebindings", columns: BINDING_COLUMNS, cells: binding },
];

/// `helper.GetAccessModesAsString`: the short names, in this order, each once.
fn access_modes(modes: Option<&Value>) -> String {
    let has = |m: &str| {
        modes
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == m))
    };
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| has(long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The beta annotation wins over `spec.storageClassName` (`GetPersistentVolume(Claim)Class`).
fn class_of(o: &Value) -> &str {
    let annotation = o
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(STORAGE_CLASS_ANNOTATION))
        .and_then(Value::as_str);
    annotation.unwrap_or_else(|| str_at(o, "/spec/storageClassName"))
}

fn or_unset(s: &str) -> &str {
    non_empty(s).unwrap_or("<unset>")
}

/// A phase, or `Terminating` once deletion started.
fn phase(o: &Value) -> &str {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        str_at(o, "/status/phase")
    }
}

fn persistent_volume(o: &Value, now: i64) -> Vec<Value> {
    let claim = match o.pointer("/spec/claimRef") {
        Some(c) if c.is_object() => format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name")),
        _ => String::new(),
    };
    vec![
        name_cell(o),
        json!(str_at(o, "/spec/capacity/storage")),
        json!(access_modes(o.pointer("/spec/accessModes"))),
        json!(str_at(o, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase(o)),
        json!(claim),
        json!(class_of(o)),
        json!(or_unset(str_at(o, "/spec/volumeAttributesClassName"))),
        json!(str_at(o, "/status/reason")),
        age_cell(o, now),
        json!(or_unset(str_at(o, "/spec/volumeMode"))),
    ]
}

fn claim(o: &Value, now: i64) -> Vec<Value> {
    // Capacity and access modes are the bound volume's, shown once the claim names one.
    let bound = !str_at(o, "/spec/volumeName").is_empty();
    let (capacity, modes) = if bound {
        (
            str_at(o, "/status/capacity/storage").to_string(),
            access_modes(o.pointer("/status/accessModes")),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        name_cell(o),
        json!(phase(o)),
        json!(str_at(o, "/spec/volumeName")),
        json!(capacity),
        json!(modes),
        json!(class_of(o)),
        json!(or_unset(str_at(o, "/spec/volumeAttributesClassName"))),
        age_cell(o, now),
        json!(or_unset(str_at(o, "/spec/volumeMode"))),
    ]
}

fn storage_class(o: &Value, now: i64) -> Vec<Value> {
    let is_default = DEFAULT_CLASS_ANNOTATIONS.iter().any(|a| {
        o.pointer("/metadata/annotations")
            .and_then(|m| m.get(*a))
            .is_some_and(|v| v == "true")
    });
    let mut name = str_at(o, "/metadata/name").to_string();
    if is_default {
        name.push_str(" (default)");
    }
    vec![
        json!(name),
        json!(str_at(o, "/provisioner")),
        json!(non_empty(str_at(o, "/reclaimPolicy")).unwrap_or("Delete")),
        json!(non_empty(str_at(o, "/volumeBindingMode")).unwrap_or("Immediate")),
        json!(
            o.get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        age_cell(o, now),
    ]
}

/// Shown addresses at most, then `+ N more...` (printers.go's `max`).
const MAX_LISTED: usize = 3;

/// `listWithMoreString`: the first few, then how many more; `<unset>` when empty.
fn listed(list: &[String], count: usize) -> String {
    let shown = list
        .iter()
        .take(MAX_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if count > MAX_LISTED {
        format!("{shown} + {} more...", count - MAX_LISTED)
    } else if shown.is_empty() {
        "<unset>".into()
    } else {
        shown
    }
}

fn array<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `formatEndpoints`: `ip:port` for each address and port, the first three, `<none>` without
/// subsets.
fn endpoints(o: &Value, now: i64) -> Vec<Value> {
    let subsets = array(o, "/subsets");
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let ips: Vec<&str> = array(ss, "/addresses")
            .iter()
            .map(|a| str_at(a, "/ip"))
            .collect();
        let ports = array(ss, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            count += ips.len();
            list.extend(ips.iter().map(|ip| ip.to_string()));
            continue;
        }
        for p in ports {
            count += ips.len();
            list.extend(ips.iter().map(|ip| host_port(ip, int_at(p, "/port"))));
        }
    }
    let cell = if subsets.is_empty() {
        "<none>".to_string()
    } else if count > MAX_LISTED {
        listed(&list, count)
    } else {
        list.join(",")
    };
    vec![name_cell(o), json!(cell), age_cell(o, now)]
}

/// `net.JoinHostPort`: IPv6 addresses in brackets.
fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn endpoint_slice(o: &Value, now: i64) -> Vec<Value> {
    let ports: Vec<String> = array(o, "/ports")
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => non_empty(str_at(p, "/name")).unwrap_or("*").to_string(),
        })
        .collect();
    let addresses: Vec<String> = array(o, "/endpoints")
        .iter()
        .flat_map(|e| array(e, "/addresses"))
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    vec![
        name_cell(o),
        json!(str_at(o, "/addressType")),
        json!(listed(&ports, ports.len())),
        json!(listed(&addresses, addresses.len())),
        age_cell(o, now),
    ]
}

fn lease(o: &Value, now: i64) -> Vec<Value> {
    vec![
        name_cell(o),
        json!(str_at(o, "/spec/holderIdentity")),
        age_cell(o, now),
    ]
}

/// The default table convertor: the name and the creation time as RFC 3339.
fn created_at(o: &Value, _now: i64) -> Vec<Value> {
    vec![
        name_cell(o),
        json!(str_at(o, "/metadata/creationTimestamp")),
    ]
}

/// `rbac.SubjectsStrings`: users, groups and `namespace/name` service accounts.
fn binding(o: &Value, now: i64) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(o, "/roleRef/kind"),
        str_at(o, "/roleRef/name")
    );
    let of_kind = |kind: &str| -> String {
        array(o, "/subjects")
            .iter()
            .filter(|s| str_at(s, "/kind") == kind)
            .map(|s| match kind {
                "ServiceAccount" => format!("{}/{}", str_at(s, "/namespace"), str_at(s, "/name")),
                _ => str_at(s, "/name").to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name_cell(o),
        json!(role),
        age_cell(o, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

#[cfg(test)]
#[path = "table_printers_cluster_tests.rs"]
mod tests;
