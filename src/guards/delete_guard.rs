//! The delete guard: a DELETE of a Namespace, a CustomResourceDefinition or a PersistentVolume,
//! and any deletecollection, cascades inside the apiserver (k8s-facts §3), so the initial request
//! is the only place to stop it. Such a delete is refused (403) until a person confirms it:
//!
//! 1. dry run first: `kubectl delete … --dry-run=server` by the same identity records an intent
//!    (identity + resource + namespace + name, + UID when the body has preconditions); the real
//!    DELETE of the same object within the window passes once;
//! 2. annotation: the object carries `kubeguard.io/confirm-delete: <RFC3339 time>` set within
//!    the window. The guard is synchronous, so the pipeline reads the object (and, for a
//!    namespace, what it holds) before deciding — [`lookup`] — and passes it in
//!    [`GuardCtx::delete_lookup`].
//!
//! Intents live in a bounded, sharded LRU touched only by guarded deletes; they expire.

use std::time::{Duration, Instant, SystemTime};

use http::uri::PathAndQuery;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};

use crate::config::duration;
use crate::identity::Identity;
use crate::observe::lru::ShardedLru;
use crate::policy::PolicyError;
use crate::policy::config::{Mode, RuleGuards};
use crate::request::{ApiRequest, ResourceRef, Verb};
use crate::status::Status;
use crate::upstream::{Upstream, empty_body};

use super::{Guard, GuardCtx, Outcome, Verdict};

/// The annotation that confirms a delete.
pub const CONFIRM_ANNOTATION: &str = "kubeguard.io/confirm-delete";
/// The DeleteOptions body read at most (413 beyond).
pub const BODY_LIMIT: usize = 64 * 1024;
/// An annotation time this far in the future still counts (clock skew between machines).
const FUTURE_SKEW: Duration = Duration::from_secs(60);
/// What a namespace holds, counted before the refusal (cache-served LISTs, k8s-facts §1).
const COUNTED: &[(&str, &str)] = &[
    ("/api/v1", "pods"),
    ("/api/v1", "configmaps"),
    ("/api/v1", "secrets"),
    ("/api/v1", "services"),
    ("/api/v1", "persistentvolumeclaims"),
    ("/api/v1", "serviceaccounts"),
    ("/apis/apps/v1", "deployments"),
    ("/apis/apps/v1", "statefulsets"),
];

/// `policy.guards.deleteGuard:`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteGuardSection {
    /// Whether the guard runs at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// This guard's mode; default the global `policy.mode`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Resources whose DELETE is guarded, as `resource` (core group) or `resource.group`.
    #[serde(default = "default_resources")]
    pub resources: Vec<String>,
    /// Whether every deletecollection is guarded.
    #[serde(default = "yes")]
    pub delete_collection: bool,
    /// How long a dry run or an annotation confirms a delete.
    #[serde(default = "default_window", with = "duration")]
    pub confirm_window: Duration,
    /// A `--dry-run=server` delete by the same identity confirms the real one.
    #[serde(default = "yes")]
    pub dry_run_confirms: bool,
    /// The `kubeguard.io/confirm-delete` annotation confirms a delete.
    #[serde(default = "yes")]
    pub annotation_confirms: bool,
    /// Service accounts (automation such as Helm) can confirm only with the annotation.
    #[serde(default = "yes")]
    pub service_accounts_need_annotation: bool,
    /// Dry-run intents remembered at most (least recently recorded forgotten).
    #[serde(default = "default_max_intents")]
    pub max_intents: usize,
}

impl Default for DeleteGuardSection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

fn yes() -> bool {
    true
}
fn default_resources() -> Vec<String> {
    vec![
        "namespaces".into(),
        "customresourcedefinitions.apiextensions.k8s.io".into(),
        "persistentvolumes".into(),
    ]
}
fn default_window() -> Duration {
    Duration::from_secs(300)
}
fn default_max_intents() -> usize {
    10_000
}

/// Per-rule settings of the delete guard.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteGuardOverride {
    /// The guard's mode under this rule (wins over the rule's and the guard's mode).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Every delete under this rule is guarded, whatever the resource (e.g. "any delete in
    /// namespace prod by a service account"). Default false.
    #[serde(default)]
    pub all_deletes: Option<bool>,
}

/// The delete guard's settings, after the global mode and a rule's overrides are applied.
#[derive(Clone, Debug)]
pub struct DeleteGuardSettings {
    pub enabled: bool,
    pub mode: Mode,
    /// `(group, resource)`.
    pub resources: Vec<(String, String)>,
    pub delete_collection: bool,
    pub all_deletes: bool,
    pub confirm_window: Duration,
    pub dry_run_confirms: bool,
    pub annotation_confirms: bool,
    pub service_accounts_need_annotation: bool,
    pub max_intents: usize,
}

impl DeleteGuardSettings {
    /// Compiles `policy.guards.deleteGuard`; errors name the key.
    pub fn compile(s: &DeleteGuardSection, global: Mode) -> Result<Self, PolicyError> {
        if s.max_intents == 0 {
            return Err(PolicyError {
                key: "policy.guards.deleteGuard.maxIntents".into(),
                message: "must be at least 1".into(),
            });
        }
        if s.confirm_window.is_zero() {
            return Err(PolicyError {
                key: "policy.guards.deleteGuard.confirmWindow".into(),
                message: "must be more than 0".into(),
            });
        }
        let mut resources = Vec::new();
        for (i, r) in s.resources.iter().enumerate() {
            if r.trim().is_empty() {
                return Err(PolicyError {
                    key: format!("policy.guards.deleteGuard.resources[{i}]"),
                    message: "must not be empty".into(),
                });
            }
            let (res, group) = r.split_once('.').unwrap_or((r.as_str(), ""));
            resources.push((group.to_string(), res.to_string()));
        }
        Ok(DeleteGuardSettings {
            enabled: s.enabled,
            mode: s.mode.unwrap_or(global),
            resources,
            delete_collection: s.delete_collection,
            all_deletes: false,
            confirm_window: s.confirm_window,
            dry_run_confirms: s.dry_run_confirms,
            annotation_confirms: s.annotation_confirms,
            service_accounts_need_annotation: s.service_accounts_need_annotation,
            max_intents: s.max_intents,
        })
    }

    /// The settings under a rule (its mode and guards) or for unmatched requests (`None`s);
    /// `None` when the guard does not run.
    pub fn for_rule(&self, rule_mode: Option<Mode>, guards: Option<&RuleGuards>) -> Option<Self> {
        if !self.enabled {
            return None;
        }
        let over = match guards {
            Some(g) => Some(g.delete_guard.as_ref()?),
            None => None,
        };
        let mut s = self.clone();
        s.mode = over.and_then(|o| o.mode).or(rule_mode).unwrap_or(s.mode);
        if let Some(all) = over.and_then(|o| o.all_deletes) {
            s.all_deletes = all;
        }
        (s.mode != Mode::Off).then_some(s)
    }

    /// Whether `api` is a delete this guard holds.
    pub fn guards(&self, api: &ApiRequest) -> bool {
        let Some(r) = api.resource() else {
            return false;
        };
        match api.verb {
            Verb::DeleteCollection => self.delete_collection || self.all_deletes,
            Verb::Delete => {
                r.subresource.is_none()
                    && (self.all_deletes
                        || self
                            .resources
                            .iter()
                            .any(|(g, res)| *g == r.group && *res == r.resource))
            }
            _ => false,
        }
    }
}

/// What the pipeline read from the upstream about the object a guarded delete targets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeleteLookup {
    /// The `kubeguard.io/confirm-delete` annotation's value, if the object has one.
    pub confirm_annotation: Option<String>,
    /// The object's `metadata.uid`: intents are keyed by it, so a recreated object with the
    /// same name is not confirmed by a dry run of its predecessor.
    pub uid: Option<String>,
    /// For a namespace: `(resource, count)` of what it holds, from cache-served LISTs.
    pub contents: Vec<(String, u64)>,
}

/// One dry-run intent: who, which object (and UID when preconditions named one).
type IntentKey = String;

/// The guard; its state is the dry-run intents.
pub struct DeleteGuard {
    /// Intent → when the dry run was seen (`None`: used up).
    intents: ShardedLru<IntentKey, Option<Instant>>,
}

impl DeleteGuard {
    pub fn new(max_intents: usize) -> Self {
        DeleteGuard {
            intents: ShardedLru::new(max_intents.max(1)),
        }
    }

    /// Whether the pipeline should read the object before deciding on `api` (a guarded delete
    /// of a named object under the selected settings, dry run or not).
    pub fn wants_lookup(api: &ApiRequest, s: &DeleteGuardSettings) -> bool {
        api.verb == Verb::Delete
            && api.resource().is_some_and(|r| r.name.is_some())
            && s.guards(api)
    }
}

impl Guard for DeleteGuard {
    type Settings = DeleteGuardSettings;
    const NAME: &'static str = "delete_guard";

    fn check(&self, ctx: &GuardCtx<'_>, s: &DeleteGuardSettings) -> Outcome {
        let api = ctx.api;
        if !s.guards(api) {
            return Outcome::forward("not a guarded delete");
        }
        let Some(r) = api.resource() else {
            return Outcome::forward("not a resource");
        };
        let opts = DeleteBody::parse(ctx.body.map(|b| b.as_ref()));
        // Same identity, same object, same UID: the UID the client named in preconditions, else
        // the one the object has now.
        let uid = opts
            .uid
            .as_deref()
            .or(ctx.delete_lookup.and_then(|l| l.uid.as_deref()));
        let key = intent_key(ctx.identity, r, uid);
        if api.options.dry_run || opts.dry_run {
            self.intents.update(key, |_| Some(ctx.now));
            return Outcome::forward("dry run: intent recorded");
        }
        let sa = ctx.identity.service_account().is_some();
        let dry_run_allowed = s.dry_run_confirms && !(sa && s.service_accounts_need_annotation);
        if dry_run_allowed && self.take_intent(&key, s.confirm_window, ctx.now) {
            return Outcome::forward("confirmed by a dry run");
        }
        if s.annotation_confirms
            && let Some(v) = ctx
                .delete_lookup
                .and_then(|l| l.confirm_annotation.as_deref())
            && annotation_fresh(v, s.confirm_window, SystemTime::now())
        {
            return Outcome::forward("confirmed by annotation");
        }
        let message = refusal_message(api, r, ctx.delete_lookup, s, dry_run_allowed);
        Outcome {
            verdict: Verdict::Block(Status::failure(StatusCode::FORBIDDEN, "Forbidden", message)),
            reason: format!("unconfirmed {} of {}", api.verb.as_str(), describe(r)).into(),
            report_only: false,
        }
    }

    fn body_limit(&self, api: &ApiRequest) -> Option<usize> {
        matches!(api.verb, Verb::Delete | Verb::DeleteCollection).then_some(BODY_LIMIT)
    }
}

impl DeleteGuard {
    /// Uses up a fresh intent: true once per dry run.
    fn take_intent(&self, key: &IntentKey, window: Duration, now: Instant) -> bool {
        let fresh = self.intents.with(key, |v| {
            v.copied()
                .flatten()
                .is_some_and(|t| now.saturating_duration_since(t) < window)
        });
        if fresh {
            self.intents.update(key.clone(), |_| None);
        }
        fresh
    }
}

fn intent_key(id: &Identity, r: &ResourceRef, uid: Option<&str>) -> IntentKey {
    format!(
        "{}\u{0}{}/{}\u{0}{}\u{0}{}\u{0}{}",
        id.user,
        r.group,
        r.resource,
        r.namespace.as_deref().unwrap_or(""),
        r.name.as_deref().unwrap_or(""),
        uid.unwrap_or("")
    )
}

/// What the guard reads from a DeleteOptions body.
#[derive(Debug, Default, PartialEq)]
struct DeleteBody {
    dry_run: bool,
    uid: Option<String>,
}

impl DeleteBody {
    fn parse(body: Option<&[u8]>) -> Self {
        let Some(v) = body
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        else {
            return DeleteBody::default();
        };
        let dry_run = v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("All")));
        let uid = v["preconditions"]["uid"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        DeleteBody { dry_run, uid }
    }
}

/// The annotation holds an RFC 3339 time within the window before `now` (or a little after).
fn annotation_fresh(value: &str, window: Duration, now: SystemTime) -> bool {
    let Ok(ts) = value.trim().parse::<jiff::Timestamp>() else {
        return false;
    };
    let Ok(now) = jiff::Timestamp::try_from(now) else {
        return false;
    };
    let age = now.as_millisecond() - ts.as_millisecond();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let skew_ms = i64::try_from(FUTURE_SKEW.as_millis()).unwrap_or(0);
    age < window_ms && age > -skew_ms
}

/// The namespace the object lives in: none for a namespace itself (RequestInfo gives a
/// namespace's own name as its namespace).
fn namespace_of(r: &ResourceRef) -> Option<&str> {
    if r.group.is_empty() && r.resource == "namespaces" {
        None
    } else {
        r.namespace.as_deref()
    }
}

fn describe(r: &ResourceRef) -> String {
    let kind = kubectl_kind(r);
    match (&r.name, namespace_of(r)) {
        (Some(n), Some(ns)) => format!("{kind} {n} in namespace {ns}"),
        (Some(n), None) => format!("{kind} {n}"),
        (None, Some(ns)) => format!("all {kind} in namespace {ns}"),
        (None, None) => format!("all {kind}"),
    }
}

/// How kubectl names the resource: `namespace` for the core group's namespaces, `pods`, or
/// `resource.group` for other groups.
fn kubectl_kind(r: &ResourceRef) -> String {
    match (r.group.as_str(), r.resource.as_str()) {
        ("", "namespaces") => "namespace".into(),
        ("", res) => res.into(),
        (g, res) => format!("{res}.{g}"),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{} minutes", s / 60)
    } else if s == 1 {
        "1 second".into()
    } else if s > 1 {
        format!("{s} seconds")
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn refusal_message(
    api: &ApiRequest,
    r: &ResourceRef,
    lookup: Option<&DeleteLookup>,
    s: &DeleteGuardSettings,
    dry_run_allowed: bool,
) -> String {
    let what = describe(r);
    let removes = match (api.verb, r.resource.as_str(), r.group.as_str(), &r.name) {
        (Verb::Delete, "namespaces", "", Some(n)) => {
            let counts: Vec<String> = lookup
                .map(|l| {
                    l.contents
                        .iter()
                        .map(|(res, c)| format!("{c} {res}"))
                        .collect()
                })
                .unwrap_or_default();
            if counts.is_empty() {
                format!("everything in namespace {n}")
            } else {
                format!(
                    "everything in namespace {n}, including {}",
                    counts.join(", ")
                )
            }
        }
        (Verb::Delete, "customresourcedefinitions", _, Some(n)) => {
            format!("every custom resource of {n}")
        }
        (Verb::Delete, "persistentvolumes", "", Some(n)) => {
            format!("persistent volume {n} and, by its reclaim policy, possibly its data")
        }
        _ => what.clone(),
    };
    let window = human(s.confirm_window);
    let ns_flag = namespace_of(r)
        .map(|ns| format!(" -n {ns}"))
        .unwrap_or_default();
    let kind = kubectl_kind(r);
    let target = match &r.name {
        Some(n) => format!("{kind} {n}{ns_flag}"),
        None => format!("{kind} --all{ns_flag}"),
    };
    let mut m =
        format!("kubeguard: deleting {what} is protected: it would remove {removes}. To confirm,");
    let mut ways = Vec::new();
    if dry_run_allowed {
        ways.push(format!(
            " run `kubectl delete {target} --dry-run=server` then `kubectl delete {target}` within {window}"
        ));
    }
    if s.annotation_confirms && r.name.is_some() {
        ways.push(format!(
            " run `kubectl annotate {target} {CONFIRM_ANNOTATION}=$(date -u +%Y-%m-%dT%H:%M:%SZ) --overwrite` then delete it within {window}"
        ));
    }
    if ways.is_empty() {
        m.push_str(" ask an administrator (no confirmation is allowed for this caller)");
    } else {
        m.push_str(&ways.join(", or"));
    }
    m.push('.');
    m
}

/// Reads, with kubeguard's own credentials, what the guard needs to know about the object a
/// guarded delete targets: its confirm annotation and, for a namespace, what it holds (LISTs with
/// `resourceVersion=0`, served from the watch cache, k8s-facts §1). Failures leave parts empty:
/// the guard then refuses without them.
pub async fn lookup(upstream: &Upstream, api: &ApiRequest, timeout: Duration) -> DeleteLookup {
    let mut out = DeleteLookup::default();
    let Some(r) = api.resource() else {
        return out;
    };
    let Some(name) = r.name.as_deref() else {
        return out;
    };
    let prefix = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let ns_part = namespace_of(r)
        .map(|ns| format!("/namespaces/{ns}"))
        .unwrap_or_default();
    let path = format!("{prefix}{ns_part}/{}/{name}", r.resource);
    if let Some(obj) = get_json(upstream, &path, timeout).await {
        out.confirm_annotation = obj["metadata"]["annotations"][CONFIRM_ANNOTATION]
            .as_str()
            .map(str::to_string);
        out.uid = obj["metadata"]["uid"].as_str().map(str::to_string);
    }
    // A dry run only records an intent: what the namespace holds is counted for refusals.
    if r.group.is_empty() && r.resource == "namespaces" && !api.options.dry_run {
        for (api_prefix, res) in COUNTED {
            let path = format!("{api_prefix}/namespaces/{name}/{res}?resourceVersion=0");
            if let Some(list) = get_json(upstream, &path, timeout).await
                && let Some(items) = list["items"].as_array()
                && !items.is_empty()
            {
                out.contents.push(((*res).to_string(), items.len() as u64));
            }
        }
    }
    out
}

/// [`lookup`] when the live policy holds this request as a guarded, named, real delete
/// (the only requests that pay for it); `None` otherwise.
pub async fn lookup_if_guarded(
    engine: &crate::policy::engine::PolicyEngine,
    upstream: &Upstream,
    identity: &Identity,
    api: &ApiRequest,
    user_agent: &str,
) -> Option<DeleteLookup> {
    let wanted = {
        let policy = engine.store.load();
        let subject = crate::policy::Subject {
            identity,
            api,
            user_agent,
        };
        policy
            .select(&subject)
            .delete_guard
            .is_some_and(|s| DeleteGuard::wants_lookup(api, s))
    };
    if !wanted {
        return None;
    }
    // Boxed: a lookup's state is large, and every request's future would be as large for it.
    Some(Box::pin(lookup(upstream, api, LOOKUP_TIMEOUT)).await)
}

/// Each lookup request waits at most this long for the upstream's answer.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Lists read for counting are capped at this many bytes.
const LOOKUP_BODY_LIMIT: usize = 64 * 1024 * 1024;

async fn get_json(upstream: &Upstream, path: &str, timeout: Duration) -> Option<serde_json::Value> {
    let pq = PathAndQuery::try_from(path).ok()?;
    let uri = upstream.uri_for(&pq).ok()?;
    let mut req = Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(empty_body())
        .ok()?;
    if let Ok(Some(auth)) = upstream.own_authorization().await {
        req.headers_mut().insert(http::header::AUTHORIZATION, auth);
    }
    let resp = upstream.send(req, false, Some(timeout)).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = Limited::new(resp.into_body(), LOOKUP_BODY_LIMIT)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&body).ok()
}

#[cfg(test)]
#[path = "delete_guard_tests.rs"]
mod tests;
