//! Account: what each client costs the apiserver, and the per-client limits built on it.
//!
//! - [`estimate`]: the price of a request before it is forwarded (APF's work estimator, k8s-facts §2);
//! - [`record`]: what one finished request cost ([`CostRecord`]);
//! - [`ledger`]: the bounded per-identity ledger every record goes into, and its exports
//!   (Prometheus text, `/debug/costs` JSON, the file it is persisted to);
//! - [`limit`]: per-identity rate, cost-rate and concurrency limits;
//! - [`inflight`]: the whole-process admission caps (`maxInflight`, `maxLongRunning`), decided
//!   in one function for every front end;
//! - [`cost_config`], [`limits_config`]: the `cost:` and `limits:` sections of the config file.

pub mod cost_config;
pub mod estimate;
pub mod export;
pub mod inflight;
pub mod ledger;
pub mod limit;
pub mod limits_config;
pub mod otlp;
pub mod persist;
pub mod record;
pub mod redis_limit;
pub mod stream;
pub mod traces;

pub use estimate::{Estimate, ServedFrom, estimate};
pub use inflight::{InflightCap, InflightPermit, RequestClass};
pub use ledger::{Counters, Ledger, LedgerSnapshot};
pub use limit::{Limits, Permit, Refusal, Throttle};
pub use record::CostRecord;
pub use stream::{UpgradeEnded, upgrade_channel};

use std::sync::Arc;

/// The accounting parts one gateway shares: built once at start (`serve.rs`), handed to the
/// proxy (limits, in-flight cap) and the admin listener (exports).
pub struct Accounting {
    pub ledger: Arc<Ledger>,
    pub limits: Arc<Limits>,
    pub inflight: Arc<InflightCap>,
    /// Identities with their own label in `kubeguard_client_*`.
    pub metrics_top: usize,
}

impl Accounting {
    /// Builds the ledger (read back from `cost.persistPath` when the file exists) and limits.
    pub fn new(
        cost: &cost_config::CostSection,
        limits: &limits_config::LimitsSection,
    ) -> Result<Self, persist::PersistError> {
        let ledger = Arc::new(Ledger::new(cost.max_clients, cost.max_keys_per_client));
        if let Some(path) = &cost.persist_path
            && persist::load(&ledger, path)?
        {
            tracing::info!(path = %path.display(), clients = ledger.tracked(), "cost ledger read back");
        }
        Ok(Accounting {
            ledger,
            limits: Arc::new(Limits::new(limits)),
            inflight: InflightCap::new(
                limits.max_inflight,
                limits.expensive_inflight_percent,
                limits.max_long_running,
            ),
            metrics_top: cost.metrics_top,
        })
    }

    /// Starts what runs beside the proxy: the ledger file writer (`cost.persistPath`), the
    /// OTLP metrics push and the per-request spans (`cost.otlpEndpoint`). All write a last time
    /// at shutdown.
    pub fn spawn_background(
        &self,
        cost: &cost_config::CostSection,
        tasks: &mut tokio::task::JoinSet<()>,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), otlp::OtlpError> {
        if let Some(endpoint) = &cost.otlp_endpoint
            && cost.otlp_trace_queue > 0
        {
            let (sink, exporter) =
                traces::start(endpoint, cost.otlp_trace_queue, shutdown.clone())?;
            self.ledger.send_traces_to(sink);
            tasks.spawn(exporter);
        }
        if let Some(endpoint) = &cost.otlp_endpoint {
            let provider = otlp::start(
                endpoint,
                cost.otlp_interval,
                self.ledger.clone(),
                self.metrics_top,
            )?;
            tasks.spawn(otlp::run_until_shutdown(provider, shutdown.clone()));
        }
        if let Some(shared) = self.limits.shared() {
            tasks.spawn(shared.clone().run(shutdown.clone()));
        }
        if let Some(path) = &cost.persist_path {
            tasks.spawn(persist::run(
                self.ledger.clone(),
                path.clone(),
                cost.persist_interval,
                shutdown.clone(),
            ));
        }
        Ok(())
    }

    /// The `/readyz` line about shared limits (never a reason to be unready: the local
    /// fall-back serves).
    pub fn readiness_detail(&self) -> Option<&'static str> {
        self.limits.shared().map(|s| {
            if s.is_up() {
                "limits: shared through Redis"
            } else {
                "limits: Redis unreachable, local budget/replicas"
            }
        })
    }

    /// The Prometheus text appended to the admin `/metrics`.
    pub fn prometheus_text(&self) -> String {
        let mut text = export::prometheus_text(&self.ledger.snapshot(Some(self.metrics_top)));
        text.push_str(&export::inflight_text(&self.inflight));
        if let Some(traces) = self.ledger.traces() {
            text.push_str(&traces.prometheus_text());
        }
        if let Some(shared) = self.limits.shared() {
            text.push_str(&shared.prometheus_text());
        }
        text
    }
}
