//! Account: what each client costs the apiserver, and the per-client limits built on it.
//!
//! - [`estimate`]: the price of a request before it is forwarded (APF's work estimator, k8s-facts §2);
//! - [`record`]: what one finished request cost ([`CostRecord`]);
//! - [`ledger`]: the bounded per-identity ledger every record goes into, and its exports
//!   (Prometheus text, `/debug/costs` JSON, the file it is persisted to);
//! - [`limit`]: per-identity rate, cost-rate and concurrency limits, and the whole-process
//!   in-flight cap;
//! - [`cost_config`], [`limits_config`]: the `cost:` and `limits:` sections of the config file.

pub mod cost_config;
pub mod estimate;
pub mod export;
pub mod ledger;
pub mod limit;
pub mod limits_config;
pub mod persist;
pub mod record;

pub use estimate::{Estimate, ServedFrom, estimate};
pub use ledger::{Counters, Ledger, LedgerSnapshot};
pub use limit::{InflightCap, InflightPermit, Limits, Permit, Refusal, Throttle};
pub use record::CostRecord;
