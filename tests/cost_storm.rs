//! The cost-storm scenario, small and bounded (20 good clients + 1 storm client, a few seconds):
//! `kubeguard top --once` (the real binary) puts the storm client first, and its share of the
//! etcd objects read, by kubeguard's ledger, is within 5 % of the emulator's ground truth. The
//! full-size run is `loadtests/cost_storm.rs`.
#![allow(clippy::unwrap_used)]

#[path = "../loadtests/cost_storm_harness.rs"]
mod harness;

use std::time::Duration;

use harness::{STORM_USER, StormConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storm_client_is_first_in_top_and_its_share_matches_the_emulator() {
    let cfg = StormConfig {
        good_clients: 20,
        good_rate: 5.0,
        storm_parallel: 2,
        warmup: Duration::from_millis(500),
        storm: Duration::from_secs(4),
        namespaces: 10,
        pods: 300,
        etcd_cost_per_object: Duration::ZERO,
        kubeguard_bin: env!("CARGO_BIN_EXE_kubeguard").into(),
    };
    let report = harness::run(&cfg).await;
    println!("{}", report.table(&cfg));
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(
        report.storm_lists > 0 && report.good_requests > 0,
        "{report:?}"
    );
    let first = report
        .storm_first_after
        .expect("the storm client became first in top");
    assert!(first <= Duration::from_secs(10), "{first:?}");
    assert!(
        report.top_first_row.starts_with(STORM_USER),
        "{}",
        report.top_first_row
    );
    // Every client's requests are in kubeguard's ledger exactly as the emulator served them.
    assert_eq!(
        report.ledger.len(),
        cfg.good_clients + 1,
        "{:?}",
        report.ledger
    );
    for (user, truth) in &report.truth {
        assert_eq!(
            report.ledger.get(user).map(|t| t.requests),
            Some(truth.requests),
            "{user}"
        );
    }
    let (kg, truth, diff) = report.storm_shares();
    assert!(truth > 0.5, "the storm dominates etcd reads: {truth}");
    assert!(diff <= 0.05, "kubeguard {kg:.4} vs emulator {truth:.4}");
}
