//! The workload printers against rows printed by kubectl 1.32 from a 1.30 apiserver.
use serde_json::{Value, json};

use crate::sim::table_test_util::{CREATED, names, print_at};

/// A Table of `objects`, 60 minutes after they were created.
fn print(group: &str, resource: &str, objects: &[Value]) -> (Vec<(String, u64)>, Vec<Value>) {
    print_at(group, resource, objects, 3600)
}

fn template(containers: Value) -> Value {
    json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": containers}})
}

#[test]
fn stateful_sets_show_ready_of_desired() {
    let sts = json!({"metadata": {"name": "db", "creationTimestamp": CREATED},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                 "template": template(json!([{"name": "pg", "image": "postgres:16"}, {"name": "exporter", "image": "exp:1"}]))},
        "status": {"readyReplicas": 2}});
    let (cols, rows) = print("apps", "statefulsets", &[sts]);
    assert_eq!(names(&cols, 0), ["Name", "Ready", "Age"]);
    assert_eq!(names(&cols, 1), ["Containers", "Images"]);
    assert_eq!(
        rows[0],
        json!(["db", "2/3", "60m", "pg,exporter", "postgres:16,exp:1"])
    );
}

#[test]
fn daemon_sets_show_the_scheduling_counts_and_node_selector() {
    let ds = json!({"metadata": {"name": "agent", "creationTimestamp": CREATED},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [{"name": "agent", "image": "fluent-bit"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}});
    let (cols, rows) = print("apps", "daemonsets", &[ds]);
    assert_eq!(
        names(&cols, 0),
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age"
        ]
    );
    assert_eq!(names(&cols, 1), ["Containers", "Images", "Selector"]);
    assert_eq!(
        rows[0],
        json!([
            "agent",
            3,
            3,
            2,
            3,
            2,
            "kubernetes.io/os=linux",
            "60m",
            "agent",
            "fluent-bit",
            "app=agent"
        ])
    );
    let bare = json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {}}}});
    let (_, rows) = print("apps", "daemonsets", &[bare]);
    assert_eq!(rows[0][6], "<none>");
    assert_eq!(rows[0][10], "<none>");
}

#[test]
fn jobs_show_status_completions_and_duration() {
    let job = |status: Value, spec: Value| {
        json!({"metadata": {"name": "pi", "creationTimestamp": CREATED},
               "spec": spec, "status": status})
    };
    let one = json!({"completions": 1, "parallelism": 1, "template": template(json!([{"name": "pi", "image": "perl"}])),
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}});
    let done = job(
        json!({"succeeded": 1, "startTime": CREATED, "completionTime": "2024-01-01T00:00:42Z",
               "conditions": [{"type": "Complete", "status": "True"}]}),
        one.clone(),
    );
    let running = job(
        json!({"startTime": "2024-01-01T00:30:00Z", "active": 1}),
        one.clone(),
    );
    let failed = job(
        json!({"conditions": [{"type": "Failed", "status": "True"}]}),
        one.clone(),
    );
    let suspended = job(
        json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        one.clone(),
    );
    let queue = job(
        json!({"succeeded": 2}),
        json!({"parallelism": 3, "template": {}}),
    );
    let (cols, rows) = print("batch", "jobs", &[done, running, failed, suspended, queue]);
    assert_eq!(
        names(&cols, 0),
        ["Name", "Status", "Completions", "Duration", "Age"]
    );
    assert_eq!(names(&cols, 1), ["Containers", "Images", "Selector"]);
    assert_eq!(
        rows[0],
        json!([
            "pi",
            "Complete",
            "1/1",
            "42s",
            "60m",
            "pi",
            "perl",
            "batch.kubernetes.io/controller-uid=u1"
        ])
    );
    assert_eq!(
        rows[1].as_array().unwrap()[1..4],
        [json!("Running"), json!("0/1"), json!("30m")]
    );
    assert_eq!(rows[2][1], "Failed");
    assert_eq!(rows[3][1], "Suspended");
    assert_eq!(
        rows[4].as_array().unwrap()[1..4],
        [json!("Running"), json!("2/1 of 3"), json!("")]
    );
}

#[test]
fn cron_jobs_show_schedule_time_zone_suspend_and_last_run() {
    let cj = json!({"metadata": {"name": "nightly", "creationTimestamp": CREATED},
        "spec": {"schedule": "0 2 * * *", "timeZone": "Europe/Paris", "suspend": true,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "r", "image": "reports:1"}]}}}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2024-01-01T00:55:00Z"}});
    let fresh = json!({"metadata": {"name": "tick", "creationTimestamp": CREATED},
        "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {}}});
    let (cols, rows) = print("batch", "cronjobs", &[cj, fresh]);
    assert_eq!(
        names(&cols, 0),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age"
        ]
    );
    assert_eq!(names(&cols, 1), ["Containers", "Images", "Selector"]);
    assert_eq!(
        rows[0],
        json!([
            "nightly",
            "0 2 * * *",
            "Europe/Paris",
            "True",
            1,
            "5m",
            "60m",
            "r",
            "reports:1",
            "<none>"
        ])
    );
    assert_eq!(
        rows[1].as_array().unwrap()[2..6],
        [json!("<none>"), json!("False"), json!(0), json!("<none>")]
    );
}
