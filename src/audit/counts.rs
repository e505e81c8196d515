//! Object counts per resource, to price LISTs (k8s-facts §6: a Metadata-level audit log carries
//! no object counts). Given with `--object-counts`, or learned from list responses in the log.
//!
//! The file is either JSON — `{"pods": 12000, "deployments.apps": {"total": 300,
//! "namespaces": {"team-a": 40}}}` — or the apiserver's own metric as Prometheus text
//! (`kubectl get --raw /metrics | grep apiserver_storage_objects > counts.txt`):
//! `apiserver_storage_objects{resource="pods"} 12000`. Resources are named as kubeguard labels
//! them: `pods`, `deployments.apps`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// Counts per resource, cluster-wide and per namespace.
#[derive(Debug, Default, Clone)]
pub struct ObjectCounts {
    totals: HashMap<String, u64>,
    namespaced: HashMap<(String, String), u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Total(u64),
    Detailed {
        #[serde(default)]
        total: Option<u64>,
        #[serde(default)]
        namespaces: HashMap<String, u64>,
    },
}

impl ObjectCounts {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--object-counts {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--object-counts {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim_start().starts_with('{') {
            let map: HashMap<String, Entry> = serde_json::from_str(text)
                .map_err(|e| format!("not a JSON object of counts per resource: {e}"))?;
            let mut c = ObjectCounts::default();
            for (resource, entry) in map {
                match entry {
                    Entry::Total(n) => {
                        c.totals.insert(resource, n);
                    }
                    Entry::Detailed { total, namespaces } => {
                        let sum = namespaces.values().sum();
                        c.totals.insert(resource.clone(), total.unwrap_or(sum));
                        for (ns, n) in namespaces {
                            c.namespaced.insert((resource.clone(), ns), n);
                        }
                    }
                }
            }
            return Ok(c);
        }
        Self::parse_metric(text)
    }

    /// `apiserver_storage_objects{resource="pods"} 12000` lines (other lines ignored).
    fn parse_metric(text: &str) -> Result<Self, String> {
        let mut c = ObjectCounts::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.starts_with("apiserver_storage_objects{") {
                continue;
            }
            let resource = line
                .split("resource=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .ok_or_else(|| format!("line {}: no resource label", i + 1))?;
            let value: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("line {}: no value", i + 1))?;
            c.totals
                .insert(resource.to_string(), value.max(0.0).round() as u64);
        }
        if c.totals.is_empty() {
            return Err("neither a JSON object nor apiserver_storage_objects lines".into());
        }
        Ok(c)
    }

    /// Objects of `resource` in `namespace` (`None`: cluster-wide). A namespace without its own
    /// count is not guessed.
    pub fn size(&self, resource: &str, namespace: Option<&str>) -> Option<u64> {
        match namespace {
            None => self.totals.get(resource).copied(),
            Some(ns) => self
                .namespaced
                .get(&(resource.to_string(), ns.to_string()))
                .copied(),
        }
    }

    /// Every cluster-wide count.
    pub fn totals(&self) -> impl Iterator<Item = (&str, u64)> {
        self.totals.iter().map(|(r, n)| (r.as_str(), *n))
    }

    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_metric_forms() {
        let c = ObjectCounts::parse(
            r#"{"pods": 12000, "deployments.apps": {"namespaces": {"a": 40, "b": 2}}}"#,
        )
        .unwrap();
        assert_eq!(c.size("pods", None), Some(12000));
        assert_eq!(c.size("deployments.apps", None), Some(42));
        assert_eq!(c.size("deployments.apps", Some("a")), Some(40));
        assert_eq!(c.size("pods", Some("a")), None);
        let m = ObjectCounts::parse(
            "# HELP x\napiserver_storage_objects{resource=\"pods\"} 1.2e+04\napiserver_storage_objects{resource=\"events\"} 7\n",
        )
        .unwrap();
        assert_eq!(m.size("pods", None), Some(12000));
        assert!(ObjectCounts::parse("nothing").is_err());
    }
}
