//! WATCH: newline-delimited JSON events, flushed one by one, from a resourceVersion (bounded
//! history; too old → an ERROR event carrying a 410 Expired Status), with bookmarks,
//! `sendInitialEvents`, `timeoutSeconds`, selectors and Table events for `kubectl get -w`.
//!
//! Each watch is a task between the store's bounded per-watcher queue and a small body channel:
//! a slow client fills its own queue and gets closed, writers never wait.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::SimBody;
use super::http_util::{self, Query};
use super::registry::ResourceType;
use super::store::{Filter, Gr, ReadError, Store, WatchEvent, WatchFrom};
use super::table::{self, IncludeObject};
use crate::status::Status;

/// How one watch is served, parsed from the query.
#[derive(Clone, Debug)]
pub struct WatchParams {
    pub from: WatchFrom,
    /// NotOlderThan bound of a `sendInitialEvents` watch.
    pub min_rv: Option<u64>,
    pub bookmarks: bool,
    pub initial_events_end: bool,
    pub timeout: Option<Duration>,
}

impl WatchParams {
    pub fn parse(q: &Query) -> Result<WatchParams, Status> {
        let rv = q.non_empty("resourceVersion");
        let rv_match = q.non_empty("resourceVersionMatch");
        let send_initial = q.get("sendInitialEvents").map(|v| v == "true" || v == "1");
        let bookmarks = q.flag("allowWatchBookmarks");
        let parse_rv = |rv: &str| {
            rv.parse::<u64>().map_err(|_| {
                Status::bad_request(format!(
                    "resourceVersion: Invalid value: \"{rv}\": must be an integer"
                ))
            })
        };
        let timeout = match q.non_empty("timeoutSeconds") {
            None => None,
            Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                Status::bad_request(format!("timeoutSeconds: Invalid value: \"{t}\""))
            })?)),
        };
        let mut p = WatchParams {
            from: WatchFrom::Now { initial: true },
            min_rv: None,
            bookmarks,
            initial_events_end: false,
            timeout: timeout.filter(|t| !t.is_zero()),
        };
        if let Some(send) = send_initial {
            if rv_match != Some("NotOlderThan") {
                return Err(Status::bad_request(
                    "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if send && !bookmarks {
                return Err(Status::bad_request(
                    "allowWatchBookmarks: Required value: allowWatchBookmarks must be set to true when sendInitialEvents is set",
                ));
            }
            let n = rv.map(parse_rv).transpose()?;
            if send {
                p.from = WatchFrom::Now { initial: true };
                p.min_rv = n.filter(|n| *n > 0);
                p.initial_events_end = true;
            } else {
                p.from = match n {
                    Some(n) if n > 0 => WatchFrom::Rv(n),
                    _ => WatchFrom::Now { initial: false },
                };
            }
            return Ok(p);
        }
        if rv_match.is_some() {
            return Err(Status::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        p.from = match rv {
            None | Some("0") => WatchFrom::Now { initial: true },
            Some(n) => WatchFrom::Rv(parse_rv(n)?),
        };
        Ok(p)
    }
}

/// The Table format a watch answers with (`kubectl get -w`).
#[derive(Clone, Copy, Debug)]
pub struct TableFormat {
    pub version: &'static str,
    pub include: IncludeObject,
}

/// Everything a watch task needs.
pub struct WatchCtx {
    pub store: Arc<Store>,
    pub rt: ResourceType,
    pub gr: Gr,
    pub filter: Filter,
    pub params: WatchParams,
    pub table: Option<TableFormat>,
    /// The CRD's printer columns for a custom type (Table output).
    pub printer_columns: Option<Vec<Value>>,
    pub bookmark_interval: Duration,
    pub shutdown: watch::Receiver<bool>,
}

/// Opens the watch and answers 200 with a streaming body (or a Status when it can't start).
pub fn respond(ctx: WatchCtx) -> Response<SimBody> {
    if let Some(min) = ctx.params.min_rv {
        let current = ctx.store.current_rv();
        if min > current {
            return http_util::status(super::list::too_large(min, current));
        }
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    match ctx
        .store
        .watch(&ctx.gr, ctx.filter.clone(), ctx.params.from)
    {
        Ok(start) => {
            tokio::spawn(run(ctx, start, tx));
        }
        Err(ReadError::Compacted { requested, oldest }) => {
            // The apiserver answers 200 and sends one ERROR event with a 410 Status.
            let st = Status::failure(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {requested} ({oldest})"),
            );
            let line = event_line("ERROR", &st.to_bytes());
            let _ = tx.try_send(line);
        }
        Err(ReadError::TooLarge { requested, current }) => {
            return http_util::status(super::list::too_large(requested, current));
        }
    }
    let mut resp = Response::new(http_util::channel_body(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn run(mut ctx: WatchCtx, start: super::store::WatchStart, out: mpsc::Sender<Bytes>) {
    let deadline = ctx.params.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last_rv = start.rv;
    for ev in &start.replay {
        if out.send(ctx.encode(ev)).await.is_err() {
            return;
        }
    }
    if ctx.params.initial_events_end && out.send(ctx.bookmark(start.rv, true)).await.is_err() {
        return;
    }
    if let Some(last) = start.replay.last() {
        last_rv = last_rv.max(last.obj.rv);
    }
    drop(start.replay);
    let mut rx = start.rx;
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + ctx.bookmark_interval,
        ctx.bookmark_interval.max(Duration::from_millis(1)),
    );
    let sleep_until = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until);
    loop {
        let line = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    last_rv = last_rv.max(ev.obj.rv);
                    ctx.encode(&ev)
                }
                // The store closed us: too slow, or shutting down.
                None => break,
            },
            _ = ticks.tick(), if ctx.params.bookmarks => ctx.bookmark(last_rv, false),
            _ = &mut sleep_until => break,
            _ = ctx.shutdown.changed() => break,
            _ = out.closed() => break,
        };
        if out.send(line).await.is_err() {
            break;
        }
    }
}

impl WatchCtx {
    fn encode(&self, ev: &WatchEvent) -> Bytes {
        let ty = ev.kind.as_str();
        match self.table {
            None => event_line(ty, &ev.obj.json),
            Some(t) => {
                let md = json!({"resourceVersion": ev.obj.rv.to_string()});
                let tbl = table::table_of(
                    &self.rt,
                    self.printer_columns.as_deref(),
                    &[ev.obj.value()],
                    md,
                    t.include,
                    t.version,
                    jiff::Timestamp::now().as_second(),
                );
                if tbl.is_null() {
                    return event_line(ty, &ev.obj.json);
                }
                event_line(ty, &Bytes::from(tbl.to_string()))
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut md = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            md["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj: Value = json!({
            "kind": self.rt.kind,
            "apiVersion": self.rt.api_version(),
            "metadata": md,
        });
        event_line("BOOKMARK", &Bytes::from(obj.to_string()))
    }
}

fn event_line(ty: &str, obj: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(obj.len() + 32);
    b.put_slice(b"{\"type\":\"");
    b.put_slice(ty.as_bytes());
    b.put_slice(b"\",\"object\":");
    b.put_slice(obj);
    b.put_slice(b"}\n");
    b.freeze()
}
