//! The cost ledger under a million distinct identities: memory stays bounded, recording stays
//! cheap. Run: `cargo run --release --example ledger_bench [-- IDENTITIES [THREADS]]`.
//!
//! Prints RSS before and after, the identities kept exactly, and the recording rate.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeguard::cost::{CostRecord, Ledger};
use kubeguard::request::Verb;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let identities: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let threads: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    // The shipped defaults (config/kubeguard.yaml: cost.maxClients, cost.maxKeysPerClient).
    let ledger = Arc::new(Ledger::new(10_000, 32));
    let before = rss_kib();
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                for i in (t..identities).step_by(threads as usize) {
                    let mut r = CostRecord::new(
                        format!("system:serviceaccount:ns-{}:sa-{i}", i % 1000),
                        if i % 3 == 0 { Verb::List } else { Verb::Get },
                        if i % 2 == 0 { "pods" } else { "configmaps" },
                    );
                    r.code = 200;
                    r.bytes_out = 2048;
                    r.items = 1;
                    r.etcd_objects_read = 1;
                    r.duration = Duration::from_millis(3);
                    ledger.record(&r);
                    // One storm client among them, recorded every 1000 requests.
                    if i % 1000 == 0 {
                        let mut s = CostRecord::new("storm", Verb::List, "pods");
                        s.etcd_objects_read = 100_000;
                        ledger.record(&s);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = start.elapsed();
    let after = rss_kib();
    let snap = ledger.snapshot(None);
    let records = identities + identities.div_ceil(1000);
    println!("identities recorded:   {identities} ({threads} threads)");
    println!("kept exactly:          {}", ledger.tracked());
    println!("folded into other:     {}", snap.other_clients);
    println!(
        "first by cost:         {} ({} etcd objects)",
        snap.clients[0].identity, snap.clients[0].totals.etcd_objects_read
    );
    println!(
        "requests accounted:    {} of {records}",
        snap.total().requests
    );
    println!(
        "RSS:                   {before} KiB before, {after} KiB after (+{} KiB)",
        after.saturating_sub(before)
    );
    println!(
        "recording:             {:.0} records/s ({:.0} ns each, wall)",
        records as f64 / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / records as f64
    );
}
