use super::*;
use crate::sim::registry::Registry;

fn rt(group: &str, resource: &str) -> ResourceType {
    Registry::builtin()
        .find(group, "v1", resource)
        .unwrap()
        .clone()
}

/// Create-time defaults and strategy, as `Store::create` applies them.
fn created(group: &str, resource: &str, mut obj: Value) -> Value {
    let t = rt(group, resource);
    defaults_on_create(&t, &mut obj);
    prepare_for_create(&t, &mut obj);
    obj
}

#[test]
fn a_persistent_volume_is_retained_filesystem_and_pending() {
    let pv = created(
        "",
        "persistentvolumes",
        json!({
            "metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/x"}},
            "status": {"phase": "Bound"},
        }),
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    // Status is the controller's: a created volume starts Pending whatever the body says.
    assert_eq!(pv["status"]["phase"], "Pending");
    assert!(pv["status"]["lastPhaseTransitionTime"].is_string());
    // A policy that is set stays.
    let kept = created(
        "",
        "persistentvolumes",
        json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
    );
    assert_eq!(kept["spec"]["persistentVolumeReclaimPolicy"], "Delete");
}

#[test]
fn a_job_gets_completions_and_a_selector_on_its_uid() {
    let job = created(
        "batch",
        "jobs",
        json!({
            "metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl"}], "restartPolicy": "Never"}}},
            "status": {"succeeded": 3},
        }),
    );
    let spec = &job["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(
        spec["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        "u-1"
    );
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["job-name"], "pi");
    assert_eq!(labels["controller-uid"], "u-1");
    assert_eq!(job["metadata"]["labels"], *labels);
    assert_eq!(job["status"], json!({}));
    // Parallelism alone leaves completions unset (a work queue).
    let queue = created(
        "batch",
        "jobs",
        json!({"metadata": {"uid": "u"}, "spec": {"parallelism": 3}}),
    );
    assert!(queue["spec"]["completions"].is_null());
    // A manual selector is left alone.
    let manual = created(
        "batch",
        "jobs",
        json!({"metadata": {"uid": "u"},
        "spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}}),
    );
    assert_eq!(
        manual["spec"]["selector"],
        json!({"matchLabels": {"a": "b"}})
    );
}

#[test]
fn cron_jobs_sets_and_classes_get_their_defaults() {
    let cj = created(
        "batch",
        "cronjobs",
        json!({"spec": {"schedule": "* * * * *"}}),
    );
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    let sts = created(
        "apps",
        "statefulsets",
        json!({"spec": {}, "status": {"readyReplicas": 9}}),
    );
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        sts["status"],
        json!({"replicas": 0, "availableReplicas": 0})
    );
    let ds = created("apps", "daemonsets", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"],
        json!({"maxUnavailable": 1, "maxSurge": 0})
    );
    assert_eq!(ds["status"]["desiredNumberScheduled"], 0);
    let sc = created(
        "storage.k8s.io",
        "storageclasses",
        json!({"provisioner": "x"}),
    );
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
    let pvc = created("", "persistentvolumeclaims", json!({"spec": {}}));
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"], json!({"phase": "Pending"}));
    let ep = created(
        "",
        "endpoints",
        json!({"subsets": [{"ports": [{"port": 80}]}]}),
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    let rb = created(
        "rbac.authorization.k8s.io",
        "rolebindings",
        json!({"subjects": [
        {"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "b", "namespace": "c"}]}),
    );
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(rb["subjects"][1].get("apiGroup").is_none());
}

#[test]
fn defaults_never_panic_on_bodies_of_the_wrong_shape() {
    for (g, r) in [
        ("", "persistentvolumes"),
        ("", "pods"),
        ("", "namespaces"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("", "endpoints"),
        ("rbac.authorization.k8s.io", "rolebindings"),
    ] {
        for body in [
            json!({"spec": "x", "status": 7, "subsets": "y", "subjects": [1, "z"]}),
            json!({"spec": {"updateStrategy": "x", "template": []}, "metadata": {"labels": "x"}}),
        ] {
            let _ = created(g, r, body);
        }
    }
}

#[test]
fn a_claim_without_a_class_gets_the_newest_default_one() {
    let store = Store::new(Registry::builtin(), 100);
    let sc = rt("storage.k8s.io", "storageclasses");
    let class = |name: &str, default: bool| {
        json!({"metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: default.to_string()}},
               "provisioner": "x"})
    };
    store.create(&sc, "", class("slow", false), false).unwrap();
    let pvc = rt("", "persistentvolumeclaims");
    let g = store.read();
    let mut claim = json!({"spec": {}});
    g.admit(&pvc, &mut claim);
    assert!(
        claim["spec"].get("storageClassName").is_none(),
        "no default yet"
    );
    drop(g);
    store.create(&sc, "", class("fast", true), false).unwrap();
    let g = store.read();
    g.admit(&pvc, &mut claim);
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    // An explicit empty class means "no class" and stays.
    let mut none = json!({"spec": {"storageClassName": ""}});
    g.admit(&pvc, &mut none);
    assert_eq!(none["spec"]["storageClassName"], "");
}
