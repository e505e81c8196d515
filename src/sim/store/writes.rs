//! The store's writes: create, seed, update, delete, the garbage collector's cascade and
//! namespace purge, with the defaults and validation the apiserver applies on the way.

use super::*;

impl Store {
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
        prepare_for_create(rt, &mut obj);
        g.admit(rt, &mut obj);
        validate(rt, &obj, None)?;
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
        I: IntoIterator<Item = crate::sim::seed::SeedObject>,
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
        let mut interner = Interner::default();
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
            let stored = Stored::from_value_with(&obj, *rv, &mut |s| interner.get(s));
            map.insert(key, Arc::new(stored));
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
        if !status_only {
            set_defaults(rt, &mut new);
            validate(rt, &new, Some(&old_v))?;
        }
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

pub(super) fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, Status> {
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

pub(super) fn generate_name(base: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

pub(super) fn validate_name(rt: &ResourceType, name: &str) -> Result<(), Status> {
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
