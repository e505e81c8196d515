#![allow(clippy::unwrap_used)]
//! `kubeguard audit-report` end to end: the emulator records an audit log with a known culprit
//! (loadtests/audit_gen.rs), the real binary replays it (plain and gzip), and the report must
//! name the culprit first with the share the generated traffic implies.

#[path = "../loadtests/audit_gen.rs"]
mod audit_gen;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn report(log: &Path, counts: &Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeguard"))
        .arg("audit-report")
        .arg("--audit-log")
        .arg(log)
        .arg("--object-counts")
        .arg(counts)
        .args(["--format", format, "--window", "1s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit-report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// kubeguard's cost score (`Counters::cost`): etcd objects read + requests + items / 10.
fn cost(etcd: u64, requests: u64, items: u64) -> u64 {
    etcd + requests + items / 10
}

/// The log with three malformed lines: one in the middle (line 3), two at the end.
fn with_malformed(src: &Path, dst: &Path) -> u64 {
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(2, "this is not json");
    lines.push(r#"{"kind":"Event","auditID":"x","stage":"ResponseComple"#);
    lines.push("{}");
    std::fs::write(dst, lines.join("\n") + "\n").unwrap();
    lines.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_culprit_of_a_list_storm_is_found_with_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = audit_gen::Scenario {
        pods: 600,
        namespaces: 4,
        storm_lists: 60,
        gets_per_dev: 15,
    };
    let rec = audit_gen::record(dir.path(), &scenario).await;
    let log = dir.path().join("with-malformed.log");
    let lines = with_malformed(&rec.log, &log);

    let json: Value = serde_json::from_str(&report(&log, &rec.counts, "json")).unwrap();

    // Expected from the generated traffic: the storm's unversioned LISTs each scan every pod
    // in etcd (≤1.30, k8s-facts §1) and return them all; a GET reads and returns one object;
    // each developer's watch is one request that reads nothing; alice's three deletes read one.
    let n = rec.storm_lists;
    let culprit = cost(n * rec.pods, n, n * rec.pods);
    let devs: u64 = rec.dev_gets.iter().map(|g| cost(*g, g + 1, *g)).sum();
    let alice = cost(rec.alice_deletes, rec.alice_deletes, 0);
    let expected_share = culprit as f64 / (culprit + devs + alice) as f64;

    let first = &json["clients"][0];
    assert_eq!(first["user"], audit_gen::CULPRIT);
    assert_eq!(first["requests"], n);
    assert_eq!(first["etcdObjectsRead"], n * rec.pods);
    let share = first["costShare"].as_f64().unwrap();
    assert!(
        (share - expected_share).abs() < 1e-9,
        "culprit share {share}, expected {expected_share}: {:#}",
        json["clients"][0]
    );
    assert!(share > 0.9, "a storm of full scans dominates: {share}");
    assert_eq!(json["totals"]["cost"], culprit + devs + alice);
    // The emulator's own count of objects read from etcd agrees with the replay's estimate for
    // the reads (the emulator charges deletes nothing).
    assert_eq!(
        json["totals"]["etcdObjectsRead"].as_u64().unwrap(),
        rec.sim_etcd_objects_read + rec.alice_deletes
    );

    // Malformed lines: counted with their positions, never fatal.
    assert_eq!(json["input"]["malformed"], 3);
    assert_eq!(json["input"]["lines"], lines);
    let at = json["input"]["malformedAt"][0].as_str().unwrap();
    assert!(at.ends_with("with-malformed.log:3"), "{at}");

    // Policy what-if: every storm LIST rewritten to RV=0 (no limit: the whole collection comes
    // from the watch cache), sparing every etcd read of it.
    assert_eq!(json["policy"]["listsRewritten"], n);
    assert_eq!(json["policy"]["etcdObjectsAvoided"], n * rec.pods);
    assert_eq!(first["listsRewritten"], n);
    // The unconfirmed namespace delete is refused, the one after a dry run is not.
    let refused = json["policy"]["refusedDeletes"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["user"], "alice");
    assert_eq!(refused[0]["target"], "namespace prod");
    assert_eq!(json["policy"]["deletesRefused"], 1);
    // Watches are counted apart.
    let watches = json["longRunning"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "watch")
        .unwrap();
    assert_eq!(watches["started"], audit_gen::DEVS as u64);
    // Shares: the storm makes LIST of pods the dearest verb and resource.
    assert_eq!(json["byVerb"][0]["name"], "list");
    assert_eq!(json["byResource"][0]["name"], "pods");

    // gzip gives the same report.
    let gz = dir.path().join("audit.log.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(&log).unwrap()).unwrap();
    enc.finish().unwrap();
    let gz_json: Value = serde_json::from_str(&report(&gz, &rec.counts, "json")).unwrap();
    assert_eq!(gz_json["clients"], json["clients"]);
    assert_eq!(gz_json["input"]["malformed"], 3);

    // The table names the culprit on its first client row.
    let table = report(&log, &rec.counts, "table");
    let row = table
        .lines()
        .skip_while(|l| !l.starts_with("CLIENT"))
        .nth(1)
        .unwrap();
    assert!(
        row.starts_with("system:serviceaccount:monitoring:pod-scr"),
        "{table}"
    );
    assert!(table.contains("malformed lines: 3"), "{table}");

    // HTML: one self-contained page with the charts, the culprit and the refused delete.
    let html = report(&log, &rec.counts, "html");
    let lower = html.to_lowercase();
    for needle in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "<script",
        "@import",
        "url(",
    ] {
        assert!(
            !lower.contains(needle),
            "HTML must be self-contained: {needle}"
        );
    }
    assert!(html.contains("<svg id=\"cost-over-time\""));
    assert_eq!(html.matches("<svg class=\"share\"").count(), 2);
    assert!(html.contains("<svg id=\"etcd-avoided\""));
    assert!(html.contains(&format!(
        "<tr class=\"culprit\"><td class=\"l\">{}</td>",
        audit_gen::CULPRIT
    )));
    assert!(html.contains("namespace prod"));
    std::fs::write(dir.path().join("report.html"), &html).unwrap();
    if let Ok(keep) = std::env::var("AUDIT_REPORT_HTML_OUT") {
        std::fs::write(keep, &html).unwrap();
    }
}
