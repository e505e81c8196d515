//! One stored object (its JSON plus the fields selectors need) and the filter lists and
//! watches apply to it.

use super::*;

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
    pub(super) fn from_value(v: &Value, rv: u64) -> Stored {
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
        self.namespace.as_ref().is_none_or(|n| *n == s.namespace)
            && self.labels.matches(&s.labels)
            && self.fields.matches(|f| s.field(f))
    }

    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}
