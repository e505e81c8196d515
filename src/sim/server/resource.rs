//! Resource requests: authorization, the type and scope checks, then one handler per verb and
//! subresource (reads.rs, writes.rs); the request context and body helpers they share.

use super::reads::{serve_get, serve_list, serve_watch};
use super::reviews::serve_review;
use super::writes::{
    Part, serve_create, serve_delete, serve_deletecollection, serve_patch, serve_scale,
    serve_update,
};
use super::*;

/// Everything a verb handler needs about the request.
pub(super) struct Ctx<'a> {
    pub(super) sim: &'a Arc<Sim>,
    pub(super) rt: ResourceType,
    pub(super) ns: String,
    pub(super) name: Option<String>,
    pub(super) query: Query,
    pub(super) raw_query: String,
    pub(super) accept: String,
}

impl Ctx<'_> {
    pub(super) fn gr(&self) -> store::Gr {
        gr_of(&self.rt)
    }

    pub(super) fn dry_run(&self) -> bool {
        self.query.all("dryRun").any(|v| v == "All")
    }

    pub(super) fn table(&self) -> Option<TableFormat> {
        let version = table::wants_table(&self.accept)?;
        let include = match self.query.get("includeObject") {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        };
        Some(TableFormat { version, include })
    }

    /// The CRD's printer columns when the type is a custom one.
    pub(super) fn printer_columns(&self) -> Option<Vec<Value>> {
        let crd = self.sim.store.crd_for(&self.rt.group, &self.rt.resource)?;
        Some(table::crd_printer_columns(&crd, &self.rt.version))
    }

    pub(super) fn filter(&self) -> Result<Filter, Status> {
        Ok(Filter {
            namespace: None,
            labels: LabelSelector::parse(self.query.get("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.query.get("fieldSelector").unwrap_or(""))?,
        })
    }

    /// The namespace of a collection request, None for all namespaces / cluster scope.
    pub(super) fn ns_opt(&self) -> Option<&str> {
        (self.rt.namespaced && !self.ns.is_empty()).then_some(self.ns.as_str())
    }

    pub(super) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    pub(super) fn object_response(&self, code: StatusCode, obj: &Stored) -> Response<SimBody> {
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

pub(super) fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

pub(super) async fn resource(
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
    // The apiserver answers a verb the type does not serve (deletecollection of namespaces, a
    // GET of a review) with 405; subresources check their own methods below.
    if rp.sub.is_none() && !rt.has_verb(rbac_verb(verb)) {
        return (verb, hu::status(hu::method_not_allowed()));
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
        (&Method::POST, false, None) if ctx.rt.is_review() => serve_review(&ctx, req, user).await,
        (_, _, None) if ctx.rt.is_review() => Err(hu::method_not_allowed()),
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
            Ok(b) => serve_update(&ctx, b, Part::Object),
            Err(e) => Err(e),
        },
        (&Method::PATCH, true, None) => serve_patch(&ctx, req, Part::Object).await,
        (&Method::DELETE, true, None) => match body(req).await {
            Ok(b) => serve_delete(&ctx, b),
            Err(e) => Err(e),
        },
        (m, true, Some("status")) if ctx.rt.subresources.iter().any(|s| s == "status") => {
            match *m {
                Method::GET => serve_get(&ctx).await,
                Method::PUT => match body(req).await {
                    Ok(b) => serve_update(&ctx, b, Part::Status),
                    Err(e) => Err(e),
                },
                Method::PATCH => serve_patch(&ctx, req, Part::Status).await,
                _ => Err(hu::method_not_allowed()),
            }
        }
        (&Method::GET, true, Some("log")) if is_pods(&ctx.rt) => serve_log(&ctx),
        (&Method::GET | &Method::POST, true, Some("exec")) if is_pods(&ctx.rt) => {
            serve_exec(&ctx, req)
        }
        (&Method::POST, true, Some("token")) if ctx.rt.is("", "serviceaccounts") => {
            serve_token(&ctx, req).await
        }
        (&Method::GET | &Method::POST, true, Some("attach")) if is_pods(&ctx.rt) => {
            serve_attach(&ctx, req)
        }
        (m, true, Some("ephemeralcontainers")) if is_pods(&ctx.rt) => match *m {
            Method::GET => serve_get(&ctx).await,
            Method::PUT => match body(req).await {
                Ok(b) => serve_update(&ctx, b, Part::EphemeralContainers),
                Err(e) => Err(e),
            },
            Method::PATCH => serve_patch(&ctx, req, Part::EphemeralContainers).await,
            _ => Err(hu::method_not_allowed()),
        },
        (m, true, Some("scale")) if ctx.rt.subresources.iter().any(|s| s == "scale") => {
            serve_scale(&ctx, m.clone(), req).await
        }
        (_, true, Some(s)) if EMULATED_SUBRESOURCES.contains(&s) => Err(hu::method_not_allowed()),
        // Discovery lists it (as the apiserver's does) but nothing here plays it: say so, so
        // that `kubectl port-forward` or `kubectl drain` tell the user why they fail.
        (_, true, Some(s)) if ctx.rt.subresources.iter().any(|x| x == s) => {
            Err(Status::bad_request(format!(
                "{}/{s} is not emulated by kubeguard sim",
                ctx.rt.resource
            )))
        }
        (_, _, Some(_)) => Err(hu::no_such_resource()),
        _ => Err(hu::method_not_allowed()),
    };
    (verb, result.unwrap_or_else(hu::status))
}

/// The subresources served above; another one the type lists is not emulated.
const EMULATED_SUBRESOURCES: [&str; 7] = [
    "status",
    "log",
    "exec",
    "attach",
    "ephemeralcontainers",
    "scale",
    "token",
];

pub(super) fn is_pods(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.resource == "pods"
}

pub(super) fn pod_value(ctx: &Ctx<'_>) -> Result<Value, Status> {
    ctx.sim
        .store
        .get(&ctx.gr(), &ctx.ns, ctx.name())
        .map(|p| p.value())
        .ok_or_else(|| store::not_found(&ctx.rt, ctx.name()))
}

pub(super) fn serve_log(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
    let pod = pod_value(ctx)?;
    let opts = logs::LogOptions::from_query(&ctx.raw_query)?;
    let gone = ctx.sim.pods_gone.token(&ctx.ns, ctx.name());
    Ok(logs::response(&pod, opts, ctx.sim.opts.log_interval, gone))
}

pub(super) fn serve_exec(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Status> {
    let pod = pod_value(ctx)?;
    let gone = ctx.sim.pods_gone.token(&ctx.ns, ctx.name());
    Ok(exec::serve(req, &pod, gone))
}

/// `kubectl create token`: a TokenRequest answered with a token (token.rs).
pub(super) async fn serve_token(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Status> {
    let request = parse_object(&body(req).await?)?;
    let fresh;
    let issuer = match &ctx.sim.users {
        Some(users) => users.token_issuer(),
        // Without authentication no token is ever checked: any key will do.
        None => {
            fresh = crate::sim::token::Issuer::default();
            &fresh
        }
    };
    let answer = crate::sim::token::token_request(
        &ctx.sim.store,
        issuer,
        &ctx.rt,
        &ctx.ns,
        ctx.name(),
        &request,
    )?;
    Ok(hu::json_value(StatusCode::CREATED, &answer))
}

/// `kubectl attach`: the container's main process over WebSocket (exec/attach.rs).
pub(super) fn serve_attach(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, Status> {
    let pod = pod_value(ctx)?;
    let gone = ctx.sim.pods_gone.token(&ctx.ns, ctx.name());
    Ok(exec::serve_attach(
        req,
        &pod,
        gone,
        ctx.sim.opts.log_interval,
    ))
}

pub(super) fn with_name_selector(q: Query, name: &str) -> Query {
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

/// The RBAC verb of a request: logs are `get` on pods/log, exec and attach are `create` on
/// pods/exec and pods/attach.
pub(super) fn rbac_verb(verb: &'static str) -> &'static str {
    match verb {
        "log" => "get",
        "exec" | "attach" => "create",
        v => v,
    }
}

pub(super) fn verb_name(m: &Method, named: bool, watch: bool, sub: Option<&str>) -> &'static str {
    match (m, named, watch, sub) {
        (_, _, _, Some("log")) => "log",
        (_, _, _, Some("exec")) => "exec",
        (_, _, _, Some("attach")) => "attach",
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
pub(super) async fn body(req: Request<Incoming>) -> Result<Bytes, Status> {
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
pub(super) fn parse_object(b: &[u8]) -> Result<Value, Status> {
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
pub(super) fn check_type(rt: &ResourceType, v: &Value) -> Result<(), Status> {
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
pub(super) fn check_namespace(ctx: &Ctx<'_>, v: &Value) -> Result<(), Status> {
    match v["metadata"]["namespace"].as_str() {
        Some(ns) if ctx.rt.namespaced && !ns.is_empty() && ns != ctx.ns => {
            Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        _ => Ok(()),
    }
}
