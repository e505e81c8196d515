//! kubeguard's own endpoints, on a listener apart from the Kubernetes API (whose `/metrics` and
//! `/healthz` are the apiserver's): `/healthz`, `/readyz` (the upstream answers), `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::cost::Accounting;
use crate::metrics::Metrics;
use crate::proxy::ProxyBody;
use crate::upstream::{Upstream, error_chain};

/// How long a readiness answer is reused, so probes and scrapes cannot flood the upstream.
const READY_CACHE: Duration = Duration::from_secs(1);
const READY_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Admin {
    metrics: Arc<Metrics>,
    upstream: Upstream,
    accounting: Option<Arc<Accounting>>,
    ready: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Admin {
    pub fn new(metrics: Arc<Metrics>, upstream: Upstream) -> Self {
        Admin {
            metrics,
            upstream,
            accounting: None,
            ready: Mutex::new(None),
        }
    }

    /// Adds the cost ledger: `kubeguard_client_*` on `/metrics`, JSON at `/debug/costs`.
    pub fn with_accounting(mut self, accounting: Arc<Accounting>) -> Self {
        self.accounting = Some(accounting);
        self
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<crate::upstream::RequestBody>,
    ) -> Response<ProxyBody> {
        match req.uri().path() {
            "/healthz" | "/livez" => text(StatusCode::OK, "ok".into()),
            "/readyz" => match self.upstream_ready().await {
                Ok(()) => match self.accounting.as_ref().and_then(|a| a.readiness_detail()) {
                    Some(detail) => text(StatusCode::OK, format!("ok\n{detail}\n")),
                    None => text(StatusCode::OK, "ok".into()),
                },
                Err(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("upstream not reachable: {why}"),
                ),
            },
            "/debug/costs" => match &self.accounting {
                Some(a) => crate::cost::export::debug_costs(&a.ledger, req.uri().query()),
                None => text(StatusCode::NOT_FOUND, "cost accounting is off".into()),
            },
            "/metrics" => {
                let mut body = self.metrics.encode();
                if let Some(a) = &self.accounting {
                    // Before the OpenMetrics `# EOF` marker, which must stay last.
                    let eof = body.strip_suffix("# EOF\n").map(str::len);
                    if let Some(n) = eof {
                        body.truncate(n);
                    }
                    body.push_str(&a.prometheus_text());
                    if eof.is_some() {
                        body.push_str("# EOF\n");
                    }
                }
                let mut resp = text(StatusCode::OK, body);
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: kubeguard's admin listener serves /healthz, /readyz, /metrics and /debug/costs"
                    .into(),
            ),
        }
    }

    /// Ready when the upstream answers anything at all over HTTP (even 401: it is up).
    async fn upstream_ready(&self) -> Result<(), String> {
        if let Ok(cached) = self.ready.lock()
            && let Some((at, result)) = cached.as_ref()
            && at.elapsed() < READY_CACHE
        {
            return result.clone();
        }
        let result = self
            .upstream
            .get_own("/readyz", READY_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(|e| error_chain(&e));
        if let Ok(mut cached) = self.ready.lock() {
            *cached = Some((Instant::now(), result.clone()));
        }
        result
    }
}

fn text(code: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::from(bytes::Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
