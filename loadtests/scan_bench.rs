//! The response scanner's throughput on a large LIST, alone: how much CPU a LIST's bytes cost
//! kubeguard beyond copying them (issue [1 of 8]'s S3 scenario; perf.sh measures the whole
//! proxy). A PodList of 10,000 pods of ~4.9 KB each (the perf harness's shape), fed in 64 KiB
//! chunks as hyper hands them over.
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

fn main() {
    let items = 10_000;
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
    let bytes = body.as_bytes();
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let start = Instant::now();
    for _ in 0..rounds {
        let mut s = Scanner::new(BodyKind::Json);
        for chunk in bytes.chunks(64 * 1024) {
            s.feed(chunk);
        }
        let summary = s.summary();
        assert_eq!(summary.items, items as u64);
        assert_eq!(summary.list_resource_version, Some(987654));
        assert!(!summary.malformed);
    }
    let elapsed = start.elapsed();
    let total = (bytes.len() * rounds) as f64;
    println!(
        "scanned {rounds} × {:.1} MB PodList ({items} items): {:.0} MB/s, {:.2} s CPU per GB",
        bytes.len() as f64 / 1e6,
        total / 1e6 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / (total / 1e9),
    );
}
