//! apps/v1 StatefulSet and DaemonSet, batch/v1 Job and CronJob: the fields `kubectl explain`
//! shows (descriptions from the API reference, shortened) and the list strategies apply needs.
use super::{
    APPS, CORE, META, boolean, enum_string, int, int64, kind_schema, loose, object, opt_string,
    put, time, to, with_required,
};
use serde_json::{Map, Value, json};

pub const BATCH: &str = "io.k8s.api.batch.v1";

fn conditions(desc: &str) -> Value {
    json!({"type": "array", "description": desc, "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
           "x-kubernetes-list-type": "atomic"})
}

fn template(desc: &str) -> Value {
    to(&format!("{CORE}.PodTemplateSpec"), desc)
}

fn selector(desc: &str) -> Value {
    to(&format!("{META}.LabelSelector"), desc)
}

// The catalogue keeps one line per field, like the API reference it summarises.
#[rustfmt::skip]
pub fn schemas(m: &mut Map<String, Value>) {
    put(m, APPS, "StatefulSet", kind_schema(
        "StatefulSet represents a set of pods with consistent identities. Identities are defined as: - Network: A single stable DNS and hostname. - Storage: As many VolumeClaims as requested. The StatefulSet guarantees that a given network identity will always map to the same storage identity.",
        ("apps", "v1", "StatefulSet"),
        vec![
            ("spec", to(&format!("{APPS}.StatefulSetSpec"), "Spec defines the desired identities of pods in this set.")),
            ("status", to(&format!("{APPS}.StatefulSetStatus"), "Status is the current status of Pods in this StatefulSet. This data may be out of date by some window of time.")),
        ],
    ));
    put(m, APPS, "StatefulSetSpec", with_required(object(
        "A StatefulSetSpec is the specification of a StatefulSet.",
        vec![
            ("minReadySeconds", int("Minimum number of seconds for which a newly created pod should be ready without any of its container crashing for it to be considered available. Defaults to 0.")),
            ("persistentVolumeClaimRetentionPolicy", loose("persistentVolumeClaimRetentionPolicy describes the lifecycle of persistent volume claims created from volumeClaimTemplates. By default, all persistent volume claims are created as needed and retained until manually deleted.")),
            ("podManagementPolicy", enum_string("podManagementPolicy controls how pods are created during initial scale up, when replacing pods on nodes, or when scaling down. The default policy is `OrderedReady`.", &["OrderedReady", "Parallel"])),
            ("replicas", int("replicas is the desired number of replicas of the given Template. These are replicas in the sense that they are instantiations of the same Template. If unspecified, defaults to 1.")),
            ("revisionHistoryLimit", int("revisionHistoryLimit is the maximum number of revisions that will be maintained in the StatefulSet's revision history. Defaults to 10.")),
            ("selector", selector("selector is a label query over pods that should match the replica count. It must match the pod template's labels.")),
            ("serviceName", opt_string("serviceName is the name of the service that governs this StatefulSet. This service must exist before the StatefulSet, and is responsible for the network identity of the set.")),
            ("template", template("template is the object that describes the pod that will be created if insufficient replicas are detected. Each pod stamped out by the StatefulSet will fulfill this Template, but have a unique identity from the rest of the StatefulSet.")),
            ("updateStrategy", loose("updateStrategy indicates the StatefulSetUpdateStrategy that will be employed to update Pods in the StatefulSet when a revision is made to Template.")),
            ("volumeClaimTemplates", json!({"type": "array", "description": "volumeClaimTemplates is a list of claims that pods are allowed to reference. Every claim in this list must have at least one matching (by name) volumeMount in one container in the template.", "items": {"default": {}, "allOf": [{"$ref": super::ref_path(&format!("{CORE}.PersistentVolumeClaim"))}]}, "x-kubernetes-list-type": "atomic"})),
        ],
    ), &["selector", "template"]));
    put(m, APPS, "StatefulSetStatus", with_required(object(
        "StatefulSetStatus represents the current state of a StatefulSet.",
        vec![
            ("availableReplicas", int("Total number of available pods (ready for at least minReadySeconds) targeted by this statefulset.")),
            ("collisionCount", int("collisionCount is the count of hash collisions for the StatefulSet.")),
            ("conditions", conditions("Represents the latest available observations of a statefulset's current state.")),
            ("currentReplicas", int("currentReplicas is the number of Pods created by the StatefulSet controller from the StatefulSet version indicated by currentRevision.")),
            ("currentRevision", opt_string("currentRevision, if not empty, indicates the version of the StatefulSet used to generate Pods in the sequence [0,currentReplicas).")),
            ("observedGeneration", int64("observedGeneration is the most recent generation observed for this StatefulSet.")),
            ("readyReplicas", int("readyReplicas is the number of pods created for this StatefulSet with a Ready Condition.")),
            ("replicas", int("replicas is the number of Pods created by the StatefulSet controller.")),
            ("updateRevision", opt_string("updateRevision, if not empty, indicates the version of the StatefulSet used to generate Pods in the sequence [replicas-updatedReplicas,replicas)")),
            ("updatedReplicas", int("updatedReplicas is the number of Pods created by the StatefulSet controller from the StatefulSet version indicated by updateRevision.")),
        ],
    ), &["replicas"]));
    put(m, APPS, "DaemonSet", kind_schema(
        "DaemonSet represents the configuration of a daemon set.",
        ("apps", "v1", "DaemonSet"),
        vec![
            ("spec", to(&format!("{APPS}.DaemonSetSpec"), "The desired behavior of this daemon set.")),
            ("status", to(&format!("{APPS}.DaemonSetStatus"), "The current status of this daemon set. This data may be out of date by some window of time.")),
        ],
    ));
    put(m, APPS, "DaemonSetSpec", with_required(object(
        "DaemonSetSpec is the specification of a daemon set.",
        vec![
            ("minReadySeconds", int("The minimum number of seconds for which a newly created DaemonSet pod should be ready without any of its container crashing, for it to be considered available. Defaults to 0.")),
            ("revisionHistoryLimit", int("The number of old history to retain to allow rollback. Defaults to 10.")),
            ("selector", selector("A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels.")),
            ("template", template("An object that describes the pod that will be created. The DaemonSet will create exactly one copy of this pod on every node that matches the template's node selector (or on every node if no node selector is specified).")),
            ("updateStrategy", json!({"description": "An update strategy to replace existing DaemonSet pods with new pods.", "type": "object", "properties": {
                "rollingUpdate": loose("Rolling update config params. Present only if type = \"RollingUpdate\"."),
                "type": enum_string("Type of daemon set update. Can be \"RollingUpdate\" or \"OnDelete\". Default is RollingUpdate.", &["OnDelete", "RollingUpdate"]),
            }})),
        ],
    ), &["selector", "template"]));
    put(m, APPS, "DaemonSetStatus", with_required(object(
        "DaemonSetStatus represents the current status of a daemon set.",
        vec![
            ("collisionCount", int("Count of hash collisions for the DaemonSet.")),
            ("conditions", conditions("Represents the latest available observations of a DaemonSet's current state.")),
            ("currentNumberScheduled", int("The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.")),
            ("desiredNumberScheduled", int("The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).")),
            ("numberAvailable", int("The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)")),
            ("numberMisscheduled", int("The number of nodes that are running the daemon pod, but are not supposed to run the daemon pod.")),
            ("numberReady", int("numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.")),
            ("numberUnavailable", int("The number of nodes that should be running the daemon pod and have none of the daemon pod running and available (ready for at least spec.minReadySeconds)")),
            ("observedGeneration", int64("The most recent generation observed by the daemon set controller.")),
            ("updatedNumberScheduled", int("The total number of nodes that are running updated daemon pod")),
        ],
    ), &["currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"]));
    put(m, BATCH, "Job", kind_schema(
        "Job represents the configuration of a single job.",
        ("batch", "v1", "Job"),
        vec![
            ("spec", to(&format!("{BATCH}.JobSpec"), "Specification of the desired behavior of a job.")),
            ("status", to(&format!("{BATCH}.JobStatus"), "Current status of a job.")),
        ],
    ));
    put(m, BATCH, "JobSpec", with_required(object(
        "JobSpec describes how the job execution will look like.",
        vec![
            ("activeDeadlineSeconds", int64("Specifies the duration in seconds relative to the startTime that the job may be continuously active before the system tries to terminate it; value must be positive integer.")),
            ("backoffLimit", int("Specifies the number of retries before marking this job failed. Defaults to 6")),
            ("completionMode", enum_string("completionMode specifies how Pod completions are tracked. It can be `NonIndexed` (default) or `Indexed`.", &["Indexed", "NonIndexed"])),
            ("completions", int("Specifies the desired number of successfully finished pods the job should be run with. Setting to null means that the success of any pod signals the success of all pods, and allows parallelism to have any positive value. Setting to 1 means that parallelism is limited to 1 and the success of that pod signals the success of the job.")),
            ("manualSelector", boolean("manualSelector controls generation of pod labels and pod selectors. Leave `manualSelector` unset unless you are certain what you are doing.")),
            ("parallelism", int("Specifies the maximum desired number of pods the job should run at any given time.")),
            ("podReplacementPolicy", enum_string("podReplacementPolicy specifies when to create replacement Pods.", &["Failed", "TerminatingOrFailed"])),
            ("selector", selector("A label query over pods that should match the pod count. Normally, the system sets this field for you.")),
            ("suspend", boolean("suspend specifies whether the Job controller should create Pods or not. Defaults to false.")),
            ("template", template("Describes the pod that will be created when executing a job. The only allowed template.spec.restartPolicy values are \"Never\" or \"OnFailure\".")),
            ("ttlSecondsAfterFinished", int("ttlSecondsAfterFinished limits the lifetime of a Job that has finished execution (either Complete or Failed).")),
        ],
    ), &["template"]));
    put(m, BATCH, "JobStatus", object(
        "JobStatus represents the current state of a Job.",
        vec![
            ("active", int("The number of pending and running pods which are not terminating (without a deletionTimestamp).")),
            ("completionTime", time("Represents time when the job was completed. It is not guaranteed to be set in happens-before order across separate operations.")),
            ("conditions", conditions("The latest available observations of an object's current state. When a Job fails, one of the conditions will have type \"Failed\" and status true. When a Job is completed, one of the conditions will have type \"Complete\" and status true.")),
            ("failed", int("The number of pods which reached phase Failed.")),
            ("ready", int("The number of active pods which have a Ready condition and are not terminating (without a deletionTimestamp).")),
            ("startTime", time("Represents time when the job controller started processing a job.")),
            ("succeeded", int("The number of pods which reached phase Succeeded.")),
        ],
    ));
    put(m, BATCH, "JobTemplateSpec", object(
        "JobTemplateSpec describes the data a Job should have when created from a template",
        vec![
            ("metadata", to(&format!("{META}.ObjectMeta"), "Standard object's metadata of the jobs created from this template.")),
            ("spec", to(&format!("{BATCH}.JobSpec"), "Specification of the desired behavior of the job.")),
        ],
    ));
    put(m, BATCH, "CronJob", kind_schema(
        "CronJob represents the configuration of a single cron job.",
        ("batch", "v1", "CronJob"),
        vec![
            ("spec", to(&format!("{BATCH}.CronJobSpec"), "Specification of the desired behavior of a cron job, including the schedule.")),
            ("status", to(&format!("{BATCH}.CronJobStatus"), "Current status of a cron job.")),
        ],
    ));
    put(m, BATCH, "CronJobSpec", with_required(object(
        "CronJobSpec describes how the job execution will look like and when it will actually run.",
        vec![
            ("concurrencyPolicy", enum_string("Specifies how to treat concurrent executions of a Job. Valid values are:\n\n- \"Allow\" (default): allows CronJobs to run concurrently; - \"Forbid\": forbids concurrent runs, skipping next run if previous run hasn't finished yet; - \"Replace\": cancels currently running job and replaces it with a new one", &["Allow", "Forbid", "Replace"])),
            ("failedJobsHistoryLimit", int("The number of failed finished jobs to retain. Value must be non-negative integer. Defaults to 1.")),
            ("jobTemplate", to(&format!("{BATCH}.JobTemplateSpec"), "Specifies the job that will be created when executing a CronJob.")),
            ("schedule", super::string("The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.")),
            ("startingDeadlineSeconds", int64("Optional deadline in seconds for starting the job if it misses scheduled time for any reason.  Missed jobs executions will be counted as failed ones.")),
            ("successfulJobsHistoryLimit", int("The number of successful finished jobs to retain. Value must be non-negative integer. Defaults to 3.")),
            ("suspend", boolean("This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.")),
            ("timeZone", opt_string("The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process.")),
        ],
    ), &["schedule", "jobTemplate"]));
    put(m, BATCH, "CronJobStatus", object(
        "CronJobStatus represents the current state of a cron job.",
        vec![
            ("active", json!({"type": "array", "description": "A list of pointers to currently running jobs.", "items": {"default": {}, "allOf": [{"$ref": super::ref_path(&format!("{CORE}.ObjectReference"))}]}, "x-kubernetes-list-type": "atomic"})),
            ("lastScheduleTime", time("Information when was the last time the job was successfully scheduled.")),
            ("lastSuccessfulTime", time("Information when was the last time the job successfully completed.")),
        ],
    ));
}
