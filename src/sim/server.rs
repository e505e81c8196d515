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
use super::cost::{Cost, RequestCost};
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

mod reads;
mod resource;
mod reviews;
mod route;
mod writes;

use resource::resource;
pub use route::{ResourcePath, Route, route};

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

/// Serves one request (never fails: every error is a `Status` response).
pub async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> Response<SimBody> {
    let _inflight = sim.cost.request_started();
    if let Some(delay) = sim.opts.stall.as_ref().and_then(|h| (h.0)(req.uri())) {
        let mut shutdown = sim.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
    // Authentication comes first, as in the apiserver's filter chain (k8s-facts §2).
    let user = match &sim.users {
        None => Ok(None),
        Some(users) => users.authenticate(req.headers(), None).map(Some),
    };
    let record = sim.opts.on_request.as_ref().map(|_| {
        (
            req.method().to_string(),
            req.uri().to_string(),
            req.headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            std::time::SystemTime::now(),
            std::time::Instant::now(),
        )
    });
    let (username, groups) = match user.as_ref() {
        Ok(Some(u)) => (Some(u.username.clone()), u.groups.clone()),
        _ => (None, Vec::new()),
    };
    // Each request counts its own cost: the ground truth per user the hook reports.
    let ((verb, resp), (etcd_objects, cache_objects)) = RequestCost::scope(async {
        match user {
            Err(st) => ("other", hu::status(st)),
            Ok(user) => dispatch(&sim, req, user.as_ref()).await,
        }
    })
    .await;
    sim.cost.request_done(verb, resp.status().as_u16());
    if let (Some(hook), Some((method, uri, user_agent, received, started))) =
        (&sim.opts.on_request, record)
    {
        (hook.0)(&super::RequestRecord {
            verb,
            method,
            uri,
            user: username,
            groups,
            user_agent,
            objects: resp
                .extensions()
                .get::<super::ResponseObjects>()
                .map(|o| o.0),
            dry_run: resp.extensions().get::<super::DryRun>().is_some(),
            code: resp.status().as_u16(),
            received,
            latency: started.elapsed(),
            etcd_objects,
            cache_objects,
        });
    }
    resp
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

/// Used by shutdown: how long to let streams end before giving up.
pub const DRAIN: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests;
