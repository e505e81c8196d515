//! `cost:` — the per-client ledger: its size, its exports, its file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// `cost:`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CostSection {
    /// Identities the ledger keeps exactly; beyond it the cheapest stale ones are folded into
    /// "other". Memory is about 1 KiB per identity.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Verb × resource pairs kept per identity; the rest add to `other/other`.
    #[serde(default = "default_max_keys_per_client")]
    pub max_keys_per_client: usize,
    /// Identities exported with their own `client` label in `kubeguard_client_*` metrics (the
    /// most expensive ones); the rest share `client="other"`.
    #[serde(default = "default_metrics_top")]
    pub metrics_top: usize,
    /// File the ledger is written to every `persistInterval` and at shutdown, and read back at
    /// start. Without it the ledger lives in memory only.
    #[serde(default)]
    pub persist_path: Option<PathBuf>,
    /// How often the ledger is written to `persistPath`: what a crash can lose at most.
    #[serde(default = "default_persist_interval", with = "duration")]
    pub persist_interval: Duration,
    /// OTLP/HTTP collector the ledger's metrics are pushed to (protobuf), e.g.
    /// `http://127.0.0.1:4318` (`/v1/metrics` is added when no path is given). Off when unset.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Spans waiting to be sent to `otlpEndpoint` (one per request, at `/v1/traces`) at most;
    /// beyond it spans are dropped and counted in `kubeguard_trace_spans_dropped_total`.
    /// `0` turns traces off (metrics are still pushed).
    #[serde(default = "default_otlp_trace_queue")]
    pub otlp_trace_queue: usize,
    /// How often metrics are pushed to `otlpEndpoint`.
    #[serde(default = "default_otlp_interval", with = "duration")]
    pub otlp_interval: Duration,
}

fn default_max_clients() -> usize {
    10_000
}
fn default_max_keys_per_client() -> usize {
    32
}
fn default_metrics_top() -> usize {
    20
}
fn default_persist_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_otlp_trace_queue() -> usize {
    2048
}

fn default_otlp_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for CostSection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}
