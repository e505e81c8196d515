use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

#[test]
fn core_versions_decode_as_api_versions() {
    let v: meta::APIVersions = serde_json::from_value(core_versions_at("127.0.0.1:8443")).unwrap();
    assert_eq!(v.versions, vec!["v1".to_string()]);
    assert_eq!(v.server_address_by_client_cidrs[0].client_cidr, "0.0.0.0/0");
    assert_eq!(
        v.server_address_by_client_cidrs[0].server_address,
        "127.0.0.1:8443"
    );
}

#[test]
fn group_list_has_apps_and_no_core() {
    let reg = Registry::builtin();
    let list: meta::APIGroupList = serde_json::from_value(group_list(&reg)).unwrap();
    let names: Vec<&str> = list.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "batch",
            "rbac.authorization.k8s.io",
            "storage.k8s.io",
            "apiextensions.k8s.io",
            "coordination.k8s.io",
            "discovery.k8s.io"
        ]
    );
    let apps = &list.groups[0];
    assert_eq!(apps.versions[0].group_version, "apps/v1");
    assert_eq!(
        apps.preferred_version.as_ref().unwrap().group_version,
        "apps/v1"
    );
}

#[test]
fn one_group_or_none() {
    let reg = Registry::builtin();
    let g = group(&reg, "apps").unwrap();
    assert_eq!(g["kind"], "APIGroup");
    let g: meta::APIGroup = serde_json::from_value(g).unwrap();
    assert_eq!(g.name, "apps");
    assert!(group(&reg, "batch").is_some());
    assert!(group(&reg, "policy").is_none());
    assert!(group(&reg, "").is_none());
}

#[test]
fn core_resource_list_carries_pods_and_subresources() {
    let reg = Registry::builtin();
    let doc = resource_list(&reg, "", "v1").unwrap();
    let list: meta::APIResourceList = serde_json::from_value(doc).unwrap();
    assert_eq!(list.group_version, "v1");
    let find = |n: &str| list.resources.iter().find(|r| r.name == n).unwrap();
    let pods = find("pods");
    assert_eq!(pods.kind, "Pod");
    assert_eq!(pods.singular_name, "pod");
    assert!(pods.namespaced);
    assert_eq!(pods.short_names.as_deref(), Some(&["po".to_string()][..]));
    assert_eq!(pods.categories.as_deref(), Some(&["all".to_string()][..]));
    assert!(pods.verbs.contains(&"watch".to_string()));
    assert_eq!(pods.storage_version_hash.as_deref(), Some("xPOwRZ+Yhw8="));
    let exec = find("pods/exec");
    assert_eq!(exec.verbs, vec!["create", "get"]);
    assert_eq!(exec.kind, "PodExecOptions");
    assert_eq!(find("pods/log").verbs, vec!["get"]);
    assert_eq!(find("pods/status").verbs, vec!["get", "patch", "update"]);
    assert_eq!(find("pods/eviction").group.as_deref(), Some("policy"));
    assert!(!find("nodes").namespaced);
    assert!(
        !find("namespaces")
            .verbs
            .contains(&"deletecollection".into())
    );
}

#[test]
fn scale_subresource_names_autoscaling_scale() {
    let reg = Registry::builtin();
    let doc = resource_list(&reg, "apps", "v1").unwrap();
    assert_eq!(doc["apiVersion"], "v1");
    let list: meta::APIResourceList = serde_json::from_value(doc).unwrap();
    let scale = list
        .resources
        .iter()
        .find(|r| r.name == "deployments/scale")
        .unwrap();
    assert_eq!(scale.group.as_deref(), Some("autoscaling"));
    assert_eq!(scale.version.as_deref(), Some("v1"));
    assert_eq!(scale.kind, "Scale");
    assert!(resource_list(&reg, "apps", "v2").is_none());
}

#[test]
fn accept_negotiation() {
    assert_eq!(wants_aggregated(KUBECTL_ACCEPT), Some("v2"));
    assert_eq!(
        wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ),
        Some("v2beta1")
    );
    // Newer clients put protobuf first; params may come in any order.
    assert_eq!(
        wants_aggregated(
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io"
        ),
        Some("v2")
    );
    assert_eq!(wants_aggregated("application/json"), None);
    assert_eq!(wants_aggregated("application/json, */*"), None);
    assert_eq!(wants_aggregated(""), None);
    assert_eq!(
        wants_aggregated("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
        None
    );
    assert_eq!(
        aggregated_content_type("v2"),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
}

#[test]
fn aggregated_core_and_groups() {
    let reg = Registry::builtin();
    let core = aggregated(&reg, true, "v2");
    assert_eq!(core["kind"], "APIGroupDiscoveryList");
    assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
    let items = core["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0]["metadata"].get("name").is_none());
    let v1 = &items[0]["versions"][0];
    assert_eq!(v1["version"], "v1");
    assert_eq!(v1["freshness"], "Current");
    let pods = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "pods")
        .unwrap();
    assert_eq!(pods["scope"], "Namespaced");
    assert_eq!(pods["singularResource"], "pod");
    assert_eq!(pods["responseKind"]["kind"], "Pod");
    let exec = pods["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subresource"] == "exec")
        .unwrap();
    assert_eq!(exec["verbs"], json!(["create", "get"]));

    let groups = aggregated(&reg, false, "v2beta1");
    assert_eq!(groups["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let names: Vec<&str> = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "batch",
            "rbac.authorization.k8s.io",
            "storage.k8s.io",
            "apiextensions.k8s.io",
            "coordination.k8s.io",
            "discovery.k8s.io"
        ]
    );
    let item = |group: &str, resource: &str| {
        let g = groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == group)
            .unwrap();
        g["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == resource)
            .unwrap()
            .clone()
    };
    // Resources are listed by name within a group version.
    assert_eq!(
        groups["items"][0]["versions"][0]["resources"][0]["resource"],
        "daemonsets"
    );
    let deploy = &item("apps", "deployments");
    assert_eq!(deploy["resource"], "deployments");
    assert_eq!(deploy["shortNames"], json!(["deploy"]));
    let scale = deploy["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subresource"] == "scale")
        .unwrap();
    assert_eq!(
        scale["responseKind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    let whoami = &item("authentication.k8s.io", "selfsubjectreviews");
    assert_eq!(
        (&whoami["resource"], &whoami["verbs"], &whoami["scope"]),
        (
            &json!("selfsubjectreviews"),
            &json!(["create"]),
            &json!("Cluster")
        )
    );
    let crd = &item("apiextensions.k8s.io", "customresourcedefinitions");
    assert_eq!(crd["scope"], "Cluster");
}

#[test]
fn crd_types_show_up_in_discovery() {
    let mut reg = Registry::builtin();
    let mut t = reg.find("", "v1", "configmaps").unwrap().clone();
    t.group = "example.com".into();
    t.resource = "widgets".into();
    t.kind = "Widget".into();
    t.singular = "widget".into();
    t.short_names = vec![];
    reg.add(t);
    assert!(resource_list(&reg, "example.com", "v1").is_some());
    assert!(group(&reg, "example.com").is_some());
    let agg = aggregated(&reg, false, "v2");
    assert!(
        agg["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"]["name"] == "example.com")
    );
}

#[test]
fn the_review_apis_are_create_only_and_unstored() {
    let reg = Registry::builtin();
    let doc = resource_list(&reg, "authorization.k8s.io", "v1").unwrap();
    let list: meta::APIResourceList = serde_json::from_value(doc).unwrap();
    let names: Vec<(&str, &str, bool)> = list
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.kind.as_str(), r.namespaced))
        .collect();
    assert_eq!(
        names,
        vec![
            (
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                true
            ),
            ("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
            ("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
            ("subjectaccessreviews", "SubjectAccessReview", false),
        ]
    );
    for r in &list.resources {
        assert_eq!(r.verbs, vec!["create"], "{}", r.name);
        // Nothing is stored, so the apiserver gives no storage version hash.
        assert!(r.storage_version_hash.is_none(), "{}", r.name);
    }
    let doc = resource_list(&reg, "authentication.k8s.io", "v1").unwrap();
    let list: meta::APIResourceList = serde_json::from_value(doc).unwrap();
    let names: Vec<&str> = list.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["selfsubjectreviews", "tokenreviews"]);
    assert_eq!(list.resources[0].singular_name, "selfsubjectreview");
}
