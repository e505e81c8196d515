use super::*;

fn doc(path: &str) -> Value {
    v3_document(&Registry::builtin(), path).unwrap()
}

/// Follows `allOf: [{$ref}]` / `$ref` to the named schema.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let r = v
        .get("$ref")
        .or_else(|| v.pointer("/allOf/0/$ref"))
        .or_else(|| v.pointer("/items/allOf/0/$ref"))
        .and_then(Value::as_str);
    match r {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => v,
    }
}

#[test]
fn index_lists_every_group_version_with_a_hash() {
    let idx = v3_index(&Registry::builtin());
    let paths = idx["paths"].as_object().unwrap();
    for p in ["api/v1", "apis/apps/v1", "apis/apiextensions.k8s.io/v1"] {
        let url = paths[p]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with(&format!("/openapi/v3/{p}?hash=")), "{url}");
        assert!(url.len() > format!("/openapi/v3/{p}?hash=").len() + 32);
    }
    // The same registry gives the same hashes (clients cache by it).
    assert_eq!(idx, v3_index(&Registry::builtin()));
}

#[test]
fn unknown_paths_have_no_document() {
    let reg = Registry::builtin();
    assert!(v3_document(&reg, "apis/policy/v1").is_none());
    assert!(v3_document(&reg, "apis/batch/v1").is_some());
    assert!(v3_document(&reg, "api").is_none());
    assert!(v3_document(&reg, "nonsense/x/y/z").is_none());
    assert!(v3_document(&reg, "/api/v1?hash=ABC").is_some());
}

#[test]
fn pod_schema_serves_explain() {
    let d = doc("api/v1");
    assert_eq!(d["openapi"], "3.0.0");
    let schemas = d["components"]["schemas"].as_object().unwrap();
    let pod = &schemas["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert!(pod["description"].as_str().unwrap().starts_with("Pod is"));
    for f in ["apiVersion", "kind", "metadata", "spec", "status"] {
        assert!(pod["properties"].get(f).is_some(), "{f}");
    }
    let meta = deref(&d, &pod["properties"]["metadata"]);
    assert!(meta["properties"]["labels"].is_object());
    let spec = deref(&d, &pod["properties"]["spec"]);
    assert!(spec["properties"]["nodeName"].is_object());
    let containers = &spec["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let container = deref(&d, containers);
    for f in ["image", "ports", "env", "resources", "volumeMounts"] {
        assert!(container["properties"].get(f).is_some(), "{f}");
    }
    assert_eq!(
        container["properties"]["env"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    assert_eq!(
        container["properties"]["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
    // Every reference resolves inside the document.
    let mut refs = Vec::new();
    collect_refs(&d, &mut refs);
    for r in refs {
        assert!(schemas.contains_key(&r), "dangling {r}");
    }
    assert!(schemas.contains_key("io.k8s.api.core.v1.PodList"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
}

#[test]
fn patch_operations_accept_field_validation() {
    let d = doc("apis/apps/v1");
    let item = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &item["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    );
    assert!(
        patch["requestBody"]["content"]
            .get("application/apply-patch+yaml")
            .is_some()
    );
    assert!(d["paths"].get("/apis/apps/v1/deployments").is_some());
    let nodes = doc("api/v1");
    assert!(nodes["paths"].get("/api/v1/nodes/{name}").is_some());
    assert!(
        nodes["paths"]
            .get("/api/v1/namespaces/{namespace}/nodes")
            .is_none()
    );
    let deploy = &d["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
    let spec = deref(&d, &deploy["properties"]["spec"]);
    let template = deref(&d, &spec["properties"]["template"]);
    assert!(deref(&d, &template["properties"]["spec"])["properties"]["containers"].is_object());
}

fn widget_registry() -> Registry {
    let mut reg = Registry::builtin();
    let mut t = reg.find("", "v1", "configmaps").unwrap().clone();
    t.group = "example.com".into();
    t.resource = "widgets".into();
    t.kind = "Widget".into();
    t.singular = "widget".into();
    reg.add(t);
    reg
}

#[test]
fn custom_resources_use_the_crd_schema_or_a_generic_one() {
    let reg = widget_registry();
    let generic = v3_document(&reg, "apis/example.com/v1").unwrap();
    let w = &generic["components"]["schemas"]["com.example.v1.Widget"];
    assert_eq!(w["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(w["x-kubernetes-group-version-kind"][0]["kind"], "Widget");

    let crd = json!({"spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
            "type": "object", "description": "A widget.",
            "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "description": "How big."}}}}}}}]}});
    let crds = [crd];
    let d = v3_document_with_crds(&reg, "apis/example.com/v1", &crds).unwrap();
    let w = &d["components"]["schemas"]["com.example.v1.Widget"];
    assert_eq!(w["description"], "A widget.");
    assert_eq!(
        w["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    assert!(w["properties"]["metadata"]["allOf"][0]["$ref"].is_string());
    assert!(
        d["components"]["schemas"]
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some()
    );
    // A schema change moves the hash of that group-version only.
    let before = v3_index(&reg);
    let after = v3_index_with_crds(&reg, &crds);
    let url = |i: &Value, p: &str| i["paths"][p]["serverRelativeURL"].clone();
    assert_ne!(
        url(&before, "apis/example.com/v1"),
        url(&after, "apis/example.com/v1")
    );
    assert_eq!(url(&before, "api/v1"), url(&after, "api/v1"));
}

#[test]
fn v2_documents() {
    let reg = Registry::builtin();
    let pb = v2_protobuf(&reg);
    // field 1 (swagger) = "2.0", then field 2 (info) as a nested message.
    assert_eq!(&pb[..5], &[0x0a, 3, b'2', b'.', b'0']);
    assert_eq!(pb[5], 0x12);
    assert_eq!(pb[6] as usize, pb.len() - 7);
    let j = v2_document(&reg).unwrap();
    assert_eq!(j["swagger"], "2.0");
    let pod = &j["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["properties"]["spec"]["allOf"][0]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
}

#[test]
fn review_types_have_only_a_create_operation() {
    let d = doc("apis/authorization.k8s.io/v1");
    let paths = d["paths"].as_object().unwrap();
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        ]
    );
    let ssar = &paths["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"];
    let methods: Vec<&str> = ssar
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "parameters")
        .collect();
    assert_eq!(methods, vec!["post"]);
    assert_eq!(
        ssar["post"]["operationId"],
        "createAuthorizationV1SelfSubjectAccessReview"
    );
}
