//! `kubeguard top`: who costs what, live, from a running kubeguard's admin `/debug/costs`.
//!
//! Refreshes each second until Ctrl-C; `--once` prints one table and exits (for scripts).

use std::fmt::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cost::ledger::{Counters, LedgerSnapshot};

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The column rows are sorted by (descending).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortBy {
    /// Cost score: etcd objects read, plus requests and items returned.
    Cost,
    /// Objects read from etcd.
    Etcd,
    Requests,
    /// Response bytes.
    Bytes,
    /// Upstream seconds.
    Time,
}

impl SortBy {
    fn key(self, c: &Counters) -> f64 {
        match self {
            SortBy::Cost => c.cost() as f64,
            SortBy::Etcd => c.etcd_objects_read as f64,
            SortBy::Requests => c.requests as f64,
            SortBy::Bytes => c.bytes_out as f64,
            SortBy::Time => c.upstream_seconds,
        }
    }
}

/// Runs `kubeguard top`.
pub async fn run(admin: &str, sort: SortBy, rows: usize, once: bool) -> Result<(), String> {
    if once {
        let snap = fetch(admin).await?;
        print!("{}", render(&snap, sort, rows));
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let screen = match fetch(admin).await {
            Ok(snap) => render(&snap, sort, rows),
            Err(e) => format!("kubeguard top: {e}\n"),
        };
        // Clear the screen and home the cursor, then draw.
        print!("\x1b[2J\x1b[H{screen}");
    }
}

/// `GET {admin}/debug/costs`.
pub async fn fetch(admin: &str) -> Result<LedgerSnapshot, String> {
    let url = format!("{}/debug/costs", admin.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("--admin {admin:?}: not a URL: {e}"))?;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(FETCH_TIMEOUT, client.get(uri))
        .await
        .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = tokio::time::timeout(FETCH_TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| format!("{url}: body not received within {FETCH_TIMEOUT:?}"))?
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{url}: {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{url}: not a cost ledger: {e}"))
}

/// The table: one row per identity, sorted by `sort`, at most `rows`, then "other" and the total.
pub fn render(snap: &LedgerSnapshot, sort: SortBy, rows: usize) -> String {
    let total = snap.total();
    let mut clients: Vec<(&str, &Counters)> = snap
        .clients
        .iter()
        .map(|c| (c.identity.as_str(), &c.totals))
        .collect();
    clients.sort_by(|a, b| sort.key(b.1).total_cmp(&sort.key(a.1)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>9} {:>7} {:>7} {:>12} {:>6} {:>10} {:>10} {:>10} {:>9} {:>9}",
        "CLIENT",
        "REQUESTS",
        "ERRORS",
        "THROTL",
        "ETCD-OBJ",
        "SHARE",
        "ITEMS",
        "BYTES-OUT",
        "UPSTREAM-S",
        "WATCH-S",
        "EXEC-S"
    );
    for (name, c) in clients.iter().take(rows) {
        row(&mut out, name, c, &total);
    }
    let mut other = snap.other.clone();
    let mut other_clients = snap.other_clients;
    for (_, c) in clients.iter().skip(rows) {
        other.merge(c);
        other_clients += 1;
    }
    if other.requests > 0 {
        let name = format!("other ({other_clients} clients)");
        row(&mut out, &name, &other, &total);
    }
    row(&mut out, "TOTAL", &total, &total);
    out
}

fn row(out: &mut String, name: &str, c: &Counters, total: &Counters) {
    let share = if total.etcd_objects_read == 0 {
        0.0
    } else {
        100.0 * c.etcd_objects_read as f64 / total.etcd_objects_read as f64
    };
    let name: String = if name.chars().count() > 40 {
        name.chars().take(39).chain(['…']).collect()
    } else {
        name.to_string()
    };
    let _ = writeln!(
        out,
        "{:<40} {:>9} {:>7} {:>7} {:>12} {:>5.1}% {:>10} {:>10} {:>10.1} {:>9.0} {:>9.0}",
        name,
        c.requests,
        c.errors,
        c.throttled,
        c.etcd_objects_read,
        share,
        c.items,
        human_bytes(c.bytes_out),
        c.upstream_seconds,
        c.watch_seconds,
        c.exec_seconds
    );
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{CostRecord, Ledger};
    use crate::request::Verb;

    #[test]
    fn rows_sort_by_the_chosen_column() {
        let l = Ledger::new(100, 8);
        let mut storm = CostRecord::new("storm", Verb::List, "pods");
        storm.etcd_objects_read = 9_000;
        l.record(&storm);
        for _ in 0..5 {
            let mut chatty = CostRecord::new("chatty", Verb::Get, "pods");
            chatty.etcd_objects_read = 200;
            chatty.bytes_out = 4096;
            l.record(&chatty);
        }
        let snap = l.snapshot(None);
        let by_etcd = render(&snap, SortBy::Etcd, 10);
        let lines: Vec<&str> = by_etcd.lines().collect();
        assert!(lines[1].starts_with("storm"), "{by_etcd}");
        assert!(lines[1].contains("90.0%"), "{by_etcd}");
        assert!(lines[3].starts_with("TOTAL"), "{by_etcd}");
        let by_requests = render(&snap, SortBy::Requests, 10);
        assert!(by_requests.lines().nth(1).unwrap().starts_with("chatty"));
        assert!(by_requests.contains("20.0KiB"), "{by_requests}");
        let one = render(&snap, SortBy::Bytes, 1);
        assert_eq!(one.lines().count(), 4, "{one}");
        assert!(one.contains("other (1 clients)"), "{one}");
    }
}
