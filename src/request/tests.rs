//! Table tests: real request lines from kubectl, client-go, kube-rs and controllers, each with the
//! full `ApiRequest` expected; then malformed lines, and a never-panics property test.

use http::Method;

use super::*;

/// Splits `"METHOD /path?query"` as a server would and classifies it.
fn line(request_line: &str) -> Result<ApiRequest, ClassifyError> {
    let (method, target) = request_line.split_once(' ').unwrap();
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    match target.split_once('?') {
        Some((path, query)) => classify(&method, path, Some(query)),
        None => classify(&method, target, None),
    }
}

fn core(resource: &str) -> ResourceRef {
    group("", "v1", resource)
}

fn group(group: &str, version: &str, resource: &str) -> ResourceRef {
    ResourceRef {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        ..ResourceRef::default()
    }
}

trait RefExt {
    fn ns(self, ns: &str) -> Self;
    fn name(self, name: &str) -> Self;
    fn sub(self, sub: &str) -> Self;
}

impl RefExt for ResourceRef {
    fn ns(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }
    fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
    fn sub(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.into());
        self
    }
}

fn q() -> QueryOptions {
    QueryOptions::default()
}

trait OptsExt {
    fn rv(self, rv: &str) -> Self;
    fn rvm(self, rvm: &str) -> Self;
    fn limit(self, limit: u64) -> Self;
    fn cont(self, token: &str) -> Self;
    fn watch(self) -> Self;
    fn labels(self, selector: &str) -> Self;
    fn fields(self, selector: &str) -> Self;
    fn initial_events(self, send: bool) -> Self;
    fn bookmarks(self) -> Self;
    fn timeout(self, seconds: u64) -> Self;
    fn dry_run(self) -> Self;
    fn follow(self) -> Self;
}

impl OptsExt for QueryOptions {
    fn rv(mut self, rv: &str) -> Self {
        self.resource_version = Some(rv.into());
        self
    }
    fn rvm(mut self, rvm: &str) -> Self {
        self.resource_version_match = Some(rvm.into());
        self
    }
    fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
    fn cont(mut self, token: &str) -> Self {
        self.continue_token = Some(token.into());
        self
    }
    fn watch(mut self) -> Self {
        self.watch = true;
        self
    }
    fn labels(mut self, selector: &str) -> Self {
        self.label_selector = Some(selector.into());
        self
    }
    fn fields(mut self, selector: &str) -> Self {
        self.field_selector = Some(selector.into());
        self
    }
    fn initial_events(mut self, send: bool) -> Self {
        self.send_initial_events = Some(send);
        self
    }
    fn bookmarks(mut self) -> Self {
        self.allow_watch_bookmarks = true;
        self
    }
    fn timeout(mut self, seconds: u64) -> Self {
        self.timeout_seconds = Some(seconds);
        self
    }
    fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
    fn follow(mut self) -> Self {
        self.follow = true;
        self
    }
}

fn res(verb: Verb, r: ResourceRef, options: QueryOptions) -> ApiRequest {
    ApiRequest::new(verb, Target::Resource(r), options)
}

fn non(verb: Verb, kind: NonResource) -> ApiRequest {
    ApiRequest::new(verb, Target::NonResource(kind), q())
}

use Verb::*;

/// Real request lines and what the apiserver's RequestInfo makes of them.
fn resource_cases() -> Vec<(&'static str, ApiRequest)> {
    vec![
        // kubectl get / get -A / get <name> / get -w
        (
            "GET /api/v1/namespaces/default/pods?limit=500",
            res(List, core("pods").ns("default"), q().limit(500)),
        ),
        (
            "GET /api/v1/pods?limit=500",
            res(List, core("pods"), q().limit(500)),
        ),
        (
            "GET /api/v1/namespaces/default/pods/nginx-7c5ddbdf54-2xk9q",
            res(
                Get,
                core("pods").ns("default").name("nginx-7c5ddbdf54-2xk9q"),
                q(),
            ),
        ),
        (
            "GET /api/v1/namespaces/default/pods?fieldSelector=&resourceVersion=48213&watch=true",
            res(
                Watch,
                core("pods").ns("default"),
                q().fields("").rv("48213").watch(),
            ),
        ),
        (
            "GET /api/v1/namespaces/default/pods?resourceVersion=48213&watch=true",
            res(Watch, core("pods").ns("default"), q().rv("48213").watch()),
        ),
        // client-go informers: first LIST from cache, then watches with bookmarks
        (
            "GET /api/v1/pods?limit=500&resourceVersion=0",
            res(List, core("pods"), q().limit(500).rv("0")),
        ),
        (
            "GET /api/v1/pods?allowWatchBookmarks=true&resourceVersion=123&timeoutSeconds=413&watch=true",
            res(
                Watch,
                core("pods"),
                q().bookmarks().rv("123").timeout(413).watch(),
            ),
        ),
        (
            "GET /apis/apps/v1/replicasets?limit=500&resourceVersion=0",
            res(
                List,
                group("apps", "v1", "replicasets"),
                q().limit(500).rv("0"),
            ),
        ),
        // client-go relist after 410: unversioned on purpose
        (
            "GET /api/v1/configmaps?limit=500",
            res(List, core("configmaps"), q().limit(500)),
        ),
        // client-go WatchList (KEP-3157)
        (
            "GET /apis/apps/v1/deployments?allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&watch=true",
            res(
                Watch,
                group("apps", "v1", "deployments"),
                q().bookmarks()
                    .rvm("NotOlderThan")
                    .initial_events(true)
                    .watch(),
            ),
        ),
        (
            "GET /api/v1/namespaces/kube-system/secrets?allowWatchBookmarks=true&resourceVersion=&resourceVersionMatch=NotOlderThan&sendInitialEvents=true&timeoutSeconds=536&watch=true",
            res(
                Watch,
                core("secrets").ns("kube-system"),
                q().bookmarks()
                    .rv("")
                    .rvm("NotOlderThan")
                    .initial_events(true)
                    .timeout(536)
                    .watch(),
            ),
        ),
        // kube-rs list/watch (empty query, leading `&`, percent-encoded selector)
        (
            "GET /apis/apps/v1/namespaces/default/deployments?",
            res(List, group("apps", "v1", "deployments").ns("default"), q()),
        ),
        (
            "GET /api/v1/namespaces/default/configmaps?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=0",
            res(
                Watch,
                core("configmaps").ns("default"),
                q().watch().timeout(290).bookmarks().rv("0"),
            ),
        ),
        (
            "GET /api/v1/namespaces/default/pods?&labelSelector=app%3Dnginx%2Ctier+in+%28web%2Capi%29&limit=100",
            res(
                List,
                core("pods").ns("default"),
                q().labels("app=nginx,tier in (web,api)").limit(100),
            ),
        ),
        // exec over WebSocket (GET) and SPDY (POST), attach, port-forward, logs
        (
            "GET /api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true&stdout=true&tty=true",
            res(Exec, core("pods").ns("ns").name("p").sub("exec"), q()),
        ),
        (
            "GET /api/v1/namespaces/ns/pods/p/exec?command=sh&command=-c&command=echo+hi&container=app&stderr=true&stdout=true",
            res(Exec, core("pods").ns("ns").name("p").sub("exec"), q()),
        ),
        (
            "POST /api/v1/namespaces/ns/pods/p/exec?command=ls&container=app&stderr=true&stdout=true",
            res(Exec, core("pods").ns("ns").name("p").sub("exec"), q()),
        ),
        (
            "POST /api/v1/namespaces/ns/pods/p/attach?container=app&stdin=true&stdout=true&tty=true",
            res(Attach, core("pods").ns("ns").name("p").sub("attach"), q()),
        ),
        (
            "GET /api/v1/namespaces/ns/pods/p/portforward?ports=8080",
            res(
                PortForward,
                core("pods").ns("ns").name("p").sub("portforward"),
                q(),
            ),
        ),
        (
            "POST /api/v1/namespaces/ns/pods/p/portforward",
            res(
                PortForward,
                core("pods").ns("ns").name("p").sub("portforward"),
                q(),
            ),
        ),
        (
            "GET /api/v1/namespaces/ns/pods/p/log?container=app&follow=true",
            res(
                Log,
                core("pods").ns("ns").name("p").sub("log"),
                q().follow(),
            ),
        ),
        (
            "GET /api/v1/namespaces/ns/pods/p/log?tailLines=10&timestamps=true",
            res(Log, core("pods").ns("ns").name("p").sub("log"), q()),
        ),
        // legacy /watch/ prefix
        (
            "GET /api/v1/watch/namespaces/default/pods",
            res(Watch, core("pods").ns("default"), q().watch()),
        ),
        (
            "GET /api/v1/watch/pods?resourceVersion=5",
            res(Watch, core("pods"), q().rv("5").watch()),
        ),
        (
            "GET /api/v1/watch/namespaces/default/pods/p",
            res(Watch, core("pods").ns("default").name("p"), q().watch()),
        ),
        (
            "GET /apis/apps/v1/watch/namespaces/a/deployments",
            res(
                Watch,
                group("apps", "v1", "deployments").ns("a"),
                q().watch(),
            ),
        ),
        (
            "GET /api/v1/watch/namespaces",
            res(Watch, core("namespaces"), q().watch()),
        ),
        // the Namespace object itself and its subresources
        (
            "DELETE /api/v1/namespaces/x",
            res(Delete, core("namespaces").ns("x").name("x"), q()),
        ),
        (
            "GET /api/v1/namespaces/x",
            res(Get, core("namespaces").ns("x").name("x"), q()),
        ),
        ("GET /api/v1/namespaces", res(List, core("namespaces"), q())),
        (
            "POST /api/v1/namespaces",
            res(Create, core("namespaces"), q()),
        ),
        (
            "PUT /api/v1/namespaces/x/finalize",
            res(
                Update,
                core("namespaces").ns("x").name("x").sub("finalize"),
                q(),
            ),
        ),
        (
            "GET /api/v1/namespaces/x/status",
            res(Get, core("namespaces").ns("x").name("x").sub("status"), q()),
        ),
        // deletecollection
        (
            "DELETE /api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
            res(
                DeleteCollection,
                core("pods").ns("default"),
                q().labels("app=web"),
            ),
        ),
        (
            "DELETE /apis/rbac.authorization.k8s.io/v1/clusterroles",
            res(
                DeleteCollection,
                group("rbac.authorization.k8s.io", "v1", "clusterroles"),
                q(),
            ),
        ),
        // kubectl wait: a LIST and a WATCH pinned to one name
        (
            "GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dfoo&limit=500",
            res(
                List,
                core("pods").ns("default").name("foo"),
                q().fields("metadata.name=foo").limit(500),
            ),
        ),
        (
            "GET /api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dfoo&resourceVersion=77&watch=true",
            res(
                Watch,
                core("pods").ns("default").name("foo"),
                q().fields("metadata.name=foo").rv("77").watch(),
            ),
        ),
        // CRDs and custom resources
        (
            "GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/foo.example.com",
            res(
                Get,
                group("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                    .name("foo.example.com"),
                q(),
            ),
        ),
        (
            "DELETE /apis/apiextensions.k8s.io/v1/customresourcedefinitions/foo.example.com",
            res(
                Delete,
                group("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                    .name("foo.example.com"),
                q(),
            ),
        ),
        (
            "GET /apis/example.com/v1alpha1/namespaces/team-a/widgets?limit=500",
            res(
                List,
                group("example.com", "v1alpha1", "widgets").ns("team-a"),
                q().limit(500),
            ),
        ),
        (
            "PATCH /apis/example.com/v1alpha1/namespaces/team-a/widgets/w1/status",
            res(
                Patch,
                group("example.com", "v1alpha1", "widgets")
                    .ns("team-a")
                    .name("w1")
                    .sub("status"),
                q(),
            ),
        ),
        (
            "GET /apis/example.com/v1/clusterwidgets/big?resourceVersion=0",
            res(
                Get,
                group("example.com", "v1", "clusterwidgets").name("big"),
                q().rv("0"),
            ),
        ),
        // scale, status, metrics, other subresources
        (
            "GET /apis/apps/v1/namespaces/a/deployments/d/scale",
            res(
                Get,
                group("apps", "v1", "deployments")
                    .ns("a")
                    .name("d")
                    .sub("scale"),
                q(),
            ),
        ),
        (
            "PUT /apis/apps/v1/namespaces/a/deployments/d/scale",
            res(
                Update,
                group("apps", "v1", "deployments")
                    .ns("a")
                    .name("d")
                    .sub("scale"),
                q(),
            ),
        ),
        (
            "GET /apis/metrics.k8s.io/v1beta1/pods",
            res(List, group("metrics.k8s.io", "v1beta1", "pods"), q()),
        ),
        (
            "GET /apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods/coredns-1",
            res(
                Get,
                group("metrics.k8s.io", "v1beta1", "pods")
                    .ns("kube-system")
                    .name("coredns-1"),
                q(),
            ),
        ),
        (
            "PATCH /api/v1/namespaces/default/pods/p/status",
            res(
                Patch,
                core("pods").ns("default").name("p").sub("status"),
                q(),
            ),
        ),
        (
            "POST /api/v1/namespaces/default/pods/p/binding",
            res(
                Create,
                core("pods").ns("default").name("p").sub("binding"),
                q(),
            ),
        ),
        (
            "POST /api/v1/namespaces/default/pods/p/eviction",
            res(
                Create,
                core("pods").ns("default").name("p").sub("eviction"),
                q(),
            ),
        ),
        // writes, dry-run, server-side apply
        (
            "POST /api/v1/namespaces/default/pods?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
            res(Create, core("pods").ns("default"), q()),
        ),
        (
            "POST /api/v1/namespaces/default/pods?dryRun=All&fieldManager=kubectl-create",
            res(Create, core("pods").ns("default"), q().dry_run()),
        ),
        (
            "DELETE /api/v1/namespaces/default/pods/p?dryRun=All",
            res(Delete, core("pods").ns("default").name("p"), q().dry_run()),
        ),
        (
            "PATCH /apis/apps/v1/namespaces/default/deployments/d?fieldManager=kubectl&fieldValidation=Strict&force=false",
            res(
                Patch,
                group("apps", "v1", "deployments").ns("default").name("d"),
                q(),
            ),
        ),
        (
            "PUT /apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler",
            res(
                Update,
                group("coordination.k8s.io", "v1", "leases")
                    .ns("kube-system")
                    .name("kube-scheduler"),
                q(),
            ),
        ),
        (
            "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            res(
                Create,
                group("authorization.k8s.io", "v1", "selfsubjectaccessreviews"),
                q(),
            ),
        ),
        (
            "POST /apis/authentication.k8s.io/v1/tokenreviews",
            res(
                Create,
                group("authentication.k8s.io", "v1", "tokenreviews"),
                q(),
            ),
        ),
        (
            "POST /api/v1/namespaces/default/serviceaccounts/default/token",
            res(
                Create,
                core("serviceaccounts")
                    .ns("default")
                    .name("default")
                    .sub("token"),
                q(),
            ),
        ),
        // proxies: node, service, pod, and the legacy /proxy/ prefix (no subresource there)
        (
            "GET /api/v1/nodes/n1/proxy/metrics",
            res(Proxy, core("nodes").name("n1").sub("proxy"), q()),
        ),
        (
            "GET /api/v1/namespaces/monitoring/services/http:grafana:80/proxy/api/health",
            res(
                Proxy,
                core("services")
                    .ns("monitoring")
                    .name("http:grafana:80")
                    .sub("proxy"),
                q(),
            ),
        ),
        (
            "POST /api/v1/namespaces/ns/pods/p:8080/proxy/submit",
            res(
                Proxy,
                core("pods").ns("ns").name("p:8080").sub("proxy"),
                q(),
            ),
        ),
        (
            "GET /api/v1/proxy/namespaces/ns/services/svc/some/deep/path",
            res(Proxy, core("services").ns("ns").name("svc"), q()),
        ),
        (
            "GET /api/v1/proxy/nodes/n1/stats",
            res(Proxy, core("nodes").name("n1"), q()),
        ),
        // HEAD behaves as GET; methods RequestInfo does not map stay Other
        (
            "HEAD /api/v1/namespaces/default/pods/p",
            res(Get, core("pods").ns("default").name("p"), q()),
        ),
        ("HEAD /api/v1/pods", res(List, core("pods"), q())),
        ("OPTIONS /api/v1/pods", res(Other, core("pods"), q())),
        // watch flag: anything but 0/false, first value wins
        (
            "GET /api/v1/pods?watch=1",
            res(Watch, core("pods"), q().watch()),
        ),
        ("GET /api/v1/pods?watch=false", res(List, core("pods"), q())),
        ("GET /api/v1/pods?watch=FALSE", res(List, core("pods"), q())),
        (
            "GET /api/v1/pods?watch=0&watch=true",
            res(List, core("pods"), q()),
        ),
        (
            "GET /api/v1/pods?watch=",
            res(Watch, core("pods"), q().watch()),
        ),
        // strings.EqualFold: the long s (U+017F, percent-encoded UTF-8) folds to 's'
        (
            "GET /api/v1/pods?watch=FAL%C5%BFE",
            res(List, core("pods"), q()),
        ),
        (
            "GET /api/v1/pods?watch=fals",
            res(Watch, core("pods"), q().watch()),
        ),
        // paging, consistency, selectors
        (
            "GET /api/v1/pods?continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzfQ%3D%3D&limit=500",
            res(
                List,
                core("pods"),
                q().cont("eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTIzfQ==")
                    .limit(500),
            ),
        ),
        (
            "GET /api/v1/events?limit=10&resourceVersion=100&resourceVersionMatch=Exact",
            res(List, core("events"), q().limit(10).rv("100").rvm("Exact")),
        ),
        (
            "GET /api/v1/pods?sendInitialEvents=false&watch=true",
            res(Watch, core("pods"), q().initial_events(false).watch()),
        ),
        (
            "GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&limit=500",
            res(
                List,
                core("pods"),
                q().fields("spec.nodeName=node-1").limit(500),
            ),
        ),
        (
            "GET /api/v1/pods?limit=-1",
            res(List, core("pods"), q().limit(0)),
        ),
        // percent-decoding as Go's url.Path: %3A is ':', %2F splits like a real '/'
        (
            "GET /api/v1/namespaces/default/configmaps/a%3Ab",
            res(Get, core("configmaps").ns("default").name("a:b"), q()),
        ),
        (
            "GET /api/v1/namespaces/a%2Fpods",
            res(List, core("pods").ns("a"), q()),
        ),
        (
            "GET /api/v1/namespaces/default/pods/",
            res(List, core("pods").ns("default"), q()),
        ),
        // Go's url.ParseQuery: pairs with ';' or a bad escape are dropped, the next one counts
        (
            "GET /api/v1/pods?watch=true;x=1",
            res(List, core("pods"), q()),
        ),
        (
            "GET /api/v1/pods?limit=%zz&limit=7",
            res(List, core("pods"), q().limit(7)),
        ),
    ]
}

fn non_resource_cases() -> Vec<(&'static str, ApiRequest)> {
    use NonResource as N;
    vec![
        ("GET /version", non(Get, N::Version)),
        ("GET /version/", non(Get, N::Version)),
        ("GET /healthz", non(Get, N::Health)),
        ("GET /healthz/etcd", non(Get, N::Health)),
        ("GET /livez?verbose", non(Get, N::Health)),
        ("GET /readyz/ping", non(Get, N::Health)),
        ("GET /metrics", non(Get, N::Metrics)),
        ("GET /metrics/slis", non(Get, N::Metrics)),
        ("GET /openapi/v2", non(Get, N::OpenApi)),
        ("GET /openapi/v3", non(Get, N::OpenApi)),
        (
            "GET /openapi/v3/apis/apps/v1?hash=4A3F2B8E9C1D0B7A",
            non(Get, N::OpenApi),
        ),
        ("GET /swagger.json", non(Get, N::OpenApi)),
        ("GET /api", non(Get, N::Discovery)),
        ("GET /api/v1", non(Get, N::Discovery)),
        ("GET /apis", non(Get, N::Discovery)),
        ("GET /apis/apps", non(Get, N::Discovery)),
        ("GET /apis/apps/v1", non(Get, N::Discovery)),
        ("GET /apis/apps/v1/", non(Get, N::Discovery)),
        ("GET /", non(Get, N::Other)),
        ("GET /ui/", non(Get, N::Other)),
        ("GET /openapi", non(Get, N::Other)),
        ("GET /logs/kube-apiserver.log", non(Get, N::Other)),
        ("HEAD /version", non(Other, N::Version)),
        ("POST /apis", non(Create, N::Discovery)),
    ]
}

#[test]
fn classifies_real_resource_requests() {
    let cases = resource_cases();
    assert!(cases.len() >= 60, "only {} resource cases", cases.len());
    for (request_line, expected) in cases {
        assert_eq!(line(request_line), Ok(expected), "{request_line}");
    }
}

#[test]
fn classifies_non_resource_requests() {
    for (request_line, expected) in non_resource_cases() {
        assert_eq!(line(request_line), Ok(expected), "{request_line}");
    }
}

#[test]
fn field_selector_name_follows_fields_parse_selector() {
    let name = |selector: &str| {
        let query = format!("fieldSelector={selector}");
        line(&format!("GET /api/v1/pods?{query}"))
            .unwrap()
            .resource()
            .unwrap()
            .name
            .clone()
    };
    assert_eq!(name("metadata.name%3Dfoo"), Some("foo".into()));
    assert_eq!(name("metadata.name%3D%3Dfoo"), Some("foo".into()));
    assert_eq!(
        name("metadata.name%3Dfoo,status.phase%3DRunning"),
        Some("foo".into())
    );
    // Terms are sorted before the first match is taken.
    assert_eq!(
        name("metadata.name%3Db,metadata.name%3Da"),
        Some("a".into())
    );
    assert_eq!(name("metadata.name!%3Dfoo"), None);
    assert_eq!(name("metadata.name%3D"), None);
    assert_eq!(name("metadata.namespace%3Dfoo"), None);
    // Unparseable selectors pin nothing (the apiserver answers 400 itself).
    assert_eq!(name("metadata.name%3Da%3Db"), None);
    assert_eq!(name("metadata.name"), None);
    assert_eq!(name("metadata.name%3Da\\"), None);
    // Names that are not valid path segments are not recorded.
    assert_eq!(name("metadata.name%3Da%2Fb"), None);
    assert_eq!(name("metadata.name%3D.."), None);
    assert_eq!(name("metadata.name%3Da%25b"), None);
    assert_eq!(name("metadata.name%3Da%00b"), None);
    assert_eq!(name("metadata.name%3Da%0Ab"), None);
    // Escaped values are unescaped.
    assert_eq!(name("metadata.name%3Da\\%2Cb"), Some("a,b".into()));
}

#[test]
fn watch_prefix_keeps_name_only_from_the_path() {
    // RequestInfo reads the field selector only for GETs turned into list/watch.
    let got = line("GET /api/v1/watch/pods?fieldSelector=metadata.name%3Dfoo").unwrap();
    assert_eq!(got.verb, Watch);
    assert_eq!(got.resource().unwrap().name, None);
}

#[test]
fn deletecollection_does_not_take_a_name_from_the_selector() {
    let got = line("DELETE /api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dfoo").unwrap();
    assert_eq!(got.verb, DeleteCollection);
    assert_eq!(got.resource().unwrap().name, None);
}

fn assert_path_error(request_line: &str, needle: &str) {
    match line(request_line) {
        Err(ClassifyError::Path(message)) => assert!(
            message.contains(needle),
            "{request_line}: {message:?} lacks {needle:?}"
        ),
        other => panic!("{request_line}: expected a path error, got {other:?}"),
    }
}

#[test]
fn rejects_malformed_paths() {
    assert_path_error("GET /api/v1/namespaces//pods", "empty segment");
    assert_path_error("GET /api/v1//pods", "empty segment");
    assert_path_error("GET /api/v1/namespaces/default/pods/..", "\"..\"");
    assert_path_error("GET /api/v1/namespaces/%2E%2E/pods", "\"..\"");
    assert_path_error("GET /api/v1/namespaces/./pods", "\".\"");
    assert_path_error("GET /api/v1/namespaces/%2F/pods", "empty segment");
    assert_path_error("GET /api/v1/pods/%zz", "percent-encoding");
    assert_path_error("GET /api/v1/pods/abc%", "percent-encoding");
    assert_path_error("GET /api/v1/pods/abc%4", "percent-encoding");
    assert_path_error("GET /api/v1/pods/a%00b", "NUL");
    assert_path_error("GET /api/v1/pods/%ff%fe", "UTF-8");
    assert_path_error("GET /api/v1/watch", "nothing after /watch/");
    assert_path_error("GET /apis/apps/v1/watch/", "nothing after /watch/");
    assert_path_error("GET /api/v1/proxy", "nothing after /proxy/");
    assert_path_error("GET /healthz/../api/v1/secrets", "\"..\"");
    assert!(matches!(
        classify(&Method::GET, "/api/v1/pods/a\tb", None),
        Err(ClassifyError::Path(m)) if m.contains("control character")
    ));
}

#[test]
fn rejects_malformed_query_values_naming_the_key() {
    let query_error = |request_line: &str| match line(request_line) {
        Err(ClassifyError::Query { name, why }) => (name, why),
        other => panic!("{request_line}: expected a query error, got {other:?}"),
    };
    let (name, why) = query_error("GET /api/v1/pods?limit=abc");
    assert_eq!(name, "limit");
    assert!(why.contains("\"abc\""), "{why}");
    assert_eq!(query_error("GET /api/v1/pods?limit=").0, "limit");
    assert_eq!(query_error("GET /api/v1/pods?limit=1e3").0, "limit");
    assert_eq!(
        query_error("GET /api/v1/pods?limit=99999999999999999999").0,
        "limit"
    );
    assert_eq!(
        query_error("GET /api/v1/pods?watch=1&timeoutSeconds=1.5").0,
        "timeoutSeconds"
    );
    assert_eq!(
        query_error("GET /api/v1/pods?labelSelector=%ff").0,
        "labelSelector"
    );
    // The message a client sees names the key.
    let status: crate::status::Status = line("GET /api/v1/pods?limit=x").unwrap_err().into();
    assert_eq!(status.code, 400);
    assert!(status.message.contains("limit"), "{}", status.message);
}

#[test]
fn unknown_keys_and_their_bad_values_are_ignored() {
    let got = line("GET /api/v1/pods?pretty=%zz&foo=%ff&limit=3&limit=x").unwrap();
    assert_eq!(got.options, q().limit(3));
}

#[test]
fn dry_run_counts_any_all_value() {
    let got = line("DELETE /api/v1/namespaces/x?dryRun=&dryRun=All").unwrap();
    assert!(got.options.dry_run);
    let got = line("DELETE /api/v1/namespaces/x?dryRun=all").unwrap();
    assert!(!got.options.dry_run);
}

#[test]
fn unversioned_list_helper() {
    let yes = [
        "GET /api/v1/pods?limit=500",
        "GET /api/v1/pods?resourceVersion=",
    ];
    for request_line in yes {
        assert!(
            line(request_line).unwrap().is_unversioned_list(),
            "{request_line}"
        );
    }
    let no = [
        "GET /api/v1/pods?resourceVersion=0",
        "GET /api/v1/pods?watch=true",
        "GET /api/v1/namespaces/d/pods/p",
        "GET /version",
    ];
    for request_line in no {
        assert!(
            !line(request_line).unwrap().is_unversioned_list(),
            "{request_line}"
        );
    }
}

#[test]
fn resource_labels() {
    let label = |request_line: &str| line(request_line).unwrap().resource_label().to_string();
    assert_eq!(label("GET /api/v1/namespaces/a/pods/p/log"), "pods/log");
    assert_eq!(label("GET /apis/apps/v1/deployments"), "deployments.apps");
    assert_eq!(label("GET /version"), "/version");
}

// ---------------------------------------------------------------------------------------------
// Property: no input makes classify panic, and what it returns is well-formed.

/// xorshift64*: deterministic, so a failure names its seed and iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "api",
    "apis",
    "v1",
    "apps",
    "namespaces",
    "default",
    "pods",
    "watch",
    "proxy",
    "status",
    "finalize",
    "exec",
    "log",
    "%",
    "%2F",
    "%2f",
    "%2E",
    "%zz",
    "%00",
    "%ff",
    "%C3%A9",
    "..",
    ".",
    "",
    "?",
    "&",
    "=",
    ";",
    "+",
    "\\",
    ",",
    "é",
    "\u{0}",
    "\t",
    "limit=",
    "watch=",
    "fieldSelector=metadata.name%3D",
    "-1",
    "99999999999999999999",
    "true",
    "0",
];

fn random_string(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(24) {
        if rng.below(8) == 0 {
            // Any char, including ones no generator piece has.
            s.push(char::from_u32((rng.next() % 0x800) as u32).unwrap_or('x'));
        } else {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    s
}

fn check_well_formed(got: &ApiRequest, input: &str) {
    let Target::Resource(r) = &got.target else {
        return;
    };
    let fields = [Some(&r.version), Some(&r.resource)]
        .into_iter()
        .chain([
            r.subresource.as_ref(),
            r.namespace.as_ref(),
            r.name.as_ref(),
        ])
        .flatten();
    for field in fields {
        assert!(!field.is_empty(), "{input:?} → {got:?}");
        assert!(!field.contains(['/', '\0']), "{input:?} → {got:?}");
        assert!(field != "." && field != "..", "{input:?} → {got:?}");
    }
    if got.verb == Watch {
        assert!(got.options.watch, "{input:?} → {got:?}");
    }
    if got.verb == List && r.name.is_some() {
        assert!(r.subresource.is_none(), "{input:?} → {got:?}");
    }
}

#[test]
fn never_panics_on_random_input() {
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ok = 0;
    for _ in 0..20_000 {
        let method = &methods[rng.below(methods.len())];
        let path = format!("/{}", random_string(&mut rng));
        let query = random_string(&mut rng);
        let query = (rng.below(4) != 0).then_some(query.as_str());
        let first = classify(method, &path, query);
        assert_eq!(first, classify(method, &path, query), "not deterministic");
        if let Ok(got) = &first {
            check_well_formed(got, &path);
            ok += 1;
        }
    }
    // The generator must reach the interesting code, not only the error paths.
    assert!(ok > 2_000, "only {ok} inputs classified");
}

#[test]
fn table_lines_survive_mutation() {
    // Every prefix of every real line, and each line with one byte replaced, classifies or errors.
    let mut rng = Rng(42);
    for (request_line, _) in resource_cases().into_iter().chain(non_resource_cases()) {
        let (method, target) = request_line.split_once(' ').unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for end in (0..=target.len()).filter(|&i| target.is_char_boundary(i)) {
            let cut = &target[..end];
            let (path, query) = cut
                .split_once('?')
                .map_or((cut, None), |(p, q)| (p, Some(q)));
            if let Ok(got) = classify(&method, path, query) {
                check_well_formed(&got, cut);
            }
        }
        let mut bytes = target.as_bytes().to_vec();
        let at = rng.below(bytes.len());
        bytes[at] = b"/%?&=.;+\0"[rng.below(9)];
        let mutated = String::from_utf8(bytes).unwrap();
        let (path, query) = mutated
            .split_once('?')
            .map_or((mutated.as_str(), None), |(p, q)| (p, Some(q)));
        if let Ok(got) = classify(&method, path, query) {
            check_well_formed(&got, &mutated);
        }
    }
}
