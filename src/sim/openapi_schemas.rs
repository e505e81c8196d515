//! The emulator's hand-written schema catalogue: the fields kubectl explain shows and the patch
//! strategies strategic merge needs, named like the apiserver's `components.schemas`. A compact
//! subset, not a copy of the upstream spec: unknown fields are kept (`x-kubernetes-preserve-
//! unknown-fields` where a type is only sketched).
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

pub const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
pub const CORE: &str = "io.k8s.api.core.v1";
pub const APPS: &str = "io.k8s.api.apps.v1";
pub const APIEXT: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1";
pub const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
pub const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";

#[path = "openapi_schemas_cluster.rs"]
mod cluster;
#[path = "openapi_schemas_workloads.rs"]
mod workloads;

pub fn ref_path(name: &str) -> String {
    format!("#/components/schemas/{name}")
}

fn string(desc: &str) -> Value {
    json!({"type": "string", "description": desc, "default": ""})
}

fn opt_string(desc: &str) -> Value {
    json!({"type": "string", "description": desc})
}

fn enum_string(desc: &str, values: &[&str]) -> Value {
    json!({"type": "string", "description": desc, "enum": values})
}

fn int(desc: &str) -> Value {
    json!({"type": "integer", "format": "int32", "description": desc})
}

fn int64(desc: &str) -> Value {
    json!({"type": "integer", "format": "int64", "description": desc})
}

fn boolean(desc: &str) -> Value {
    json!({"type": "boolean", "description": desc})
}

fn time(desc: &str) -> Value {
    json!({"description": desc, "allOf": [{"$ref": ref_path(&format!("{META}.Time"))}]})
}

/// A field whose type is another schema (upstream wraps refs in `allOf` to add a description).
fn to(name: &str, desc: &str) -> Value {
    json!({"description": desc, "default": {}, "allOf": [{"$ref": ref_path(name)}]})
}

fn array_of(item: Value, desc: &str) -> Value {
    json!({"type": "array", "description": desc, "items": item})
}

fn list_of(name: &str, desc: &str) -> Value {
    array_of(
        json!({"default": {}, "allOf": [{"$ref": ref_path(name)}]}),
        desc,
    )
}

fn strings(desc: &str) -> Value {
    array_of(json!({"type": "string", "default": ""}), desc)
}

/// A list merged by `key` in strategic merge patches (and a map-list for server-side apply).
fn merge_list(name: &str, key: &str, desc: &str) -> Value {
    let mut v = list_of(name, desc);
    if let Some(o) = v.as_object_mut() {
        o.insert("x-kubernetes-patch-merge-key".into(), key.into());
        o.insert("x-kubernetes-patch-strategy".into(), "merge".into());
        o.insert("x-kubernetes-list-type".into(), "map".into());
        o.insert("x-kubernetes-list-map-keys".into(), json!([key]));
    }
    v
}

fn string_map(desc: &str) -> Value {
    json!({"type": "object", "description": desc, "additionalProperties": {"type": "string", "default": ""}})
}

fn quantity_map(desc: &str) -> Value {
    json!({"type": "object", "description": desc,
           "additionalProperties": {"$ref": ref_path(QUANTITY)}})
}

/// An object whose fields are only sketched: any further field is accepted and kept.
fn loose(desc: &str) -> Value {
    json!({"type": "object", "description": desc, "x-kubernetes-preserve-unknown-fields": true})
}

fn object(desc: &str, props: Vec<(&str, Value)>) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert(k.into(), v);
    }
    json!({"type": "object", "description": desc, "properties": p})
}

fn with_required(mut v: Value, required: &[&str]) -> Value {
    v["required"] = json!(required);
    v
}

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DOC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const SPEC_DOC: &str = "Specification of the desired behavior of the object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status";
const STATUS_DOC: &str = "Most recently observed status of the object. This data may not be up to date. Populated by the system. Read-only. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#spec-and-status";

/// A top-level kind: apiVersion, kind, metadata, then its own fields; tagged with its GVK.
pub fn kind_schema(desc: &str, gvk: (&str, &str, &str), mut fields: Vec<(&str, Value)>) -> Value {
    let mut props = vec![
        ("apiVersion", opt_string(API_VERSION_DOC)),
        ("kind", opt_string(KIND_DOC)),
        ("metadata", to(&format!("{META}.ObjectMeta"), METADATA_DOC)),
    ];
    props.append(&mut fields);
    let mut v = object(desc, props);
    v["x-kubernetes-group-version-kind"] =
        json!([{"group": gvk.0, "kind": gvk.2, "version": gvk.1}]);
    v
}

/// `<Kind>List`: items of `item` plus ListMeta.
pub fn list_schema(item: &str, gvk: (&str, &str, &str)) -> Value {
    let mut v = with_required(
        object(
            &format!("{} is a list of {}.", gvk.2, gvk.2.trim_end_matches("List")),
            vec![
                ("apiVersion", opt_string(API_VERSION_DOC)),
                ("items", list_of(item, "List of objects.")),
                ("kind", opt_string(KIND_DOC)),
                (
                    "metadata",
                    to(
                        &format!("{META}.ListMeta"),
                        "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                    ),
                ),
            ],
        ),
        &["items"],
    );
    v["x-kubernetes-group-version-kind"] =
        json!([{"group": gvk.0, "kind": gvk.2, "version": gvk.1}]);
    v
}

/// Every built-in schema by its upstream name, built once.
pub fn builtin() -> &'static Map<String, Value> {
    static SCHEMAS: OnceLock<Map<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut m = Map::new();
        meta_schemas(&mut m);
        pod_schemas(&mut m);
        core_schemas(&mut m);
        apps_schemas(&mut m);
        apiext_schemas(&mut m);
        workloads::schemas(&mut m);
        cluster::schemas(&mut m);
        m
    })
}

fn put(m: &mut Map<String, Value>, prefix: &str, name: &str, v: Value) {
    m.insert(format!("{prefix}.{name}"), v);
}

// The catalogue below keeps one line per field, like the API reference it summarises; rustfmt
// would spread every field over five lines.

#[rustfmt::skip]
fn meta_schemas(m: &mut Map<String, Value>) {
    put(m, META, "Time", json!({"type": "string", "format": "date-time", "description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON."}));
    m.insert(QUANTITY.into(), json!({"type": "string", "description": "Quantity is a fixed-point representation of a number (e.g. 100m, 128Mi, 2)."}));
    m.insert(INT_OR_STRING.into(), json!({"type": "string", "format": "int-or-string", "description": "IntOrString is a type that can hold an int32 or a string."}));
    put(m, META, "Patch", json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}));
    put(m, META, "ObjectMeta", object(
        "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        vec![
            ("annotations", string_map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations")),
            ("creationTimestamp", time("CreationTimestamp is a timestamp representing the server time when this object was created. Populated by the system. Read-only.")),
            ("deletionGracePeriodSeconds", int64("Number of seconds allowed for this object to gracefully terminate before it will be removed from the system.")),
            ("deletionTimestamp", time("DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted. Populated by the system when a graceful deletion is requested. Read-only.")),
            ("finalizers", json!({"type": "array", "description": "Must be empty before the object is deleted from the registry.", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"})),
            ("generateName", opt_string("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided.")),
            ("generation", int64("A sequence number representing a specific generation of the desired state. Populated by the system. Read-only.")),
            ("labels", string_map("Map of string keys and values that can be used to organize and categorize (scope and select) objects. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels")),
            ("managedFields", array_of(loose("ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the fieldset applies to."), "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.")),
            ("name", opt_string("Name must be unique within a namespace. Is required when creating resources. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")),
            ("namespace", opt_string("Namespace defines the space within which each name must be unique. An empty namespace is equivalent to the \"default\" namespace. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces")),
            ("ownerReferences", json!({"type": "array", "description": "List of objects depended by this object. If ALL objects in the list have been deleted, this object will be garbage collected.", "items": {"default": {}, "allOf": [{"$ref": ref_path(&format!("{META}.OwnerReference"))}]}, "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"})),
            ("resourceVersion", opt_string("An opaque value that represents the internal version of this object that can be used by clients to determine when objects have changed. Populated by the system. Read-only.")),
            ("selfLink", opt_string("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.")),
            ("uid", opt_string("UID is the unique in time and space value for this object. Populated by the system. Read-only.")),
        ],
    ));
    put(m, META, "ListMeta", object(
        "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
        vec![
            ("continue", opt_string("continue may be set if the user set a limit on the number of items returned, and indicates that the server has more data available.")),
            ("remainingItemCount", int64("remainingItemCount is the number of subsequent items in the list which are not included in this list response.")),
            ("resourceVersion", opt_string("String that identifies the server's internal version of this object that can be used by clients to determine when objects have changed.")),
            ("selfLink", opt_string("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.")),
        ],
    ));
    put(m, META, "OwnerReference", with_required(object(
        "OwnerReference contains enough information to let you identify an owning object.",
        vec![
            ("apiVersion", string("API version of the referent.")),
            ("blockOwnerDeletion", boolean("If true, AND if the owner has the \"foregroundDeletion\" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed.")),
            ("controller", boolean("If true, this reference points to the managing controller.")),
            ("kind", string("Kind of the referent.")),
            ("name", string("Name of the referent.")),
            ("uid", string("UID of the referent.")),
        ],
    ), &["apiVersion", "kind", "name", "uid"]));
    put(m, META, "LabelSelector", json!({
        "type": "object",
        "description": "A label selector is a label query over a set of resources. An empty label selector matches all objects. A null label selector matches no objects.",
        "properties": {
            "matchExpressions": list_of(&format!("{META}.LabelSelectorRequirement"), "matchExpressions is a list of label selector requirements. The requirements are ANDed."),
            "matchLabels": string_map("matchLabels is a map of {key,value} pairs."),
        },
        "x-kubernetes-map-type": "atomic",
    }));
    put(m, META, "LabelSelectorRequirement", with_required(object(
        "A label selector requirement is a selector that contains values, a key, and an operator that relates the key and values.",
        vec![
            ("key", string("key is the label key that the selector applies to.")),
            ("operator", string("operator represents a key's relationship to a set of values. Valid operators are In, NotIn, Exists and DoesNotExist.")),
            ("values", strings("values is an array of string values.")),
        ],
    ), &["key", "operator"]));
}

#[rustfmt::skip]
fn pod_schemas(m: &mut Map<String, Value>) {
    put(m, CORE, "Pod", kind_schema(
        "Pod is a collection of containers that can run on a host. This resource is created by clients and scheduled onto hosts.",
        ("", "v1", "Pod"),
        vec![
            ("spec", to(&format!("{CORE}.PodSpec"), SPEC_DOC)),
            ("status", to(&format!("{CORE}.PodStatus"), STATUS_DOC)),
        ],
    ));
    put(m, CORE, "PodTemplateSpec", object(
        "PodTemplateSpec describes the data a pod should have when created from a template",
        vec![
            ("metadata", to(&format!("{META}.ObjectMeta"), METADATA_DOC)),
            ("spec", to(&format!("{CORE}.PodSpec"), "Specification of the desired behavior of the pod.")),
        ],
    ));
    put(m, CORE, "PodSpec", with_required(object(
        "PodSpec is a description of a pod.",
        vec![
            ("affinity", loose("If specified, the pod's scheduling constraints")),
            ("automountServiceAccountToken", boolean("AutomountServiceAccountToken indicates whether a service account token should be automatically mounted.")),
            ("containers", merge_list(&format!("{CORE}.Container"), "name", "List of containers belonging to the pod. Containers cannot currently be added or removed. There must be at least one container in a Pod. Cannot be updated.")),
            ("dnsPolicy", enum_string("Set DNS policy for the pod. Defaults to \"ClusterFirst\".", &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"])),
            ("enableServiceLinks", boolean("EnableServiceLinks indicates whether information about services should be injected into pod's environment variables.")),
            ("hostNetwork", boolean("Host networking requested for this pod. Default to false.")),
            ("imagePullSecrets", merge_list(&format!("{CORE}.LocalObjectReference"), "name", "ImagePullSecrets is an optional list of references to secrets in the same namespace to use for pulling any of the images used by this PodSpec.")),
            ("initContainers", merge_list(&format!("{CORE}.Container"), "name", "List of initialization containers belonging to the pod. Init containers are executed in order prior to containers being started.")),
            ("nodeName", opt_string("NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName.")),
            ("nodeSelector", json!({"type": "object", "description": "NodeSelector is a selector which must be true for the pod to fit on a node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/", "additionalProperties": {"type": "string", "default": ""}, "x-kubernetes-map-type": "atomic"})),
            ("priority", int("The priority value. Various system components use this field to find the priority of the pod.")),
            ("priorityClassName", opt_string("If specified, indicates the pod's priority.")),
            ("readinessGates", list_of(&format!("{CORE}.PodReadinessGate"), "If specified, all readiness gates will be evaluated for pod readiness.")),
            ("restartPolicy", enum_string("Restart policy for all containers within the pod. One of Always, OnFailure, Never. Default to Always.", &["Always", "Never", "OnFailure"])),
            ("schedulerName", opt_string("If specified, the pod will be dispatched by specified scheduler.")),
            ("securityContext", loose("SecurityContext holds pod-level security attributes and common container settings.")),
            ("serviceAccountName", opt_string("ServiceAccountName is the name of the ServiceAccount to use to run this pod. More info: https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/")),
            ("terminationGracePeriodSeconds", int64("Optional duration in seconds the pod needs to terminate gracefully.")),
            ("tolerations", list_of(&format!("{CORE}.Toleration"), "If specified, the pod's tolerations.")),
            ("volumes", json!({"type": "array", "description": "List of volumes that can be mounted by containers belonging to the pod. More info: https://kubernetes.io/docs/concepts/storage/volumes", "items": {"default": {}, "allOf": [{"$ref": ref_path(&format!("{CORE}.Volume"))}]}, "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge,retainKeys"})),
        ],
    ), &["containers"]));
    put(m, CORE, "Container", with_required(object(
        "A single application container that you want to run within a pod.",
        vec![
            ("args", strings("Arguments to the entrypoint. The container image's CMD is used if this is not provided.")),
            ("command", strings("Entrypoint array. Not executed within a shell. The container image's ENTRYPOINT is used if this is not provided.")),
            ("env", merge_list(&format!("{CORE}.EnvVar"), "name", "List of environment variables to set in the container. Cannot be updated.")),
            ("envFrom", array_of(loose("EnvFromSource represents the source of a set of ConfigMaps or Secrets"), "List of sources to populate environment variables in the container.")),
            ("image", opt_string("Container image name. More info: https://kubernetes.io/docs/concepts/containers/images")),
            ("imagePullPolicy", enum_string("Image pull policy. One of Always, Never, IfNotPresent. Defaults to Always if :latest tag is specified, or IfNotPresent otherwise.", &["Always", "IfNotPresent", "Never"])),
            ("livenessProbe", loose("Periodic probe of container liveness. Container will be restarted if the probe fails.")),
            ("name", string("Name of the container specified as a DNS_LABEL. Each container in a pod must have a unique name (DNS_LABEL). Cannot be updated.")),
            ("ports", json!({"type": "array", "description": "List of ports to expose from the container.", "items": {"default": {}, "allOf": [{"$ref": ref_path(&format!("{CORE}.ContainerPort"))}]}, "x-kubernetes-list-map-keys": ["containerPort", "protocol"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "containerPort", "x-kubernetes-patch-strategy": "merge"})),
            ("readinessProbe", loose("Periodic probe of container service readiness. Container will be removed from service endpoints if the probe fails.")),
            ("resources", to(&format!("{CORE}.ResourceRequirements"), "Compute Resources required by this container. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/")),
            ("securityContext", loose("SecurityContext defines the security options the container should be run with.")),
            ("terminationMessagePath", opt_string("Optional: Path at which the file to which the container's termination message will be written is mounted into the container's filesystem.")),
            ("terminationMessagePolicy", enum_string("Indicate how the termination message should be populated.", &["FallbackToLogsOnError", "File"])),
            ("volumeMounts", merge_list(&format!("{CORE}.VolumeMount"), "mountPath", "Pod volumes to mount into the container's filesystem. Cannot be updated.")),
            ("workingDir", opt_string("Container's working directory.")),
        ],
    ), &["name"]));
    put(m, CORE, "ContainerPort", with_required(object(
        "ContainerPort represents a network port in a single container.",
        vec![
            ("containerPort", int("Number of port to expose on the pod's IP address. This must be a valid port number, 0 < x < 65536.")),
            ("hostPort", int("Number of port to expose on the host.")),
            ("name", opt_string("If specified, this must be an IANA_SVC_NAME and unique within the pod.")),
            ("protocol", enum_string("Protocol for port. Must be UDP, TCP, or SCTP. Defaults to \"TCP\".", &["SCTP", "TCP", "UDP"])),
        ],
    ), &["containerPort"]));
    put(m, CORE, "EnvVar", with_required(object(
        "EnvVar represents an environment variable present in a Container.",
        vec![
            ("name", string("Name of the environment variable. Must be a C_IDENTIFIER.")),
            ("value", opt_string("Variable references $(VAR_NAME) are expanded using the previously defined environment variables in the container and any service environment variables.")),
            ("valueFrom", loose("Source for the environment variable's value. Cannot be used if value is not empty.")),
        ],
    ), &["name"]));
    put(m, CORE, "ResourceRequirements", object(
        "ResourceRequirements describes the compute resource requirements.",
        vec![
            ("limits", quantity_map("Limits describes the maximum amount of compute resources allowed. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/")),
            ("requests", quantity_map("Requests describes the minimum amount of compute resources required. More info: https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/")),
        ],
    ));
    put(m, CORE, "VolumeMount", with_required(object(
        "VolumeMount describes a mounting of a Volume within a container.",
        vec![
            ("mountPath", string("Path within the container at which the volume should be mounted. Must not contain ':'.")),
            ("name", string("This must match the Name of a Volume.")),
            ("readOnly", boolean("Mounted read-only if true, read-write otherwise (false or unspecified). Defaults to false.")),
            ("subPath", opt_string("Path within the volume from which the container's volume should be mounted.")),
        ],
    ), &["name", "mountPath"]));
    let mut volume = with_required(object(
        "Volume represents a named volume in a pod that may be accessed by any container in the pod.",
        vec![
            ("name", string("name of the volume. Must be a DNS_LABEL and unique within the pod. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")),
            ("configMap", loose("configMap represents a configMap that should populate this volume")),
            ("emptyDir", loose("emptyDir represents a temporary directory that shares a pod's lifetime.")),
            ("hostPath", loose("hostPath represents a pre-existing file or directory on the host machine that is directly exposed to the container.")),
            ("persistentVolumeClaim", loose("persistentVolumeClaimVolumeSource represents a reference to a PersistentVolumeClaim in the same namespace.")),
            ("projected", loose("projected items for all in one resources secrets, configmaps, and downward API")),
            ("secret", loose("secret represents a secret that should populate this volume. More info: https://kubernetes.io/docs/concepts/storage/volumes#secret")),
        ],
    ), &["name"]);
    volume["x-kubernetes-preserve-unknown-fields"] = json!(true);
    put(m, CORE, "Volume", volume);
    put(m, CORE, "LocalObjectReference", object(
        "LocalObjectReference contains enough information to let you locate the referenced object inside the same namespace.",
        vec![("name", opt_string("Name of the referent."))],
    ));
    put(m, CORE, "PodReadinessGate", with_required(object(
        "PodReadinessGate contains the reference to a pod condition",
        vec![("conditionType", string("ConditionType refers to a condition in the pod's condition list with matching type."))],
    ), &["conditionType"]));
    put(m, CORE, "Toleration", object(
        "The pod this Toleration is attached to tolerates any taint that matches the triple <key,value,effect> using the matching operator <operator>.",
        vec![
            ("effect", enum_string("Effect indicates the taint effect to match. Empty means match all taint effects.", &["NoExecute", "NoSchedule", "PreferNoSchedule"])),
            ("key", opt_string("Key is the taint key that the toleration applies to. Empty means match all taint keys.")),
            ("operator", enum_string("Operator represents a key's relationship to the value.", &["Equal", "Exists"])),
            ("tolerationSeconds", int64("TolerationSeconds represents the period of time the toleration tolerates the taint.")),
            ("value", opt_string("Value is the taint value the toleration matches to.")),
        ],
    ));
    put(m, CORE, "PodStatus", object(
        "PodStatus represents information about the status of a pod. Status may trail the actual state of a system, especially if the node that hosts the pod cannot contact the control plane.",
        vec![
            ("conditions", merge_list(&format!("{CORE}.PodCondition"), "type", "Current service state of pod. More info: https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle#pod-conditions")),
            ("containerStatuses", list_of(&format!("{CORE}.ContainerStatus"), "The list has one entry per container in the manifest.")),
            ("hostIP", opt_string("hostIP holds the IP address of the host to which the pod is assigned.")),
            ("message", opt_string("A human readable message indicating details about why the pod is in this condition.")),
            ("nominatedNodeName", opt_string("nominatedNodeName is set only when this pod preempts other pods on the node.")),
            ("phase", enum_string("The phase of a Pod is a simple, high-level summary of where the Pod is in its lifecycle.", &["Failed", "Pending", "Running", "Succeeded", "Unknown"])),
            ("podIP", opt_string("podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.")),
            ("qosClass", enum_string("The Quality of Service (QOS) classification assigned to the pod based on resource requirements.", &["BestEffort", "Burstable", "Guaranteed"])),
            ("reason", opt_string("A brief CamelCase message indicating details about why the pod is in this state. e.g. 'Evicted'")),
            ("startTime", time("RFC 3339 date and time at which the object was acknowledged by the Kubelet.")),
        ],
    ));
    put(m, CORE, "PodCondition", with_required(object(
        "PodCondition contains details for the current condition of this pod.",
        vec![
            ("lastProbeTime", time("Last time we probed the condition.")),
            ("lastTransitionTime", time("Last time the condition transitioned from one status to another.")),
            ("message", opt_string("Human-readable message indicating details about last transition.")),
            ("reason", opt_string("Unique, one-word, CamelCase reason for the condition's last transition.")),
            ("status", string("Status is the status of the condition. Can be True, False, Unknown.")),
            ("type", string("Type is the type of the condition.")),
        ],
    ), &["type", "status"]));
    let mut cs = with_required(object(
        "ContainerStatus contains details for the current status of this container.",
        vec![
            ("containerID", opt_string("ContainerID is the ID of the container in the format '<type>://<container_id>'.")),
            ("image", string("Image is the name of container image that the container is running.")),
            ("imageID", string("ImageID is the image ID of the container's image.")),
            ("lastState", loose("LastTerminationState holds the last termination state of the container.")),
            ("name", string("Name is a DNS_LABEL representing the unique name of the container.")),
            ("ready", boolean("Ready specifies whether the container is currently passing its readiness check.")),
            ("restartCount", int("RestartCount holds the number of times the container has been restarted.")),
            ("started", boolean("Started indicates whether the container has finished its postStart lifecycle hook and passed its startup probe.")),
            ("state", loose("State holds details about the container's current condition.")),
        ],
    ), &["name", "ready", "restartCount", "image", "imageID"]);
    cs["x-kubernetes-preserve-unknown-fields"] = json!(true);
    put(m, CORE, "ContainerStatus", cs);
}

#[rustfmt::skip]
fn core_schemas(m: &mut Map<String, Value>) {
    put(m, CORE, "Namespace", kind_schema(
        "Namespace provides a scope for Names. Use of multiple namespaces is optional.",
        ("", "v1", "Namespace"),
        vec![
            ("spec", object("NamespaceSpec describes the attributes on a Namespace.", vec![("finalizers", strings("Finalizers is an opaque list of values that must be empty to permanently remove object from storage."))])),
            ("status", object("NamespaceStatus is information about the current status of a Namespace.", vec![
                ("phase", enum_string("Phase is the current lifecycle phase of the namespace.", &["Active", "Terminating"])),
                ("conditions", array_of(loose("NamespaceCondition contains details about state of namespace."), "Represents the latest available observations of a namespace's current state.")),
            ])),
        ],
    ));
    put(m, CORE, "Node", kind_schema(
        "Node is a worker node in Kubernetes. Each node will have a unique identifier in the cache (i.e. in etcd).",
        ("", "v1", "Node"),
        vec![
            ("spec", object("NodeSpec describes the attributes that a node is created with.", vec![
                ("podCIDR", opt_string("PodCIDR represents the pod IP range assigned to the node.")),
                ("podCIDRs", strings("podCIDRs represents the IP ranges assigned to the node for usage by Pods on that node.")),
                ("providerID", opt_string("ID of the node assigned by the cloud provider in the format: <ProviderName>://<ProviderSpecificNodeID>")),
                ("taints", array_of(loose("The node this Taint is attached to has the \"effect\" on any pod that does not tolerate the Taint."), "If specified, the node's taints.")),
                ("unschedulable", boolean("Unschedulable controls node schedulability of new pods. By default, node is schedulable.")),
            ])),
            ("status", object("NodeStatus is information about the current status of a node.", vec![
                ("addresses", merge_list(&format!("{CORE}.NodeAddress"), "type", "List of addresses reachable to the node.")),
                ("allocatable", quantity_map("Allocatable represents the resources of a node that are available for scheduling. Defaults to Capacity.")),
                ("capacity", quantity_map("Capacity represents the total resources of a node.")),
                ("conditions", merge_list(&format!("{CORE}.NodeCondition"), "type", "Conditions is an array of current observed node conditions.")),
                ("nodeInfo", to(&format!("{CORE}.NodeSystemInfo"), "Set of ids/uuids to uniquely identify the node.")),
            ])),
        ],
    ));
    put(m, CORE, "NodeAddress", with_required(object("NodeAddress contains information for the node's address.", vec![
        ("address", string("The node address.")),
        ("type", string("Node address type, one of Hostname, ExternalIP or InternalIP.")),
    ]), &["type", "address"]));
    put(m, CORE, "NodeCondition", with_required(object("NodeCondition contains condition information for a node.", vec![
        ("lastHeartbeatTime", time("Last time we got an update on a given condition.")),
        ("lastTransitionTime", time("Last time the condition transit from one status to another.")),
        ("message", opt_string("Human readable message indicating details about last transition.")),
        ("reason", opt_string("(brief) reason for the condition's last transition.")),
        ("status", string("Status of the condition, one of True, False, Unknown.")),
        ("type", string("Type of node condition.")),
    ]), &["type", "status"]));
    put(m, CORE, "NodeSystemInfo", object("NodeSystemInfo is a set of ids/uuids to uniquely identify the node.", vec![
        ("architecture", string("The Architecture reported by the node")),
        ("containerRuntimeVersion", string("ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).")),
        ("kernelVersion", string("Kernel Version reported by the node from 'uname -r'.")),
        ("kubeletVersion", string("Kubelet Version reported by the node.")),
        ("operatingSystem", string("The Operating System reported by the node")),
        ("osImage", string("OS Image reported by the node from /etc/os-release.")),
    ]));
    put(m, CORE, "ConfigMap", kind_schema(
        "ConfigMap holds configuration data for pods to consume.",
        ("", "v1", "ConfigMap"),
        vec![
            ("binaryData", json!({"type": "object", "description": "BinaryData contains the binary data.", "additionalProperties": {"type": "string", "format": "byte"}})),
            ("data", string_map("Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'.")),
            ("immutable", boolean("Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated.")),
        ],
    ));
    put(m, CORE, "Secret", kind_schema(
        "Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.",
        ("", "v1", "Secret"),
        vec![
            ("data", json!({"type": "object", "description": "Data contains the secret data. The serialized form of the secret data is a base64 encoded string.", "additionalProperties": {"type": "string", "format": "byte"}})),
            ("immutable", boolean("Immutable, if set to true, ensures that data stored in the Secret cannot be updated.")),
            ("stringData", string_map("stringData allows specifying non-binary secret data in string form. It is provided as a write-only input field for convenience.")),
            ("type", opt_string("Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types")),
        ],
    ));
    put(m, CORE, "Service", kind_schema(
        "Service is a named abstraction of software service (for example, mysql) consisting of local port (for example 3306) that the proxy listens on, and the selector that determines which pods will answer requests sent through the proxy.",
        ("", "v1", "Service"),
        vec![
            ("spec", object("ServiceSpec describes the attributes that a user creates on a service.", vec![
                ("clusterIP", opt_string("clusterIP is the IP address of the service and is usually assigned randomly.")),
                ("externalIPs", strings("externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.")),
                ("externalName", opt_string("externalName is the external reference that discovery mechanisms will return as an alias for this service.")),
                ("ports", json!({"type": "array", "description": "The list of ports that are exposed by this service.", "items": {"default": {}, "allOf": [{"$ref": ref_path(&format!("{CORE}.ServicePort"))}]}, "x-kubernetes-list-map-keys": ["port", "protocol"], "x-kubernetes-list-type": "map", "x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge"})),
                ("selector", json!({"type": "object", "description": "Route service traffic to pods with label keys and values matching this selector.", "additionalProperties": {"type": "string", "default": ""}, "x-kubernetes-map-type": "atomic"})),
                ("type", enum_string("type determines how the Service is exposed. Defaults to ClusterIP.", &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"])),
            ])),
            ("status", loose("Most recently observed status of the service. Populated by the system. Read-only.")),
        ],
    ));
    put(m, CORE, "ServicePort", with_required(object("ServicePort contains information on service's port.", vec![
        ("name", opt_string("The name of this port within the service. This must be a DNS_LABEL.")),
        ("nodePort", int("The port on each node on which this service is exposed when type is NodePort or LoadBalancer.")),
        ("port", int("The port that will be exposed by this service.")),
        ("protocol", enum_string("The IP protocol for this port. Supports \"TCP\", \"UDP\", and \"SCTP\". Default is TCP.", &["SCTP", "TCP", "UDP"])),
        ("targetPort", to(INT_OR_STRING, "Number or name of the port to access on the pods targeted by the service.")),
    ]), &["port"]));
    put(m, CORE, "ServiceAccount", kind_schema(
        "ServiceAccount binds together: * a name, understood by users, and perhaps by peripheral systems, for an identity * a principal that can be authenticated and authorized * a set of secrets",
        ("", "v1", "ServiceAccount"),
        vec![
            ("automountServiceAccountToken", boolean("AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted.")),
            ("imagePullSecrets", list_of(&format!("{CORE}.LocalObjectReference"), "ImagePullSecrets is a list of references to secrets in the same namespace to use for pulling any images in pods that reference this ServiceAccount.")),
            ("secrets", merge_list(&format!("{CORE}.ObjectReference"), "name", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.")),
        ],
    ));
    put(m, CORE, "ObjectReference", object("ObjectReference contains enough information to let you inspect or modify the referred object.", vec![
        ("apiVersion", opt_string("API version of the referent.")),
        ("fieldPath", opt_string("If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.")),
        ("kind", opt_string("Kind of the referent.")),
        ("name", opt_string("Name of the referent.")),
        ("namespace", opt_string("Namespace of the referent.")),
        ("resourceVersion", opt_string("Specific resourceVersion to which this reference is made, if any.")),
        ("uid", opt_string("UID of the referent.")),
    ]));
    let mut event = kind_schema(
        "Event is a report of an event somewhere in the cluster.",
        ("", "v1", "Event"),
        vec![
            ("count", int("The number of times this event has occurred.")),
            ("eventTime", json!({"type": "string", "format": "date-time", "description": "Time when this Event was first observed."})),
            ("firstTimestamp", time("The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)")),
            ("involvedObject", to(&format!("{CORE}.ObjectReference"), "The object that this event is about.")),
            ("lastTimestamp", time("The time at which the most recent occurrence of this event was recorded.")),
            ("message", opt_string("A human-readable description of the status of this operation.")),
            ("reason", opt_string("This should be a short, machine understandable string that gives the reason for the transition into the object's current status.")),
            ("reportingComponent", string("Name of the controller that emitted this Event, e.g. `kubernetes.io/kubelet`.")),
            ("reportingInstance", string("ID of the controller instance, e.g. `kubelet-xyzf`.")),
            ("source", object("EventSource contains information for an event.", vec![
                ("component", opt_string("Component from which the event is generated.")),
                ("host", opt_string("Node name on which the event is generated.")),
            ])),
            ("type", opt_string("Type of this event (Normal, Warning), new types could be added in the future")),
        ],
    );
    event["required"] = json!(["metadata", "involvedObject"]);
    put(m, CORE, "Event", event);
}

#[rustfmt::skip]
fn apps_schemas(m: &mut Map<String, Value>) {
    let template = |desc: &str| to(&format!("{CORE}.PodTemplateSpec"), desc);
    let selector = |desc: &str| to(&format!("{META}.LabelSelector"), desc);
    put(m, APPS, "Deployment", kind_schema(
        "Deployment enables declarative updates for Pods and ReplicaSets.",
        ("apps", "v1", "Deployment"),
        vec![
            ("spec", to(&format!("{APPS}.DeploymentSpec"), "Specification of the desired behavior of the Deployment.")),
            ("status", to(&format!("{APPS}.DeploymentStatus"), "Most recently observed status of the Deployment.")),
        ],
    ));
    put(m, APPS, "DeploymentSpec", with_required(object(
        "DeploymentSpec is the specification of the desired behavior of the Deployment.",
        vec![
            ("minReadySeconds", int("Minimum number of seconds for which a newly created pod should be ready without any of its container crashing, for it to be considered available.")),
            ("paused", boolean("Indicates that the deployment is paused.")),
            ("progressDeadlineSeconds", int("The maximum time in seconds for a deployment to make progress before it is considered to be failed.")),
            ("replicas", int("Number of desired pods. This is a pointer to distinguish between explicit zero and not specified. Defaults to 1.")),
            ("revisionHistoryLimit", int("The number of old ReplicaSets to retain to allow rollback.")),
            ("selector", selector("Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.")),
            ("strategy", json!({"description": "The deployment strategy to use to replace existing pods with new ones.", "default": {}, "allOf": [{"$ref": ref_path(&format!("{APPS}.DeploymentStrategy"))}], "x-kubernetes-patch-strategy": "retainKeys"})),
            ("template", template("Template describes the pods that will be created. The only allowed template.spec.restartPolicy value is \"Always\".")),
        ],
    ), &["selector", "template"]));
    put(m, APPS, "DeploymentStrategy", object(
        "DeploymentStrategy describes how to replace existing pods with new ones.",
        vec![
            ("rollingUpdate", object("Spec to control the desired behavior of rolling update.", vec![
                ("maxSurge", to(INT_OR_STRING, "The maximum number of pods that can be scheduled above the desired number of pods.")),
                ("maxUnavailable", to(INT_OR_STRING, "The maximum number of pods that can be unavailable during the update.")),
            ])),
            ("type", enum_string("Type of deployment. Can be \"Recreate\" or \"RollingUpdate\". Default is RollingUpdate.", &["Recreate", "RollingUpdate"])),
        ],
    ));
    let conditions = |desc: &str| {
        json!({"type": "array", "description": desc, "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
               "x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map",
               "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"})
    };
    put(m, APPS, "DeploymentStatus", object(
        "DeploymentStatus is the most recently observed status of the Deployment.",
        vec![
            ("availableReplicas", int("Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.")),
            ("conditions", conditions("Represents the latest available observations of a deployment's current state.")),
            ("observedGeneration", int64("The generation observed by the deployment controller.")),
            ("readyReplicas", int("readyReplicas is the number of pods targeted by this Deployment with a Ready Condition.")),
            ("replicas", int("Total number of non-terminated pods targeted by this deployment (their labels match the selector).")),
            ("unavailableReplicas", int("Total number of unavailable pods targeted by this deployment.")),
            ("updatedReplicas", int("Total number of non-terminated pods targeted by this deployment that have the desired template spec.")),
        ],
    ));
    put(m, APPS, "ReplicaSet", kind_schema(
        "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
        ("apps", "v1", "ReplicaSet"),
        vec![
            ("spec", to(&format!("{APPS}.ReplicaSetSpec"), "Spec defines the specification of the desired behavior of the ReplicaSet.")),
            ("status", to(&format!("{APPS}.ReplicaSetStatus"), "Status is the most recently observed status of the ReplicaSet.")),
        ],
    ));
    put(m, APPS, "ReplicaSetSpec", with_required(object(
        "ReplicaSetSpec is the specification of a ReplicaSet.",
        vec![
            ("minReadySeconds", int("Minimum number of seconds for which a newly created pod should be ready without any of its container crashing, for it to be considered available.")),
            ("replicas", int("Replicas is the number of desired pods. Defaults to 1.")),
            ("selector", selector("Selector is a label query over pods that should match the replica count.")),
            ("template", template("Template is the object that describes the pod that will be created if insufficient replicas are detected.")),
        ],
    ), &["selector"]));
    put(m, APPS, "ReplicaSetStatus", with_required(object(
        "ReplicaSetStatus represents the current status of a ReplicaSet.",
        vec![
            ("availableReplicas", int("The number of available pods (ready for at least minReadySeconds) for this replica set.")),
            ("conditions", conditions("Represents the latest available observations of a replica set's current state.")),
            ("fullyLabeledReplicas", int("The number of pods that have labels matching the labels of the pod template of the replicaset.")),
            ("observedGeneration", int64("ObservedGeneration reflects the generation of the most recently observed ReplicaSet.")),
            ("readyReplicas", int("The number of ready replicas for this replica set.")),
            ("replicas", int("Replicas is the most recently observed number of non-terminating pods.")),
        ],
    ), &["replicas"]));
}

#[rustfmt::skip]
fn apiext_schemas(m: &mut Map<String, Value>) {
    put(m, APIEXT, "CustomResourceDefinition", with_required(kind_schema(
        "CustomResourceDefinition represents a resource that should be exposed on the API server. Its name MUST be in the format <.spec.name>.<.spec.group>.",
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        vec![
            ("spec", object("CustomResourceDefinitionSpec describes how a user wants their resource to appear", vec![
                ("group", string("group is the API group of the defined custom resource.")),
                ("names", loose("names specify the resource and kind names for the custom resource.")),
                ("scope", string("scope indicates whether the defined custom resource is cluster- or namespace-scoped. Allowed values are `Cluster` and `Namespaced`.")),
                ("versions", array_of(loose("CustomResourceDefinitionVersion describes a version for CRD."), "versions is the list of all API versions of the defined custom resource.")),
            ])),
            ("status", loose("status indicates the actual state of the CustomResourceDefinition")),
        ],
    ), &["spec"]));
}
