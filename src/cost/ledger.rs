//! The ledger: what each identity cost, in total and per verb × resource.
//!
//! Bounded, because identities grow with clients: the ledger keeps at most `max_clients`
//! identities exactly; when a new one arrives at a full shard, the cheapest of the few least
//! recently seen is folded into "other" (its counts are kept, its name is not). A burst of a
//! million one-off identities therefore costs a fixed amount of memory and cannot push out an
//! expensive client that is still active. Per identity, at most `max_keys_per_client`
//! verb × resource pairs are kept; the rest add to `other/other`.
//!
//! Recording is on the hot path: identities are spread over 64 shards, each behind its own
//! mutex held for a few hash-map operations; there is no global lock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use crate::observe::lru::{RandomState, random_state};

use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::record::{CostRecord, StreamKind};

const SHARDS: usize = 64;
/// How many of the least recently seen identities compete to be folded into "other".
const EVICTION_CANDIDATES: usize = 8;
/// The name identities are folded under.
pub const OTHER: &str = "other";

/// The counts kept per identity and per identity × verb × resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    pub requests: u64,
    pub errors: u64,
    pub throttled: u64,
    pub blocked: u64,
    pub rewritten: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub items: u64,
    /// Items that were estimated, not counted.
    pub items_estimated: u64,
    /// Time the upstream spent on these requests (to the end of the response), seconds.
    pub upstream_seconds: f64,
    pub etcd_objects_read: u64,
    pub etcd_objects_avoided: u64,
    pub watch_seconds: f64,
    pub exec_seconds: f64,
    pub log_seconds: f64,
}

impl Counters {
    fn add_record(&mut self, r: &CostRecord) {
        self.requests += 1;
        self.errors += u64::from(r.is_error());
        self.throttled += u64::from(r.throttled);
        self.blocked += u64::from(r.blocked);
        self.rewritten += u64::from(r.rewritten);
        self.bytes_in = self.bytes_in.saturating_add(r.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(r.bytes_out);
        self.items = self.items.saturating_add(r.items);
        if !r.items_exact {
            self.items_estimated = self.items_estimated.saturating_add(r.items);
        }
        // Throttled and blocked requests never reached the upstream.
        if !r.throttled && !r.blocked {
            self.upstream_seconds += r.duration.as_secs_f64();
        }
        self.etcd_objects_read = self.etcd_objects_read.saturating_add(r.etcd_objects_read);
        self.etcd_objects_avoided = self
            .etcd_objects_avoided
            .saturating_add(r.etcd_objects_avoided);
        match r.stream_kind() {
            StreamKind::Watch => self.watch_seconds += r.long_running_seconds,
            StreamKind::Exec => self.exec_seconds += r.long_running_seconds,
            StreamKind::Log => self.log_seconds += r.long_running_seconds,
            StreamKind::None => {}
        }
    }

    /// Adds every count of `o`.
    pub fn merge(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.throttled += o.throttled;
        self.blocked += o.blocked;
        self.rewritten += o.rewritten;
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.items = self.items.saturating_add(o.items);
        self.items_estimated = self.items_estimated.saturating_add(o.items_estimated);
        self.upstream_seconds += o.upstream_seconds;
        self.etcd_objects_read = self.etcd_objects_read.saturating_add(o.etcd_objects_read);
        self.etcd_objects_avoided = self
            .etcd_objects_avoided
            .saturating_add(o.etcd_objects_avoided);
        self.watch_seconds += o.watch_seconds;
        self.exec_seconds += o.exec_seconds;
        self.log_seconds += o.log_seconds;
    }

    /// The cost score identities are ranked by: objects read from etcd, plus one per request and
    /// one per ten items returned (the units of `Estimate::units`).
    pub fn cost(&self) -> u64 {
        self.etcd_objects_read
            .saturating_add(self.requests)
            .saturating_add(self.items / super::estimate::CACHE_OBJECTS_PER_UNIT)
    }
}

/// One identity's entry.
#[derive(Default)]
struct ClientEntry {
    totals: Counters,
    by_request: ByRequest,
}

/// An identity's counters per verb × resource: by resource, then by verb (a resource sees few
/// verbs), so a request's counters are found by the `&str` it has, with nothing allocated.
struct ByRequest {
    resources: HashMap<Box<str>, Vec<(&'static str, Counters)>, RandomState>,
    /// Verb × resource pairs held.
    len: usize,
}

impl Default for ByRequest {
    fn default() -> Self {
        ByRequest {
            resources: HashMap::with_hasher(random_state()),
            len: 0,
        }
    }
}

impl ByRequest {
    /// The counters of `verb` × `resource`, or of `other/other` when `max_keys` pairs are held
    /// already and this one is not among them.
    fn counters(&mut self, verb: &'static str, resource: &str, max_keys: usize) -> &mut Counters {
        let found = self
            .resources
            .get(resource)
            .and_then(|verbs| verbs.iter().position(|(v, _)| *v == verb));
        match found {
            Some(i) => match self.resources.get_mut(resource) {
                Some(verbs) => &mut verbs[i].1,
                None => unreachable!("just found"),
            },
            None if self.len < max_keys => self.add(verb, resource),
            None => self.add(OTHER, OTHER),
        }
    }

    /// The counters of `verb` × `resource`, made when new.
    fn add(&mut self, verb: &'static str, resource: &str) -> &mut Counters {
        if !self.resources.contains_key(resource) {
            self.resources.insert(resource.into(), Vec::new());
        }
        let verbs = self
            .resources
            .get_mut(resource)
            .unwrap_or_else(|| unreachable!("just inserted"));
        let i = match verbs.iter().position(|(v, _)| *v == verb) {
            Some(i) => i,
            None => {
                verbs.push((verb, Counters::default()));
                self.len += 1;
                verbs.len() - 1
            }
        };
        &mut verbs[i].1
    }

    fn iter(&self) -> impl Iterator<Item = (&'static str, &str, &Counters)> {
        self.resources
            .iter()
            .flat_map(|(r, verbs)| verbs.iter().map(move |(v, c)| (*v, &**r, c)))
    }
}

struct Shard {
    /// `String` keys (not `Box<str>`): a `&str` finds, or makes, an entry in one lookup.
    clients: LruCache<String, ClientEntry>,
    capacity: usize,
    other: Counters,
    /// Identities folded into `other` so far.
    folded: u64,
}

impl Shard {
    /// The entry of `identity`, making room by folding a cheap, stale identity into "other".
    fn entry(&mut self, identity: &str) -> &mut ClientEntry {
        if self.clients.len() >= self.capacity && !self.clients.contains(identity) {
            self.fold_one();
        }
        // Also marks it most recently used.
        self.clients
            .get_or_insert_mut_ref(identity, ClientEntry::default)
    }

    fn fold_one(&mut self) {
        let victim = self
            .clients
            .iter()
            .rev()
            .take(EVICTION_CANDIDATES)
            .min_by_key(|(_, e)| e.totals.cost())
            .map(|(k, _)| k.clone());
        if let Some(k) = victim
            && let Some(e) = self.clients.pop(&k)
        {
            self.other.merge(&e.totals);
            self.folded += 1;
        }
    }
}

/// The per-identity cost ledger. Shared by every request (`Arc<Ledger>`).
pub struct Ledger {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    max_keys_per_client: usize,
    /// Where each record also goes as a span, when OTLP traces are on (`cost/traces.rs`).
    traces: std::sync::OnceLock<std::sync::Arc<super::traces::TraceSink>>,
}

/// Everything the ledger holds, ordered by cost: served at `/debug/costs`, written to disk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LedgerSnapshot {
    /// Identities, most expensive first.
    pub clients: Vec<ClientCosts>,
    /// Identities folded away (and those beyond a snapshot's `top`), added up.
    pub other: Counters,
    /// How many identities `other` holds.
    pub other_clients: u64,
}

/// One identity in a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientCosts {
    pub identity: String,
    /// `Counters::cost` of `totals`.
    pub cost: u64,
    pub totals: Counters,
    /// Per verb × resource, most expensive first.
    pub by_request: Vec<RequestCosts>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestCosts {
    pub verb: String,
    pub resource: String,
    pub counters: Counters,
}

impl LedgerSnapshot {
    /// Totals over every identity, folded ones included.
    pub fn total(&self) -> Counters {
        let mut t = self.other.clone();
        for c in &self.clients {
            t.merge(&c.totals);
        }
        t
    }
}

impl Ledger {
    /// A ledger keeping at most `max_clients` identities and `max_keys_per_client` verb × resource
    /// pairs per identity exactly.
    pub fn new(max_clients: usize, max_keys_per_client: usize) -> Self {
        let per_shard = max_clients.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    clients: LruCache::unbounded(),
                    capacity: per_shard,
                    other: Counters::default(),
                    folded: 0,
                })
            })
            .collect();
        Ledger {
            shards,
            hasher: random_state(),
            max_keys_per_client: max_keys_per_client.max(1),
            traces: std::sync::OnceLock::new(),
        }
    }

    /// Every record from now on is also offered to `sink` as a span (set once).
    pub fn send_traces_to(&self, sink: std::sync::Arc<super::traces::TraceSink>) {
        let _ = self.traces.set(sink);
    }

    /// The trace sink, when OTLP traces are on.
    pub fn traces(&self) -> Option<&super::traces::TraceSink> {
        self.traces.get().map(|t| &**t)
    }

    fn shard(&self, identity: &str) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(identity) as usize) % self.shards.len();
        // A panic while holding a shard leaves counts, never a broken invariant: keep going.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds one finished request.
    pub fn record(&self, r: &CostRecord) {
        if let Some(traces) = self.traces.get() {
            traces.offer(r);
        }
        let max_keys = self.max_keys_per_client;
        let mut shard = self.shard(&r.identity);
        let entry = shard.entry(&r.identity);
        entry.totals.add_record(r);
        entry
            .by_request
            .counters(r.verb, &r.resource, max_keys)
            .add_record(r);
    }

    /// Identities kept exactly right now.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).clients.len())
            .sum()
    }

    /// The ledger's content, most expensive first; with `top`, only that many identities are
    /// listed and the rest are added to `other`.
    pub fn snapshot(&self, top: Option<usize>) -> LedgerSnapshot {
        let mut snap = LedgerSnapshot::default();
        for s in self.shards.iter() {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            snap.other.merge(&s.other);
            snap.other_clients += s.folded;
            for (k, e) in s.clients.iter() {
                let mut by_request: Vec<RequestCosts> = e
                    .by_request
                    .iter()
                    .map(|(verb, resource, c)| RequestCosts {
                        verb: verb.to_string(),
                        resource: resource.to_string(),
                        counters: c.clone(),
                    })
                    .collect();
                by_request.sort_by_key(|r| std::cmp::Reverse(r.counters.cost()));
                snap.clients.push(ClientCosts {
                    identity: k.to_string(),
                    cost: e.totals.cost(),
                    totals: e.totals.clone(),
                    by_request,
                });
            }
        }
        snap.clients.sort_by(|a, b| {
            b.cost
                .cmp(&a.cost)
                .then_with(|| a.identity.cmp(&b.identity))
        });
        if let Some(top) = top
            && snap.clients.len() > top
        {
            for c in snap.clients.drain(top..) {
                snap.other.merge(&c.totals);
                snap.other_clients += 1;
            }
        }
        snap
    }

    /// Adds a snapshot (read back from disk at start) to the ledger.
    pub fn restore(&self, snap: &LedgerSnapshot) {
        let max_keys = self.max_keys_per_client;
        for c in &snap.clients {
            let mut shard = self.shard(&c.identity);
            let entry = shard.entry(&c.identity);
            entry.totals.merge(&c.totals);
            for rc in &c.by_request {
                entry
                    .by_request
                    .counters(static_verb(&rc.verb), &rc.resource, max_keys)
                    .merge(&rc.counters);
            }
        }
        let mut first = self.shards[0].lock().unwrap_or_else(|e| e.into_inner());
        first.other.merge(&snap.other);
        first.folded += snap.other_clients;
    }
}

/// The `&'static` verb name of a verb read back from a file.
fn static_verb(v: &str) -> &'static str {
    const VERBS: [&str; 14] = [
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "exec",
        "attach",
        "portforward",
        "proxy",
        "log",
        "other",
    ];
    VERBS.iter().find(|k| **k == v).copied().unwrap_or(OTHER)
}

#[cfg(test)]
mod tests;
