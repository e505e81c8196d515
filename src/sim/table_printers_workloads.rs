//! StatefulSets, DaemonSets, Jobs and CronJobs, after `printStatefulSet`, `printDaemonSet`,
//! `printJob` and `printCronJob` (pkg/printers/internalversion/printers.go, 1.30+: the Job's
//! STATUS and the CronJob's TIMEZONE columns are there).
use super::super::{age_at, human_duration, int_at, non_empty, str_at, timestamp};
use super::{
    AGE, CONTAINERS, Column, IMAGES, NAME, Printer, age_cell, container_cells, label_selector,
    map_selector, name_cell,
};
use serde_json::{Value, json};

const SELECTOR: Column = (
    "Selector",
    "string",
    "",
    1,
    "A label query over pods that should match the pod count.",
);

// One line per column, as the printers' column tables read.
#[rustfmt::skip]
pub(super) const PRINTERS: &[Printer] = &[
    Printer {
        group: "apps",
        resource: "statefulsets",
        columns: &[NAME, ("Ready", "string", "", 0, "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES],
        cells: stateful_set,
    },
    Printer {
        group: "apps",
        resource: "daemonsets",
        columns: &[
            NAME,
            ("Desired", "integer", "", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
            ("Current", "integer", "", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            ("Ready", "integer", "", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            ("Up-to-date", "integer", "", 0, "The total number of nodes that are running updated daemon pod"),
            ("Available", "integer", "", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            ("Node Selector", "string", "", 0, "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."),
            AGE, CONTAINERS, IMAGES, SELECTOR,
        ],
        cells: daemon_set,
    },
    Printer {
        group: "batch",
        resource: "jobs",
        columns: &[
            NAME,
            ("Status", "string", "", 0, "Status of the job."),
            ("Completions", "string", "", 0, "The number of pods which reached phase Succeeded."),
            ("Duration", "string", "", 0, "Time required to complete the job."),
            AGE, CONTAINERS, IMAGES, SELECTOR,
        ],
        cells: job,
    },
    Printer {
        group: "batch",
        resource: "cronjobs",
        columns: &[
            NAME,
            ("Schedule", "string", "", 0, "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            ("Timezone", "string", "", 0, "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
            ("Suspend", "boolean", "", 0, "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
            ("Active", "integer", "", 0, "A list of pointers to currently running jobs."),
            ("Last Schedule", "string", "", 0, "Information when was the last time the job was successfully scheduled."),
            AGE, CONTAINERS, IMAGES, SELECTOR,
        ],
        cells: cron_job,
    },
];

fn stateful_set(o: &Value, now: i64) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        int_at(o, "/status/readyReplicas"),
        int_at(o, "/spec/replicas")
    );
    let [names, images] = container_cells(o, "/spec/template");
    vec![name_cell(o), json!(ready), age_cell(o, now), names, images]
}

fn daemon_set(o: &Value, now: i64) -> Vec<Value> {
    let [names, images] = container_cells(o, "/spec/template");
    vec![
        name_cell(o),
        json!(int_at(o, "/status/desiredNumberScheduled")),
        json!(int_at(o, "/status/currentNumberScheduled")),
        json!(int_at(o, "/status/numberReady")),
        json!(int_at(o, "/status/updatedNumberScheduled")),
        json!(int_at(o, "/status/numberAvailable")),
        json!(map_selector(o.pointer("/spec/template/spec/nodeSelector"))),
        age_cell(o, now),
        names,
        images,
        json!(label_selector(o.pointer("/spec/selector"))),
    ]
}

/// The first condition of type `ty` is `True` (`hasJobCondition`).
fn has_condition(o: &Value, ty: &str) -> bool {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == ty))
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn job(o: &Value, now: i64) -> Vec<Value> {
    let succeeded = int_at(o, "/status/succeeded");
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(o, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = timestamp(str_at(o, "/status/startTime"));
    let duration = match (start, timestamp(str_at(o, "/status/completionTime"))) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(c)) => human_duration(c - s),
    };
    let status = if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = container_cells(o, "/spec/template");
    vec![
        name_cell(o),
        json!(status),
        json!(completions),
        json!(duration),
        age_cell(o, now),
        names,
        images,
        json!(label_selector(o.pointer("/spec/selector"))),
    ]
}

fn cron_job(o: &Value, now: i64) -> Vec<Value> {
    let last_schedule = match timestamp(str_at(o, "/status/lastScheduleTime")) {
        Some(_) => age_at(o, "/status/lastScheduleTime", now),
        None => "<none>".into(),
    };
    // printBoolPtr: the field is defaulted to false, so `<unset>` only shows for stored
    // objects that skipped defaulting.
    let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let active = o
        .pointer("/status/active")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let [names, images] = container_cells(o, "/spec/jobTemplate/spec/template");
    vec![
        name_cell(o),
        json!(str_at(o, "/spec/schedule")),
        json!(non_empty(str_at(o, "/spec/timeZone")).unwrap_or("<none>")),
        json!(suspend),
        json!(active),
        json!(last_schedule),
        age_cell(o, now),
        names,
        images,
        json!(label_selector(o.pointer("/spec/jobTemplate/spec/selector"))),
    ]
}

#[cfg(test)]
#[path = "table_printers_workloads_tests.rs"]
mod tests;
