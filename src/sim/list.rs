//! LIST: the apiserver's resourceVersion semantics per server version (k8s-facts §1), continue
//! tokens, and the response body (streamed in chunks, or a Table).
//!
//! Which store serves a LIST decides its cost: "etcd" scans the whole key range (namespace or
//! resource) under the etcd semaphore, the "watch cache" costs per returned object.

use std::sync::Arc;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::{Value, json};

use super::cost::Cost;
use super::http_util::Query;
use super::store::{Filter, Gr, Key, ListPage, ListQuery, ReadError, Store, Stored};
use crate::status::{Status, StatusCause, StatusDetails};

/// Where a LIST is served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Etcd,
    Cache,
}

/// How one LIST is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub source: Source,
    /// Read at exactly this revision (Exact, RV+limit, continue tokens).
    pub at: Option<u64>,
    /// The cache must be at least this fresh (NotOlderThan).
    pub min_rv: Option<u64>,
    pub limit: Option<usize>,
    pub start_after: Option<Key>,
    /// ≥1.31 consistent reads from cache first ask etcd for its current revision.
    pub revision_check: bool,
}

/// The minor version of a `gitVersion` like `v1.30.4`.
pub fn minor_of(version: &str) -> Option<u32> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let mut parts = v.split('.');
    let _major = parts.next()?;
    let minor = parts.next()?;
    let digits: String = minor.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn parse_rv(rv: &str) -> Result<u64, Status> {
    rv.parse::<u64>().map_err(|_| {
        Status::bad_request(format!(
            "resourceVersion: Invalid value: \"{rv}\": must be an integer"
        ))
    })
}

/// Decides where and how a LIST is served (k8s-facts §1), rejecting what the apiserver rejects.
pub fn plan(q: &Query, minor: u32) -> Result<Plan, Status> {
    let rv = q.non_empty("resourceVersion");
    let rv_match = q.non_empty("resourceVersionMatch");
    let cont = q.non_empty("continue");
    if q.get("sendInitialEvents").is_some() {
        return Err(Status::bad_request(
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
        ));
    }
    if rv_match.is_some() && rv.is_none() {
        return Err(Status::bad_request(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ));
    }
    if rv_match.is_some() && cont.is_some() {
        return Err(Status::bad_request(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided",
        ));
    }
    if rv_match == Some("Exact") && rv == Some("0") {
        return Err(Status::bad_request(
            "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ));
    }
    if let Some(m) = rv_match
        && m != "Exact"
        && m != "NotOlderThan"
    {
        return Err(Status::bad_request(format!(
            "resourceVersionMatch: Unsupported value: \"{m}\": supported values: \"Exact\", \"NotOlderThan\""
        )));
    }
    let limit = match q.non_empty("limit") {
        None => None,
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| Status::bad_request(format!("limit: Invalid value: \"{l}\"")))?,
        )
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
    };
    let mut p = Plan {
        source: Source::Etcd,
        at: None,
        min_rv: None,
        limit,
        start_after: None,
        revision_check: false,
    };
    if let Some(token) = cont {
        if rv.is_some_and(|r| r != "0") {
            return Err(Status::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (at, start) = decode_continue(token)?;
        p.at = Some(at);
        p.start_after = Some(start);
        p.source = if minor >= 34 {
            Source::Cache
        } else {
            Source::Etcd
        };
        return Ok(p);
    }
    match (rv, rv_match) {
        (None, _) => {
            if minor >= 31 {
                p.source = Source::Cache;
                p.revision_check = true;
            }
        }
        (Some("0"), _) => {
            p.source = Source::Cache;
            p.limit = None;
        }
        (Some(n), None) => {
            let n = parse_rv(n)?;
            if p.limit.is_some() {
                p.at = Some(n);
                p.source = if minor >= 34 {
                    Source::Cache
                } else {
                    Source::Etcd
                };
            } else {
                p.min_rv = Some(n);
                p.source = Source::Cache;
            }
        }
        (Some(n), Some("NotOlderThan")) => {
            let n = parse_rv(n)?;
            p.min_rv = Some(n);
            p.source = if minor <= 30 && p.limit.is_some() {
                Source::Etcd
            } else {
                Source::Cache
            };
        }
        (Some(n), Some(_exact)) => {
            p.at = Some(parse_rv(n)?);
            p.source = if minor >= 34 {
                Source::Cache
            } else {
                Source::Etcd
            };
        }
    }
    Ok(p)
}

/// Runs a planned LIST against the store, spending its cost.
pub async fn run(
    store: &Arc<Store>,
    cost: &Cost,
    gr: &Gr,
    namespace: Option<&str>,
    filter: Filter,
    plan: &Plan,
) -> Result<ListPage, Status> {
    if let Some(min) = plan.min_rv {
        let current = store.current_rv();
        if min > current {
            return Err(too_large(min, current));
        }
    }
    if plan.revision_check {
        cost.etcd_read(0).await;
    }
    if plan.source == Source::Etcd {
        // etcd range reads scan the whole prefix even when selectors drop most of it, and a
        // filtered paginated list keeps reading until the page is full: charge the full scan
        // on every etcd-served page (see the module doc of cost.rs).
        cost.etcd_read(store.count(gr, namespace)).await;
    }
    let q = ListQuery {
        namespace: namespace.map(str::to_string),
        filter,
        limit: plan.limit,
        start_after: plan.start_after.clone(),
        at: plan.at,
    };
    // The scan is CPU work of up to tens of milliseconds (100k pods): run it on the blocking
    // pool so the OS time-slices it against the requests on the async workers, as a real
    // apiserver's goroutines are, instead of stalling every request queued behind it.
    let (scan_store, scan_gr) = (store.clone(), gr.clone());
    let scanned = tokio::task::spawn_blocking(move || scan_store.list(&scan_gr, &q)).await;
    let Ok(scanned) = scanned else {
        return Err(Status::internal("the list scan failed"));
    };
    let page = scanned.map_err(|e| match e {
        ReadError::Compacted { .. } if plan.start_after.is_some() => expired_continue(),
        ReadError::Compacted { .. } => Status::failure(
            StatusCode::GONE,
            "Expired",
            "The resourceVersion for the provided list is too old.",
        ),
        ReadError::TooLarge { requested, current } => too_large(requested, current),
    })?;
    if plan.source == Source::Cache {
        cost.cache_serve(page.items.len() as u64).await;
    }
    cost.list_served(plan.source == Source::Etcd);
    Ok(page)
}

pub fn too_large(requested: u64, current: u64) -> Status {
    Status::failure(
        StatusCode::GATEWAY_TIMEOUT,
        "Timeout",
        format!("Too large resource version: {requested}, current: {current}"),
    )
    .with_details(StatusDetails {
        causes: vec![StatusCause {
            reason: "ResourceVersionTooLarge".into(),
            message: "Too large resource version".into(),
            field: String::new(),
        }],
        retry_after_seconds: Some(1),
        ..Default::default()
    })
}

pub fn expired_continue() -> Status {
    Status::failure(
        StatusCode::GONE,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

/// The apiserver's continue token: base64url JSON `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\0"}`.
pub fn encode_continue(rv: u64, key: &Key) -> String {
    let start = if key.0.is_empty() {
        format!("{}\u{0}", key.1)
    } else {
        format!("{}/{}\u{0}", key.0, key.1)
    };
    let v = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

pub fn decode_continue(token: &str) -> Result<(u64, Key), Status> {
    let bad = || {
        Status::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad());
    }
    let rv = v["rv"].as_u64().filter(|rv| *rv > 0).ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    let key = match start.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (String::new(), start.to_string()),
    };
    Ok((rv, key))
}

/// `metadata` of a list response.
pub fn list_metadata(page: &ListPage) -> Value {
    let mut md = json!({"resourceVersion": page.rv.to_string()});
    if let Some(next) = &page.next {
        md["continue"] = json!(encode_continue(page.rv, next));
    }
    if let Some(r) = page.remaining {
        md["remainingItemCount"] = json!(r);
    }
    md
}

/// The JSON list body, produced ~64 KB at a time from the stored bytes (never one big buffer).
pub fn list_chunks(
    api_version: &str,
    list_kind: &str,
    page: ListPage,
) -> impl Iterator<Item = Bytes> + Send + Sync + 'static {
    let head = format!(
        "{{\"kind\":\"{list_kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{},\"items\":[",
        list_metadata(&page)
    );
    ListChunks {
        head: Some(Bytes::from(head)),
        items: page.items.into_iter(),
        first: true,
        done: false,
    }
}

struct ListChunks {
    head: Option<Bytes>,
    items: std::vec::IntoIter<Arc<Stored>>,
    first: bool,
    done: bool,
}

const CHUNK: usize = 64 * 1024;

impl Iterator for ListChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if let Some(h) = self.head.take() {
            return Some(h);
        }
        if self.done {
            return None;
        }
        let mut buf = BytesMut::with_capacity(CHUNK + 4096);
        for item in self.items.by_ref() {
            if !self.first {
                buf.extend_from_slice(b",");
            }
            self.first = false;
            buf.extend_from_slice(&item.json);
            if buf.len() >= CHUNK {
                return Some(buf.freeze());
            }
        }
        buf.extend_from_slice(b"]}");
        self.done = true;
        Some(buf.freeze())
    }
}

#[cfg(test)]
mod tests;
