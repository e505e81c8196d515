use super::resource::verb_name;
use super::*;

fn rp(
    group: &str,
    version: &str,
    ns: Option<&str>,
    res: &str,
    name: Option<&str>,
    sub: Option<&str>,
    watch: bool,
) -> Route {
    Route::Resource(ResourcePath {
        group: group.into(),
        version: version.into(),
        namespace: ns.map(str::to_string),
        resource: res.into(),
        name: name.map(str::to_string),
        sub: sub.map(str::to_string),
        watch_prefix: watch,
    })
}

#[test]
fn routes_follow_request_info() {
    assert_eq!(route("/version"), Route::Version);
    assert_eq!(route("/readyz/ping"), Route::Health);
    assert_eq!(route("/api"), Route::CoreVersions);
    assert_eq!(route("/apis/apps"), Route::Group("apps".into()));
    assert_eq!(
        route("/apis/apps/v1"),
        Route::Resources("apps".into(), "v1".into())
    );
    assert_eq!(
        route("/openapi/v3/api/v1"),
        Route::OpenApiV3("api/v1".into())
    );
    assert_eq!(
        route("/api/v1/pods"),
        rp("", "v1", None, "pods", None, None, false)
    );
    assert_eq!(
        route("/api/v1/namespaces"),
        rp("", "v1", None, "namespaces", None, None, false)
    );
    assert_eq!(
        route("/api/v1/namespaces/x"),
        rp("", "v1", None, "namespaces", Some("x"), None, false)
    );
    assert_eq!(
        route("/api/v1/namespaces/x/status"),
        rp(
            "",
            "v1",
            None,
            "namespaces",
            Some("x"),
            Some("status"),
            false
        )
    );
    assert_eq!(
        route("/api/v1/namespaces/x/pods"),
        rp("", "v1", Some("x"), "pods", None, None, false)
    );
    assert_eq!(
        route("/api/v1/namespaces/x/pods/p/log"),
        rp("", "v1", Some("x"), "pods", Some("p"), Some("log"), false)
    );
    assert_eq!(
        route("/apis/apps/v1/watch/namespaces/x/deployments"),
        rp("apps", "v1", Some("x"), "deployments", None, None, true)
    );
    assert_eq!(
        route("/api/v1/namespaces/x/pods/p/log/extra"),
        Route::NotFound
    );
    assert_eq!(route("/nope"), Route::NotFound);
}

#[test]
fn version_document() {
    let v = version_doc("v1.31.2");
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str()),
        (Some("1"), Some("31"))
    );
    assert_eq!(v["gitVersion"], "v1.31.2");
}

#[test]
fn verbs_for_metrics() {
    assert_eq!(verb_name(&Method::GET, false, true, None), "watch");
    assert_eq!(verb_name(&Method::GET, false, false, None), "list");
    assert_eq!(
        verb_name(&Method::DELETE, false, false, None),
        "deletecollection"
    );
    assert_eq!(verb_name(&Method::GET, true, false, Some("log")), "log");
}

#[test]
fn not_found_carries_empty_details_as_the_apiserver_does() {
    let v: Value = serde_json::from_slice(&hu::no_such_resource().to_bytes()).unwrap();
    assert_eq!(v["reason"], "NotFound");
    assert_eq!(v["details"], json!({}));
}
