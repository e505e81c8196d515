//! The response scanner's throughput on a large LIST, alone: how much CPU a LIST's bytes cost
//! kubeguard beyond copying them (issue [1 of 8]'s S3 scenario; perf.sh measures the whole
//! proxy). A PodList of 10,000 pods of ~3.4 KB each (the perf harness's shape), fed in 64 KiB
//! chunks as hyper hands them over; then a 100-pod list that stays in cache, scanned as often.
//!
//!   cargo run --release --example scan_bench
use std::time::Instant;

use kubeguard::observe::scan::{BodyKind, Scanner};

fn pod(i: usize) -> String {
    let labels: String = (0..12)
        .map(|l| format!(r#""label-{l}":"value-{i}-{l}-{}""#, "x".repeat(20)))
        .collect::<Vec<_>>()
        .join(",");
    let env: String = (0..20)
        .map(|e| {
            format!(
                r#"{{"name":"ENV_{e}","value":"some \"quoted\" value {i} {}"}}"#,
                "y".repeat(60)
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"metadata":{{"name":"pod-{i}","namespace":"default","uid":"0b5c6f7e-{i:08}","resourceVersion":"{rv}","labels":{{{labels}}},"annotations":{{"kubectl.kubernetes.io/last-applied-configuration":"{{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}}"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.example.com/app:1.2.3","env":[{env}],"resources":{{"requests":{{"cpu":"100m","memory":"128Mi"}}}},"ports":[{{"containerPort":8080,"protocol":"TCP"}}]}}],"nodeName":"node-{n}","restartPolicy":"Always"}},"status":{{"phase":"Running","podIP":"10.0.{a}.{b}","conditions":[{{"type":"Ready","status":"True"}}]}}}}"#,
        rv = 1000 + i,
        n = i % 50,
        a = i / 250,
        b = i % 250,
    )
}

fn list(items: usize) -> String {
    let mut body = String::from(
        r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"987654"},"items":["#,
    );
    for i in 0..items {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&pod(i));
    }
    body.push_str("]}");
    body
}

/// Scans `body` (a list of `items` pods) `rounds` times in 64 KiB chunks; prints the rate.
fn measure(what: &str, body: &[u8], items: usize, rounds: usize) {
    let start = Instant::now();
    for _ in 0..rounds {
        let mut s = Scanner::new(BodyKind::Json);
        for chunk in body.chunks(64 * 1024) {
            s.feed(chunk);
        }
        let summary = s.summary();
        assert_eq!(summary.items, items as u64);
        assert_eq!(summary.list_resource_version, Some(987654));
        assert!(!summary.malformed);
    }
    let secs = start.elapsed().as_secs_f64();
    let gb = (body.len() * rounds) as f64 / 1e9;
    println!(
        "{what}: {rounds} × {:.1} MB PodList ({items} items): {:.2} GB/s, {:.3} s CPU per GB",
        body.len() as f64 / 1e6,
        gb / secs,
        secs / gb,
    );
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    // 34 MB: more than L2 (2 MiB a core on the test machine), so each pass reads the body
    // from L3 or memory.
    let big = list(10_000);
    measure("from memory", big.as_bytes(), 10_000, rounds);
    // 340 KB, stays in L2: what the proxy sees, scanning each chunk right after it was read.
    let small = list(100);
    measure("in cache", small.as_bytes(), 100, rounds * 100);
}
