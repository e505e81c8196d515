//! The emulator's request handling: path → (group, version, namespace, resource, name,
//! subresource) following the apiserver's RequestInfo rules, then one function per verb.
//!
//! The life of a request here:
//! 1. negotiate (Accept must allow JSON; protobuf bodies get 415 so clients fall back),
//! 2. route: non-resource paths (version, health, discovery, OpenAPI) or a resource path,
//! 3. serve the verb against the store, spending the cost model's time for reads,
//! 4. count it in `sim_requests_total{verb,code}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::SimBody;
use super::SimOptions;
use super::cost::Cost;
use super::http_util::{self as hu, Query};
use super::list::{self, Source};
use super::patch::{self, PatchType};
use super::registry::ResourceType;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{self, Deleted, Filter, Store, Stored, gr_of};
use super::table::{self, IncludeObject};
use super::watch::{self as w, TableFormat, WatchCtx, WatchParams};
use super::{auth, discovery, exec, logs, openapi};
use crate::status::{Status, StatusDetails};

/// Largest request body accepted (the apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared state of a running emulator.
pub struct Sim {
    pub store: Arc<Store>,
    pub cost: Arc<Cost>,
    pub opts: SimOptions,
    pub minor: u32,
    pub shutdown: watch::Receiver<bool>,
    /// Cancelled when a pod is deleted: ends its `logs -f` and `exec` sessions.
    pub pods_gone: PodsGone,
    /// `host:port` of the API listener (advertised by `GET /api`).
    pub addr_string: String,
    /// Authentication and authorization, when a users file is given.
    pub users: Option<Arc<auth::Users>>,
}

/// One cancellation token per pod that has a log or exec session open.
#[derive(Default)]
pub struct PodsGone(Mutex<HashMap<(String, String), CancellationToken>>);

impl PodsGone {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CancellationToken>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn token(&self, ns: &str, name: &str) -> CancellationToken {
        self.lock()
            .entry((ns.to_string(), name.to_string()))
            .or_default()
            .clone()
    }

    pub fn deleted(&self, ns: &str, name: &str) {
        if let Some(t) = self.lock().remove(&(ns.to_string(), name.to_string())) {
            t.cancel();
        }
    }

    pub fn namespace_gone(&self, ns: &str) {
        self.lock().retain(|(n, _), t| {
            if n == ns {
                t.cancel();
            }
            n != ns
        });
    }

    pub fn cancel_all(&self) {
        for (_, t) in self.lock().drain() {
            t.cancel();
        }
    }
}

/// A resource request after routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub sub: Option<String>,
    pub watch_prefix: bool,
}

/// What a path is.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String),
    Resource(ResourcePath),
    NotFound,
}

pub fn route(path: &str) -> Route {
    let path = path.trim_end_matches('/');
    match path {
        "/version" => return Route::Version,
        "/healthz" | "/livez" | "/readyz" => return Route::Health,
        "/api" => return Route::CoreVersions,
        "/apis" => return Route::Groups,
        "/openapi/v2" => return Route::OpenApiV2,
        "/openapi/v3" => return Route::OpenApiV3Index,
        _ => {}
    }
    if ["/healthz/", "/livez/", "/readyz/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return Route::Health;
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3/") {
        return Route::OpenApiV3(rest.to_string());
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g] => return Route::Group(g.to_string()),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Route::NotFound,
    };
    if rest.is_empty() {
        return Route::Resources(group, version);
    }
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..]
            if !(tail.is_empty()
                || tail.len() == 1 && matches!(tail[0], "status" | "finalize")) =>
        {
            (Some(ns.to_string()), tail)
        }
        rest => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [r] => (r, None, None),
        [r, n] => (r, Some(n.to_string()), None),
        [r, n, s] => (r, Some(n.to_string()), Some(s.to_string())),
        _ => return Route::NotFound,
    };
    if resource.is_empty() || name.as_deref() == Some("") {
        return Route::NotFound;
    }
    Route::Resource(ResourcePath {
        group,
        version,
        namespace,
        resource: resource.to_string(),
        name,
        sub,
        watch_prefix,
    })
}

/// Serves one request (never fails: every error is a `Status` response).
pub async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> Response<SimBody> {
    // Authentication comes first, as in the apiserver's filter chain (k8s-facts §2).
    let user = match &sim.users {
        None => Ok(None),
        Some(users) => users.authenticate(req.headers(), None).map(Some),
    };
    let record = sim.opts.on_request.as_ref().map(|_| {
        (
            req.method().to_string(),
            req.uri().to_string(),
            std::time::SystemTime::now(),
            std::time::Instant::now(),
        )
    });
    let username = user
        .as_ref()
        .ok()
        .and_then(|u| u.as_ref().map(|u| u.username.clone()));
    let (verb, resp) = match user {
        Err(st) => ("other", hu::status(st)),
        Ok(user) => dispatch(&sim, req, user.as_ref()).await,
    };
    sim.cost.request_done(verb, resp.status().as_u16());
    if let (Some(hook), Some((method, uri, received, started))) = (&sim.opts.on_request, record) {
        (hook.0)(&super::RequestRecord {
            verb,
            method,
            uri,
            user: username,
            code: resp.status().as_u16(),
            received,
            latency: started.elapsed(),
        });
    }
    resp
}

/// The review APIs served when authentication is on.
const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
const SELF_SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

async fn reviews(
    users: &auth::Users,
    user: &auth::UserInfo,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Status> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let (group, resource) = match path.as_str() {
        TOKEN_REVIEWS => ("authentication.k8s.io", "tokenreviews"),
        SUBJECT_ACCESS_REVIEWS => ("authorization.k8s.io", "subjectaccessreviews"),
        _ => ("authorization.k8s.io", "selfsubjectaccessreviews"),
    };
    // Everyone may ask about themselves; the other reviews need `create` on them.
    if resource != "selfsubjectaccessreviews" {
        users.authorize(
            user,
            &auth::ResourceAttributes::new("create", group, resource, ""),
        )?;
    }
    let b = body(req).await?;
    let answer = match resource {
        "tokenreviews" => users.token_review(&b)?,
        "subjectaccessreviews" => users.subject_access_review(&b)?,
        _ => users.self_subject_access_review(user, &b)?,
    };
    Ok(hu::json_value(StatusCode::CREATED, &answer))
}

async fn dispatch(
    sim: &Arc<Sim>,
    req: Request<Incoming>,
    user: Option<&auth::UserInfo>,
) -> (&'static str, Response<SimBody>) {
    let accept = header_str(&req, header::ACCEPT);
    // kubectl asks for the v2 document as protobuf only (openapi.rs explains why it needs it).
    let v2_protobuf =
        accept.contains("proto-openapi.spec.v2") && route(req.uri().path()) == Route::OpenApiV2;
    if !v2_protobuf && !hu::accepts_json(&accept) {
        return ("other", hu::status(hu::not_acceptable()));
    }
    if let (Some(users), Some(user)) = (&sim.users, user)
        && req.method() == Method::POST
        && matches!(
            req.uri().path().trim_end_matches('/'),
            TOKEN_REVIEWS | SUBJECT_ACCESS_REVIEWS | SELF_SUBJECT_ACCESS_REVIEWS
        )
    {
        if req.uri().path().trim_end_matches('/') == TOKEN_REVIEWS {
            sim.cost
                .token_reviews
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let resp = reviews(users, user, req).await.unwrap_or_else(hu::status);
        return ("create", resp);
    }
    let route = route(req.uri().path());
    if let (Some(users), Some(user), false) =
        (&sim.users, user, matches!(route, Route::Resource(_)))
        && let Err(st) = users.authorize_path(
            user,
            &req.method().as_str().to_ascii_lowercase(),
            req.uri().path(),
        )
    {
        return ("get", hu::status(st));
    }
    let reg = || sim.store.registry();
    let doc = |v: Option<Value>| match v {
        Some(v) if !v.is_null() => hu::json_value(StatusCode::OK, &v),
        _ => hu::status(hu::no_such_resource()),
    };
    let resp = match route {
        Route::Version => hu::json_value(StatusCode::OK, &version_doc(&sim.opts.server_version)),
        Route::Health => hu::typed(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"ok"),
        ),
        Route::CoreVersions => match discovery::wants_aggregated(&accept) {
            Some(v) => aggregated(discovery::aggregated(&reg(), true, v), v),
            None => doc(Some(discovery::core_versions_at(&sim.addr_string))),
        },
        Route::Groups => match discovery::wants_aggregated(&accept) {
            Some(v) => aggregated(discovery::aggregated(&reg(), false, v), v),
            None => doc(Some(discovery::group_list(&reg()))),
        },
        Route::Group(g) => doc(discovery::group(&reg(), &g)),
        Route::Resources(g, v) => doc(discovery::resource_list(&reg(), &g, &v)),
        Route::OpenApiV2 if v2_protobuf => hu::typed(
            StatusCode::OK,
            openapi::V2_PROTOBUF_CONTENT_TYPE,
            Bytes::from(openapi::v2_protobuf(&reg())),
        ),
        Route::OpenApiV2 => doc(openapi::v2_document(&reg())),
        // Custom types take their schema from their CRD, so `kubectl explain <crd>` shows it.
        Route::OpenApiV3Index => doc(Some(openapi::v3_index_with_crds(&reg(), &sim.store.crds()))),
        Route::OpenApiV3(p) => doc(openapi::v3_document_with_crds(
            &reg(),
            &p,
            &sim.store.crds(),
        )),
        Route::NotFound => hu::status(hu::no_such_resource()),
        Route::Resource(rp) => return resource(sim, req, rp, &accept, user).await,
    };
    ("get", resp)
}

fn aggregated(v: Value, version: &str) -> Response<SimBody> {
    let mut r = hu::json_value(StatusCode::OK, &v);
    if let Ok(ct) = http::HeaderValue::from_str(&discovery::aggregated_content_type(version)) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r
}

pub fn version_doc(git_version: &str) -> Value {
    let v = git_version.strip_prefix('v').unwrap_or(git_version);
    let mut parts = v.split('.');
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-08-14T00:00:00Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn header_str(req: &Request<Incoming>, h: header::HeaderName) -> String {
    req.headers()
        .get_all(h)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything a verb handler needs about the request.
struct Ctx<'a> {
    sim: &'a Arc<Sim>,
    rt: ResourceType,
    ns: String,
    name: Option<String>,
    query: Query,
    raw_query: String,
    accept: String,
}

impl Ctx<'_> {
    fn gr(&self) -> store::Gr {
        gr_of(&self.rt)
    }

    fn dry_run(&self) -> bool {
        self.query.all("dryRun").any(|v| v == "All")
    }

    fn table(&self) -> Option<TableFormat> {
        let version = table::wants_table(&self.accept)?;
        let include = match self.query.get("includeObject") {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        };
        Some(TableFormat { version, include })
    }

    /// The CRD's printer columns when the type is a custom one.
    fn printer_columns(&self) -> Option<Vec<Value>> {
        let crd = self.sim.store.crd_for(&self.rt.group, &self.rt.resource)?;
        Some(table::crd_printer_columns(&crd, &self.rt.version))
    }

    fn filter(&self) -> Result<Filter, Status> {
        Ok(Filter {
            namespace: None,
            labels: LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.query.get("fieldSelector").unwrap_or(""))?,
        })
    }

    /// The namespace of a collection request, None for all namespaces / cluster scope.
    fn ns_opt(&self) -> Option<&str> {
        (self.rt.namespaced && !self.ns.is_empty()).then_some(self.ns.as_str())
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    fn object_response(&self, code: StatusCode, obj: &Stored) -> Response<SimBody> {
        match self.table() {
            Some(t) => {
                let md = json!({"resourceVersion": obj.rv.to_string()});
                let tbl = table::table_of(
                    &self.rt,
                    self.printer_columns().as_deref(),
                    &[obj.value()],
                    md,
                    t.include,
                    t.version,
                    now(),
                );
                if tbl.is_null() {
                    hu::json_bytes(code, obj.json.clone())
                } else {
                    hu::json_value(code, &tbl)
                }
            }
            None => hu::json_bytes(code, obj.json.clone()),
        }
    }
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

async fn resource(
    sim: &Arc<Sim>,
    req: Request<Incoming>,
    rp: ResourcePath,
    accept: &str,
    user: Option<&auth::UserInfo>,
) -> (&'static str, Response<SimBody>) {
    let query = Query::parse(req.uri().query());
    let watch = rp.watch_prefix || query.flag("watch");
    let method = req.method().clone();
    let verb = verb_name(&method, rp.name.is_some(), watch, rp.sub.as_deref());
    if let (Some(users), Some(user)) = (&sim.users, user) {
        let attrs = auth::ResourceAttributes::new(
            rbac_verb(verb),
            &rp.group,
            &rp.resource,
            rp.namespace.as_deref().unwrap_or_default(),
        )
        .named(rp.name.as_deref().unwrap_or_default())
        .subresource(rp.sub.as_deref().unwrap_or_default());
        if let Err(st) = users.authorize(user, &attrs) {
            return (verb, hu::status(st));
        }
    }
    let Some(rt) = sim.store.find_type(&rp.group, &rp.version, &rp.resource) else {
        return (verb, hu::status(hu::no_such_resource()));
    };
    let scoped_ok = match (&rp.namespace, rt.namespaced) {
        (Some(_), false) => false,
        (None, true) => rp.name.is_none() && method == Method::GET,
        _ => true,
    };
    if !scoped_ok {
        return (verb, hu::status(hu::no_such_resource()));
    }
    let ctx = Ctx {
        sim,
        rt,
        ns: rp.namespace.clone().unwrap_or_default(),
        name: rp.name.clone(),
        query,
        raw_query: req.uri().query().unwrap_or_default().to_string(),
        accept: accept.to_string(),
    };
    let result = match (&method, rp.name.is_some(), rp.sub.as_deref()) {
        (&Method::GET, false, None) if watch => serve_watch(&ctx),
        (&Method::GET, false, None) => serve_list(&ctx).await,
        (&Method::POST, false, None) => match body(req).await {
            Ok(b) => serve_create(&ctx, b),
            Err(e) => Err(e),
        },
        (&Method::DELETE, false, None) => match body(req).await {
            Ok(b) => serve_deletecollection(&ctx, b).await,
            Err(e) => Err(e),
        },
        (&Method::GET, true, None) if watch => {
            let mut q = ctx.query.clone();
            q = with_name_selector(q, ctx.name());
            let c2 = Ctx { query: q, ..ctx };
            serve_watch(&c2)
        }
        (&Method::GET, true, None) => serve_get(&ctx).await,
        (&Method::PUT, true, None) => match body(req).await {
            Ok(b) => serve_update(&ctx, b, false),
            Err(e) => Err(e),
        },
        (&Method::PATCH, true, None) => serve_patch(&ctx, req, false).await,
        (&Method::DELETE, true, None) => match body(req).await {
            Ok(b) => serve_delete(&ctx, b),
            Err(e) => Err(e),
        },
        (m, true, Some("status")) if ctx.rt.subresources.iter().any(|s| s == "status") => {
            match *m {
                Method::GET => serve_get(&ctx).await,
                Method::PUT => match body(req).await {
                    Ok(b) => serve_update(&ctx, b, true),
                    Err(e) => Err(e),
                },
                Method::PATCH => serve_patch(&ctx, req, true).await,
                _ => Err(hu::method_not_allowed()),
            }
        }
        (&Method::GET, true, Some("log")) if is_pods(&ctx.rt) => serve_log(&ctx),
        (&Method::GET | &Method::POST, true, Some("exec")) if is_pods(&ctx.rt) => {
            serve_exec(&ctx, req)
        }
        (m, true, Some("scale")) if ctx.rt.subresources.iter().any(|s| s == "scale") => {
            serve_scale(&ctx, m.clone(), req).await
        }
        (_, true, Some(s)) if ctx.rt.subresources.iter().any(|x| x == s) => {
            Err(hu::method_not_allowed())
        }
        (_, _, Some(_)) => Err(hu::no_such_resource()),
        _ => Err(hu::method_not_allowed()),
    };
    (verb, result.unwrap_or_else(hu::status))
}

fn is_pods(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.resource == "pods"
}

fn pod_value(ctx: &Ctx<'_>) -> Result<Value, Status> {
    ctx.sim
        .store
        .get(&ctx.gr(), &ctx.ns, ctx.name())
        .map(|p| p.value())
        .ok_or_else(|| store::not_found(&ctx.rt, ctx.name()))
}

fn serve_log(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
    let pod = pod_value(ctx)?;
    let opts = logs::LogOptions::from_query(&ctx.raw_query)?;
    let gone = ctx.sim.pods_gone.token(&ctx.ns, ctx.name());
    Ok(logs::response(&pod, opts, ctx.sim.opts.log_interval, gone))
}

fn serve_exec(ctx: &Ctx<'_>, req: Request<Incoming>) -> Result<Response<SimBody>, Status> {
    let pod = pod_value(ctx)?;
    let gone = ctx.sim.pods_gone.token(&ctx.ns, ctx.name());
    Ok(exec::serve(req, &pod, gone))
}

fn with_name_selector(q: Query, name: &str) -> Query {
    let mut s = String::new();
    let mut ser = form_urlencoded::Serializer::new(&mut s);
    for k in [
        "resourceVersion",
        "resourceVersionMatch",
        "allowWatchBookmarks",
        "timeoutSeconds",
        "sendInitialEvents",
        "labelSelector",
        "includeObject",
    ] {
        if let Some(v) = q.get(k) {
            ser.append_pair(k, v);
        }
    }
    ser.append_pair("fieldSelector", &format!("metadata.name={name}"));
    ser.finish();
    Query::parse(Some(&s))
}

/// The RBAC verb of a request: logs are `get` on pods/log, exec is `create` on pods/exec.
fn rbac_verb(verb: &'static str) -> &'static str {
    match verb {
        "log" => "get",
        "exec" => "create",
        v => v,
    }
}

fn verb_name(m: &Method, named: bool, watch: bool, sub: Option<&str>) -> &'static str {
    match (m, named, watch, sub) {
        (_, _, _, Some("log")) => "log",
        (_, _, _, Some("exec")) => "exec",
        (&Method::GET, _, true, _) => "watch",
        (&Method::GET, false, _, _) => "list",
        (&Method::GET, true, _, _) => "get",
        (&Method::POST, _, _, _) => "create",
        (&Method::PUT, _, _, _) => "update",
        (&Method::PATCH, _, _, _) => "patch",
        (&Method::DELETE, false, _, _) => "deletecollection",
        (&Method::DELETE, true, _, _) => "delete",
        _ => "other",
    }
}

/// Reads a bounded request body; protobuf bodies get 415 so clients fall back to JSON.
async fn body(req: Request<Incoming>) -> Result<Bytes, Status> {
    let ct = header_str(&req, header::CONTENT_TYPE);
    if ct.contains("protobuf") || ct.contains("cbor") && !ct.contains("apply-patch") {
        return Err(hu::unsupported_media_type(&ct));
    }
    let collected = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Status::failure(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "the request body is too large",
                )
            } else {
                Status::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
    Ok(collected.to_bytes())
}

/// Parses an object body (JSON, or YAML when the client sends YAML).
fn parse_object(b: &[u8]) -> Result<Value, Status> {
    let v: Value = serde_json::from_slice(b)
        .or_else(|_| serde_norway::from_slice(b))
        .map_err(|e| Status::bad_request(format!("the object provided is unrecognized: {e}")))?;
    if !v.is_object() {
        return Err(Status::bad_request(
            "the object provided is not a JSON object",
        ));
    }
    Ok(v)
}

/// The body's apiVersion/kind must be the resource's (or absent).
fn check_type(rt: &ResourceType, v: &Value) -> Result<(), Status> {
    let kind_ok = v
        .get("kind")
        .and_then(Value::as_str)
        .is_none_or(|k| k == rt.kind);
    let av = v.get("apiVersion").and_then(Value::as_str);
    let av_ok = av.is_none_or(|a| a == rt.api_version());
    if kind_ok && av_ok {
        return Ok(());
    }
    let name = v["metadata"]["name"].as_str().unwrap_or_default();
    Err(store::invalid(
        rt,
        name,
        if kind_ok { "apiVersion" } else { "kind" },
        "FieldValueInvalid",
        &format!(
            "Invalid value: \"{}\": must be {} {}",
            if kind_ok {
                av.unwrap_or_default()
            } else {
                v["kind"].as_str().unwrap_or_default()
            },
            rt.api_version(),
            rt.kind
        ),
    ))
}

/// The body namespace must agree with the path.
fn check_namespace(ctx: &Ctx<'_>, v: &Value) -> Result<(), Status> {
    match v["metadata"]["namespace"].as_str() {
        Some(ns) if ctx.rt.namespaced && !ns.is_empty() && ns != ctx.ns => {
            Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        _ => Ok(()),
    }
}

async fn serve_get(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
    // A GET by name is one etcd read (the apiserver reads gets from etcd unless RV=0).
    if ctx.query.get("resourceVersion") == Some("0") {
        ctx.sim.cost.cache_serve(1).await;
    } else {
        ctx.sim.cost.etcd_read(1).await;
    }
    let obj = ctx
        .sim
        .store
        .get(&ctx.gr(), &ctx.ns, ctx.name())
        .ok_or_else(|| store::not_found(&ctx.rt, ctx.name()))?;
    Ok(ctx.object_response(StatusCode::OK, &obj))
}

async fn serve_list(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
    let plan = list::plan(&ctx.query, ctx.sim.minor)?;
    let filter = ctx.filter()?;
    let page = list::run(
        &ctx.sim.store,
        &ctx.sim.cost,
        &ctx.gr(),
        ctx.ns_opt(),
        filter,
        &plan,
    )
    .await?;
    if let Some(t) = ctx.table() {
        let objs: Vec<Value> = page.items.iter().map(|o| o.value()).collect();
        let tbl = table::table_of(
            &ctx.rt,
            ctx.printer_columns().as_deref(),
            &objs,
            list::list_metadata(&page),
            t.include,
            t.version,
            now(),
        );
        if !tbl.is_null() {
            return Ok(hu::json_value(StatusCode::OK, &tbl));
        }
    }
    let chunks = list::list_chunks(&ctx.rt.api_version(), &ctx.rt.list_kind(), page);
    let mut resp = Response::new(hu::iter_body(chunks));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn serve_watch(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
    let params = WatchParams::parse(&ctx.query)?;
    let mut filter = ctx.filter()?;
    filter.namespace = ctx.ns_opt().map(str::to_string);
    Ok(w::respond(WatchCtx {
        store: ctx.sim.store.clone(),
        rt: ctx.rt.clone(),
        gr: ctx.gr(),
        filter,
        params,
        table: ctx.table(),
        printer_columns: ctx.table().and_then(|_| ctx.printer_columns()),
        bookmark_interval: ctx.sim.opts.bookmark_interval,
        shutdown: ctx.sim.shutdown.clone(),
    }))
}

fn serve_create(ctx: &Ctx<'_>, b: Bytes) -> Result<Response<SimBody>, Status> {
    let v = parse_object(&b)?;
    check_type(&ctx.rt, &v)?;
    check_namespace(ctx, &v)?;
    let stored = ctx.sim.store.create(&ctx.rt, &ctx.ns, v, ctx.dry_run())?;
    Ok(ctx.object_response(StatusCode::CREATED, &stored))
}

fn serve_update(ctx: &Ctx<'_>, b: Bytes, status_only: bool) -> Result<Response<SimBody>, Status> {
    let v = parse_object(&b)?;
    check_type(&ctx.rt, &v)?;
    check_namespace(ctx, &v)?;
    let stored =
        ctx.sim
            .store
            .update(&ctx.rt, &ctx.ns, ctx.name(), v, status_only, ctx.dry_run())?;
    Ok(ctx.object_response(StatusCode::OK, &stored))
}

async fn serve_patch(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
    status_only: bool,
) -> Result<Response<SimBody>, Status> {
    let ct = header_str(&req, header::CONTENT_TYPE);
    let Some(ty) = PatchType::from_content_type(&ct) else {
        return Err(Status::failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
            ),
        ));
    };
    if ty == PatchType::Apply && ctx.query.non_empty("fieldManager").is_none() {
        return Err(Status::failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        )
        .with_details(StatusDetails {
            group: "meta.k8s.io".into(),
            kind: "PatchOptions".into(),
            ..Default::default()
        }));
    }
    let b = body(req).await?;
    let p = patch::parse_body(ty, &b)?;
    let store = &ctx.sim.store;
    for _ in 0..5 {
        let Some(cur) = store.get(&ctx.gr(), &ctx.ns, ctx.name()) else {
            if ty == PatchType::Apply && !status_only {
                let mut obj = p.clone();
                check_type(&ctx.rt, &obj)?;
                obj["metadata"]["name"] = json!(ctx.name());
                let created = store.create(&ctx.rt, &ctx.ns, obj, ctx.dry_run())?;
                return Ok(ctx.object_response(StatusCode::CREATED, &created));
            }
            return Err(store::not_found(&ctx.rt, ctx.name()));
        };
        let mut doc = cur.value();
        patch::apply(ty, &mut doc, &p)?;
        let explicit_rv = doc["metadata"]["resourceVersion"].as_str() != Some(&cur.rv.to_string());
        if doc["metadata"]["resourceVersion"].is_null() {
            doc["metadata"]["resourceVersion"] = json!(cur.rv.to_string());
        }
        match store.update(
            &ctx.rt,
            &ctx.ns,
            ctx.name(),
            doc,
            status_only,
            ctx.dry_run(),
        ) {
            Ok(s) => return Ok(ctx.object_response(StatusCode::OK, &s)),
            // Someone wrote in between: patch the newer object (as the apiserver retries).
            Err(e) if e.reason == "Conflict" && !explicit_rv => continue,
            Err(e) => return Err(e),
        }
    }
    Err(store::conflict(&ctx.rt, ctx.name()))
}

/// DeleteOptions from the body (if any) and the query.
struct DeleteOpts {
    dry_run: bool,
    /// Dependents are deleted too unless the policy is `Orphan`.
    orphan: bool,
    uid: Option<String>,
    rv: Option<String>,
}

fn delete_opts(ctx: &Ctx<'_>, b: &[u8]) -> Result<DeleteOpts, Status> {
    let body: Value = if b.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(b)
            .map_err(|e| Status::bad_request(format!("invalid DeleteOptions body: {e}")))?
    };
    let body_dry = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"));
    let policy = ctx
        .query
        .get("propagationPolicy")
        .or(body["propagationPolicy"].as_str());
    if let Some(p) = policy
        && !matches!(p, "Orphan" | "Background" | "Foreground")
    {
        return Err(Status::failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ),
        ));
    }
    let pre = &body["preconditions"];
    Ok(DeleteOpts {
        dry_run: ctx.dry_run() || body_dry,
        orphan: policy == Some("Orphan") || body["orphanDependents"] == true,
        uid: pre["uid"].as_str().map(str::to_string),
        rv: pre["resourceVersion"].as_str().map(str::to_string),
    })
}

fn serve_delete(ctx: &Ctx<'_>, b: Bytes) -> Result<Response<SimBody>, Status> {
    let o = delete_opts(ctx, &b)?;
    let res = ctx.sim.store.delete(
        &ctx.rt,
        &ctx.ns,
        ctx.name(),
        o.uid.as_deref(),
        o.rv.as_deref(),
        o.dry_run,
    )?;
    match res {
        Deleted::Gone(obj) => {
            if is_pods(&ctx.rt) && !o.dry_run {
                ctx.sim.pods_gone.deleted(&obj.namespace, &obj.name);
            }
            if !o.dry_run && !o.orphan && ctx.rt.namespaced {
                // What the garbage collector does shortly after (Background) or before the
                // owner goes (Foreground): here, at once.
                let v = obj.value();
                let uid = v["metadata"]["uid"].as_str().unwrap_or_default();
                ctx.sim.store.delete_dependents(&obj.namespace, uid);
            }
            Ok(ctx.object_response(StatusCode::OK, &obj))
        }
        Deleted::Terminating(obj) => {
            if !o.dry_run {
                schedule_namespace_cleanup(ctx.sim, obj.name.clone());
            }
            Ok(ctx.object_response(StatusCode::OK, &obj))
        }
    }
}

/// A Terminating namespace loses its content shortly after (what the namespace controller does).
fn schedule_namespace_cleanup(sim: &Arc<Sim>, ns: String) {
    let sim = sim.clone();
    let delay = sim.opts.namespace_cleanup_delay;
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        sim.store.purge_namespace(&ns);
        sim.pods_gone.namespace_gone(&ns);
    });
}

async fn serve_deletecollection(ctx: &Ctx<'_>, b: Bytes) -> Result<Response<SimBody>, Status> {
    if !ctx.rt.has_verb("deletecollection") {
        return Err(hu::method_not_allowed());
    }
    let o = delete_opts(ctx, &b)?;
    // The apiserver lists (from etcd) and deletes one by one.
    let plan = list::Plan {
        source: Source::Etcd,
        at: None,
        min_rv: None,
        limit: None,
        start_after: None,
        revision_check: false,
    };
    let page = list::run(
        &ctx.sim.store,
        &ctx.sim.cost,
        &ctx.gr(),
        ctx.ns_opt(),
        ctx.filter()?,
        &plan,
    )
    .await?;
    let mut deleted = Vec::with_capacity(page.items.len());
    for item in &page.items {
        match ctx
            .sim
            .store
            .delete(&ctx.rt, &item.namespace, &item.name, None, None, o.dry_run)
        {
            Ok(Deleted::Gone(obj)) | Ok(Deleted::Terminating(obj)) => {
                if is_pods(&ctx.rt) && !o.dry_run {
                    ctx.sim.pods_gone.deleted(&obj.namespace, &obj.name);
                }
                deleted.push(obj)
            }
            // Deleted concurrently: nothing left to do for it.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let out = store::ListPage {
        items: deleted,
        rv: ctx.sim.store.current_rv(),
        ..Default::default()
    };
    let chunks = list::list_chunks(&ctx.rt.api_version(), &ctx.rt.list_kind(), out);
    let mut resp = Response::new(hu::iter_body(chunks));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `autoscaling/v1` Scale of a deployment or replica set.
fn scale_of(obj: &Value) -> Value {
    let md = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
            "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

async fn serve_scale(
    ctx: &Ctx<'_>,
    method: Method,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Status> {
    let store = &ctx.sim.store;
    let cur = store
        .get(&ctx.gr(), &ctx.ns, ctx.name())
        .ok_or_else(|| store::not_found(&ctx.rt, ctx.name()))?;
    let obj = cur.value();
    let mut scale = scale_of(&obj);
    match method {
        Method::GET => return Ok(hu::json_value(StatusCode::OK, &scale)),
        Method::PUT => {
            let b = body(req).await?;
            scale = parse_object(&b)?;
        }
        Method::PATCH => {
            let ct = header_str(&req, header::CONTENT_TYPE);
            let ty = PatchType::from_content_type(&ct).unwrap_or(PatchType::Merge);
            let b = body(req).await?;
            let p = patch::parse_body(ty, &b)?;
            patch::apply(ty, &mut scale, &p)?;
        }
        _ => return Err(hu::method_not_allowed()),
    }
    let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
        return Err(Status::bad_request(
            "Scale spec.replicas must be an integer",
        ));
    };
    let mut updated = obj;
    updated["spec"]["replicas"] = json!(replicas);
    if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
        updated["metadata"]["resourceVersion"] = json!(rv);
    }
    let s = store.update(&ctx.rt, &ctx.ns, ctx.name(), updated, false, ctx.dry_run())?;
    Ok(hu::json_value(StatusCode::OK, &scale_of(&s.value())))
}

/// Used by shutdown: how long to let streams end before giving up.
pub const DRAIN: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests;
