//! The emulator's storage: every object as its serialized JSON (`Bytes`) plus the few fields
//! that selectors and ordering need, one global increasing resourceVersion, a bounded history
//! of changes (the "compaction window" for watches and continue tokens) and the watchers.
//!
//! Objects are keyed by `(namespace, name)` in a `BTreeMap` per `(group, resource)`: the order
//! of etcd's `/registry/<resource>/<namespace>/<name>` keys, which is what continue tokens use.
//! All state sits behind one `RwLock` that is never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::registry::{Registry, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use crate::status::{Status, StatusCause, StatusDetails};

/// `(group, resource)`: where a type's objects live, whatever the version.
pub type Gr = (String, String);
/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

/// How many events a watcher may have queued before it is closed (it can't keep up).
pub const WATCHER_QUEUE: usize = 4096;

/// One stored object.
#[derive(Debug)]
pub struct Stored {
    pub namespace: String,
    pub name: String,
    pub rv: u64,
    pub labels: Vec<(String, String)>,
    pub node_name: Option<String>,
    pub phase: Option<String>,
    pub terminating: bool,
    /// `metadata.ownerReferences[].uid`, for the garbage collector's cascade.
    pub owners: Box<[Box<str>]>,
    pub json: Bytes,
}

impl Stored {
    fn from_value(v: &Value, rv: u64) -> Stored {
        let md = &v["metadata"];
        let s = |x: &Value| x.as_str().map(str::to_string);
        Stored {
            namespace: s(&md["namespace"]).unwrap_or_default(),
            name: s(&md["name"]).unwrap_or_default(),
            rv,
            labels: md["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            node_name: s(&v["spec"]["nodeName"]),
            phase: s(&v["status"]["phase"]),
            terminating: md.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            owners: md["ownerReferences"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|o| o["uid"].as_str().map(Box::from))
                        .collect()
                })
                .unwrap_or_default(),
            json: compact_json(v),
        }
    }

    /// The object as a JSON tree (for writes and Table output only).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    pub fn key(&self) -> Key {
        (self.namespace.clone(), self.name.clone())
    }

    /// The value of a selectable field (see [`super::selector::SELECTABLE_FIELDS`]).
    pub fn field(&self, f: &str) -> Option<&str> {
        match f {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            "spec.nodeName" => self.node_name.as_deref(),
            "status.phase" => self.phase.as_deref(),
            _ => None,
        }
    }
}

/// The serialized object in an allocation of exactly its size: serialised into a reused
/// per-thread buffer, then copied once. (Serialising into a fresh `Vec` would leave up to half
/// of it spare, or cost a realloc and fragment the heap: with 100k pods that is hundreds of MB.)
fn compact_json(v: &Value) -> Bytes {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        // Serialising a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, v);
        let out = Bytes::copy_from_slice(&buf);
        // Do not keep a huge buffer around after one big object.
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new();
        }
        out
    })
}

/// Which objects a list or watch wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this namespace (watches; lists use the key range instead).
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, s: &Stored) -> bool {
        self.namespace.as_ref().is_none_or(|n| *n == s.namespace)
            && self.labels.matches(&s.labels)
            && self.fields.matches(|f| s.field(f))
    }

    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A watch event as a watcher receives it.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub kind: EventType,
    pub obj: Arc<Stored>,
}

/// One change, kept in the history.
struct Change {
    gr: Gr,
    rv: u64,
    kind: EventType,
    obj: Arc<Stored>,
    /// The object before the change (Modified, Deleted).
    prev: Option<Arc<Stored>>,
}

struct Watcher {
    gr: Gr,
    filter: Filter,
    tx: mpsc::Sender<WatchEvent>,
}

/// Errors of reads at a past resourceVersion.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The revision was compacted away; `oldest` is the oldest one still readable.
    Compacted { requested: u64, oldest: u64 },
    /// The revision is newer than anything stored.
    TooLarge { requested: u64, current: u64 },
}

/// One page of a LIST.
#[derive(Debug, Default)]
pub struct ListPage {
    pub items: Vec<Arc<Stored>>,
    /// The revision the page was read at.
    pub rv: u64,
    /// Key of the last item returned when more matching items follow.
    pub next: Option<Key>,
    /// Items left after this page (only without selectors, as the apiserver does).
    pub remaining: Option<u64>,
    /// Objects in the scanned key range (the whole namespace or resource).
    pub scanned: u64,
}

/// A LIST request to the store.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub namespace: Option<String>,
    pub filter: Filter,
    pub limit: Option<usize>,
    /// Resume after this key (continue token).
    pub start_after: Option<Key>,
    /// Read at this revision (exact RV, continue tokens); None = latest.
    pub at: Option<u64>,
}

/// An open watch: events to replay first, then the live queue.
pub struct WatchStart {
    pub replay: Vec<WatchEvent>,
    pub rv: u64,
    pub rx: mpsc::Receiver<WatchEvent>,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug)]
pub enum WatchFrom {
    /// Now; with `initial`, synthetic ADDED events for the current state first.
    Now { initial: bool },
    /// Every change after this revision.
    Rv(u64),
}

/// What a delete did.
pub enum Deleted {
    /// The object is gone; this is its last state.
    Gone(Arc<Stored>),
    /// A namespace that is now Terminating (its content is removed asynchronously).
    Terminating(Arc<Stored>),
}

struct Inner {
    rv: u64,
    registry: Registry,
    objects: HashMap<Gr, BTreeMap<Key, Arc<Stored>>>,
    history: VecDeque<Change>,
    history_cap: usize,
    /// Every change with rv > compacted is in `history`.
    compacted: u64,
    watchers: Vec<Watcher>,
}

pub struct Store {
    inner: RwLock<Inner>,
}

pub fn gr_of(rt: &ResourceType) -> Gr {
    (rt.group.clone(), rt.resource.clone())
}

fn ns_gr() -> Gr {
    (String::new(), "namespaces".into())
}

const CRD_GROUP: &str = "apiextensions.k8s.io";

fn crd_gr() -> Gr {
    (CRD_GROUP.into(), "customresourcedefinitions".into())
}

impl Store {
    pub fn new(registry: Registry, history_cap: usize) -> Store {
        Store {
            inner: RwLock::new(Inner {
                rv: 1,
                registry,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_cap: history_cap.max(1),
                compacted: 1,
                watchers: Vec::new(),
            }),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current_rv(&self) -> u64 {
        self.read().rv
    }

    /// The oldest revision still readable (older watches and continue tokens get 410).
    pub fn oldest_rv(&self) -> u64 {
        self.read().compacted
    }

    pub fn registry(&self) -> Registry {
        self.read().registry.clone()
    }

    pub fn find_type(&self, group: &str, version: &str, resource: &str) -> Option<ResourceType> {
        self.read().registry.find(group, version, resource).cloned()
    }

    /// Forgets the whole history, like an etcd compaction at the current revision.
    pub fn compact(&self) {
        let mut g = self.write();
        g.history.clear();
        g.compacted = g.rv;
    }

    pub fn get(&self, gr: &Gr, ns: &str, name: &str) -> Option<Arc<Stored>> {
        let g = self.read();
        g.objects
            .get(gr)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Every CustomResourceDefinition object (few: read whole for OpenAPI documents).
    pub fn crds(&self) -> Vec<Value> {
        let g = self.read();
        g.objects
            .get(&crd_gr())
            .map(|m| m.values().map(|o| o.value()).collect())
            .unwrap_or_default()
    }

    /// The CRD that registered `(group, resource)`, if it is a custom type.
    pub fn crd_for(&self, group: &str, resource: &str) -> Option<Value> {
        if group.is_empty() {
            return None;
        }
        let g = self.read();
        g.objects
            .get(&crd_gr())?
            .get(&(String::new(), format!("{resource}.{group}")))
            .map(|o| o.value())
    }

    /// Objects of a type (in a namespace when given): what an etcd range read would scan.
    pub fn count(&self, gr: &Gr, ns: Option<&str>) -> u64 {
        let g = self.read();
        let Some(m) = g.objects.get(gr) else { return 0 };
        match ns {
            None => m.len() as u64,
            Some(ns) => ns_range(m, ns, None).count() as u64,
        }
    }

    pub fn list(&self, gr: &Gr, q: &ListQuery) -> Result<ListPage, ReadError> {
        let g = self.read();
        let at = match q.at {
            None => g.rv,
            Some(at) if at < g.compacted => {
                return Err(ReadError::Compacted {
                    requested: at,
                    oldest: g.compacted,
                });
            }
            Some(at) if at > g.rv => {
                return Err(ReadError::TooLarge {
                    requested: at,
                    current: g.rv,
                });
            }
            Some(at) => at,
        };
        let empty = BTreeMap::new();
        let current = g.objects.get(gr).unwrap_or(&empty);
        // State at `at` = current state with every later change undone, oldest undo winning.
        let mut undo: BTreeMap<Key, Option<Arc<Stored>>> = BTreeMap::new();
        for c in g.history.iter().rev().take_while(|c| c.rv > at) {
            if c.gr == *gr {
                undo.insert(c.obj.key(), c.prev.clone());
            }
        }
        let ns = q.namespace.as_deref();
        let scanned = match ns {
            None => current.len() as u64,
            Some(ns) => ns_range(current, ns, None).count() as u64,
        };
        let start = q.start_after.as_ref();
        let cur_iter = range_iter(current, ns, start).map(|(k, v)| (k, Some(v)));
        let undo_iter = range_iter(&undo, ns, start).map(|(k, v)| (k, v.as_ref()));
        let merged = MergeOverride::new(cur_iter, undo_iter);
        let limit = q.limit.filter(|l| *l > 0);
        let mut page = ListPage {
            rv: at,
            scanned,
            ..Default::default()
        };
        let mut rest = 0u64;
        for obj in merged {
            if !q.filter.matches(obj) {
                continue;
            }
            match limit {
                Some(l) if page.items.len() >= l => {
                    if page.next.is_none() {
                        page.next = page.items.last().map(|o| o.key());
                        if q.filter.has_selectors() {
                            break;
                        }
                    }
                    rest += 1;
                }
                _ => page.items.push(obj.clone()),
            }
        }
        if page.next.is_some() && !q.filter.has_selectors() {
            page.remaining = Some(rest);
        }
        Ok(page)
    }

    /// Opens a watch on a type; the returned queue receives every later matching change.
    pub fn watch(&self, gr: &Gr, filter: Filter, from: WatchFrom) -> Result<WatchStart, ReadError> {
        let mut g = self.write();
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let replay = match from {
            WatchFrom::Now { initial: false } => Vec::new(),
            WatchFrom::Now { initial: true } => g
                .objects
                .get(gr)
                .map(|m| {
                    m.values()
                        .filter(|o| filter.matches(o))
                        .map(|o| WatchEvent {
                            kind: EventType::Added,
                            obj: o.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            WatchFrom::Rv(rv) if rv < g.compacted => {
                return Err(ReadError::Compacted {
                    requested: rv,
                    oldest: g.compacted,
                });
            }
            WatchFrom::Rv(rv) => g
                .history
                .iter()
                .filter(|c| c.rv > rv && c.gr == *gr)
                .filter_map(|c| translate(c.kind, &c.obj, c.prev.as_ref(), &filter))
                .collect(),
        };
        let rv = g.rv;
        g.watchers.push(Watcher {
            gr: gr.clone(),
            filter,
            tx,
        });
        Ok(WatchStart { replay, rv, rx })
    }

    /// Drops watchers whose client went away (called on writes; also useful on shutdown).
    pub fn close_all_watches(&self) {
        self.write().watchers.clear();
    }

    pub fn watcher_count(&self) -> usize {
        self.read().watchers.len()
    }

    /// Creates an object. `obj` is the request body, already checked to be of type `rt`.
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Arc<Stored>, Status> {
        let gr = gr_of(rt);
        let mut g = self.write();
        let md = metadata_mut(&mut obj)?;
        let mut name = md
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let base = md
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if base.is_empty() {
                return Err(invalid(
                    rt,
                    "",
                    "metadata.name",
                    "FieldValueRequired",
                    "Required value: name or generateName is required",
                ));
            }
            name = generate_name(&base);
        }
        validate_name(rt, &name)?;
        if rt.namespaced {
            g.check_namespace_accepts(rt, ns, &name)?;
        }
        let key = (ns.to_string(), name.clone());
        if g.objects.get(&gr).is_some_and(|m| m.contains_key(&key)) {
            return Err(already_exists(rt, &name));
        }
        md.insert("name".into(), json!(name));
        if rt.namespaced {
            md.insert("namespace".into(), json!(ns));
        } else {
            md.remove("namespace");
        }
        md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        md.insert("creationTimestamp".into(), json!(now_rfc3339()));
        md.remove("deletionTimestamp");
        md.remove("managedFields");
        let has_spec = obj.get("spec").is_some();
        if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if has_spec {
                md.insert("generation".into(), json!(1));
            } else {
                md.remove("generation");
            }
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        defaults_on_create(rt, &mut obj);
        let rv = g.rv + 1;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if dry_run {
            return Ok(Arc::new(Stored::from_value(&obj, rv)));
        }
        if gr.0 == CRD_GROUP && gr.1 == "customresourcedefinitions" {
            register_crd(&mut g.registry, &mut obj)?;
        }
        let stored = Arc::new(Stored::from_value(&obj, rv));
        g.commit(gr, key, EventType::Added, stored.clone(), None);
        Ok(stored)
    }

    /// Bulk-loads seeded objects (see [`super::seed`]) under one lock, before the emulator
    /// serves: each gets its own resourceVersion, keeps a given `metadata.uid` (so the
    /// placeholder uids in ownerReferences name real owners and deletes cascade) and is stamped
    /// `created`. No history is kept: the load ends like an etcd compaction, so a watch from
    /// before it gets 410. Objects of unknown types or whose key exists are skipped. Returns how
    /// many went in.
    pub fn seed<I>(&self, objects: I, created: &str) -> usize
    where
        I: IntoIterator<Item = super::seed::SeedObject>,
    {
        let mut g = self.write();
        let Inner {
            rv,
            registry,
            objects: maps,
            history,
            compacted,
            ..
        } = &mut *g;
        let created = Value::String(created.to_string());
        let mut inserted = 0;
        for (group, resource, mut obj) in objects {
            let Some(rt) = registry
                .all()
                .iter()
                .find(|t| t.group == group && t.resource == resource)
            else {
                tracing::warn!(group, resource, "seed object of an unknown type skipped");
                continue;
            };
            let Ok(md) = metadata_mut(&mut obj) else {
                continue;
            };
            let str_of = |md: &Map<String, Value>, k: &str| {
                md.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let ns = if rt.namespaced {
                str_of(md, "namespace")
            } else {
                String::new()
            };
            let key = (ns, str_of(md, "name"));
            let map = maps
                .entry((rt.group.clone(), rt.resource.clone()))
                .or_default();
            if key.1.is_empty() || map.contains_key(&key) {
                continue;
            }
            if !md.get("uid").is_some_and(Value::is_string) {
                md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            }
            md.insert("creationTimestamp".into(), created.clone());
            *rv += 1;
            md.insert("resourceVersion".into(), Value::String(rv.to_string()));
            if obj.get("spec").is_some() {
                obj["metadata"]["generation"] = json!(1);
            }
            defaults_on_create(rt, &mut obj);
            map.insert(key, Arc::new(Stored::from_value(&obj, *rv)));
            inserted += 1;
        }
        history.clear();
        *compacted = *rv;
        inserted
    }

    /// Replaces an object (PUT), or only its status with `status_only`. A non-empty
    /// `metadata.resourceVersion` in `obj` must match the stored one (optimistic concurrency).
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Arc<Stored>, Status> {
        let gr = gr_of(rt);
        let mut g = self.write();
        let key = (ns.to_string(), name.to_string());
        let Some(old) = g.objects.get(&gr).and_then(|m| m.get(&key)).cloned() else {
            return Err(not_found(rt, name));
        };
        let md = metadata_mut(&mut obj)?;
        match md.get("name").and_then(Value::as_str) {
            Some(n) if n != name => {
                return Err(Status::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        if let Some(rv) = md.get("resourceVersion").and_then(Value::as_str)
            && !rv.is_empty()
            && rv != old.rv.to_string()
        {
            return Err(conflict(rt, name));
        }
        let old_v = old.value();
        let mut new = if status_only {
            let mut v = old_v.clone();
            v["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
            if v["status"].is_null()
                && let Some(m) = v.as_object_mut()
            {
                m.remove("status");
            }
            v
        } else {
            if rt.subresources.iter().any(|s| s == "status") {
                match old_v.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            obj
        };
        // Fields the server owns.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ] {
            match old_v["metadata"].get(f) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        if let Some(m) = new["metadata"].as_object_mut() {
            m.insert("name".into(), json!(name));
            m.remove("managedFields");
            if rt.namespaced {
                m.insert("namespace".into(), json!(ns));
            }
        }
        new["apiVersion"] = old_v["apiVersion"].clone();
        new["kind"] = json!(rt.kind);
        if new.get("spec") != old_v.get("spec") && new.get("spec").is_some() {
            let gen_ = old_v["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            new["metadata"]["generation"] = json!(gen_);
        }
        new["metadata"]["resourceVersion"] = old_v["metadata"]["resourceVersion"].clone();
        if new == old_v {
            // A no-op update writes nothing and keeps the resourceVersion.
            return Ok(old);
        }
        let rv = g.rv + 1;
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Arc::new(Stored::from_value(&new, rv));
        if !dry_run {
            g.commit(gr, key, EventType::Modified, stored.clone(), Some(old));
        }
        Ok(stored)
    }

    /// Deletes an object. A namespace first becomes Terminating; `purge_namespace` finishes it.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        precondition_uid: Option<&str>,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Deleted, Status> {
        let gr = gr_of(rt);
        let mut g = self.write();
        let key = (ns.to_string(), name.to_string());
        let Some(old) = g.objects.get(&gr).and_then(|m| m.get(&key)).cloned() else {
            return Err(not_found(rt, name));
        };
        let mut v = old.value();
        if let Some(uid) = precondition_uid
            && v["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(precondition_failed(
                rt,
                name,
                "UID",
                uid,
                &v["metadata"]["uid"],
            ));
        }
        if let Some(rv) = precondition_rv
            && old.rv.to_string() != rv
        {
            return Err(precondition_failed(
                rt,
                name,
                "ResourceVersion",
                rv,
                &json!(old.rv.to_string()),
            ));
        }
        let rv = g.rv + 1;
        if gr == ns_gr() {
            if old.terminating {
                return Ok(Deleted::Terminating(old));
            }
            v["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            v["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            v["status"]["phase"] = json!("Terminating");
            v["metadata"]["resourceVersion"] = json!(rv.to_string());
            let stored = Arc::new(Stored::from_value(&v, rv));
            if !dry_run {
                g.commit(gr, key, EventType::Modified, stored.clone(), Some(old));
            }
            return Ok(Deleted::Terminating(stored));
        }
        if dry_run {
            return Ok(Deleted::Gone(old));
        }
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        let gone = Arc::new(Stored::from_value(&v, rv));
        g.commit(gr.clone(), key, EventType::Deleted, gone.clone(), Some(old));
        if gr.0 == CRD_GROUP && gr.1 == "customresourcedefinitions" {
            let group = v["spec"]["group"].as_str().unwrap_or_default().to_string();
            let plural = v["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            g.registry.remove(&group, &plural);
            g.remove_all(&(group, plural), None);
        }
        Ok(Deleted::Gone(gone))
    }

    /// The garbage collector's cascade: deletes every object of `ns` owned (transitively) by
    /// `uid`. Returns how many objects went.
    pub fn delete_dependents(&self, ns: &str, uid: &str) -> usize {
        let mut g = self.write();
        let mut owners = vec![uid.to_string()];
        let mut deleted = 0;
        while let Some(owner) = owners.pop() {
            let mut doomed: Vec<(Gr, Key, String)> = Vec::new();
            for (gr, m) in &g.objects {
                for (k, o) in ns_range(m, ns, None) {
                    if o.owners.iter().any(|u| **u == *owner) {
                        let uid = o.value()["metadata"]["uid"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        doomed.push((gr.clone(), k.clone(), uid));
                    }
                }
            }
            for (gr, key, uid) in doomed {
                g.remove_all_keys(&gr, vec![key]);
                deleted += 1;
                owners.push(uid);
            }
        }
        deleted
    }

    /// Deletes everything in a Terminating namespace, then the namespace itself.
    pub fn purge_namespace(&self, ns: &str) {
        let mut g = self.write();
        let grs: Vec<Gr> = g
            .objects
            .keys()
            .filter(|gr| **gr != ns_gr())
            .cloned()
            .collect();
        for gr in grs {
            g.remove_all(&gr, Some(ns));
        }
        g.remove_all_keys(&ns_gr(), vec![(String::new(), ns.to_string())]);
    }
}

impl Inner {
    fn check_namespace_accepts(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
    ) -> Result<(), Status> {
        let nsobj = self
            .objects
            .get(&ns_gr())
            .and_then(|m| m.get(&(String::new(), ns.to_string())));
        match nsobj {
            None => Err(Status::not_found(format!("namespaces \"{ns}\" not found"))
                .with_details(StatusDetails {
                    name: ns.into(),
                    kind: "namespaces".into(),
                    ..Default::default()
                })),
            Some(n) if n.terminating => Err(Status::failure(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.resource
                ),
            )
            .with_details(StatusDetails {
                name: name.into(),
                group: rt.group.clone(),
                kind: rt.resource.clone(),
                causes: vec![StatusCause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {ns} is being terminated"),
                    field: "metadata.namespace".into(),
                }],
                ..Default::default()
            })),
            Some(_) => Ok(()),
        }
    }

    fn remove_all(&mut self, gr: &Gr, ns: Option<&str>) {
        let keys: Vec<Key> = match self.objects.get(gr) {
            None => return,
            Some(m) => match ns {
                None => m.keys().cloned().collect(),
                Some(ns) => ns_range(m, ns, None).map(|(k, _)| k.clone()).collect(),
            },
        };
        self.remove_all_keys(gr, keys);
    }

    fn remove_all_keys(&mut self, gr: &Gr, keys: Vec<Key>) {
        for key in keys {
            let Some(old) = self.objects.get(gr).and_then(|m| m.get(&key)).cloned() else {
                continue;
            };
            let rv = self.rv + 1;
            let mut v = old.value();
            v["metadata"]["resourceVersion"] = json!(rv.to_string());
            let gone = Arc::new(Stored::from_value(&v, rv));
            self.commit(gr.clone(), key, EventType::Deleted, gone, Some(old));
        }
    }

    /// Applies one change: bumps the revision, updates the map, records history, notifies.
    fn commit(
        &mut self,
        gr: Gr,
        key: Key,
        kind: EventType,
        obj: Arc<Stored>,
        prev: Option<Arc<Stored>>,
    ) {
        self.rv += 1;
        let rv = self.rv;
        let map = self.objects.entry(gr.clone()).or_default();
        if kind == EventType::Deleted {
            map.remove(&key);
        } else {
            map.insert(key, obj.clone());
        }
        self.watchers.retain(|w| {
            if w.gr != gr {
                return !w.tx.is_closed();
            }
            match translate(kind, &obj, prev.as_ref(), &w.filter) {
                None => !w.tx.is_closed(),
                // A full queue means the watcher can't keep up: close it (the client rewatches).
                Some(ev) => w.tx.try_send(ev).is_ok(),
            }
        });
        self.history.push_back(Change {
            gr,
            rv,
            kind,
            obj,
            prev,
        });
        while self.history.len() > self.history_cap {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
    }
}

/// What a watcher with `filter` sees of a change (the cacher's rules: an object that leaves
/// the selection is DELETED for it, one that enters is ADDED).
fn translate(
    kind: EventType,
    obj: &Arc<Stored>,
    prev: Option<&Arc<Stored>>,
    filter: &Filter,
) -> Option<WatchEvent> {
    let now = filter.matches(obj);
    let before = prev.is_some_and(|p| filter.matches(p));
    let ev = |kind, obj: &Arc<Stored>| {
        Some(WatchEvent {
            kind,
            obj: obj.clone(),
        })
    };
    match kind {
        EventType::Added if now => ev(EventType::Added, obj),
        EventType::Deleted if now => ev(EventType::Deleted, obj),
        EventType::Modified => match (before, now) {
            (true, true) => ev(EventType::Modified, obj),
            (false, true) => ev(EventType::Added, obj),
            (true, false) => ev(EventType::Deleted, prev?),
            (false, false) => None,
        },
        _ => None,
    }
}

fn ns_range<'a, V>(
    m: &'a BTreeMap<Key, V>,
    ns: &'a str,
    start: Option<&Key>,
) -> impl Iterator<Item = (&'a Key, &'a V)> + 'a {
    range_iter(m, Some(ns), start)
}

/// Keys of a namespace (or all) after `start`, in order.
fn range_iter<'a, V>(
    m: &'a BTreeMap<Key, V>,
    ns: Option<&'a str>,
    start: Option<&Key>,
) -> Box<dyn Iterator<Item = (&'a Key, &'a V)> + 'a> {
    let lower = match (start, ns) {
        (Some(k), _) => Bound::Excluded(k.clone()),
        (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    };
    let it = m.range((lower, Bound::Unbounded));
    match ns {
        None => Box::new(it),
        Some(ns) => Box::new(it.take_while(move |(k, _)| k.0 == ns)),
    }
}

/// Merges the current objects with overrides (the state at a past revision) in key order.
struct MergeOverride<'a, A, B>
where
    A: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
    B: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
{
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> MergeOverride<'a, A, B>
where
    A: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
    B: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
{
    fn new(a: A, b: B) -> Self {
        MergeOverride {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<'a, A, B> Iterator for MergeOverride<'a, A, B>
where
    A: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
    B: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
{
    type Item = &'a Arc<Stored>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let next = match (self.a.peek(), self.b.peek()) {
                (None, None) => return None,
                (Some(_), None) => self.a.next()?.1,
                (None, Some(_)) => self.b.next()?.1,
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => self.a.next()?.1,
                    std::cmp::Ordering::Greater => self.b.next()?.1,
                    std::cmp::Ordering::Equal => {
                        self.a.next();
                        self.b.next()?.1
                    }
                },
            };
            if let Some(o) = next {
                return Some(o);
            }
        }
    }
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, Status> {
    let Some(m) = obj.as_object_mut() else {
        return Err(Status::bad_request("the request body is not a JSON object"));
    };
    let md = m.entry("metadata").or_insert_with(|| json!({}));
    if !md.is_object() {
        return Err(Status::bad_request("metadata must be an object"));
    }
    Ok(md.as_object_mut().unwrap_or_else(|| unreachable!()))
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn generate_name(base: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

fn validate_name(rt: &ResourceType, name: &str) -> Result<(), Status> {
    let ok = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        return Ok(());
    }
    Err(invalid(
        rt,
        name,
        "metadata.name",
        "FieldValueInvalid",
        &format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ),
    ))
}

/// Defaults the apiserver (or the controllers it stands for) fills in on create.
fn defaults_on_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => {
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "pods") if obj["status"]["phase"].is_null() => {
            obj["status"]["phase"] = json!("Pending");
        }
        _ => {}
    }
}

/// A created CRD registers its served versions and is Established at once.
fn register_crd(reg: &mut Registry, crd: &mut Value) -> Result<(), Status> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err(Status::failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "CustomResourceDefinition is invalid: spec.group, spec.names.plural and spec.names.kind are required",
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut stored_versions = Vec::new();
    for v in spec["versions"].as_array().cloned().unwrap_or_default() {
        let Some(version) = v["name"].as_str() else {
            continue;
        };
        if v["storage"].as_bool() == Some(true) {
            stored_versions.push(version.to_string());
        }
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let mut subresources = Vec::new();
        if v["subresources"]["status"].is_object() {
            subresources.push("status".to_string());
        }
        if v["subresources"]["scale"].is_object() {
            subresources.push("scale".to_string());
        }
        reg.add(ResourceType {
            group: group.clone(),
            version: version.into(),
            resource: plural.clone(),
            kind: kind.clone(),
            singular: names["singular"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| kind.to_ascii_lowercase()),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            verbs: [
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "create",
                "update",
                "watch",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            subresources,
        });
    }
    let now = now_rfc3339();
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored_versions,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    Ok(())
}

fn details(rt: &ResourceType, name: &str) -> StatusDetails {
    StatusDetails {
        name: name.into(),
        group: rt.group.clone(),
        kind: rt.resource.clone(),
        ..Default::default()
    }
}

pub fn not_found(rt: &ResourceType, name: &str) -> Status {
    Status::not_found(format!("{} \"{name}\" not found", qualified(rt)))
        .with_details(details(rt, name))
}

fn already_exists(rt: &ResourceType, name: &str) -> Status {
    Status::failure(
        StatusCode::CONFLICT,
        "AlreadyExists",
        format!("{} \"{name}\" already exists", qualified(rt)),
    )
    .with_details(details(rt, name))
}

pub fn conflict(rt: &ResourceType, name: &str) -> Status {
    Status::failure(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            qualified(rt)
        ),
    )
    .with_details(details(rt, name))
}

fn precondition_failed(
    rt: &ResourceType,
    name: &str,
    what: &str,
    want: &str,
    have: &Value,
) -> Status {
    Status::failure(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {want}, {what} in object meta: {}",
            qualified(rt),
            have.as_str().unwrap_or_default()
        ),
    )
    .with_details(details(rt, name))
}

/// A 422 Invalid naming one field, shaped like the apiserver's.
pub fn invalid(rt: &ResourceType, name: &str, field: &str, reason: &str, msg: &str) -> Status {
    Status::failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{} \"{name}\" is invalid: {field}: {msg}", rt.kind),
    )
    .with_details(StatusDetails {
        name: name.into(),
        group: rt.group.clone(),
        kind: rt.kind.clone(),
        causes: vec![StatusCause {
            reason: reason.into(),
            message: msg.into(),
            field: field.into(),
        }],
        ..Default::default()
    })
}

/// `pods`, or `deployments.apps` for other groups, as the apiserver's messages name resources.
pub fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.resource.clone()
    } else {
        format!("{}.{}", rt.resource, rt.group)
    }
}

#[cfg(test)]
mod tests;
