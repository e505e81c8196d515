//! 100 good clients (kube crate: a GET of their pod, every fourth request a LIST of their
//! namespace, 5 req/s each) and one storm client (8 parallel unversioned LISTs of every pod)
//! through kubeguard in front of the emulator; each client a distinct user of the emulator's
//! users file. Prints how soon `kubeguard top --once` (the real binary) shows the storm client
//! first, its share of etcd objects read by kubeguard's ledger vs the emulator's ground truth,
//! requests per client on both sides, and RSS.
//!
//! `cargo build --release && cargo run --release --example cost_storm [-- STORM_SECONDS]`
//! (`KUBEGUARD_BIN` overrides where the binary is looked for: next to `examples/`).
#![allow(clippy::unwrap_used)]

#[path = "cost_storm_harness.rs"]
mod harness;

#[path = "support.rs"]
mod support;

use std::time::Duration;

#[tokio::main]
async fn main() {
    let seconds = support::seconds_arg(20, 1, 120);
    let bin = support::kubeguard_bin();
    let cfg = harness::StormConfig {
        good_clients: 100,
        good_rate: 5.0,
        storm_parallel: 8,
        warmup: Duration::from_secs(2),
        storm: Duration::from_secs(seconds),
        namespaces: 20,
        pods: 2000,
        etcd_cost_per_object: Duration::from_micros(2),
        kubeguard_bin: bin,
    };
    let report = harness::run(&cfg).await;
    println!("{}", report.table(&cfg));
    println!("top --once, first row: {}", report.top_first_row);
}
