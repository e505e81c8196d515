//! What the LIST rewrite must know about the upstream: its minor version (from `/version`) and
//! which resources its watch cache serves (from discovery: the resource has the `watch` verb and
//! its group-version is not an aggregated API, k8s-facts §1). Read with kubeguard's own
//! credentials at start and every `upstreamRefreshInterval`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::Request;
use http::uri::PathAndQuery;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use crate::upstream::{Upstream, empty_body};

/// Groups served by aggregated API servers in every distribution; their resources are never
/// served from the kube-apiserver's watch cache.
const KNOWN_AGGREGATED: [&str; 3] = [
    "metrics.k8s.io",
    "custom.metrics.k8s.io",
    "external.metrics.k8s.io",
];
/// Discovery documents larger than this are not read.
const MAX_DOC_BYTES: usize = 8 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The upstream facts, updated in the background, read per request without a lock.
#[derive(Default)]
pub struct UpstreamFacts {
    /// 0 until `/version` was read.
    minor: AtomicU32,
    /// Resource labels (`pods`, `deployments.apps`) the watch cache serves; `None` until
    /// discovery was read.
    watch_cached: ArcSwapOption<HashSet<String>>,
}

impl UpstreamFacts {
    /// Facts given up front (tests).
    pub fn fixed(minor: u32, watch_cached: &[&str]) -> Self {
        let f = UpstreamFacts::default();
        f.minor.store(minor, Ordering::Relaxed);
        f.watch_cached.store(Some(Arc::new(
            watch_cached.iter().map(|s| s.to_string()).collect(),
        )));
        f
    }

    /// Version and discovery were both read at least once.
    pub fn ready(&self) -> bool {
        self.minor().is_some() && self.watch_cached.load().is_some()
    }

    /// The upstream's minor version, once known.
    pub fn minor(&self) -> Option<u32> {
        Some(self.minor.load(Ordering::Relaxed)).filter(|m| *m > 0)
    }

    /// Whether the watch cache serves `resource` (label form); `None` before discovery was read.
    pub fn watch_cached(&self, resource: &str) -> Option<bool> {
        self.watch_cached
            .load()
            .as_ref()
            .map(|set| set.contains(resource))
    }

    /// Reads `/version` and discovery once; what fails keeps its previous value.
    pub async fn refresh(&self, upstream: &Upstream) {
        match fetch_json(upstream, "/version").await {
            Ok(v) => {
                let minor = v
                    .get("gitVersion")
                    .and_then(Value::as_str)
                    .and_then(minor_of)
                    .or_else(|| {
                        let m = v.get("minor")?.as_str()?;
                        m.trim_end_matches('+').parse().ok()
                    });
                if let Some(m) = minor {
                    self.minor.store(m, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the upstream's /version"),
        }
        match discover(upstream).await {
            Ok(set) => {
                tracing::debug!(resources = set.len(), "upstream discovery read");
                self.watch_cached.store(Some(Arc::new(set)));
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the upstream's discovery"),
        }
    }
}

/// The minor version of a `gitVersion` like `v1.30.4` or `v1.31.2-eks-1234`.
pub fn minor_of(version: &str) -> Option<u32> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let minor = v.split('.').nth(1)?;
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Every watch-cached resource: `/api/v1`, then each group-version of `/apis` that is not
/// aggregated.
async fn discover(upstream: &Upstream) -> Result<HashSet<String>, String> {
    let mut out = HashSet::new();
    let core = fetch_json(upstream, "/api/v1").await?;
    add_resources(&core, "", &mut out);
    let aggregated = aggregated_group_versions(upstream).await;
    let groups = fetch_json(upstream, "/apis").await?;
    let list = groups.get("groups").and_then(Value::as_array);
    for g in list.into_iter().flatten() {
        let name = g.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() || KNOWN_AGGREGATED.contains(&name) {
            continue;
        }
        let versions = g.get("versions").and_then(Value::as_array);
        for v in versions.into_iter().flatten() {
            let Some(gv) = v.get("groupVersion").and_then(Value::as_str) else {
                continue;
            };
            if aggregated.contains(gv) {
                continue;
            }
            match fetch_json(upstream, &format!("/apis/{gv}")).await {
                Ok(doc) => add_resources(&doc, name, &mut out),
                Err(e) => tracing::debug!(group_version = gv, error = %e, "discovery skipped"),
            }
        }
    }
    Ok(out)
}

/// Group-versions served by another API server (APIServices with a `spec.service`). An
/// upstream that does not answer has none beyond [`KNOWN_AGGREGATED`].
async fn aggregated_group_versions(upstream: &Upstream) -> HashSet<String> {
    let Ok(doc) = fetch_json(upstream, "/apis/apiregistration.k8s.io/v1/apiservices").await else {
        return HashSet::new();
    };
    doc.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.pointer("/spec/service").is_some_and(|v| !v.is_null()))
        .filter_map(|s| {
            let g = s.pointer("/spec/group")?.as_str()?;
            let v = s.pointer("/spec/version")?.as_str()?;
            Some(format!("{g}/{v}"))
        })
        .collect()
}

/// Adds the resources of an `APIResourceList` that have the `watch` verb (subresources skipped).
fn add_resources(doc: &Value, group: &str, out: &mut HashSet<String>) {
    let list = doc.get("resources").and_then(Value::as_array);
    for r in list.into_iter().flatten() {
        let Some(name) = r.get("name").and_then(Value::as_str) else {
            continue;
        };
        if name.contains('/') {
            continue;
        }
        let watch = r
            .get("verbs")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|x| x.as_str() == Some("watch")));
        if watch {
            out.insert(if group.is_empty() {
                name.to_string()
            } else {
                format!("{name}.{group}")
            });
        }
    }
}

/// GET `path` with kubeguard's own credentials, body bounded, parsed as JSON.
async fn fetch_json(upstream: &Upstream, path: &str) -> Result<Value, String> {
    let pq = PathAndQuery::try_from(path).map_err(|e| e.to_string())?;
    let uri = upstream.uri_for(&pq).map_err(|e| e.to_string())?;
    let mut req = Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(empty_body())
        .map_err(|e| e.to_string())?;
    if let Some(auth) = upstream
        .own_authorization()
        .await
        .map_err(|e| e.to_string())?
    {
        req.headers_mut().insert(http::header::AUTHORIZATION, auth);
    }
    let resp = upstream
        .send(req, false, Some(FETCH_TIMEOUT))
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{path}: HTTP {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_DOC_BYTES)
        .collect()
        .await
        .map_err(|e| format!("{path}: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_watch_verbs() {
        assert_eq!(minor_of("v1.30.4"), Some(30));
        assert_eq!(minor_of("v1.31.2-eks-1234"), Some(31));
        assert_eq!(minor_of("garbage"), None);
        let doc = serde_json::json!({"resources": [
            {"name": "pods", "verbs": ["get", "list", "watch"]},
            {"name": "pods/log", "verbs": ["get"]},
            {"name": "bindings", "verbs": ["create"]},
        ]});
        let mut out = HashSet::new();
        add_resources(&doc, "", &mut out);
        add_resources(&doc, "apps", &mut out);
        assert!(out.contains("pods") && out.contains("pods.apps"));
        assert_eq!(out.len(), 2);
    }
}
