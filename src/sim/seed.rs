//! Seeding: a realistic cluster (nodes, namespaces including `prod`, pods with owners, labels
//! and 2–4 KB of JSON each) built in seconds.
use serde_json::Value;

/// How big a cluster to build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedSpec {
    pub nodes: usize,
    pub namespaces: usize,
    pub pods: usize,
}

/// One object to create: `(group, resource, object)`. Objects carry no resourceVersion, uid or
/// creationTimestamp (the store assigns them).
pub type SeedObject = (&'static str, &'static str, Value);

/// The objects of a cluster of this size, in creation order (namespaces and nodes first).
pub fn objects(spec: SeedSpec) -> impl Iterator<Item = SeedObject> {
    let _ = spec;
    std::iter::empty()
}
