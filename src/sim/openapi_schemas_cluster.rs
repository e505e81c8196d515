//! core/v1 PersistentVolume, PersistentVolumeClaim and Endpoints; storage.k8s.io StorageClass;
//! discovery.k8s.io EndpointSlice; coordination.k8s.io Lease; rbac.authorization.k8s.io roles
//! and bindings: the fields `kubectl explain` shows and the list strategies apply needs.
use super::{
    CORE, META, array_of, boolean, enum_string, int, kind_schema, list_of, loose, object,
    opt_string, put, quantity_map, string, string_map, strings, time, to, with_required,
};
use serde_json::{Map, Value, json};

pub const STORAGE: &str = "io.k8s.api.storage.v1";
pub const DISCOVERY: &str = "io.k8s.api.discovery.v1";
pub const COORDINATION: &str = "io.k8s.api.coordination.v1";
pub const RBAC: &str = "io.k8s.api.rbac.v1";

const ACCESS_MODES_DOC: &str = "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes";

/// An array replaced as a whole by merges (`x-kubernetes-list-type: atomic`).
fn atomic_list(name: &str, desc: &str) -> Value {
    let mut v = list_of(name, desc);
    v["x-kubernetes-list-type"] = json!("atomic");
    v
}

fn micro_time(desc: &str) -> Value {
    json!({"description": desc, "allOf": [{"$ref": super::ref_path(&format!("{META}.MicroTime"))}]})
}

// The catalogue keeps one line per field, like the API reference it summarises.
#[rustfmt::skip]
pub fn schemas(m: &mut Map<String, Value>) {
    put(m, META, "MicroTime", json!({"type": "string", "format": "date-time", "description": "MicroTime is version of Time with microsecond level precision."}));
    storage(m);
    endpoints(m);
    put(m, COORDINATION, "Lease", kind_schema(
        "Lease defines a lease concept.",
        ("coordination.k8s.io", "v1", "Lease"),
        vec![("spec", to(&format!("{COORDINATION}.LeaseSpec"), "spec contains the specification of the Lease. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status"))],
    ));
    put(m, COORDINATION, "LeaseSpec", object("LeaseSpec is a specification of a Lease.", vec![
        ("acquireTime", micro_time("acquireTime is a time when the current lease was acquired.")),
        ("holderIdentity", opt_string("holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.")),
        ("leaseDurationSeconds", int("leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it. This is measured against the time of last observed renewTime.")),
        ("leaseTransitions", int("leaseTransitions is the number of transitions of a lease between holders.")),
        ("renewTime", micro_time("renewTime is a time when the current holder of a lease has last updated the lease.")),
    ]));
    rbac(m);
}

#[rustfmt::skip]
fn storage(m: &mut Map<String, Value>) {
    put(m, CORE, "PersistentVolume", kind_schema(
        "PersistentVolume (PV) is a storage resource provisioned by an administrator. It is analogous to a node. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes",
        ("", "v1", "PersistentVolume"),
        vec![
            ("spec", to(&format!("{CORE}.PersistentVolumeSpec"), "spec defines a specification of a persistent volume owned by the cluster. Provisioned by an administrator. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#persistent-volumes")),
            ("status", object("PersistentVolumeStatus is the current status of a persistent volume.", vec![
                ("lastPhaseTransitionTime", time("lastPhaseTransitionTime is the time the phase transitioned from one to another and automatically resets to current time everytime a volume phase transitions.")),
                ("message", opt_string("message is a human-readable message indicating details about why the volume is in this state.")),
                ("phase", enum_string("phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase", &["Available", "Bound", "Failed", "Pending", "Released"])),
                ("reason", opt_string("reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.")),
            ])),
        ],
    ));
    put(m, CORE, "PersistentVolumeSpec", object("PersistentVolumeSpec is the specification of a persistent volume.", vec![
        ("accessModes", strings(ACCESS_MODES_DOC)),
        ("capacity", quantity_map("capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity")),
        ("claimRef", json!({"description": "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC.", "allOf": [{"$ref": super::ref_path(&format!("{CORE}.ObjectReference"))}], "x-kubernetes-map-type": "granular"})),
        ("csi", loose("csi represents storage that is handled by an external CSI driver.")),
        ("hostPath", loose("hostPath represents a directory on the host. Provisioned by a developer or tester. This is useful for single-node development and testing only!")),
        ("local", loose("local represents directly-attached storage with node affinity")),
        ("mountOptions", strings("mountOptions is the list of mount options, e.g. [\"ro\", \"soft\"]. Not validated - mount will simply fail if one is invalid.")),
        ("nfs", loose("nfs represents an NFS mount on the host. Provisioned by an admin. More info: https://kubernetes.io/docs/concepts/storage/volumes#nfs")),
        ("nodeAffinity", loose("nodeAffinity defines constraints that limit what nodes this volume can be accessed from.")),
        ("persistentVolumeReclaimPolicy", enum_string("persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated).", &["Delete", "Recycle", "Retain"])),
        ("storageClassName", opt_string("storageClassName is the name of StorageClass to which this persistent volume belongs. Empty value means that this volume does not belong to any StorageClass.")),
        ("volumeAttributesClassName", opt_string("Name of VolumeAttributesClass to which this persistent volume belongs.")),
        ("volumeMode", enum_string("volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.", &["Block", "Filesystem"])),
    ]));
    put(m, CORE, "PersistentVolumeClaim", kind_schema(
        "PersistentVolumeClaim is a user's request for and claim to a persistent volume",
        ("", "v1", "PersistentVolumeClaim"),
        vec![
            ("spec", to(&format!("{CORE}.PersistentVolumeClaimSpec"), "spec defines the desired characteristics of a volume requested by a pod author. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#persistentvolumeclaims")),
            ("status", object("PersistentVolumeClaimStatus is the current status of a persistent volume claim.", vec![
                ("accessModes", strings("accessModes contains the actual access modes the volume backing the PVC has.")),
                ("capacity", quantity_map("capacity represents the actual resources of the underlying volume.")),
                ("phase", enum_string("phase represents the current phase of PersistentVolumeClaim.", &["Bound", "Lost", "Pending"])),
            ])),
        ],
    ));
    put(m, CORE, "PersistentVolumeClaimSpec", object("PersistentVolumeClaimSpec describes the common attributes of storage devices and allows a Source for provider-specific attributes", vec![
        ("accessModes", strings("accessModes contains the desired access modes the volume should have. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1")),
        ("dataSource", loose("dataSource field can be used to specify either an existing VolumeSnapshot object or an existing PVC.")),
        ("resources", object("VolumeResourceRequirements describes the storage resource requirements for a volume.", vec![
            ("limits", quantity_map("Limits describes the maximum amount of compute resources allowed.")),
            ("requests", quantity_map("Requests describes the minimum amount of compute resources required.")),
        ])),
        ("selector", to(&format!("{META}.LabelSelector"), "selector is a label query over volumes to consider for binding.")),
        ("storageClassName", opt_string("storageClassName is the name of the StorageClass required by the claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#class-1")),
        ("volumeAttributesClassName", opt_string("volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.")),
        ("volumeMode", enum_string("volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.", &["Block", "Filesystem"])),
        ("volumeName", opt_string("volumeName is the binding reference to the PersistentVolume backing this claim.")),
    ]));
    put(m, STORAGE, "StorageClass", with_required(kind_schema(
        "StorageClass describes the parameters for a class of storage for which PersistentVolumes can be dynamically provisioned.\n\nStorageClasses are non-namespaced; the name of the storage class according to etcd is in ObjectMeta.Name.",
        ("storage.k8s.io", "v1", "StorageClass"),
        vec![
            ("allowVolumeExpansion", boolean("allowVolumeExpansion shows whether the storage class allow volume expand.")),
            ("allowedTopologies", array_of(loose("A topology selector term represents the result of label queries."), "allowedTopologies restrict the node topologies where volumes can be dynamically provisioned.")),
            ("mountOptions", strings("mountOptions controls the mountOptions for dynamically provisioned PersistentVolumes of this storage class. e.g. [\"ro\", \"soft\"].")),
            ("parameters", string_map("parameters holds the parameters for the provisioner that should create volumes of this storage class.")),
            ("provisioner", string("provisioner indicates the type of the provisioner.")),
            ("reclaimPolicy", enum_string("reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.", &["Delete", "Recycle", "Retain"])),
            ("volumeBindingMode", enum_string("volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used.", &["Immediate", "WaitForFirstConsumer"])),
        ],
    ), &["provisioner"]));
}

#[rustfmt::skip]
fn endpoints(m: &mut Map<String, Value>) {
    put(m, CORE, "Endpoints", kind_schema(
        "Endpoints is a collection of endpoints that implement the actual service.",
        ("", "v1", "Endpoints"),
        vec![("subsets", atomic_list(&format!("{CORE}.EndpointSubset"), "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share."))],
    ));
    put(m, CORE, "EndpointSubset", object("EndpointSubset is a group of addresses with a common set of ports.", vec![
        ("addresses", atomic_list(&format!("{CORE}.EndpointAddress"), "IP addresses which offer the related ports that are marked as ready.")),
        ("notReadyAddresses", atomic_list(&format!("{CORE}.EndpointAddress"), "IP addresses which offer the related ports but are not currently marked as ready because they have not yet finished starting, have recently failed a readiness check, or have recently failed a liveness check.")),
        ("ports", atomic_list(&format!("{CORE}.EndpointPort"), "Port numbers available on the related IP addresses.")),
    ]));
    put(m, CORE, "EndpointAddress", with_required(object("EndpointAddress is a tuple that describes single IP address.", vec![
        ("hostname", opt_string("The Hostname of this endpoint")),
        ("ip", string("The IP of this endpoint.")),
        ("nodeName", opt_string("Optional: Node hosting this endpoint.")),
        ("targetRef", to(&format!("{CORE}.ObjectReference"), "Reference to object providing the endpoint.")),
    ]), &["ip"]));
    put(m, CORE, "EndpointPort", with_required(object("EndpointPort is a tuple that describes a single port.", vec![
        ("appProtocol", opt_string("The application protocol for this port.")),
        ("name", opt_string("The name of this port.  This must match the 'name' field in the corresponding ServicePort.")),
        ("port", int("The port number of the endpoint.")),
        ("protocol", enum_string("The IP protocol for this port. Must be UDP, TCP, or SCTP. Default is TCP.", &["SCTP", "TCP", "UDP"])),
    ]), &["port"]));
    put(m, DISCOVERY, "EndpointSlice", with_required(kind_schema(
        "EndpointSlice represents a subset of the endpoints that implement a service.",
        ("discovery.k8s.io", "v1", "EndpointSlice"),
        vec![
            ("addressType", string("addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. Supported types are IPv4, IPv6 and FQDN.")),
            ("endpoints", atomic_list(&format!("{DISCOVERY}.Endpoint"), "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.")),
            ("ports", atomic_list(&format!("{DISCOVERY}.EndpointPort"), "ports specifies the list of network ports exposed by each endpoint in this slice.")),
        ],
    ), &["addressType", "endpoints"]));
    put(m, DISCOVERY, "Endpoint", with_required(object("Endpoint represents a single logical \"backend\" implementing a service.", vec![
        ("addresses", json!({"type": "array", "description": "addresses of this endpoint. For EndpointSlices of addressType \"IPv4\" or \"IPv6\", the values are IP addresses in canonical form.", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set"})),
        ("conditions", object("EndpointConditions represents the current condition of an endpoint.", vec![
            ("ready", boolean("ready indicates that this endpoint is ready to receive traffic, according to whatever system is managing the endpoint.")),
            ("serving", boolean("serving indicates that this endpoint is able to receive traffic, according to whatever system is managing the endpoint.")),
            ("terminating", boolean("terminating indicates that this endpoint is terminating.")),
        ])),
        ("hostname", opt_string("hostname of this endpoint.")),
        ("nodeName", opt_string("nodeName represents the name of the Node hosting this endpoint.")),
        ("targetRef", to(&format!("{CORE}.ObjectReference"), "targetRef is a reference to a Kubernetes object that represents this endpoint.")),
        ("zone", opt_string("zone is the name of the Zone this endpoint exists in.")),
    ]), &["addresses"]));
    put(m, DISCOVERY, "EndpointPort", object("EndpointPort represents a Port used by an EndpointSlice", vec![
        ("appProtocol", opt_string("The application protocol for this port.")),
        ("name", opt_string("name represents the name of this port. All ports in an EndpointSlice must have a unique name.")),
        ("port", int("port represents the port number of the endpoint. If the EndpointSlice is derived from a Kubernetes service, this must be set to the service's target port.")),
        ("protocol", enum_string("protocol represents the IP protocol for this port. Must be UDP, TCP, or SCTP. Default is TCP.", &["SCTP", "TCP", "UDP"])),
    ]));
}

#[rustfmt::skip]
fn rbac(m: &mut Map<String, Value>) {
    let rules = || atomic_list(&format!("{RBAC}.PolicyRule"), "Rules holds all the PolicyRules for this Role");
    let role_ref = || to(&format!("{RBAC}.RoleRef"), "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.");
    let subjects = || atomic_list(&format!("{RBAC}.Subject"), "Subjects holds references to the objects the role applies to.");
    put(m, RBAC, "Role", kind_schema(
        "Role is a namespaced, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding.",
        ("rbac.authorization.k8s.io", "v1", "Role"),
        vec![("rules", rules())],
    ));
    put(m, RBAC, "ClusterRole", kind_schema(
        "ClusterRole is a cluster level, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding or ClusterRoleBinding.",
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
        vec![
            ("aggregationRule", object("AggregationRule describes how to locate ClusterRoles to aggregate into the ClusterRole", vec![
                ("clusterRoleSelectors", atomic_list(&format!("{META}.LabelSelector"), "ClusterRoleSelectors holds a list of selectors which will be used to find ClusterRoles and create the rules.")),
            ])),
            ("rules", rules()),
        ],
    ));
    put(m, RBAC, "RoleBinding", with_required(kind_schema(
        "RoleBinding references a role, but does not contain it.  It can reference a Role in the same namespace or a ClusterRole in the global namespace.",
        ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
        vec![("roleRef", role_ref()), ("subjects", subjects())],
    ), &["roleRef"]));
    put(m, RBAC, "ClusterRoleBinding", with_required(kind_schema(
        "ClusterRoleBinding references a ClusterRole, but not contain it.  It can reference a ClusterRole in the global namespace, and adds who information via Subject.",
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
        vec![("roleRef", role_ref()), ("subjects", subjects())],
    ), &["roleRef"]));
    put(m, RBAC, "PolicyRule", with_required(object("PolicyRule holds information that describes a policy rule, but does not contain information about who the rule applies to or which namespace the rule applies to.", vec![
        ("apiGroups", strings("APIGroups is the name of the APIGroup that contains the resources.  If multiple API groups are specified, any action requested against one of the enumerated resources in any API group will be allowed. \"\" represents the core API group and \"*\" represents all API groups.")),
        ("nonResourceURLs", strings("NonResourceURLs is a set of partial urls that a user should have access to.  *s are allowed, but only as the full, final step in the path.")),
        ("resourceNames", strings("ResourceNames is an optional white list of names that the rule applies to.  An empty set means that everything is allowed.")),
        ("resources", strings("Resources is a list of resources this rule applies to. '*' represents all resources.")),
        ("verbs", strings("Verbs is a list of Verbs that apply to ALL the ResourceKinds contained in this rule. '*' represents all verbs.")),
    ]), &["verbs"]));
    put(m, RBAC, "RoleRef", with_required(object("RoleRef contains information that points to the role being used", vec![
        ("apiGroup", string("APIGroup is the group for the resource being referenced")),
        ("kind", string("Kind is the type of resource being referenced")),
        ("name", string("Name is the name of resource being referenced")),
    ]), &["apiGroup", "kind", "name"]));
    put(m, RBAC, "Subject", with_required(object("Subject contains a reference to the object or user identities a role binding applies to.  This can either hold a direct API object reference, or a value for non-objects such as user and group names.", vec![
        ("apiGroup", opt_string("APIGroup holds the API group of the referenced subject. Defaults to \"\" for ServiceAccount subjects. Defaults to \"rbac.authorization.k8s.io\" for User and Group subjects.")),
        ("kind", string("Kind of object being referenced. Values defined by this API group are \"User\", \"Group\", and \"ServiceAccount\".")),
        ("name", string("Name of the object being referenced.")),
        ("namespace", opt_string("Namespace of the referenced object.  If the object kind is non-namespace, such as \"User\" or \"Group\", and this value is not empty the Validator will reject it.")),
    ]), &["kind", "name"]));
}
