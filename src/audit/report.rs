//! The report: one serialisable value (the JSON output), printed as a terminal table or
//! rendered as HTML ([`super::html`]).

use std::fmt::Write as _;

use serde::Serialize;

use super::analysis::{Analysis, Extra, RefusedDelete, Share};
use super::reader::ReadStats;
use crate::cost::Counters;
use crate::cost::limits_config::LimitMode;

/// What the report is built with besides the replay.
pub struct Context {
    pub top: usize,
    pub minor: u32,
    pub counts_given: bool,
    pub limits_mode: LimitMode,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub input: ReadStats,
    /// Requests whose URI the classifier could not parse.
    pub unclassified: u64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub server_version: String,
    /// Where LIST prices came from: `objectCounts` file, `learned` from responses, `assumed`.
    pub list_pricing: Pricing,
    pub totals: Totals,
    /// Clients by cost, most expensive first.
    pub clients: Vec<ClientRow>,
    /// Everyone not in `clients`, added up.
    pub other: ClientRow,
    pub by_verb: Vec<ShareRow>,
    pub by_resource: Vec<ShareRow>,
    pub long_running: Vec<StreamRow>,
    pub policy: PolicyReport,
    pub window_seconds: u64,
    pub windows: Vec<WindowRow>,
    /// Limits of the replay, said rather than hidden.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pricing {
    pub object_counts_given: bool,
    /// Requests priced with a size learned from a response in the log.
    pub learned_from_responses: u64,
    /// Requests priced with an assumed collection size (one page, 500 objects).
    pub assumed_size: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub requests: u64,
    /// kubeguard's cost score (`Counters::cost`): etcd objects read + requests + items / 10.
    pub cost: u64,
    /// Apiserver time from the timestamps (long-running requests excluded).
    pub apiserver_seconds: f64,
    pub etcd_objects_read: u64,
    /// From `apiserver.latency.k8s.io/etcd` annotations, when present.
    pub annotated_etcd_seconds: f64,
    /// From `apiserver.latency.k8s.io/apf-queue-wait` annotations, when present.
    pub annotated_apf_wait_seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRow {
    pub user: String,
    pub requests: u64,
    pub cost: u64,
    /// Share of the total cost, 0–1.
    pub cost_share: f64,
    pub apiserver_seconds: f64,
    /// Share of the total apiserver time, 0–1.
    pub time_share: f64,
    pub etcd_objects_read: u64,
    pub errors: u64,
    pub lists_rewritten: u64,
    pub etcd_objects_avoided: u64,
    pub would_throttle: u64,
    pub would_refuse: u64,
    pub deletes_refused: u64,
    pub annotated_etcd_seconds: f64,
    pub annotated_apf_wait_seconds: f64,
    /// The dearest verb × resource pairs of this client.
    pub top_requests: Vec<RequestRow>,
    /// For `other`: how many clients it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRow {
    pub verb: String,
    pub resource: String,
    pub requests: u64,
    pub cost: u64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareRow {
    pub name: String,
    pub requests: u64,
    pub cost: f64,
    pub cost_share: f64,
    pub apiserver_seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamRow {
    pub kind: String,
    pub started: u64,
    pub completed: u64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    pub lists_rewritten: u64,
    pub etcd_objects_avoided: u64,
    /// Share of all etcd object reads the rewrites would have avoided, 0–1.
    pub etcd_share_avoided: f64,
    /// `limits.mode` of the replayed config (`off`: no throttling evaluated).
    pub limits_mode: String,
    pub would_throttle: u64,
    /// Unchunked LISTs of large collections (`limits.refuseUnchunkedListsAbove`).
    pub would_refuse: u64,
    pub deletes_refused: u64,
    /// The first refused deletes, with who and what.
    pub refused_deletes: Vec<RefusedDelete>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowRow {
    pub start: String,
    pub requests: u64,
    pub cost: f64,
    pub apiserver_seconds: f64,
    /// Cost per client (the window's top clients); the rest in `other`.
    pub clients: Vec<(String, f64)>,
    pub other: f64,
}

fn share(part: f64, total: f64) -> f64 {
    if total > 0.0 { part / total } else { 0.0 }
}

fn rfc3339(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Report {
    pub fn build(mut a: Analysis, input: ReadStats, ctx: Context) -> Report {
        a.windows.finish();
        let snap = a.ledger.snapshot(Some(ctx.top));
        let total = snap.total();
        // Shares of the per-client scores, so they add up to one (`Counters::cost` of merged
        // counters rounds items once, not per client).
        let cost_sum: u64 =
            snap.clients.iter().map(|c| c.totals.cost()).sum::<u64>() + snap.other.cost();
        let total_cost = cost_sum as f64;
        let total_secs = total.upstream_seconds;
        let row = |user: &str, c: &Counters, extra: &Extra| ClientRow {
            user: user.to_string(),
            requests: c.requests,
            cost: c.cost(),
            cost_share: share(c.cost() as f64, total_cost),
            apiserver_seconds: c.upstream_seconds,
            time_share: share(c.upstream_seconds, total_secs),
            etcd_objects_read: c.etcd_objects_read,
            errors: c.errors,
            lists_rewritten: c.rewritten,
            etcd_objects_avoided: c.etcd_objects_avoided,
            would_throttle: extra.would_throttle,
            would_refuse: extra.would_refuse,
            deletes_refused: extra.deletes_refused,
            annotated_etcd_seconds: extra.etcd_seconds,
            annotated_apf_wait_seconds: extra.apf_wait_seconds,
            top_requests: Vec::new(),
            clients: None,
        };
        let mut other_extra = a.extras_other.clone();
        let clients: Vec<ClientRow> = snap
            .clients
            .iter()
            .map(|c| {
                let extra = a.extras.pop(c.identity.as_str()).unwrap_or_default();
                let mut r = row(&c.identity, &c.totals, &extra);
                r.top_requests = c
                    .by_request
                    .iter()
                    .take(5)
                    .map(|q| RequestRow {
                        verb: q.verb.clone(),
                        resource: q.resource.clone(),
                        requests: q.counters.requests,
                        cost: q.counters.cost(),
                    })
                    .collect();
                r
            })
            .collect();
        for (_, e) in a.extras.iter() {
            other_extra.merge(e);
        }
        let mut other = row("other", &snap.other, &other_extra);
        other.clients = Some(snap.other_clients);
        let shares = |m: Vec<(String, Share)>| {
            let mut rows: Vec<ShareRow> = m
                .into_iter()
                .map(|(name, s)| ShareRow {
                    name,
                    requests: s.requests,
                    cost: s.cost,
                    cost_share: 0.0,
                    apiserver_seconds: s.seconds,
                })
                .collect();
            let sum: f64 = rows.iter().map(|r| r.cost).sum();
            for r in &mut rows {
                r.cost_share = share(r.cost, sum);
            }
            rows.sort_by(|x, y| y.cost.total_cmp(&x.cost));
            rows
        };
        let by_verb = shares(a.by_verb.drain().map(|(k, v)| (k.to_string(), v)).collect());
        let by_resource = shares(a.by_resource.drain().collect());
        let mut long_running: Vec<StreamRow> = a
            .streams
            .iter()
            .map(|(k, s)| StreamRow {
                kind: k.to_string(),
                started: s.started,
                completed: s.completed,
                seconds: s.seconds,
            })
            .collect();
        long_running.sort_by(|x, y| x.kind.cmp(&y.kind));
        let width_us = i64::try_from(a.windows.width.as_micros()).unwrap_or(i64::MAX);
        let start = a.windows.start_us.unwrap_or(0);
        let windows = a
            .windows
            .slots
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut clients: Vec<(String, f64)> =
                    w.clients.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                clients.sort_by(|x, y| y.1.total_cmp(&x.1));
                WindowRow {
                    start: rfc3339(start + width_us * i as i64),
                    requests: w.requests,
                    cost: w.cost,
                    apiserver_seconds: w.seconds,
                    clients,
                    other: w.other,
                }
            })
            .collect();
        let mut notes = vec![
            "Deletes confirmed by the kubeguard.io/confirm-delete annotation cannot be seen in an \
             audit log: such deletes are listed as refused."
                .to_string(),
            "The cap on concurrent expensive requests is not replayed (an audit log has no \
             concurrency)."
                .to_string(),
        ];
        if !ctx.counts_given && a.learned_sizes == 0 {
            notes.push(
                "No --object-counts and no response objects in the log: LISTs are priced at \
                 one page (500 objects) per collection."
                    .to_string(),
            );
        }
        Report {
            input,
            unclassified: a.unclassified,
            from: a.first_us.map(rfc3339),
            to: a.last_us.map(rfc3339),
            server_version: format!("v1.{}", ctx.minor),
            list_pricing: Pricing {
                object_counts_given: ctx.counts_given,
                learned_from_responses: a.learned_sizes,
                assumed_size: a.assumed_sizes,
            },
            totals: Totals {
                requests: total.requests,
                cost: cost_sum,
                apiserver_seconds: total_secs,
                etcd_objects_read: total.etcd_objects_read,
                annotated_etcd_seconds: a.etcd_seconds,
                annotated_apf_wait_seconds: a.apf_wait_seconds,
            },
            clients,
            other,
            by_verb,
            by_resource,
            long_running,
            policy: PolicyReport {
                lists_rewritten: a.lists_rewritten,
                etcd_objects_avoided: a.etcd_objects_avoided,
                etcd_share_avoided: share(
                    a.etcd_objects_avoided as f64,
                    total.etcd_objects_read as f64,
                ),
                limits_mode: format!("{:?}", ctx.limits_mode).to_lowercase(),
                would_throttle: a.would_throttle,
                would_refuse: a.would_refuse,
                deletes_refused: a.deletes_refused,
                refused_deletes: std::mem::take(&mut a.refused_deletes),
            },
            window_seconds: a.windows.width.as_secs(),
            windows,
            notes,
        }
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let i = &self.input;
        let _ = writeln!(
            s,
            "audit log: {} events from {} lines ({:.1} MB) in {} file(s), {} to {}",
            i.events,
            i.lines,
            i.bytes as f64 / 1e6,
            i.files.len(),
            self.from.as_deref().unwrap_or("-"),
            self.to.as_deref().unwrap_or("-"),
        );
        if i.malformed > 0 {
            let _ = writeln!(
                s,
                "malformed lines: {} (first at {})",
                i.malformed,
                i.malformed_at.join(", ")
            );
        }
        let t = &self.totals;
        let _ = writeln!(
            s,
            "total: {} requests, cost {}, {:.1} s apiserver time, {} etcd objects read\n",
            t.requests, t.cost, t.apiserver_seconds, t.etcd_objects_read
        );
        let _ = writeln!(
            s,
            "{:<44} {:>9} {:>12} {:>6} {:>9} {:>6} {:>9} {:>9} {:>8}",
            "CLIENT",
            "REQUESTS",
            "COST",
            "COST%",
            "SECONDS",
            "TIME%",
            "REWRITES",
            "THROTTLE",
            "REFUSED"
        );
        for c in self
            .clients
            .iter()
            .chain((self.other.requests > 0).then_some(&self.other))
        {
            let _ = writeln!(
                s,
                "{:<44} {:>9} {:>12} {:>5.1}% {:>9.1} {:>5.1}% {:>9} {:>9} {:>8}",
                truncate(&c.user, 44),
                c.requests,
                c.cost,
                c.cost_share * 100.0,
                c.apiserver_seconds,
                c.time_share * 100.0,
                c.lists_rewritten,
                c.would_throttle,
                c.deletes_refused + c.would_refuse,
            );
        }
        if let Some(top) = self.clients.first() {
            let _ = writeln!(s, "\ndearest requests of {}:", top.user);
            for r in &top.top_requests {
                let _ = writeln!(
                    s,
                    "  {:<12} {:<40} {:>9} requests  cost {}",
                    r.verb, r.resource, r.requests, r.cost
                );
            }
        }
        let _ = writeln!(s, "\nby verb:");
        for r in &self.by_verb {
            let _ = writeln!(
                s,
                "  {:<18} {:>9} requests  {:>5.1}% of cost",
                r.name,
                r.requests,
                r.cost_share * 100.0
            );
        }
        let _ = writeln!(s, "by resource (top 10):");
        for r in self.by_resource.iter().take(10) {
            let _ = writeln!(
                s,
                "  {:<40} {:>9} requests  {:>5.1}% of cost",
                r.name,
                r.requests,
                r.cost_share * 100.0
            );
        }
        if !self.long_running.is_empty() {
            let _ = writeln!(s, "long-running (not in the cost shares):");
            for r in &self.long_running {
                let _ = writeln!(
                    s,
                    "  {:<12} {} started, {} completed, {:.0} s open",
                    r.kind, r.started, r.completed, r.seconds
                );
            }
        }
        let p = &self.policy;
        let _ = writeln!(
            s,
            "\nwhat kubeguard would have done:\n  LISTs rewritten: {} (etcd objects avoided: {}, {:.1}% of all read)\n  requests throttled (limits {}): {}\n  unchunked LISTs refused: {}\n  deletes refused: {}",
            p.lists_rewritten,
            p.etcd_objects_avoided,
            p.etcd_share_avoided * 100.0,
            p.limits_mode,
            p.would_throttle,
            p.would_refuse,
            p.deletes_refused
        );
        for d in &p.refused_deletes {
            let _ = writeln!(
                s,
                "    {} {} {} {} (apiserver answered {})",
                d.time, d.user, d.verb, d.target, d.code
            );
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
