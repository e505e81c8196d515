//! OpenTelemetry OTLP metrics: the ledger's top identities pushed to a collector over
//! OTLP/HTTP (protobuf) every interval, when `cost.otlpEndpoint` is set.
//!
//! The instruments are observable counters read from the ledger at each export, with the same
//! bounded `client` attribute as the Prometheus text (top identities, the rest `other`). The
//! reader runs on kubeguard's own tokio runtime; the exporter posts with hyper (plain HTTP: a
//! collector beside kubeguard).

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;
use tokio::sync::watch;

use super::ledger::{Counters, Ledger, LedgerSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("cost.otlpEndpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
}

type U64Field = fn(&Counters) -> u64;
type F64Field = fn(&Counters) -> f64;

const U64_COUNTERS: [(&str, &str, &str, U64Field); 10] = [
    (
        "kubeguard.client.requests",
        "{request}",
        "Requests per client.",
        |c| c.requests,
    ),
    (
        "kubeguard.client.errors",
        "{request}",
        "Failed requests per client.",
        |c| c.errors,
    ),
    (
        "kubeguard.client.throttled",
        "{request}",
        "Requests answered 429 by a kubeguard limit.",
        |c| c.throttled,
    ),
    (
        "kubeguard.client.blocked",
        "{request}",
        "Requests refused by a guard.",
        |c| c.blocked,
    ),
    (
        "kubeguard.client.rewritten",
        "{request}",
        "Requests forwarded with a rewritten query.",
        |c| c.rewritten,
    ),
    (
        "kubeguard.client.request.body.size",
        "By",
        "Request body bytes received.",
        |c| c.bytes_in,
    ),
    (
        "kubeguard.client.response.body.size",
        "By",
        "Response body bytes sent.",
        |c| c.bytes_out,
    ),
    (
        "kubeguard.client.items",
        "{object}",
        "Objects returned.",
        |c| c.items,
    ),
    (
        "kubeguard.client.etcd.objects_read",
        "{object}",
        "Objects read from etcd (estimated).",
        |c| c.etcd_objects_read,
    ),
    (
        "kubeguard.client.etcd.objects_avoided",
        "{object}",
        "etcd reads avoided by rewrites.",
        |c| c.etcd_objects_avoided,
    ),
];

const F64_COUNTERS: [(&str, &str, F64Field); 3] = [
    (
        "kubeguard.client.upstream.duration",
        "Upstream time spent on the client's requests.",
        |c| c.upstream_seconds,
    ),
    (
        "kubeguard.client.watch.duration",
        "Time the client's watches stayed open.",
        |c| c.watch_seconds,
    ),
    (
        "kubeguard.client.exec.duration",
        "Time the client's exec/attach/port-forward streams stayed open.",
        |c| c.exec_seconds,
    ),
];

/// The URL metrics are posted to: the endpoint as given when it names a path, else with the
/// OTLP/HTTP default path `/v1/metrics`.
fn metrics_url(endpoint: &str) -> Result<String, OtlpError> {
    let uri = collector_uri(endpoint)?;
    Ok(match uri.path() {
        "" | "/" => format!("{}/v1/metrics", endpoint.trim_end_matches('/')),
        _ => endpoint.to_string(),
    })
}

/// `cost.otlpEndpoint` parsed: an `http://` URL (OTLP/HTTP to a collector beside kubeguard).
pub(crate) fn collector_uri(endpoint: &str) -> Result<http::Uri, OtlpError> {
    let uri: http::Uri = endpoint.parse().map_err(|e| OtlpError::Endpoint {
        endpoint: endpoint.into(),
        message: format!("not a URL: {e}"),
    })?;
    if uri.scheme_str() != Some("http") {
        return Err(OtlpError::Endpoint {
            endpoint: endpoint.into(),
            message: "must be an http:// URL (OTLP/HTTP to a collector beside kubeguard)".into(),
        });
    }
    Ok(uri)
}

/// Starts pushing the ledger to `endpoint` every `interval`. Must run inside kubeguard's
/// multi-threaded tokio runtime.
pub fn start(
    endpoint: &str,
    interval: Duration,
    ledger: Arc<Ledger>,
    top: usize,
) -> Result<SdkMeterProvider, OtlpError> {
    let exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(metrics_url(endpoint)?)
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OtlpError::Endpoint {
            endpoint: endpoint.into(),
            message: e.to_string(),
        })?;
    let reader = PeriodicReader::builder(exporter, Tokio)
        .with_interval(interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_resource(Resource::builder().with_service_name("kubeguard").build())
        .with_reader(reader)
        .build();
    register(&provider.meter("kubeguard"), ledger, top);
    Ok(provider)
}

fn observe_all<T>(
    snap: &LedgerSnapshot,
    mut observe: impl FnMut(T, &[KeyValue]),
    f: impl Fn(&Counters) -> T,
) {
    for c in &snap.clients {
        observe(f(&c.totals), &[KeyValue::new("client", c.identity.clone())]);
    }
    observe(
        f(&snap.other),
        &[KeyValue::new("client", super::ledger::OTHER)],
    );
}

fn register(meter: &Meter, ledger: Arc<Ledger>, top: usize) {
    for (name, unit, help, field) in U64_COUNTERS {
        let ledger = ledger.clone();
        // Instruments live as long as the provider: the handle need not be kept.
        let _ = meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(help)
            .with_callback(move |o| {
                observe_all(&ledger.snapshot(Some(top)), |v, kv| o.observe(v, kv), field)
            })
            .build();
    }
    for (name, help, field) in F64_COUNTERS {
        let ledger = ledger.clone();
        let _ = meter
            .f64_observable_counter(name)
            .with_unit("s")
            .with_description(help)
            .with_callback(move |o| {
                observe_all(&ledger.snapshot(Some(top)), |v, kv| o.observe(v, kv), field)
            })
            .build();
    }
}

/// Waits for shutdown, then flushes a last export and stops the reader.
pub async fn run_until_shutdown(provider: SdkMeterProvider, mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
    // The SDK's shutdown blocks until the final export is done: keep it off the async workers.
    let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    if let Ok(Err(e)) = result {
        tracing::warn!(error = %e, "OTLP metrics: final export failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_default_metrics_path() {
        assert_eq!(
            metrics_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            metrics_url("http://c:4318/custom/v1/metrics").unwrap(),
            "http://c:4318/custom/v1/metrics"
        );
        assert!(metrics_url("https://c:4318").is_err());
        assert!(metrics_url("not a url").is_err());
    }
}
