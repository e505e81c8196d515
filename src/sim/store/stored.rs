//! One stored object (its JSON plus the fields selectors need) and the filter lists and
//! watches apply to it.

use super::*;

/// One stored object.
///
/// Everything but the JSON is what selectors, ordering and the garbage collector need. Strings
/// that repeat across objects (namespaces, label keys and values, node names, phases, owner
/// uids) are `Arc<str>`, shared between the objects of a seeded cluster (see [`Interner`]):
/// with 100k pods the per-object overhead, not only the JSON, decides whether it fits.
#[derive(Debug)]
pub struct Stored {
    pub namespace: Arc<str>,
    pub name: Box<str>,
    pub rv: u64,
    pub labels: Box<[(Arc<str>, Arc<str>)]>,
    pub node_name: Option<Arc<str>>,
    pub phase: Option<Arc<str>>,
    pub terminating: bool,
    /// `metadata.ownerReferences[].uid`, for the garbage collector's cascade.
    pub owners: Box<[Arc<str>]>,
    pub json: Bytes,
}

/// Hands out one shared copy of each distinct string (used while seeding, then dropped: the
/// objects keep their shares).
#[derive(Default)]
pub(super) struct Interner(std::collections::HashSet<Arc<str>>);

impl Interner {
    pub(super) fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }
}

impl Stored {
    pub(super) fn from_value(v: &Value, rv: u64) -> Stored {
        Stored::from_value_with(v, rv, &mut |s| Arc::from(s))
    }

    /// Like [`Stored::from_value`], taking shared strings from `intern`.
    pub(super) fn from_value_with(
        v: &Value,
        rv: u64,
        intern: &mut dyn FnMut(&str) -> Arc<str>,
    ) -> Stored {
        let md = &v["metadata"];
        fn str_at(x: &Value) -> &str {
            x.as_str().unwrap_or_default()
        }
        let labels = md["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (intern(k), intern(str_at(v))))
                    .collect()
            })
            .unwrap_or_default();
        let owners = md["ownerReferences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o["uid"].as_str().map(&mut *intern))
                    .collect()
            })
            .unwrap_or_default();
        Stored {
            namespace: intern(str_at(&md["namespace"])),
            name: Box::from(str_at(&md["name"])),
            rv,
            labels,
            node_name: v["spec"]["nodeName"].as_str().map(&mut *intern),
            phase: v["status"]["phase"].as_str().map(&mut *intern),
            terminating: md.get("deletionTimestamp").is_some_and(|t| !t.is_null()),
            owners,
            json: compact_json(v),
        }
    }

    /// The object as a JSON tree (for writes and Table output only).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    pub fn key(&self) -> Key {
        (self.namespace.to_string(), self.name.to_string())
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
pub(super) fn compact_json(v: &Value) -> Bytes {
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
        self.namespace.as_ref().is_none_or(|n| **n == *s.namespace)
            && self.labels.matches(&s.labels)
            && self.fields.matches(|f| s.field(f))
    }

    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}
