//! The ledger's Prometheus text: `kubeguard_client_*`, one `client` label value per identity of
//! the top `metrics_top` (by cost) and `other` for the rest, so the series count stays bounded
//! however many clients there are.

use std::fmt::Write;

use http::{HeaderValue, Response, StatusCode, header};

use super::ledger::{Counters, Ledger, LedgerSnapshot};
use crate::proxy::ProxyBody;
use crate::status::Status;

/// `GET /debug/costs[?top=N]`: the ledger as JSON, most expensive identity first (what
/// `kubeguard top` reads).
pub fn debug_costs(ledger: &Ledger, query: Option<&str>) -> Response<ProxyBody> {
    let mut top = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "top" {
            match v.parse::<usize>() {
                Ok(n) => top = Some(n),
                Err(_) => {
                    return Status::bad_request(format!("top: {v:?} is not a number"))
                        .into_response();
                }
            }
        }
    }
    let body = serde_json::to_vec(&ledger.snapshot(top)).unwrap_or_default();
    let mut resp = Response::new(ProxyBody::from(bytes::Bytes::from(body)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The families, in the order they are written: name, help, and the value read from Counters.
type Field = fn(&Counters) -> String;
const FAMILIES: [(&str, &str, Field); 13] = [
    (
        "kubeguard_client_requests_total",
        "Requests per client.",
        |c| c.requests.to_string(),
    ),
    (
        "kubeguard_client_errors_total",
        "Failed requests per client.",
        |c| c.errors.to_string(),
    ),
    (
        "kubeguard_client_throttled_total",
        "Requests answered 429 by a kubeguard limit, per client.",
        |c| c.throttled.to_string(),
    ),
    (
        "kubeguard_client_blocked_total",
        "Requests refused by a guard, per client.",
        |c| c.blocked.to_string(),
    ),
    (
        "kubeguard_client_rewritten_total",
        "Requests forwarded with a rewritten query, per client.",
        |c| c.rewritten.to_string(),
    ),
    (
        "kubeguard_client_request_bytes_total",
        "Request body bytes received, per client.",
        |c| c.bytes_in.to_string(),
    ),
    (
        "kubeguard_client_response_bytes_total",
        "Response body bytes sent, per client.",
        |c| c.bytes_out.to_string(),
    ),
    (
        "kubeguard_client_items_total",
        "Objects returned (list items, table rows, watch events), per client.",
        |c| c.items.to_string(),
    ),
    (
        "kubeguard_client_upstream_seconds_total",
        "Upstream time spent on the client's requests.",
        |c| c.upstream_seconds.to_string(),
    ),
    (
        "kubeguard_client_etcd_objects_read_total",
        "Objects the apiserver read from etcd for the client (estimated).",
        |c| c.etcd_objects_read.to_string(),
    ),
    (
        "kubeguard_client_etcd_objects_avoided_total",
        "etcd object reads kubeguard's rewrites avoided, per client.",
        |c| c.etcd_objects_avoided.to_string(),
    ),
    (
        "kubeguard_client_watch_seconds_total",
        "Time the client's watches stayed open.",
        |c| c.watch_seconds.to_string(),
    ),
    (
        "kubeguard_client_exec_seconds_total",
        "Time the client's exec/attach/port-forward streams stayed open.",
        |c| c.exec_seconds.to_string(),
    ),
];

/// Writes the families for a snapshot already cut to the top identities (the rest in `other`).
pub fn prometheus_text(snap: &LedgerSnapshot) -> String {
    let mut out = String::new();
    for (name, help, value) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for c in &snap.clients {
            let _ = writeln!(
                out,
                "{name}{{client=\"{}\"}} {}",
                escape(&c.identity),
                value(&c.totals)
            );
        }
        let _ = writeln!(out, "{name}{{client=\"other\"}} {}", value(&snap.other));
    }
    let _ = writeln!(
        out,
        "# HELP kubeguard_client_other_identities Identities counted under client=\"other\".\n\
         # TYPE kubeguard_client_other_identities gauge\n\
         kubeguard_client_other_identities {}",
        snap.other_clients
    );
    out
}

/// The whole-process caps: admitted now and requests refused, for `maxInflight` and
/// `maxLongRunning`.
pub fn inflight_text(cap: &super::InflightCap) -> String {
    format!(
        "# HELP kubeguard_shed_requests_total Requests shed with 429 by limits.maxInflight.\n\
         # TYPE kubeguard_shed_requests_total counter\n\
         kubeguard_shed_requests_total {}\n\
         # HELP kubeguard_admitted_inflight_requests Requests admitted under limits.maxInflight now.\n\
         # TYPE kubeguard_admitted_inflight_requests gauge\n\
         kubeguard_admitted_inflight_requests {}\n\
         # HELP kubeguard_long_running_requests Long-running streams open now (watches, logs -f, exec), under limits.maxLongRunning.\n\
         # TYPE kubeguard_long_running_requests gauge\n\
         kubeguard_long_running_requests {}\n\
         # HELP kubeguard_long_running_shed_total Long-running requests refused with 429 by limits.maxLongRunning.\n\
         # TYPE kubeguard_long_running_shed_total counter\n\
         kubeguard_long_running_shed_total {}\n",
        cap.shed_total(),
        cap.in_flight(),
        cap.long_running(),
        cap.long_running_shed_total()
    )
}

/// Label values escape backslash, double quote and newline (Prometheus text format 0.0.4).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{CostRecord, Ledger};
    use crate::request::Verb;

    #[test]
    fn only_the_top_clients_get_their_own_label() {
        let l = Ledger::new(100, 8);
        for i in 0..10u64 {
            let mut r = CostRecord::new(format!("user-{i}"), Verb::List, "pods");
            r.etcd_objects_read = i * 100;
            l.record(&r);
        }
        let mut r = CostRecord::new("we\"ird\\name", Verb::List, "pods");
        r.etcd_objects_read = 5000;
        l.record(&r);
        let text = prometheus_text(&l.snapshot(Some(3)));
        assert!(
            text.contains(
                "kubeguard_client_etcd_objects_read_total{client=\"we\\\"ird\\\\name\"} 5000"
            ),
            "{text}"
        );
        assert!(text.contains("kubeguard_client_requests_total{client=\"user-9\"} 1"));
        assert!(!text.contains("client=\"user-6\""), "{text}");
        assert!(text.contains("kubeguard_client_requests_total{client=\"other\"} 8"));
        let series = text
            .lines()
            .filter(|l| l.starts_with("kubeguard_client_requests_total"))
            .count();
        assert_eq!(series, 4);
    }
}
