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

mod commit;
mod crd;
mod cron;
mod defaults;
mod errors;
mod range;
mod stored;
mod validate;
mod writes;

use commit::translate;
use crd::register_crd;
pub use defaults::DEFAULT_CLASS_ANNOTATION;
use defaults::{defaults_on_create, prepare_for_create, set_defaults};
use errors::{already_exists, precondition_failed};
pub use errors::{conflict, invalid, invalid_causes, invalid_kind, not_found, qualified};
use range::{MergeOverride, ns_range, range_iter};
use stored::Interner;
pub use stored::{Filter, Stored};
pub use validate::validate;
pub use writes::now_rfc3339;

/// `(group, resource)`: where a type's objects live, whatever the version.
pub type Gr = (String, String);
/// `(namespace, name)`; namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

/// How many events a watcher may have queued before it is closed (it can't keep up).
pub const WATCHER_QUEUE: usize = 4096;

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
}

#[cfg(test)]
mod tests;
