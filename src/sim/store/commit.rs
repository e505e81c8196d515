//! Committing one change: revision, map, history, and what each watcher sees of it.

use super::*;

impl Inner {
    pub(super) fn check_namespace_accepts(
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

    pub(super) fn remove_all(&mut self, gr: &Gr, ns: Option<&str>) {
        let keys: Vec<Key> = match self.objects.get(gr) {
            None => return,
            Some(m) => match ns {
                None => m.keys().cloned().collect(),
                Some(ns) => ns_range(m, ns, None).map(|(k, _)| k.clone()).collect(),
            },
        };
        self.remove_all_keys(gr, keys);
    }

    pub(super) fn remove_all_keys(&mut self, gr: &Gr, keys: Vec<Key>) {
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
    pub(super) fn commit(
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
pub(super) fn translate(
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
