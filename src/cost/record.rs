//! One finished request's cost: what goes into the ledger.

use std::time::Duration;

use crate::request::Verb;

/// What one request cost, written once when its response has ended (or the client went away).
///
/// Counts that could not be taken exactly (items of a body that was not parsed) are estimates,
/// marked by `items_exact: false`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CostRecord {
    /// The caller's user name (`Identity::user`).
    pub identity: String,
    /// `Verb::as_str()`: `list`, `watch`, `exec`, …
    pub verb: &'static str,
    /// `ApiRequest::resource_label()`: `pods`, `deployments.apps`, `pods/log`, `discovery`, …
    pub resource: String,
    /// The HTTP status sent to the client.
    pub code: u16,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// Objects returned (list items, table rows, watch events).
    pub items: u64,
    /// Whether `items` was counted from the body, not estimated.
    pub items_exact: bool,
    /// Time until the upstream's response headers.
    pub upstream_ttfb: Duration,
    /// Time until the response ended.
    pub duration: Duration,
    /// How long a stream stayed open: watches, exec/attach/port-forward, `logs -f`.
    pub long_running_seconds: f64,
    /// Objects the apiserver read from etcd for it (the estimate, k8s-facts §2).
    pub etcd_objects_read: u64,
    /// Objects a rewrite kept from being read from etcd (served from the cache instead).
    pub etcd_objects_avoided: u64,
    /// Answered 429 by a kubeguard limit.
    pub throttled: bool,
    /// Refused by a guard (never forwarded).
    pub blocked: bool,
    /// Forwarded with a rewritten query.
    pub rewritten: bool,
    /// Failed: an upstream or kubeguard error, or an error status from the apiserver.
    pub error: bool,
}

impl CostRecord {
    /// A record for `identity` doing `verb` on `resource`, everything else zero.
    pub fn new(identity: impl Into<String>, verb: Verb, resource: impl Into<String>) -> Self {
        CostRecord {
            identity: identity.into(),
            verb: verb.as_str(),
            resource: resource.into(),
            ..Default::default()
        }
    }

    /// Errors are the `error` flag, and 5xx answers; a 429 of ours counts as throttled instead.
    pub fn is_error(&self) -> bool {
        self.error || self.code >= 500
    }

    /// Which stream kind `long_running_seconds` adds to.
    pub(crate) fn stream_kind(&self) -> StreamKind {
        match self.verb {
            "watch" => StreamKind::Watch,
            "exec" | "attach" | "portforward" => StreamKind::Exec,
            "log" => StreamKind::Log,
            _ => StreamKind::None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Watch,
    Exec,
    Log,
    None,
}
