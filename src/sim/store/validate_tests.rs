use super::*;
use crate::sim::registry::Registry;

fn rt(group: &str, resource: &str) -> ResourceType {
    Registry::builtin()
        .find(group, "v1", resource)
        .unwrap()
        .clone()
}

/// The message of the 422 `validate` answers (panics if it accepts).
fn refused(group: &str, resource: &str, obj: Value) -> String {
    let e = validate(&rt(group, resource), &obj, None).unwrap_err();
    assert_eq!(e.code, 422, "{}", e.message);
    assert_eq!(e.reason, "Invalid");
    e.message
}

fn container() -> Value {
    json!([{"name": "c", "image": "busybox"}])
}

#[test]
fn volumes_and_claims_need_size_modes_and_a_source() {
    let m = refused(
        "",
        "persistentvolumes",
        json!({"metadata": {"name": "pv1"}, "spec": {}}),
    );
    assert_eq!(
        m,
        "PersistentVolume \"pv1\" is invalid: [spec.capacity: Required value, spec.accessModes: Required value, spec: Required value: must specify a volume type]"
    );
    let m = refused(
        "",
        "persistentvolumes",
        json!({"metadata": {"name": "pv1"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteSometimes"], "nfs": {},
        "persistentVolumeReclaimPolicy": "Keep"}}),
    );
    assert!(
        m.contains("spec.accessModes: Unsupported value: \"ReadWriteSometimes\""),
        "{m}"
    );
    assert!(m.contains("spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\""), "{m}");
    let ok = json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}}});
    assert!(validate(&rt("", "persistentvolumes"), &ok, None).is_ok());
    let m = refused(
        "",
        "persistentvolumeclaims",
        json!({"metadata": {"name": "c"}, "spec": {}}),
    );
    assert!(
        m.contains("spec.accessModes: Required value: at least 1 access mode is required"),
        "{m}"
    );
    assert!(m.contains("spec.resources[storage]: Required value"), "{m}");
}

#[test]
fn jobs_refuse_always_and_cron_jobs_check_their_schedule() {
    let m = refused(
        "batch",
        "jobs",
        json!({"metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": container()}}}}),
    );
    assert_eq!(
        m,
        "Job.batch \"j\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
    );
    let m = refused(
        "batch",
        "cronjobs",
        json!({"metadata": {"name": "cj"}, "spec": {"schedule": "every day",
        "jobTemplate": {"spec": {"template": {"spec": {"containers": container(), "restartPolicy": "Never"}}}}}}),
    );
    assert_eq!(
        m,
        "CronJob.batch \"cj\" is invalid: spec.schedule: Invalid value: \"every day\": expected exactly 5 fields, found 2: [every day]"
    );
    let m = refused(
        "batch",
        "cronjobs",
        json!({"metadata": {"name": "cj"}, "spec": {}}),
    );
    assert!(m.contains("spec.schedule: Required value"), "{m}");
    assert!(
        m.contains("spec.jobTemplate.spec.template.spec.containers: Required value"),
        "{m}"
    );
}

#[test]
fn sets_need_a_selector_their_template_matches() {
    let m = refused(
        "apps",
        "statefulsets",
        json!({"metadata": {"name": "db"}, "spec": {
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": container()}}}}),
    );
    assert!(
        m.starts_with(
            "StatefulSet.apps \"db\" is invalid: spec.template.metadata.labels: Invalid value"
        ),
        "{m}"
    );
    assert!(
        m.contains("`selector` does not match template `labels`"),
        "{m}"
    );
    let m = refused(
        "apps",
        "daemonsets",
        json!({"metadata": {"name": "agent"}, "spec": {"template": {}}}),
    );
    assert!(
        m.contains("spec.selector: Required value")
            && m.contains("spec.template.spec.containers: Required value"),
        "{m}"
    );
}

#[test]
fn bindings_and_roles_follow_rbac_validation() {
    let m = refused(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        json!({"metadata": {"name": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "r2d2"}]}),
    );
    assert!(
        m.contains("roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\""),
        "{m}"
    );
    assert!(m.contains("subjects[0].namespace: Required value"), "{m}");
    assert!(
        m.contains("subjects[1].kind: Unsupported value: \"Robot\""),
        "{m}"
    );
    // roleRef cannot change.
    let rb = rt("rbac.authorization.k8s.io", "rolebindings");
    let old =
        json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a"}});
    let new = json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "z"}});
    let e = validate(&rb, &new, Some(&old)).unwrap_err();
    assert!(e.message.contains("cannot change roleRef"), "{}", e.message);
    let m = refused(
        "rbac.authorization.k8s.io",
        "roles",
        json!({"metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["pods"]}, {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
    );
    assert!(
        m.contains("rules[0].verbs: Required value: verbs must contain at least one value"),
        "{m}"
    );
    assert!(m.contains("rules[1].nonResourceURLs: Invalid value: [\"/metrics\"]: namespaced rules cannot apply to non-resource URLs"), "{m}");
}

#[test]
fn classes_slices_and_leases() {
    let sc = rt("storage.k8s.io", "storageclasses");
    let m = refused(
        "storage.k8s.io",
        "storageclasses",
        json!({"metadata": {"name": "s"}}),
    );
    assert_eq!(
        m,
        "StorageClass.storage.k8s.io \"s\" is invalid: provisioner: Required value"
    );
    let old = json!({"provisioner": "a", "reclaimPolicy": "Delete"});
    let new = json!({"provisioner": "b", "reclaimPolicy": "Delete"});
    let e = validate(&sc, &new, Some(&old)).unwrap_err();
    assert!(
        e.message
            .contains("provisioner: Forbidden: updates to provisioner are forbidden."),
        "{}",
        e.message
    );
    let m = refused(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": {"name": "e"}, "endpoints": [{}]}),
    );
    assert!(
        m.contains("addressType: Required value")
            && m.contains("endpoints[0].addresses: Required value"),
        "{m}"
    );
    let m = refused(
        "coordination.k8s.io",
        "leases",
        json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}),
    );
    assert!(
        m.contains("spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"),
        "{m}"
    );
}

#[test]
fn bodies_of_the_wrong_shape_are_bad_requests() {
    let e = validate(&rt("batch", "cronjobs"), &json!({"spec": "nightly"}), None).unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "CronJob in version \"v1\" cannot be handled as a CronJob: json: cannot unmarshal string into Go struct field CronJob.spec of type object"
    );
    let e = validate(
        &rt("rbac.authorization.k8s.io", "roles"),
        &json!({"rules": {}}),
        None,
    )
    .unwrap_err();
    assert_eq!(e.code, 400);
}

#[test]
fn seeded_objects_are_valid() {
    let reg = Registry::builtin();
    let spec = crate::sim::seed::SeedSpec {
        nodes: 2,
        namespaces: 3,
        pods: 12,
    };
    for (g, r, o) in crate::sim::seed::objects(spec) {
        let t = reg
            .all()
            .iter()
            .find(|t| t.group == g && t.resource == r)
            .unwrap();
        if let Err(e) = validate(t, &o, None) {
            panic!("{g}/{r} {}: {}", o["metadata"]["name"], e.message);
        }
    }
}

#[test]
fn kinds_without_checks_are_left_alone() {
    // A custom resource may well have a string `spec` or an object `rules`.
    let mut widget = rt("", "configmaps");
    widget.group = "example.com".into();
    widget.resource = "widgets".into();
    let odd = json!({"spec": "free-form", "rules": {"a": 1}, "ports": "none"});
    assert!(validate(&widget, &odd, None).is_ok());
    assert!(validate(&rt("", "pods"), &json!({"spec": {}}), None).is_ok());
}
