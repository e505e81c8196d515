//! The pre-request estimate, in the spirit of APF's work estimator (k8s-facts §2): how many
//! objects the apiserver will touch for this request, and whether they come from etcd or the
//! watch cache.
//!
//! Where a LIST is served follows k8s-facts §1 (and `sim::list::plan`, the emulator's copy of
//! those rules). An etcd-served LIST is charged every stored object of the scanned range (the
//! namespace, or the whole resource for a cluster-wide list), whatever its `limit`: etcd filters
//! nothing and the apiserver keeps reading until a filtered page is full. A cache-served LIST is
//! charged the objects it returns. Name-scoped requests and writes touch one object.

use crate::request::{ApiRequest, Verb};

/// Learned collection sizes: objects stored for `resource` (a resource label such as `pods` or
/// `deployments.apps`) in `namespace` (`None`: all namespaces). `None` when not known yet.
pub trait CollectionSizes {
    fn size(&self, resource: &str, namespace: Option<&str>) -> Option<u64>;
}

impl<F: Fn(&str, Option<&str>) -> Option<u64>> CollectionSizes for F {
    fn size(&self, resource: &str, namespace: Option<&str>) -> Option<u64> {
        self(resource, namespace)
    }
}

/// Objects assumed for a collection whose size has not been learned yet: one default page, what
/// a chunked client would get back first.
pub const UNKNOWN_COLLECTION_SIZE: u64 = 500;

/// How many cache-served objects cost as much as one etcd read. The emulator's defaults price an
/// etcd object at 2 µs and a cache object at 200 ns; a real apiserver's ratio is of the same order.
pub const CACHE_OBJECTS_PER_UNIT: u64 = 10;

/// Where the apiserver serves the request from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServedFrom {
    Etcd,
    Cache,
    /// No storage read: discovery, /version, streams (exec, attach, port-forward, proxy).
    Nothing,
}

/// The estimated price of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    pub served_from: ServedFrom,
    /// Objects read from etcd.
    pub etcd_objects: u64,
    /// Objects served from the watch cache.
    pub cache_objects: u64,
    /// Whether the collection size was known (else [`UNKNOWN_COLLECTION_SIZE`] was assumed).
    pub size_known: bool,
    /// Objects the whole collection holds, when the request is a LIST or WATCH of it.
    pub collection_size: Option<u64>,
}

impl Estimate {
    /// Cost units: one per object read from etcd, one per [`CACHE_OBJECTS_PER_UNIT`] objects
    /// from cache, at least one per request. The unit of the cost-rate limit.
    pub fn units(&self) -> u64 {
        let cache = self.cache_objects.div_ceil(CACHE_OBJECTS_PER_UNIT);
        (self.etcd_objects.saturating_add(cache)).max(1)
    }

    /// APF's seats for the same work: one per 100 objects, between 1 and 10 (k8s-facts §2).
    pub fn seats(&self) -> u32 {
        let objects = self.etcd_objects.max(self.cache_objects);
        u32::try_from(objects.div_ceil(100).clamp(1, 10)).unwrap_or(10)
    }

    fn nothing() -> Self {
        Estimate {
            served_from: ServedFrom::Nothing,
            etcd_objects: 0,
            cache_objects: 0,
            size_known: true,
            collection_size: None,
        }
    }

    fn etcd(objects: u64) -> Self {
        Estimate {
            served_from: ServedFrom::Etcd,
            etcd_objects: objects,
            ..Self::nothing()
        }
    }
}

impl Default for Estimate {
    /// Nothing read: what a request that never reached the apiserver cost it.
    fn default() -> Self {
        Estimate::nothing()
    }
}

/// Estimates `api` against an apiserver of minor version `minor` (e.g. 30 for v1.30.x).
pub fn estimate(api: &ApiRequest, minor: u32, sizes: &impl CollectionSizes) -> Estimate {
    let Some(r) = api.resource() else {
        return Estimate::nothing();
    };
    let name_scoped = r.name.is_some();
    match api.verb {
        Verb::List if !name_scoped => list(api, minor, sizes),
        Verb::Watch if !name_scoped => watch(api, sizes),
        // A GET with resourceVersion=0 reads the cache; otherwise a quorum read of one object.
        Verb::Get | Verb::List | Verb::Watch => {
            if api.options.resource_version.as_deref() == Some("0") {
                Estimate {
                    served_from: ServedFrom::Cache,
                    cache_objects: 1,
                    ..Estimate::nothing()
                }
            } else {
                Estimate::etcd(1)
            }
        }
        Verb::Create | Verb::Update | Verb::Patch | Verb::Delete => Estimate::etcd(1),
        // deletecollection lists the range from etcd, then deletes each object.
        Verb::DeleteCollection => {
            let (size, known) = collection(api, sizes);
            Estimate {
                size_known: known,
                collection_size: Some(size),
                ..Estimate::etcd(size.saturating_mul(2))
            }
        }
        // `pods/log` reads the pod once; exec, attach, port-forward and proxy bypass storage
        // (and APF: k8s-facts §2).
        Verb::Log => Estimate::etcd(1),
        Verb::Exec | Verb::Attach | Verb::PortForward | Verb::Proxy | Verb::Other => {
            Estimate::nothing()
        }
    }
}

fn collection(api: &ApiRequest, sizes: &impl CollectionSizes) -> (u64, bool) {
    let namespace = api.resource().and_then(|r| r.namespace.as_deref());
    match sizes.size(api.resource_label(), namespace) {
        Some(n) => (n, true),
        None => (UNKNOWN_COLLECTION_SIZE, false),
    }
}

/// k8s-facts §1: which LISTs etcd serves, by version.
fn list(api: &ApiRequest, minor: u32, sizes: &impl CollectionSizes) -> Estimate {
    let o = &api.options;
    let (size, known) = collection(api, sizes);
    let limit = o.limit.filter(|l| *l > 0);
    let rv = o.resource_version.as_deref().filter(|s| !s.is_empty());
    let rv_match = o
        .resource_version_match
        .as_deref()
        .filter(|s| !s.is_empty());
    let has_continue = o.continue_token.as_deref().is_some_and(|c| !c.is_empty());
    let from_etcd = if has_continue {
        minor < 34
    } else {
        match (rv, rv_match) {
            (None, _) => minor <= 30,
            (Some("0"), _) => false,
            (Some(_), None) => limit.is_some() && minor < 34,
            (Some(_), Some("NotOlderThan")) => minor <= 30 && limit.is_some(),
            (Some(_), Some(_)) => minor < 34,
        }
    };
    let base = Estimate {
        size_known: known,
        collection_size: Some(size),
        ..Estimate::nothing()
    };
    if from_etcd {
        return Estimate {
            served_from: ServedFrom::Etcd,
            etcd_objects: size,
            ..base
        };
    }
    // RV=0 ignores limit: the whole collection comes back in one response.
    let returned = match (rv, limit) {
        (Some("0"), _) | (_, None) => size,
        (_, Some(l)) => size.min(l),
    };
    Estimate {
        served_from: ServedFrom::Cache,
        cache_objects: returned,
        ..base
    }
}

/// A watch is served from the cache; with `sendInitialEvents` it first replays the collection.
fn watch(api: &ApiRequest, sizes: &impl CollectionSizes) -> Estimate {
    let (size, known) = collection(api, sizes);
    let initial = api.options.send_initial_events == Some(true);
    Estimate {
        served_from: ServedFrom::Cache,
        cache_objects: if initial { size } else { 0 },
        size_known: known,
        collection_size: Some(size),
        ..Estimate::nothing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::classify;
    use http::Method;

    fn est(method: Method, path: &str, query: Option<&str>, minor: u32) -> Estimate {
        let api = classify(&method, path, query).unwrap();
        let sizes = |resource: &str, ns: Option<&str>| match (resource, ns) {
            ("pods", None) => Some(10_000),
            ("pods", Some("team-a")) => Some(300),
            _ => None,
        };
        estimate(&api, minor, &sizes)
    }

    #[test]
    fn unversioned_cluster_list_scans_every_stored_object_before_1_31() {
        let e = est(Method::GET, "/api/v1/pods", Some("limit=500"), 30);
        assert_eq!((e.served_from, e.etcd_objects), (ServedFrom::Etcd, 10_000));
        assert_eq!(e.units(), 10_000);
        assert_eq!(e.seats(), 10);
        let ns = est(Method::GET, "/api/v1/namespaces/team-a/pods", None, 30);
        assert_eq!(ns.etcd_objects, 300);
    }

    #[test]
    fn cache_lists_cost_what_they_return() {
        // RV=0 ignores limit (k8s-facts §1).
        let e = est(
            Method::GET,
            "/api/v1/pods",
            Some("resourceVersion=0&limit=500"),
            30,
        );
        assert_eq!(
            (e.served_from, e.cache_objects),
            (ServedFrom::Cache, 10_000)
        );
        assert_eq!(e.units(), 1_000);
        // 1.31+: unversioned LISTs come from the cache and honour limit.
        let e = est(Method::GET, "/api/v1/pods", Some("limit=500"), 31);
        assert_eq!((e.served_from, e.cache_objects), (ServedFrom::Cache, 500));
        let e = est(
            Method::GET,
            "/api/v1/pods",
            Some("resourceVersion=42&resourceVersionMatch=NotOlderThan&limit=500"),
            31,
        );
        assert_eq!(e.served_from, ServedFrom::Cache);
    }

    #[test]
    fn continue_pages_and_exact_reads_hit_etcd_until_1_34() {
        let e = est(
            Method::GET,
            "/api/v1/pods",
            Some("limit=500&continue=abc"),
            33,
        );
        assert_eq!(e.etcd_objects, 10_000);
        let e = est(
            Method::GET,
            "/api/v1/pods",
            Some("limit=500&continue=abc"),
            34,
        );
        assert_eq!(e.served_from, ServedFrom::Cache);
    }

    #[test]
    fn name_scoped_and_streams() {
        let e = est(Method::GET, "/api/v1/namespaces/team-a/pods/p1", None, 30);
        assert_eq!(e, Estimate::etcd(1));
        let e = est(
            Method::GET,
            "/api/v1/pods",
            Some("fieldSelector=metadata.name%3Dp1"),
            30,
        );
        assert_eq!(e.etcd_objects, 1);
        let e = est(Method::POST, "/api/v1/namespaces/a/pods/p1/exec", None, 30);
        assert_eq!(e.served_from, ServedFrom::Nothing);
        assert_eq!(e.units(), 1);
        let e = est(Method::GET, "/version", None, 30);
        assert_eq!(e.served_from, ServedFrom::Nothing);
    }

    #[test]
    fn watches_replay_the_collection_only_with_initial_events() {
        let e = est(Method::GET, "/api/v1/pods", Some("watch=1"), 30);
        assert_eq!(e.cache_objects, 0);
        let e = est(
            Method::GET,
            "/api/v1/pods",
            Some(
                "watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
            ),
            35,
        );
        assert_eq!(e.cache_objects, 10_000);
    }

    #[test]
    fn unknown_collections_assume_one_page() {
        let e = est(Method::GET, "/apis/apps/v1/deployments", None, 30);
        assert!(!e.size_known);
        assert_eq!(e.etcd_objects, UNKNOWN_COLLECTION_SIZE);
    }
}
