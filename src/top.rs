//! `kubeguard top`: who costs what, live, from running kubeguards' admin `/debug/costs`.
//!
//! Refreshes each second until Ctrl-C; `--once` prints one table and exits (for scripts).
//! Replicas keep ledgers of their own (nothing is shared between them): given several
//! `--admin` endpoints, `top` reads them all and sums each client's rows.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cost::ledger::{ClientCosts, Counters, LedgerSnapshot};

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

/// Runs `kubeguard top` against one or more replicas' admin listeners.
pub async fn run(admins: &[String], sort: SortBy, rows: usize, once: bool) -> Result<(), String> {
    if admins.is_empty() {
        return Err("--admin: at least one admin listener is needed".into());
    }
    if once {
        // A script gets the sum of every replica or an error, never a silently partial sum.
        let (snaps, errors) = fetch_all(admins).await;
        if let Some(e) = errors.into_iter().next() {
            return Err(e);
        }
        print!("{}", render(&merge(snaps), sort, rows));
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let (snaps, errors) = fetch_all(admins).await;
        let mut screen = String::new();
        if !snaps.is_empty() {
            screen.push_str(&render(&merge(snaps), sort, rows));
        }
        for e in errors {
            let _ = writeln!(screen, "kubeguard top: {e} (not in the sums)");
        }
        // Clear the screen and home the cursor, then draw.
        print!("\x1b[2J\x1b[H{screen}");
    }
}

/// Every replica's snapshot, read at once; the ones that failed, as messages.
async fn fetch_all(admins: &[String]) -> (Vec<LedgerSnapshot>, Vec<String>) {
    let results = futures_util::future::join_all(admins.iter().map(|a| fetch(a))).await;
    let (mut snaps, mut errors) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(s) => snaps.push(s),
            Err(e) => errors.push(e),
        }
    }
    (snaps, errors)
}

/// Several replicas' ledgers as one: each identity's counters (and its verb × resource rows)
/// added up across replicas, most expensive first. `otherClients` is the sum of the replicas'
/// folded identities, so an identity folded on two replicas counts twice there.
pub fn merge(snaps: Vec<LedgerSnapshot>) -> LedgerSnapshot {
    let mut snaps = snaps.into_iter();
    let Some(mut out) = snaps.next() else {
        return LedgerSnapshot::default();
    };
    let mut index: HashMap<String, usize> = out
        .clients
        .iter()
        .enumerate()
        .map(|(i, c)| (c.identity.clone(), i))
        .collect();
    for snap in snaps {
        out.other.merge(&snap.other);
        out.other_clients += snap.other_clients;
        for c in snap.clients {
            match index.get(&c.identity) {
                Some(&i) => merge_client(&mut out.clients[i], c),
                None => {
                    index.insert(c.identity.clone(), out.clients.len());
                    out.clients.push(c);
                }
            }
        }
    }
    for c in &mut out.clients {
        c.cost = c.totals.cost();
        c.by_request
            .sort_by_key(|r| std::cmp::Reverse(r.counters.cost()));
    }
    out.clients.sort_by(|a, b| {
        b.cost
            .cmp(&a.cost)
            .then_with(|| a.identity.cmp(&b.identity))
    });
    out
}

fn merge_client(into: &mut ClientCosts, c: ClientCosts) {
    into.totals.merge(&c.totals);
    for r in c.by_request {
        match into
            .by_request
            .iter_mut()
            .find(|m| m.verb == r.verb && m.resource == r.resource)
        {
            Some(m) => m.counters.merge(&r.counters),
            None => into.by_request.push(r),
        }
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

    #[test]
    fn replicas_are_summed_per_client_and_per_request_kind() {
        let (a, b) = (Ledger::new(100, 8), Ledger::new(1, 8));
        let rec = |who: &str, verb, etcd| {
            let mut r = CostRecord::new(who, verb, "pods");
            r.etcd_objects_read = etcd;
            r
        };
        a.record(&rec("storm", Verb::List, 4_000));
        a.record(&rec("dev", Verb::Get, 1));
        b.record(&rec("storm", Verb::List, 4_000));
        b.record(&rec("storm", Verb::Get, 1));
        // b keeps one identity exactly: "dev" is folded into its "other" there.
        b.record(&rec("dev", Verb::Get, 1));
        let merged = merge(vec![a.snapshot(None), b.snapshot(None)]);
        let storm = &merged.clients[0];
        assert_eq!(storm.identity, "storm");
        assert_eq!(
            (storm.totals.requests, storm.totals.etcd_objects_read),
            (3, 8_001)
        );
        assert_eq!(storm.cost, storm.totals.cost());
        let list = storm.by_request.iter().find(|r| r.verb == "list").unwrap();
        assert_eq!(list.counters.requests, 2);
        assert_eq!(storm.by_request.len(), 2);
        assert_eq!(merged.total().requests, 5);
        assert_eq!(merged.other_clients, b.snapshot(None).other_clients);
        assert_eq!(merge(Vec::new()), LedgerSnapshot::default());
        let one = a.snapshot(None);
        assert_eq!(merge(vec![one.clone()]).clients, one.clients);
    }
}
