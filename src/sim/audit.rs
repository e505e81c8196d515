//! The emulator's audit log: one `audit.k8s.io/v1` Event per served request, as JSON lines, the
//! shape kube-apiserver's log backend writes (k8s-facts §6). Fed by [`SimOptions::on_request`];
//! read back by `kubeguard audit-report` and its tests.
//!
//! Level `Metadata`: no request or response objects, except a dry-run delete's DeleteOptions
//! (level `Request`): kubectl sends `dryRun` in the body (k8s-facts §3), and an audit policy
//! that logs deletes at `Request` level is what makes a dry run visible in a log. A short request gets one
//! `ResponseComplete` event; a watch or other stream gets `ResponseStarted` when its head is
//! sent (the emulator does not see the stream end). Requests slower than 500 ms carry the
//! `apiserver.latency.k8s.io/total` annotation, as the apiserver adds it.
//!
//! [`SimOptions::on_request`]: super::SimOptions::on_request

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::Method;
use serde_json::{Map, Value, json};

use super::auth::{ANONYMOUS, UNAUTHENTICATED};
use super::{RequestHook, RequestRecord};
use crate::request::{Target, Verb, classify};

/// The apiserver annotates requests slower than this with their latency breakdown.
const LATENCY_ANNOTATION_ABOVE: Duration = Duration::from_millis(500);

/// Writes audit events to a file; shared by every request (a mutex around a line-buffered file:
/// each event is on disk when its request is answered, whatever way the emulator is stopped; the
/// emulator is a test and demo upstream, not kubeguard's hot path).
pub struct AuditWriter {
    out: Mutex<LineWriter<File>>,
}

impl AuditWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<Arc<Self>> {
        let file = File::create(path)?;
        Ok(Arc::new(AuditWriter {
            out: Mutex::new(LineWriter::new(file)),
        }))
    }

    /// The hook to put in [`super::SimOptions::on_request`].
    pub fn hook(self: &Arc<Self>) -> RequestHook {
        let w = self.clone();
        RequestHook(Arc::new(move |r: &RequestRecord| w.write(r)))
    }

    /// Writes one record's event line. A write error is logged, never fatal to the request.
    pub fn write(&self, r: &RequestRecord) {
        let mut line = event(r).to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = out.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&self) -> std::io::Result<()> {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Who made the request: the authenticated user, or without authentication the anonymous user
/// of kube-apiserver (as `kubectl auth whoami` shows it, auth.rs).
fn user(r: &RequestRecord) -> Value {
    match &r.user {
        Some(name) => json!({"username": name, "groups": r.groups}),
        None => json!({"username": ANONYMOUS, "groups": [UNAUTHENTICATED]}),
    }
}

/// The audit event of one served request.
pub fn event(r: &RequestRecord) -> Value {
    let (path, query) = match r.uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r.uri.as_str(), None),
    };
    let method = Method::from_bytes(r.method.as_bytes()).unwrap_or(Method::GET);
    let api = classify(&method, path, query).ok();
    let long_running = api.as_ref().is_some_and(|a| a.is_long_running());
    let stage_at = r.received + r.latency;
    let mut ev = json!({
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": uuid::Uuid::new_v4().to_string(),
        "stage": if long_running { "ResponseStarted" } else { "ResponseComplete" },
        "requestURI": r.uri,
        "verb": audit_verb(&method, api.as_ref().map(|a| a.verb)),
        "user": user(r),
        "sourceIPs": ["127.0.0.1"],
        "userAgent": r.user_agent,
        "responseStatus": { "metadata": {}, "code": r.code },
        "requestReceivedTimestamp": micros(r.received),
        "stageTimestamp": micros(stage_at),
    });
    if r.dry_run {
        ev["level"] = "Request".into();
        ev["requestObject"] = json!({
            "kind": "DeleteOptions",
            "apiVersion": "meta.k8s.io/v1",
            "dryRun": ["All"],
        });
    }
    if let Some(Target::Resource(res)) = api.as_ref().map(|a| &a.target) {
        let mut o = Map::new();
        o.insert("resource".into(), res.resource.clone().into());
        if let Some(ns) = &res.namespace {
            o.insert("namespace".into(), ns.clone().into());
        }
        if let Some(n) = &res.name {
            o.insert("name".into(), n.clone().into());
        }
        if !res.group.is_empty() {
            o.insert("apiGroup".into(), res.group.clone().into());
        }
        o.insert("apiVersion".into(), res.version.clone().into());
        if let Some(s) = &res.subresource {
            o.insert("subresource".into(), s.clone().into());
        }
        ev["objectRef"] = Value::Object(o);
    }
    if r.latency > LATENCY_ANNOTATION_ABOVE && !long_running {
        ev["annotations"] = json!({
            "apiserver.latency.k8s.io/total": format!("{:?}", r.latency),
        });
    }
    ev
}

/// The apiserver's audit verb: RequestInfo's verb; connect requests (exec, attach,
/// port-forward, proxy) and anything unmapped get the method's verb (`create` for POST).
fn audit_verb(method: &Method, verb: Option<Verb>) -> &'static str {
    match verb {
        Some(
            v @ (Verb::Get
            | Verb::List
            | Verb::Watch
            | Verb::Create
            | Verb::Update
            | Verb::Patch
            | Verb::Delete
            | Verb::DeleteCollection),
        ) => v.as_str(),
        _ => match *method {
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "get",
        },
    }
}

/// RFC 3339 with microseconds, as the apiserver writes audit timestamps.
fn micros(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => format!("{ts:.6}"),
        Err(_) => "1970-01-01T00:00:00.000000Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: &str, uri: &str) -> RequestRecord {
        RequestRecord {
            verb: "list",
            method: method.into(),
            uri: uri.into(),
            user: Some("alice".into()),
            groups: vec!["dev".into()],
            user_agent: "kubectl/v1.33.0".into(),
            objects: Some(3),
            dry_run: false,
            etcd_objects: 3,
            cache_objects: 0,
            code: 200,
            received: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            latency: Duration::from_millis(600),
        }
    }

    #[test]
    fn a_list_is_one_response_complete_event_with_object_ref() {
        let ev = event(&record("GET", "/api/v1/namespaces/a/pods?limit=500"));
        assert_eq!(ev["stage"], "ResponseComplete");
        assert_eq!(ev["verb"], "list");
        assert_eq!(ev["objectRef"]["resource"], "pods");
        assert_eq!(ev["objectRef"]["namespace"], "a");
        assert_eq!(ev["user"]["username"], "alice");
        assert_eq!(
            ev["requestReceivedTimestamp"],
            "2023-11-14T22:13:20.000000Z"
        );
        assert_eq!(ev["stageTimestamp"], "2023-11-14T22:13:20.600000Z");
        assert_eq!(ev["annotations"]["apiserver.latency.k8s.io/total"], "600ms");
    }

    #[test]
    fn watches_and_exec_start_and_connects_are_creates() {
        let ev = event(&record("GET", "/api/v1/pods?watch=1"));
        assert_eq!(
            (ev["stage"].as_str(), ev["verb"].as_str()),
            (Some("ResponseStarted"), Some("watch"))
        );
        let ev = event(&record(
            "POST",
            "/api/v1/namespaces/a/pods/p/exec?command=ls",
        ));
        assert_eq!(ev["verb"], "create");
        assert_eq!(ev["objectRef"]["subresource"], "exec");
    }

    #[test]
    fn without_authentication_the_user_is_anonymous() {
        let mut r = record("GET", "/api/v1/pods");
        r.user = None;
        r.groups = vec![];
        assert_eq!(
            event(&r)["user"],
            json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]})
        );
    }
}
