//! GET, LIST and WATCH, spending the cost model's time (k8s-facts §1).

use super::resource::*;
use super::*;

pub(super) async fn serve_get(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
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

pub(super) async fn serve_list(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
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
    let objects = super::super::ResponseObjects(page.items.len() as u64);
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
            let mut resp = hu::json_value(StatusCode::OK, &tbl);
            resp.extensions_mut().insert(objects);
            return Ok(resp);
        }
    }
    let chunks = list::list_chunks(&ctx.rt.api_version(), &ctx.rt.list_kind(), page);
    let mut resp = Response::new(hu::iter_body(chunks));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.extensions_mut().insert(objects);
    Ok(resp)
}

pub(super) fn serve_watch(ctx: &Ctx<'_>) -> Result<Response<SimBody>, Status> {
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
