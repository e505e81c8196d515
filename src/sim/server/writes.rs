//! create, update, patch (all four kinds), delete with DeleteOptions, deletecollection and
//! the scale subresource; update and patch of `/status` and of a pod's
//! `/ephemeralcontainers` too.

use super::resource::*;
use super::*;
use crate::sim::ephemeral;

/// Which part of an object an update or patch may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// The object, through its main resource (a status subresource keeps the status).
    Object,
    /// Only the status (`/status`).
    Status,
    /// Only a pod's `spec.ephemeralContainers` (`/ephemeralcontainers`, ephemeral.rs).
    EphemeralContainers,
}

/// Stores `doc`, the whole object as the client wants it, changing only what `part` may.
fn write_part(ctx: &Ctx<'_>, doc: Value, part: Part) -> Result<Arc<Stored>, Status> {
    let store = &ctx.sim.store;
    let (ns, name, dry_run) = (&ctx.ns, ctx.name(), ctx.dry_run());
    if part != Part::EphemeralContainers {
        return store.update(&ctx.rt, ns, name, doc, part == Part::Status, dry_run);
    }
    let cur = store
        .get(&ctx.gr(), ns, name)
        .ok_or_else(|| store::not_found(&ctx.rt, name))?;
    let pod = ephemeral::merge(&cur.value(), &doc)?;
    let stored = store.update(&ctx.rt, ns, name, pod, false, dry_run)?;
    // The kubelet starts the new containers at once and reports them running.
    if !dry_run && let Some(status) = ephemeral::started(&stored.value(), &store::now_rfc3339()) {
        let mut running = stored.value();
        running["status"] = status;
        if let Err(e) = store.update(&ctx.rt, ns, name, running, true, false) {
            // Someone wrote the pod in between: their write stands, as the kubelet would retry.
            tracing::debug!(pod = name, error = %e.message, "ephemeral container status not written");
        }
    }
    Ok(stored)
}

pub(super) fn serve_create(ctx: &Ctx<'_>, b: Bytes) -> Result<Response<SimBody>, Status> {
    let v = parse_object(&b)?;
    check_type(&ctx.rt, &v)?;
    check_namespace(ctx, &v)?;
    let stored = ctx.sim.store.create(&ctx.rt, &ctx.ns, v, ctx.dry_run())?;
    Ok(ctx.object_response(StatusCode::CREATED, &stored))
}

pub(super) fn serve_update(
    ctx: &Ctx<'_>,
    b: Bytes,
    part: Part,
) -> Result<Response<SimBody>, Status> {
    let v = parse_object(&b)?;
    check_type(&ctx.rt, &v)?;
    check_namespace(ctx, &v)?;
    let stored = write_part(ctx, v, part)?;
    Ok(ctx.object_response(StatusCode::OK, &stored))
}

pub(super) async fn serve_patch(
    ctx: &Ctx<'_>,
    req: Request<Incoming>,
    part: Part,
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
            if ty == PatchType::Apply && part == Part::Object {
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
        match write_part(ctx, doc, part) {
            Ok(s) => return Ok(ctx.object_response(StatusCode::OK, &s)),
            // Someone wrote in between: patch the newer object (as the apiserver retries).
            Err(e) if e.reason == "Conflict" && !explicit_rv => continue,
            Err(e) => return Err(e),
        }
    }
    Err(store::conflict(&ctx.rt, ctx.name()))
}

/// DeleteOptions from the body (if any) and the query.
pub(super) struct DeleteOpts {
    dry_run: bool,
    /// Dependents are deleted too unless the policy is `Orphan`.
    orphan: bool,
    uid: Option<String>,
    rv: Option<String>,
}

pub(super) fn delete_opts(ctx: &Ctx<'_>, b: &[u8]) -> Result<DeleteOpts, Status> {
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

pub(super) fn serve_delete(ctx: &Ctx<'_>, b: Bytes) -> Result<Response<SimBody>, Status> {
    let o = delete_opts(ctx, &b)?;
    let res = ctx.sim.store.delete(
        &ctx.rt,
        &ctx.ns,
        ctx.name(),
        o.uid.as_deref(),
        o.rv.as_deref(),
        o.dry_run,
    )?;
    let mut resp = match res {
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
            ctx.object_response(StatusCode::OK, &obj)
        }
        Deleted::Terminating(obj) => {
            if !o.dry_run {
                schedule_namespace_cleanup(ctx.sim, obj.name.to_string());
            }
            ctx.object_response(StatusCode::OK, &obj)
        }
    };
    if o.dry_run {
        // For the audit log: a Request-level event carries the DeleteOptions.
        resp.extensions_mut().insert(crate::sim::DryRun);
    }
    Ok(resp)
}

/// A Terminating namespace loses its content shortly after (what the namespace controller does).
pub(super) fn schedule_namespace_cleanup(sim: &Arc<Sim>, ns: String) {
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

pub(super) async fn serve_deletecollection(
    ctx: &Ctx<'_>,
    b: Bytes,
) -> Result<Response<SimBody>, Status> {
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
pub(super) fn scale_of(obj: &Value) -> Value {
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

pub(super) async fn serve_scale(
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
