//! `limits:` — per-identity rate, cost-rate and concurrency limits, and the whole-process cap.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

/// `limits:`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsSection {
    /// `enforce`: over a limit the client gets 429. `shadow`: the request goes on and the client
    /// is told by a `Warning:` header. `off`: per-identity limits are not checked.
    #[serde(default)]
    pub mode: LimitMode,
    /// Requests per second per identity, sustained.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: NonZeroU32,
    /// Requests per identity allowed at once above the sustained rate.
    #[serde(default = "default_request_burst")]
    pub request_burst: NonZeroU32,
    /// Cost units per second per identity, sustained. A unit is one object read from etcd (or
    /// ten served from the watch cache); every request costs at least one.
    #[serde(default = "default_cost_per_second")]
    pub cost_per_second: NonZeroU32,
    /// Cost units per identity allowed at once above the sustained rate. A single request
    /// costing more is charged the whole burst.
    #[serde(default = "default_cost_burst")]
    pub cost_burst: NonZeroU32,
    /// Concurrent expensive requests per identity: LISTs touching more than
    /// `expensiveListObjects` objects, watches, exec/attach/port-forward and `logs -f` streams.
    #[serde(default = "default_max_concurrent_expensive")]
    pub max_concurrent_expensive: NonZeroU32,
    /// A LIST estimated to touch more objects than this is expensive.
    #[serde(default = "default_expensive_list_objects")]
    pub expensive_list_objects: u64,
    /// Refuse LISTs without `limit` of collections holding more objects than this
    /// (kubernetes#94477). Off when unset.
    #[serde(default)]
    pub refuse_unchunked_lists_above: Option<u64>,
    /// Users never limited per identity.
    #[serde(default)]
    pub exempt_users: Vec<String>,
    /// Groups whose members are never limited per identity.
    #[serde(default)]
    pub exempt_groups: Vec<String>,
    /// Identities whose limiter state is kept; the least recently seen beyond it start afresh.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Short and collection requests in flight in the whole process; more are shed with 429
    /// whoever sends them, so a surge cannot grow memory. A request holds its slot until its
    /// response body has been sent. Long-running requests are not counted here (as in
    /// kube-apiserver's max-in-flight filter): see `maxLongRunning`.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: NonZeroU32,
    /// The part of `maxInflight`, in percent, that collection requests (LIST, DELETECOLLECTION)
    /// may take together: the rest is kept for cheap requests (GETs by name, writes), so a
    /// surge of LISTs is shed before it starves them.
    #[serde(default = "default_expensive_inflight_percent")]
    pub expensive_inflight_percent: u8,
    /// Long-running streams open at once in the whole process (watches, `logs -f`,
    /// exec/attach/port-forward, proxy); more are refused with 429 + `Retry-After: 5`. A stream
    /// holds its slot until it ends. Sized for memory: each holds about 32 KiB of kubeguard's.
    #[serde(default = "default_max_long_running")]
    pub max_long_running: NonZeroU32,
    /// Share the request-rate and cost-rate budgets of every identity among the replicas through
    /// Redis (`redis_limit.rs`). Unset: each replica has budgets of its own.
    #[serde(default)]
    pub redis: Option<RedisSection>,
}

/// `limits.redis:`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisSection {
    /// `redis://HOST:PORT[/DB]` (or `rediss://` for TLS).
    #[serde(deserialize_with = "redis_url")]
    pub url: String,
    /// Replicas sharing the budgets. While Redis is unreachable each replica enforces
    /// budget/replicas on its own, so the whole stays near the budget.
    #[serde(default = "default_replicas")]
    pub replicas: NonZeroU32,
    /// A Redis answer slower than this counts as Redis being down: the request is decided
    /// locally and Redis is left alone for `retryInterval`.
    #[serde(default = "default_redis_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// How often kubeguard tries to reconnect while Redis is down.
    #[serde(default = "default_retry_interval", with = "crate::config::duration")]
    pub retry_interval: Duration,
    /// Prefix of kubeguard's keys in Redis (two per active identity, expiring when idle).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

fn redis_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    redis::Client::open(url.as_str())
        .map_err(|e| serde::de::Error::custom(format!("{url:?} is not a Redis URL: {e}")))?;
    Ok(url)
}
fn default_replicas() -> NonZeroU32 {
    nz(2)
}
fn default_redis_timeout() -> Duration {
    Duration::from_millis(50)
}
fn default_retry_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_key_prefix() -> String {
    "kubeguard:".into()
}

/// `limits.mode`
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LimitMode {
    Enforce,
    #[default]
    Shadow,
    Off,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
fn default_requests_per_second() -> NonZeroU32 {
    nz(50)
}
fn default_request_burst() -> NonZeroU32 {
    nz(100)
}
fn default_cost_per_second() -> NonZeroU32 {
    nz(20_000)
}
fn default_cost_burst() -> NonZeroU32 {
    nz(100_000)
}
fn default_max_concurrent_expensive() -> NonZeroU32 {
    nz(20)
}
fn default_expensive_list_objects() -> u64 {
    5_000
}
fn default_max_clients() -> usize {
    10_000
}
fn default_expensive_inflight_percent() -> u8 {
    50
}

fn default_max_inflight() -> NonZeroU32 {
    nz(2_000)
}
/// 10,000 streams measured at 322 MiB of RSS (`loadtests/README.md`, `watch_fleet`): a third of
/// the shipped Deployment's 1 GiB memory limit, leaving room for `maxInflight` short requests.
fn default_max_long_running() -> NonZeroU32 {
    nz(10_000)
}

impl Default for LimitsSection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}
