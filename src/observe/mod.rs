//! Observe: what responses say, read as they stream. [`scan`] summarises a body chunk by chunk
//! (list metadata, item counts, watch events); [`Learner`] keeps what kubeguard learned from
//! those summaries (the newest resourceVersion per resource, collection sizes per resource and
//! scope) for the guards.

pub mod lru;
pub mod scan;
mod scan_block;

pub use scan::{BodyKind, ScanSummary, Scanner};

use self::lru::ShardedLru;

/// How many (resource, scope) collection sizes are remembered.
const MAX_COLLECTIONS: usize = 16_384;
/// How many resources' newest resourceVersions are remembered.
const MAX_RESOURCES: usize = 4_096;

/// A learned collection size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectionSize {
    pub items: u64,
    /// Counted from a complete list (else `items + remainingItemCount`, an estimate).
    pub exact: bool,
}

/// What kubeguard learned from responses. Shared by every request; sharded, bounded state.
pub struct Learner {
    newest_rv: ShardedLru<String, u64>,
    sizes: ShardedLru<(String, String), CollectionSize>,
}

impl Default for Learner {
    fn default() -> Self {
        Self::new()
    }
}

/// The scope key of a collection: the namespace, or `*` for a cluster-wide list.
pub fn scope_key(namespace: Option<&str>) -> String {
    namespace.unwrap_or("*").to_string()
}

impl Learner {
    pub fn new() -> Self {
        Learner {
            newest_rv: ShardedLru::new(MAX_RESOURCES),
            sizes: ShardedLru::new(MAX_COLLECTIONS),
        }
    }

    /// Records a finished (or abandoned) response body of `resource` (the metrics label form,
    /// e.g. `pods`, `deployments.apps`). `unfiltered`: the list had no label or field selector,
    /// so its count is the collection's size.
    pub fn record(&self, resource: &str, scope: &str, unfiltered: bool, s: &ScanSummary) {
        if let Some(rv) = s.newest_rv() {
            self.newest_rv
                .update(resource.to_string(), |old| old.map_or(rv, |o| (*o).max(rv)));
        }
        if unfiltered && let Some((items, exact)) = s.collection_size() {
            self.sizes
                .update((resource.to_string(), scope.to_string()), |_| {
                    CollectionSize { items, exact }
                });
        }
    }

    /// The newest resourceVersion seen for `resource`.
    pub fn newest_rv(&self, resource: &str) -> Option<u64> {
        self.newest_rv.get(&resource.to_string())
    }

    /// The learned size of `resource` in `scope`.
    pub fn collection_size(&self, resource: &str, scope: &str) -> Option<CollectionSize> {
        self.sizes.get(&(resource.to_string(), scope.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_newest_rv_and_sizes() {
        let l = Learner::new();
        let s = ScanSummary {
            format: Some(BodyKind::Json),
            list_resource_version: Some(40),
            items: 3,
            ..Default::default()
        };
        l.record("pods", "*", true, &s);
        let older = ScanSummary {
            format: Some(BodyKind::WatchJson),
            newest_event_rv: Some(20),
            events: 1,
            ..Default::default()
        };
        l.record("pods", "*", true, &older);
        assert_eq!(l.newest_rv("pods"), Some(40));
        assert_eq!(
            l.collection_size("pods", "*"),
            Some(CollectionSize {
                items: 3,
                exact: true
            })
        );
        let filtered = ScanSummary {
            items: 1,
            ..s.clone()
        };
        l.record("pods", "*", false, &filtered);
        assert_eq!(l.collection_size("pods", "*").map(|c| c.items), Some(3));
        assert_eq!(l.collection_size("pods", "default"), None);
    }
}
