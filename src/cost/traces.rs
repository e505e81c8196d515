//! OpenTelemetry OTLP traces: one span per request (client, verb, resource, decision, code,
//! bytes, items), posted over OTLP/HTTP (protobuf) to `cost.otlpEndpoint` at `/v1/traces`.
//!
//! The span is made from the ledger record, when the request's record is written
//! ([`Ledger::record`](super::Ledger::record)): no proxy code of its own, and no work at all
//! when traces are off (one atomic load). When on, a record is copied into a bounded queue with
//! `try_send`; a full queue drops the span and counts it (`kubeguard_trace_spans_dropped_total`),
//! so a slow collector never holds up or grows the proxy. One task drains the queue in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::InstrumentationScope;
use opentelemetry::KeyValue;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::{mpsc, watch};

use super::otlp::OtlpError;
use super::record::CostRecord;

/// Spans sent in one export at most.
const BATCH: usize = 512;
/// How long a span waits for its batch to fill.
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// Where the ledger offers each record as a span.
#[derive(Debug)]
pub struct TraceSink {
    tx: mpsc::Sender<CostRecord>,
    dropped: AtomicU64,
    exported: AtomicU64,
}

impl TraceSink {
    /// Queues `r` as a span; drops it (counted) when the queue is full.
    pub fn offer(&self, r: &CostRecord) {
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(r.clone()),
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Spans dropped because the queue was full (or the exporter had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spans handed to the exporter.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// The Prometheus text of the sink's counters.
    pub fn prometheus_text(&self) -> String {
        format!(
            "# HELP kubeguard_trace_spans_dropped_total Request spans dropped: the trace queue was full.\n\
             # TYPE kubeguard_trace_spans_dropped_total counter\nkubeguard_trace_spans_dropped_total {}\n\
             # HELP kubeguard_trace_spans_exported_total Request spans handed to the OTLP exporter.\n\
             # TYPE kubeguard_trace_spans_exported_total counter\nkubeguard_trace_spans_exported_total {}\n",
            self.dropped(),
            self.exported()
        )
    }
}

/// The URL spans are posted to: the endpoint's `/v1/metrics` path swapped for `/v1/traces`, or
/// `/v1/traces` added when it names no path.
fn traces_url(endpoint: &str) -> Result<String, OtlpError> {
    let uri = super::otlp::collector_uri(endpoint)?;
    Ok(match uri.path() {
        "" | "/" => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
        p => match p.strip_suffix("/v1/metrics") {
            Some(prefix) => format!(
                "{}://{}{prefix}/v1/traces",
                uri.scheme_str().unwrap_or("http"),
                uri.authority().map_or("", |a| a.as_str())
            ),
            None => endpoint.to_string(),
        },
    })
}

/// Starts the exporter task; returns the sink the ledger offers records to. Must run inside
/// kubeguard's tokio runtime.
pub fn start(
    endpoint: &str,
    queue: usize,
    shutdown: watch::Receiver<bool>,
) -> Result<(Arc<TraceSink>, impl Future<Output = ()> + Send + 'static), OtlpError> {
    let mut exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint)?)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OtlpError::Endpoint {
            endpoint: endpoint.into(),
            message: e.to_string(),
        })?;
    exporter.set_resource(&Resource::builder().with_service_name("kubeguard").build());
    let (tx, rx) = mpsc::channel(queue.max(1));
    let sink = Arc::new(TraceSink {
        tx,
        dropped: AtomicU64::new(0),
        exported: AtomicU64::new(0),
    });
    Ok((sink.clone(), run(exporter, rx, sink, shutdown)))
}

async fn run(
    exporter: SpanExporter,
    mut rx: mpsc::Receiver<CostRecord>,
    sink: Arc<TraceSink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scope = InstrumentationScope::builder("kubeguard").build();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n == 0,
            _ = shutdown.wait_for(|s| *s) => true,
        };
        // Give a small batch a moment to fill, unless stopping.
        if !stopping && batch.len() < BATCH {
            let _ = tokio::time::timeout(BATCH_DELAY, async {
                while batch.len() < BATCH {
                    let room = BATCH - batch.len();
                    if rx.recv_many(&mut batch, room).await == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        if stopping {
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
        }
        if !batch.is_empty() {
            let spans: Vec<SpanData> = batch.drain(..).map(|r| span(&r, &scope)).collect();
            let n = spans.len() as u64;
            match exporter.export(spans).await {
                Ok(()) => {
                    sink.exported.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => {
                    sink.dropped.fetch_add(n, Ordering::Relaxed);
                    tracing::debug!(error = %e, "OTLP traces: export failed");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// What the decide step did, as the span's `kubeguard.decision`.
fn decision(r: &CostRecord) -> &'static str {
    if r.throttled {
        "throttle"
    } else if r.blocked {
        "block"
    } else if r.rewritten {
        "rewrite"
    } else {
        "forward"
    }
}

/// One request's span (OpenTelemetry HTTP semantic conventions where they exist).
fn span(r: &CostRecord, scope: &InstrumentationScope) -> SpanData {
    let end = SystemTime::now();
    let start = end.checked_sub(r.duration).unwrap_or(end);
    let context = SpanContext::new(
        TraceId::from_bytes(rand::random()),
        SpanId::from_bytes(rand::random()),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let attributes = vec![
        KeyValue::new("kubeguard.client", r.identity.clone()),
        KeyValue::new("kubeguard.verb", r.verb),
        KeyValue::new("kubeguard.resource", r.resource.clone()),
        KeyValue::new("kubeguard.decision", decision(r)),
        KeyValue::new("http.response.status_code", i64::from(r.code)),
        KeyValue::new("http.response.body.size", clamp(r.bytes_out)),
        KeyValue::new("http.request.body.size", clamp(r.bytes_in)),
        KeyValue::new("kubeguard.items", clamp(r.items)),
        KeyValue::new("kubeguard.etcd_objects_read", clamp(r.etcd_objects_read)),
    ];
    SpanData {
        span_context: context,
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: format!("{} {}", r.verb, r.resource).into(),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: if r.code >= 500 {
            Status::error("")
        } else {
            Status::Unset
        },
        instrumentation_scope: scope.clone(),
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Verb;

    #[test]
    fn traces_go_beside_the_metrics_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/otlp/v1/metrics").unwrap(),
            "http://c:4318/otlp/v1/traces"
        );
        assert!(traces_url("https://c:4318").is_err());
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, _rx) = mpsc::channel(2);
        let sink = TraceSink {
            tx,
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
        };
        let r = CostRecord::new("alice", Verb::List, "pods");
        for _ in 0..5 {
            sink.offer(&r);
        }
        assert_eq!(sink.dropped(), 3);
    }

    #[test]
    fn the_span_carries_the_request() {
        let mut r = CostRecord::new("alice", Verb::List, "pods");
        r.code = 429;
        r.throttled = true;
        r.items = 7;
        let s = span(&r, &InstrumentationScope::builder("kubeguard").build());
        assert_eq!(s.name, "list pods");
        let get = |k: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("kubeguard.client").as_deref(), Some("alice"));
        assert_eq!(get("kubeguard.decision").as_deref(), Some("throttle"));
        assert_eq!(get("http.response.status_code").as_deref(), Some("429"));
        assert_eq!(get("kubeguard.items").as_deref(), Some("7"));
    }
}
