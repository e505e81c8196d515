//! `kubeguard sim`: an emulated Kubernetes API server with real semantics and a cost model.
//!
//! It is the upstream of `kubeguard demo`, of the end-to-end tests and of the load tests. See
//! the module docs of each file for which apiserver behaviour it reproduces: registry.rs lists
//! the served types, store/defaults.rs and store/validate.rs what happens to an object on the
//! way in, table.rs and openapi.rs what kubectl sees of it, seed.rs the cluster it starts with,
//! token.rs the TokenRequest API.

// Errors here are apiserver `Status` bodies, returned on the rare path of a request; boxing
// them everywhere would only add noise.
#![allow(clippy::result_large_err)]

pub mod audit;
pub mod auth;
pub mod discovery;
pub mod ephemeral;
pub mod exec;
pub mod logs;
pub mod openapi;
pub mod registry;
pub mod seed;
pub mod table;
pub mod token;

mod admin;
mod cost;
mod http_util;
mod list;
mod patch;
mod run;
pub mod selector;
mod server;
pub mod store;
#[cfg(test)]
mod table_test_util;
mod watch;

pub use cost::SimStats;
pub use run::{RunningSim, SimError, start};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The body type of every emulator response.
pub type SimBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// Everything `kubeguard sim` can be told on its command line.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// API listener; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Admin listener (/metrics with the cost model's counters, /healthz); port 0 picks one.
    pub admin_listen: SocketAddr,
    /// Serve TLS (self-signed) instead of plain HTTP.
    pub tls: bool,
    /// `gitVersion` served at /version; selects the LIST semantics (k8s-facts §1).
    pub server_version: String,
    pub nodes: usize,
    pub namespaces: usize,
    pub pods: usize,
    /// Users file: turns authentication and authorization on.
    pub users: Option<PathBuf>,
    /// How many "etcd" reads run at once; the rest queue.
    pub etcd_concurrency: usize,
    /// Time an unversioned LIST spends per object of the resource it scans in "etcd".
    pub etcd_cost_per_object: Duration,
    /// Time a cache-served LIST spends per object it returns.
    pub cache_cost_per_object: Duration,
    /// How often a watch with `allowWatchBookmarks` gets a BOOKMARK event.
    pub bookmark_interval: Duration,
    /// How many write events the store keeps for watches and continue tokens (the "compaction
    /// window"): a watch or continue token older than that gets 410 Expired.
    pub history_events: usize,
    /// How long a Terminating namespace waits before its content is deleted.
    pub namespace_cleanup_delay: Duration,
    /// Time between two lines of `kubectl logs -f`.
    pub log_interval: Duration,
    /// Called once per request when its response head is ready (the hook for an audit-log
    /// writer).
    pub on_request: Option<RequestHook>,
    /// Asked once per request before it is served: `Some(d)` holds the request for `d` first
    /// (an apiserver that stalls, for the upstream-fault tests).
    pub stall: Option<StallHook>,
}

/// See [`SimOptions::stall`]: how long to hold a request with this URI, if at all.
#[derive(Clone)]
pub struct StallHook(pub std::sync::Arc<StallFn>);

/// The function inside a [`StallHook`].
pub type StallFn = dyn Fn(&http::Uri) -> Option<Duration> + Send + Sync;

impl std::fmt::Debug for StallHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StallHook")
    }
}

/// One served request, as an audit-log writer would record it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// `get`, `list`, `watch`, `create`, … (`other` for refusals before routing).
    pub verb: &'static str,
    pub method: String,
    /// Path and query as requested.
    pub uri: String,
    /// The authenticated user, when authentication is on.
    pub user: Option<String>,
    /// The authenticated user's groups.
    pub groups: Vec<String>,
    /// The `User-Agent` header, as sent.
    pub user_agent: String,
    /// Objects in a LIST response (items or table rows), when the request was a LIST.
    pub objects: Option<u64>,
    /// A delete with `dryRun: ["All"]` (in the body or the query).
    pub dry_run: bool,
    pub code: u16,
    pub received: std::time::SystemTime,
    /// Time until the response head (streams go on after it).
    pub latency: Duration,
    /// Objects this request read from the emulated etcd (the cost model's ground truth).
    pub etcd_objects: u64,
    /// Objects this request was served from the emulated watch cache.
    pub cache_objects: u64,
}

/// Set on a LIST response by the emulator: how many objects it returns (read by the hook).
#[derive(Clone, Copy, Debug)]
pub struct ResponseObjects(pub u64);

/// Set on the response of a dry-run delete (read by the hook).
#[derive(Clone, Copy, Debug)]
pub struct DryRun;

/// A callback receiving every [`RequestRecord`].
#[derive(Clone)]
pub struct RequestHook(pub std::sync::Arc<dyn Fn(&RequestRecord) + Send + Sync>);

impl std::fmt::Debug for RequestHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestHook")
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            server_version: "v1.30.4".into(),
            nodes: 0,
            namespaces: 0,
            pods: 0,
            users: None,
            etcd_concurrency: 4,
            etcd_cost_per_object: Duration::from_micros(2),
            cache_cost_per_object: Duration::from_nanos(200),
            bookmark_interval: Duration::from_secs(60),
            history_events: 10_000,
            namespace_cleanup_delay: Duration::from_millis(200),
            log_interval: Duration::from_secs(1),
            on_request: None,
            stall: None,
        }
    }
}
