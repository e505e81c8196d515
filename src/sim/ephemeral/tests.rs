use super::*;

fn pod() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
        "spec": {
            "containers": [{"name": "app", "image": "nginx"}],
            "ephemeralContainers": [{"name": "debugger-old", "image": "busybox"}]
        },
        "status": {"phase": "Running"}
    })
}

fn with_ephemeral(containers: Value) -> Value {
    let mut p = pod();
    p["spec"]["ephemeralContainers"] = containers;
    p
}

#[test]
fn only_the_ephemeral_containers_change() {
    let mut new = with_ephemeral(json!([
        {"name": "debugger-old", "image": "busybox"},
        {"name": "debugger-new", "image": "busybox", "stdin": true, "tty": true}
    ]));
    new["spec"]["containers"][0]["image"] = json!("evil");
    new["status"]["phase"] = json!("Failed");
    new["metadata"]["labels"] = json!({"x": "y"});
    let merged = merge(&pod(), &new).unwrap();
    assert_eq!(merged["spec"]["containers"][0]["image"], "nginx");
    assert_eq!(merged["status"]["phase"], "Running");
    assert!(merged["metadata"].get("labels").is_none());
    assert_eq!(
        merged["spec"]["ephemeralContainers"][1],
        json!({"name": "debugger-new", "image": "busybox", "stdin": true, "tty": true})
    );
}

#[test]
fn existing_ones_may_not_be_removed_or_changed() {
    let err = merge(&pod(), &with_ephemeral(json!([]))).unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        "Pod \"web\" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger-old\" may not be removed"
    );
    let changed = with_ephemeral(json!([{"name": "debugger-old", "image": "alpine"}]));
    let err = merge(&pod(), &changed).unwrap_err();
    let details = err.details.unwrap();
    assert_eq!(details.kind, "Pod");
    assert_eq!(
        details.causes[0].field,
        "spec.ephemeralContainers[debugger-old]"
    );
}

#[test]
fn new_ones_need_a_unique_name_an_image_and_no_ports() {
    let bad = with_ephemeral(json!([
        {"name": "debugger-old", "image": "busybox"},
        {"name": "app", "image": "busybox"},
        {"name": "", "ports": [{"containerPort": 80}], "resources": {}}
    ]));
    let err = merge(&pod(), &bad).unwrap_err();
    let fields: Vec<(String, String)> = err
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| (c.field, c.message))
        .collect();
    assert_eq!(
        fields,
        vec![
            (
                "spec.ephemeralContainers[1].name".into(),
                "Duplicate value: \"app\"".into()
            ),
            (
                "spec.ephemeralContainers[2].name".into(),
                "Required value".into()
            ),
            (
                "spec.ephemeralContainers[2].image".into(),
                "Required value".into()
            ),
            (
                "spec.ephemeralContainers[2].ports".into(),
                "Forbidden: cannot be set for an Ephemeral Container".into()
            ),
        ]
    );
    assert!(
        err.message.starts_with(
            "Pod \"web\" is invalid: [spec.ephemeralContainers[1].name: Duplicate value"
        )
    );
}

#[test]
fn the_kubelet_starts_new_ones_once() {
    let p = with_ephemeral(json!([{"name": "debugger-new", "image": "busybox"}]));
    let status = started(&p, "2026-01-01T00:00:00Z").unwrap();
    assert_eq!(status["phase"], "Running");
    let s = &status["ephemeralContainerStatuses"][0];
    assert_eq!(s["name"], "debugger-new");
    assert_eq!(s["image"], "busybox");
    assert_eq!(
        s["state"],
        json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    );
    let mut again = p.clone();
    again["status"] = status;
    assert!(started(&again, "2026-01-01T00:00:01Z").is_none());
}
