//! The request pipeline: classify → prepare headers and credentials → forward → stream back.
//!
//! `Proxy::handle` is the one function a request goes through; each step is a named function
//! below it, in the order it runs: classify → identify → decide (policy and guards: rewrite,
//! throttle, block, or only report in shadow mode) → forward → stream back, each body chunk fed
//! to the response scanner (`observe/`) as it passes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::cost::limits_config::LimitMode;
use crate::cost::{
    Accounting, CostRecord, Estimate, InflightCap, InflightPermit, Permit, Refusal, RequestClass,
    UpgradeEnded,
};
use crate::guards::{Decision, GuardCtx, Verdict};
use crate::identity::{Authenticator, Caller, Identity, UpstreamAuth};
use crate::metrics::{ErrorLabels, Metrics, Route};
use crate::observe::{BodyKind, Scanner};
use crate::policy::engine::PolicyEngine;
use crate::request::{ApiRequest, Target, Verb, classify};
use crate::status::Status;
use crate::upstream::{RequestBody, Upstream, UpstreamBody, UpstreamError, error_chain};

/// What a client connection tells the pipeline about itself.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The connection came in on a loopback listener (sidecar / local use).
    pub loopback_listener: bool,
    pub tls: bool,
    /// The client certificate (DER) the TLS layer verified against `identity.clientCA`.
    pub peer_cert: Option<Arc<[u8]>>,
    /// The bearer token the connection's requests carry, hashed and named once.
    pub tokens: crate::identity::TokenMemo,
}

/// When kubeguard lends its own upstream credentials to a request that carries none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OwnCredentials {
    /// Only for connections on a loopback listener (a sidecar, or `kubectl proxy`-style local use).
    /// A client reaching kubeguard over the network never borrows its identity.
    #[default]
    LoopbackOnly,
    /// Never: a request without credentials goes upstream anonymous.
    Never,
}

/// Settings of the pipeline that are not per request.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// How long a short (not long-running) request may wait for the upstream's response headers.
    pub response_header_timeout: Duration,
    /// How long an upgrade may take to connect and get its answer.
    pub upgrade_timeout: Duration,
    pub own_credentials: OwnCredentials,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            // The apiserver's own request timeout is 60 s; answer 504 a little after it would.
            response_header_timeout: Duration::from_secs(70),
            upgrade_timeout: Duration::from_secs(30),
            own_credentials: OwnCredentials::default(),
        }
    }
}

/// The proxy: shared by every connection.
pub struct Proxy {
    upstream: Upstream,
    metrics: Arc<Metrics>,
    settings: ProxySettings,
    engine: Arc<PolicyEngine>,
    inflight_cap: Option<Arc<InflightCap>>,
    /// The per-client ledger and limits (cost/), when configured.
    accounting: Option<Arc<Accounting>>,
    auth: Arc<Authenticator>,
}

impl Proxy {
    pub fn new(
        upstream: Upstream,
        metrics: Arc<Metrics>,
        settings: ProxySettings,
        engine: Arc<PolicyEngine>,
    ) -> Self {
        // Identity checks off until `with_authenticator` (the `identity:` config section).
        let auth = Arc::new(Authenticator::new(
            Default::default(),
            upstream.clone(),
            metrics.identity.clone(),
        ));
        Proxy {
            upstream,
            metrics,
            settings,
            engine,
            inflight_cap: None,
            accounting: None,
            auth,
        }
    }

    /// Sheds requests past `cap` with 429 (`limits.maxInflight`).
    pub fn with_inflight_cap(mut self, cap: Arc<InflightCap>) -> Self {
        self.inflight_cap = Some(cap);
        self
    }

    /// Records every request in `accounting`'s ledger and applies its per-client limits.
    pub fn with_accounting(mut self, accounting: Arc<Accounting>) -> Self {
        self.accounting = Some(accounting);
        self
    }

    /// Identifies callers with `auth` (the `identity:` config section).
    pub fn with_authenticator(mut self, auth: Arc<Authenticator>) -> Self {
        self.auth = auth;
        self
    }

    pub fn engine(&self) -> &Arc<PolicyEngine> {
        &self.engine
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Whole-process protection, before any further work or memory is spent on a request:
    /// past the caps it is answered 429 + Retry-After (k8s-facts §2). Long-running requests
    /// have a cap of their own instead of maxInflight (`cost/inflight.rs`). The permit must be
    /// kept until the response body is sent or dropped, or an upgrade's connection closes.
    pub(crate) fn admit(
        &self,
        api: Option<&ApiRequest>,
    ) -> Result<Option<InflightPermit>, crate::cost::Throttle> {
        let Some(cap) = &self.inflight_cap else {
            return Ok(None);
        };
        cap.admit(RequestClass::of(api)).map(Some)
    }

    /// Serves one request. Never fails: every error becomes a Kubernetes `Status` response.
    ///
    /// This and the steps it awaits are functions that return an `async move` block rather than
    /// `async fn`s: an `async fn` keeps each argument twice in its future (as given, and as the
    /// local it is moved to), and every request's future is copied once per layer as it is built.
    #[allow(clippy::manual_async_fn)]
    pub fn handle(
        self: Arc<Self>,
        req: Request<RequestBody>,
        conn: Arc<ConnInfo>,
    ) -> impl Future<Output = Response<ProxyBody>> {
        async move {
            let start = Instant::now();
            let _inflight = InflightGuard::new(&self.metrics);
            // Classify, shed, identify (the identity selects policy rules, decides the upstream
            // credentials, and is what the ledger and the log record).
            let Admitted {
                api,
                caller,
                admitted,
                audit_id,
            } = match self
                .admit_request(
                    req.method(),
                    req.uri().path(),
                    req.uri().query(),
                    req.headers(),
                    &conn,
                    start,
                )
                .await
            {
                Ok(a) => a,
                Err(answer) => return answer,
            };
            let (mut resp, outcome) = self
                .decide_and_forward(&api, &caller, &audit_id, req, &conn)
                .await;
            // The admission slot is kept until the response body is sent or dropped (for a watch
            // or log stream: until the stream ends), or until an upgrade's bridged connection
            // closes.
            if let ProxyBody::Upstream { meter, .. } = resp.body_mut() {
                meter.admitted = admitted;
            } else if let (Some(permit), Some(ended)) =
                (admitted, resp.extensions().get::<UpgradeEnded>())
            {
                ended.clone().hold_until_closed(permit);
            }
            self.conclude(Some(&api), Some(&caller), &audit_id, resp, outcome, start)
        }
    }

    /// `handle` up to the decide step (also for a request the HTTP/1.1 front end, `front/`,
    /// reads itself): classify, admit, identify. Answers kubeguard gives itself come back complete
    /// (Audit-ID, ledger, metrics).
    pub(crate) async fn admit_request(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        conn: &ConnInfo,
        start: Instant,
    ) -> Result<Admitted, Response<ProxyBody>> {
        let classified = classify(method, path, query);
        let admitted = match self.admit(classified.as_ref().ok()) {
            Ok(admitted) => admitted,
            Err(shed) => return Err(shed.to_status().into_response()),
        };
        let audit_id = crate::identity::audit_id(headers);
        let api = match classified {
            Ok(api) => api,
            Err(e) => {
                self.count_error("classify");
                let mut resp: Response<ProxyBody> =
                    Status::bad_request(e.to_string()).into_response();
                resp.headers_mut().insert(
                    crate::policy::engine::DECISION_HEADER.clone(),
                    HeaderValue::from_static("forward"),
                );
                return Err(self.conclude(None, None, &audit_id, resp, None, start));
            }
        };
        match self.auth.identify(headers, conn).await {
            Ok(caller) => Ok(Admitted {
                api,
                caller,
                admitted,
                audit_id,
            }),
            Err(e) => {
                let resp = e.status().into_response();
                Err(self.conclude(Some(&api), None, &audit_id, resp, None, start))
            }
        }
    }

    /// The most of a request body a guard reads before deciding, when one must see it.
    pub(crate) fn guard_body_limit(&self, api: &ApiRequest) -> Option<usize> {
        self.engine.guards.body_limit(api)
    }

    /// The answer to a body larger than a guard reads (as `read_body_for_guards` gives it).
    pub(crate) fn body_too_large(
        &self,
        a: Admitted,
        limit: usize,
        start: Instant,
    ) -> Response<ProxyBody> {
        let resp = Status::failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("kubeguard: request body not read: length limit exceeded ({limit} bytes)"),
        )
        .into_response();
        self.conclude(
            Some(&a.api),
            Some(&a.caller),
            &a.audit_id,
            resp,
            None,
            start,
        )
    }

    /// The decide step for an admitted request of the front end; `body` when a guard needed it.
    pub(crate) async fn decide_admitted(
        &self,
        a: Admitted,
        headers: &HeaderMap,
        query: Option<&str>,
        body: Option<&Bytes>,
        start: Instant,
    ) -> Prepared {
        match self.decide(&a.api, &a.caller, headers, query, body).await {
            Decided::Answer(resp, outcome) => Prepared::Answer(self.conclude(
                Some(&a.api),
                Some(&a.caller),
                &a.audit_id,
                resp,
                outcome,
                start,
            )),
            Decided::Forward(fwd) => Prepared::Forward(Prepared1 {
                api: a.api,
                caller: a.caller,
                fwd,
                admitted: a.admitted,
                audit_id: a.audit_id,
            }),
        }
    }

    /// An answer of kubeguard's own to a request the decide step let through (the upstream
    /// failed): decision headers, Audit-ID, ledger and metrics, as `handle` gives it.
    pub(crate) fn failed_forward(
        &self,
        p: Prepared1,
        resp: Response<ProxyBody>,
        start: Instant,
    ) -> Response<ProxyBody> {
        let (resp, outcome) = self.finish(&p.caller.identity, &p.api, p.fwd, resp);
        self.conclude(
            Some(&p.api),
            Some(&p.caller),
            &p.audit_id,
            resp,
            Some(outcome),
            start,
        )
    }

    /// The last steps of every answer: the Audit-ID (the apiserver echoes the one it was given;
    /// kubeguard's own answers carry it too), the ledger record (with what the decide step did,
    /// when it ran), the metrics and log line.
    fn conclude(
        &self,
        api: Option<&ApiRequest>,
        caller: Option<&Caller>,
        audit_id: &HeaderValue,
        mut resp: Response<ProxyBody>,
        outcome: Option<Outcome>,
        start: Instant,
    ) -> Response<ProxyBody> {
        resp.headers_mut()
            .entry(AUDIT_ID)
            .or_insert(audit_id.clone());
        self.account(api, caller, &mut resp, outcome, start);
        self.observe(api, caller, audit_id, resp, start)
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub(crate) fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    /// Account: one ledger record per request, written when its body ends or is dropped (for a
    /// streamed answer, with the bytes and items that passed) or at once for kubeguard's own
    /// answers. Throttled and blocked requests are recorded too.
    fn account(
        &self,
        api: Option<&ApiRequest>,
        caller: Option<&Caller>,
        resp: &mut Response<ProxyBody>,
        outcome: Option<Outcome>,
        start: Instant,
    ) {
        let Some((mut record, ledger)) =
            self.cost_record(api, caller, resp.status(), outcome, start)
        else {
            return;
        };
        let long_running = api.is_some_and(|a| a.is_long_running());
        match resp.body_mut() {
            ProxyBody::Upstream { meter, .. } => {
                meter.record = Some(Box::new(PendingRecord {
                    record,
                    ledger,
                    start,
                    long_running,
                }));
            }
            ProxyBody::Own(full) => {
                record.bytes_out = full.size_hint().exact().unwrap_or(0);
                // An upgrade (exec, attach, port-forward) costs its bridged stream's time.
                match resp.extensions_mut().remove::<UpgradeEnded>() {
                    Some(ended) => ended.record_when_closed(record, ledger, start),
                    None => {
                        record.duration = start.elapsed();
                        ledger.record(&record);
                    }
                }
            }
        }
    }

    /// The ledger record of a request (completed when its body ends), when accounting is on.
    fn cost_record(
        &self,
        api: Option<&ApiRequest>,
        caller: Option<&Caller>,
        status: StatusCode,
        outcome: Option<Outcome>,
        start: Instant,
    ) -> Option<(CostRecord, Arc<crate::cost::Ledger>)> {
        let accounting = self.accounting.as_ref()?;
        let user = caller.map_or_else(
            || crate::identity::unverified_name(&HeaderMap::new()),
            |c| c.identity.user.clone(),
        );
        let verb = api.map_or(Verb::Other, |a| a.verb);
        let resource = api.map_or("invalid", |a| a.resource_label());
        let mut record = CostRecord::new(user, verb, resource.to_string());
        record.code = status.as_u16();
        record.upstream_ttfb = start.elapsed();
        record.error = status.is_client_error() || status.is_server_error();
        if let Some(outcome) = outcome {
            record.rewritten = outcome.rewritten;
            record.throttled = outcome.throttled;
            record.blocked = outcome.blocked;
            record.etcd_objects_read = outcome.estimate.etcd_objects;
            record.etcd_objects_avoided = outcome.etcd_avoided;
        }
        Some((record, accounting.ledger.clone()))
    }

    /// The meter of an upstream answer the HTTP/1.1 front end (`front/`) streams itself: what
    /// `stream_back`, `finish` and `account` give a hyper response body, in one value. The
    /// front end feeds it each body segment ([`Meter::data`]) and says when the body ended.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn upstream_meter(
        &self,
        api: &ApiRequest,
        caller: &Caller,
        status: StatusCode,
        content_type: Option<&str>,
        fwd: Forwarding,
        admitted: Option<InflightPermit>,
        start: Instant,
    ) -> Meter {
        let long_running = api.is_long_running();
        let record = self
            .cost_record(Some(api), Some(caller), status, Some(fwd.outcome), start)
            .map(|(record, ledger)| {
                Box::new(PendingRecord {
                    record,
                    ledger,
                    start,
                    long_running,
                })
            });
        Meter {
            route: self.metrics.route(api.verb.as_str(), api.resource_label()),
            bytes: 0,
            scan: self.scan_job(api, &caller.identity, status, content_type),
            record,
            permit: fwd.permit,
            admitted,
            end_cleanly: stream_ends_cleanly(api),
        }
    }

    /// The scan of a LIST or watch answered 200 (`observe/`).
    fn scan_job(
        &self,
        api: &ApiRequest,
        identity: &Identity,
        status: StatusCode,
        content_type: Option<&str>,
    ) -> Option<Box<ScanJob>> {
        (status == StatusCode::OK
            && matches!(api.verb, Verb::List | Verb::Watch)
            && matches!(api.target, Target::Resource(_)))
        .then(|| {
            Box::new(ScanJob {
                scanner: Scanner::new(BodyKind::from_content_type(
                    content_type,
                    api.verb == Verb::Watch,
                )),
                engine: self.engine.clone(),
                api: api.clone(),
                user: identity.user.clone(),
                complete: false,
            })
        })
    }

    /// The estimate of what this request costs the apiserver (k8s-facts §2), from the upstream's
    /// version and the collection sizes learned from earlier responses.
    fn estimate(&self, api: &ApiRequest) -> Estimate {
        let minor = self.engine.facts.minor().unwrap_or(30);
        let learner = &self.engine.learner;
        let sizes = |resource: &str, namespace: Option<&str>| {
            learner
                .collection_size(resource, &crate::observe::scope_key(namespace))
                .map(|s| s.items)
        };
        crate::cost::estimate(api, minor, &sizes)
    }

    /// The per-client limits (cost/limit.rs): enforced, a refusal answers here (429 with an
    /// integer Retry-After, k8s-facts §2); in shadow mode it only becomes a warning.
    async fn check_limits(
        &self,
        identity: &Identity,
        api: &ApiRequest,
        est: &Estimate,
    ) -> LimitCheck {
        let Some(accounting) = &self.accounting else {
            return LimitCheck::Pass(None);
        };
        match accounting.limits.check_shared(identity, api, est).await {
            Ok(permit) => LimitCheck::Pass(Some(permit)),
            Err(refusal) => match accounting.limits.mode() {
                LimitMode::Enforce => LimitCheck::Refuse {
                    throttled: matches!(refusal, Refusal::Throttle(_)),
                    status: Box::new(refusal.to_status()),
                },
                _ => LimitCheck::Warn(refusal.warning()),
            },
        }
    }

    /// Decide, forward, and add to the answer what was decided. (Not an `async fn`: see `handle`.)
    fn decide_and_forward(
        &self,
        api: &ApiRequest,
        caller: &Caller,
        audit_id: &HeaderValue,
        req: Request<RequestBody>,
        conn: &ConnInfo,
    ) -> impl Future<Output = (Response<ProxyBody>, Option<Outcome>)> {
        let (parts, body) = req.into_parts();
        async move {
            let body = match self.read_body_for_guards(api, body).await {
                Ok(body) => body,
                Err(resp) => return (resp, None),
            };
            let decided = {
                let full = match &body {
                    UpstreamBody::Right(full) => full_bytes(full),
                    UpstreamBody::Left(_) => None,
                };
                self.decide(
                    api,
                    caller,
                    &parts.headers,
                    parts.uri.query(),
                    full.as_ref(),
                )
                .await
            };
            match decided {
                Decided::Answer(resp, outcome) => (resp, outcome),
                Decided::Forward(fwd) => {
                    let req = Request::from_parts(parts, body);
                    let resp = self
                        .forward(api, caller, audit_id, fwd.rewrite.as_deref(), req, conn)
                        .await;
                    let (resp, outcome) = self.finish(&caller.identity, api, fwd, resp);
                    (resp, Some(outcome))
                }
            }
        }
    }

    /// Decide: the guards the policy selects look at the request, then the per-client limits
    /// charge what it will cost; an enforced refusal answers it here, an enforced rewrite changes
    /// its query, shadow verdicts only become warnings. `body` is the request body when a guard
    /// needed it read.
    pub(crate) async fn decide(
        &self,
        api: &ApiRequest,
        caller: &Caller,
        headers: &HeaderMap,
        query: Option<&str>,
        body: Option<&Bytes>,
    ) -> Decided {
        let identity: &Identity = &caller.identity;
        let est = self.estimate(api);
        let user_agent = headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The delete guard decides synchronously: what it needs from the upstream is read first.
        let delete_lookup = crate::guards::delete_guard::lookup_if_guarded(
            &self.engine,
            &self.upstream,
            identity,
            api,
            user_agent,
        )
        .await;
        let decisions = {
            let ctx = GuardCtx {
                identity,
                api,
                query,
                headers,
                user_agent,
                body,
                delete_lookup: delete_lookup.as_ref(),
                now: Instant::now(),
            };
            self.engine.decide(&ctx, &self.metrics)
        };
        let refused = decisions.refusal().map(|d| d.verdict.clone());
        let rewrite = decisions.rewrite().map(|r| r.query.clone());
        let mut outcome = Outcome {
            throttled: matches!(refused, Some(Verdict::Throttle { .. })),
            blocked: matches!(refused, Some(Verdict::Block(_))),
            rewritten: refused.is_none() && rewrite.is_some(),
            estimate: if refused.is_some() {
                Estimate::default()
            } else {
                est
            },
            etcd_avoided: 0,
        };
        if refused.is_none() && rewrite.is_some() {
            // Served from the watch cache instead: what the unversioned LIST would have read
            // from etcd is avoided (k8s-facts §1).
            let mut rewritten = api.clone();
            rewritten.options.resource_version = Some("0".into());
            let after = self.estimate(&rewritten);
            outcome.etcd_avoided = est.etcd_objects.saturating_sub(after.etcd_objects);
            outcome.estimate = after;
        }
        // The per-client limits charge what the request will cost as it goes upstream: a LIST
        // the policy serves from the watch cache costs that, not the etcd read it replaced. A
        // request a guard refuses costs nothing and is not charged.
        let (permit, limit_warning) = if refused.is_some() {
            (None, None)
        } else {
            match self.check_limits(identity, api, &outcome.estimate).await {
                LimitCheck::Pass(permit) => (permit, None),
                LimitCheck::Warn(warning) => (None, Some(warning)),
                LimitCheck::Refuse { throttled, status } => {
                    let outcome = Outcome {
                        throttled,
                        blocked: !throttled,
                        estimate: Estimate::default(),
                        ..Outcome::default()
                    };
                    return Decided::Answer((*status).into_response(), Some(outcome));
                }
            }
        };
        let refusal_resp = decisions.refusal().map(refusal);
        let fwd = Forwarding {
            rewrite,
            decisions,
            permit,
            limit_warning,
            outcome,
        };
        match refusal_resp {
            Some(resp) => {
                let (resp, outcome) = self.finish(identity, api, fwd, resp);
                Decided::Answer(resp, Some(outcome))
            }
            None => Decided::Forward(fwd),
        }
    }

    /// Adds to an answer what the decide step concluded: the decision and warning headers
    /// (`X-Kubeguard-Decision`, shadow verdicts) and the expensive-request slot held until the
    /// body ends. Returns it with the outcome the ledger records.
    fn finish(
        &self,
        identity: &Identity,
        api: &ApiRequest,
        fwd: Forwarding,
        mut resp: Response<ProxyBody>,
    ) -> (Response<ProxyBody>, Outcome) {
        let status = resp.status();
        fwd.response_headers(&self.engine, identity, api, status, resp.headers_mut());
        if let ProxyBody::Upstream { meter, .. } = resp.body_mut() {
            // The expensive-request slot is held until the stream ends.
            meter.permit = fwd.permit;
        }
        (resp, fwd.outcome)
    }

    /// A guard that must see the body (the delete guard reads DeleteOptions) gets at most its
    /// limit, read before deciding; a larger body is refused with 413. Every other body streams.
    async fn read_body_for_guards(
        &self,
        api: &ApiRequest,
        body: RequestBody,
    ) -> Result<UpstreamBody, Response<ProxyBody>> {
        let Some(limit) = self.engine.guards.body_limit(api) else {
            return Ok(UpstreamBody::Left(body));
        };
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(UpstreamBody::Right(Full::new(collected.to_bytes()))),
            Err(e) => Err(Status::failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("kubeguard: request body not read: {e}"),
            )
            .into_response()),
        }
    }

    /// Forward: prepares the request for the upstream and sends it on the right client, with
    /// `rewrite` as its query when a guard rewrote it.
    fn forward(
        &self,
        api: &ApiRequest,
        caller: &Caller,
        audit_id: &HeaderValue,
        rewrite: Option<&str>,
        mut req: Request<UpstreamBody>,
        conn: &ConnInfo,
    ) -> impl Future<Output = Response<ProxyBody>> {
        let upgrade = wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let uri = self.upstream_uri(&parts.uri, rewrite);
        // Not an `async fn`: see `handle`.
        async move {
            parts.uri = match uri {
                Ok(uri) => uri,
                Err(e) => return self.upstream_failure(e),
            };
            // The client's HTTP version is a property of its hop; the upstream hop negotiates its
            // own (h2 by ALPN where offered).
            parts.version = http::Version::HTTP_11;
            prepare_request_headers(&mut parts.headers, upgrade);
            parts.headers.insert(AUDIT_ID, audit_id.clone());
            if let Err(e) = self
                .apply_credentials(caller, &mut parts.headers, conn)
                .await
            {
                return e;
            }
            if let Some(client_upgrade) = client_upgrade {
                // Boxed: rare, and its state would otherwise make every request's future larger.
                let upstream_req = Request::from_parts(parts, body);
                return Box::pin(self.forward_upgrade(upstream_req, client_upgrade)).await;
            }
            let long_running = api.is_long_running();
            let timeout = (!long_running).then_some(self.settings.response_header_timeout);
            let sent = match self.upstream.idle_h1() {
                Some(idle) => {
                    crate::front::pooled::send(&self.upstream, idle, &parts, body, timeout)
                        .await
                        .map(|r| r.map(|b| UpstreamIn::Raw(Box::new(b))))
                }
                None => self
                    .upstream
                    .send(Request::from_parts(parts, body), long_running, timeout)
                    .await
                    .map(|r| r.map(UpstreamIn::Hyper)),
            };
            match sent {
                Ok(resp) => self.stream_back(api, &caller.identity, resp),
                Err(e) => self.upstream_failure(e),
            }
        }
    }

    /// The upstream's URI for a request to `uri`, with `rewrite` as its query when a guard
    /// rewrote it.
    fn upstream_uri(
        &self,
        uri: &http::Uri,
        rewrite: Option<&str>,
    ) -> Result<http::Uri, UpstreamError> {
        let original = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let path_and_query = match rewrite {
            Some(q) => {
                PathAndQuery::try_from(format!("{}?{q}", original.path())).unwrap_or(original)
            }
            None => original,
        };
        self.upstream.uri_for(&path_and_query)
    }

    /// Credentials, by what the identity step decided (k8s-facts §2, §4): the caller's own
    /// `Authorization` passed through, or kubeguard's own credentials, with `Impersonate-*`
    /// for the verified identity. Client-sent identity headers are already gone.
    ///
    /// With identity checks off the client's `Authorization` passes through untouched, and a
    /// request without one borrows kubeguard's credentials only where [`OwnCredentials`] allows.
    pub(crate) async fn apply_credentials(
        &self,
        caller: &Caller,
        headers: &mut HeaderMap,
        conn: &ConnInfo,
    ) -> Result<(), Response<ProxyBody>> {
        let impersonate = match caller.upstream {
            UpstreamAuth::Passthrough => return Ok(()),
            UpstreamAuth::Unverified => {
                if headers.contains_key(AUTHORIZATION) {
                    return Ok(());
                }
                match self.settings.own_credentials {
                    OwnCredentials::LoopbackOnly if conn.loopback_listener => {}
                    _ => return Ok(()),
                }
                false
            }
            UpstreamAuth::Own => false,
            UpstreamAuth::Impersonate => true,
        };
        headers.remove(AUTHORIZATION);
        if impersonate {
            crate::identity::add_impersonation(&caller.identity, headers)
                .map_err(|e| e.status().into_response())?;
        }
        match self.upstream.own_authorization().await {
            Ok(Some(value)) => {
                headers.insert(AUTHORIZATION, value);
            }
            Ok(None) => {}
            Err(e) => return Err(self.upstream_failure(e)),
        }
        Ok(())
    }

    /// Upgrades (exec, attach, port-forward; WebSocket or SPDY): bridged only after the upstream
    /// answered 101. Any other answer goes back as it is and both connections close
    /// (CVE-2018-1002105, k8s-facts §4).
    async fn forward_upgrade(
        &self,
        upstream_req: Request<UpstreamBody>,
        client_upgrade: hyper::upgrade::OnUpgrade,
    ) -> Response<ProxyBody> {
        let mut resp = match self
            .upstream
            .send_upgrade(upstream_req, self.settings.upgrade_timeout)
            .await
        {
            Ok(resp) => resp,
            Err(e) => return self.upstream_failure(e),
        };
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let mut out = self.passthrough_response(None, resp.map(UpstreamIn::Hyper), None);
            out.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return out;
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        self.metrics.upgrades.inc();
        let (bridge, ended) = crate::cost::upgrade_channel();
        tokio::spawn(async move {
            let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
                (Ok(c), Ok(u)) => (c, u),
                (c, u) => {
                    tracing::debug!(
                        client_ok = c.is_ok(),
                        upstream_ok = u.is_ok(),
                        "upgrade abandoned"
                    );
                    return;
                }
            };
            let mut client = hyper_util::rt::TokioIo::new(client);
            let mut upstream = hyper_util::rt::TokioIo::new(upstream);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((up, down)) => tracing::debug!(up, down, "upgraded stream closed"),
                Err(e) => tracing::debug!(error = %e, "upgraded stream ended with an error"),
            }
            bridge.closed();
        });
        let (mut parts, _) = resp.into_parts();
        parts.extensions.insert(ended);
        Response::from_parts(parts, ProxyBody::empty())
    }

    /// The upstream's answer, streamed back with hop-by-hop headers removed and bytes counted.
    /// LISTs and watches answered 200 are also scanned as they stream (`observe/`): the
    /// summary feeds the learner when the body ends or is dropped.
    fn stream_back(
        &self,
        api: &ApiRequest,
        identity: &Identity,
        resp: Response<UpstreamIn>,
    ) -> Response<ProxyBody> {
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let scan = self.scan_job(api, identity, resp.status(), content_type);
        self.passthrough_response(Some(api), resp, scan)
    }

    fn passthrough_response(
        &self,
        api: Option<&ApiRequest>,
        resp: Response<UpstreamIn>,
        scan: Option<Box<ScanJob>>,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let route = match api {
            Some(a) => self.metrics.route(a.verb.as_str(), a.resource_label()),
            None => self.metrics.route("other", "other"),
        };
        let meter = Meter {
            route,
            bytes: 0,
            scan,
            record: None,
            permit: None,
            admitted: None,
            end_cleanly: api.is_some_and(stream_ends_cleanly),
        };
        Response::from_parts(parts, ProxyBody::Upstream { body, meter })
    }

    /// Upstream failures, by who is at fault: unreachable → 502, too slow → 504, anything of
    /// kubeguard's own (credentials) → 500.
    pub(crate) fn upstream_failure(&self, e: UpstreamError) -> Response<ProxyBody> {
        let (kind, status) = match &e {
            UpstreamError::Connect(_) => (
                "connect",
                Status::failure(
                    StatusCode::BAD_GATEWAY,
                    "ServiceUnavailable",
                    format!("kubeguard: {}", e),
                ),
            ),
            UpstreamError::Timeout(_) => (
                "timeout",
                Status::failure(
                    StatusCode::GATEWAY_TIMEOUT,
                    "Timeout",
                    format!("kubeguard: {}", e),
                ),
            ),
            UpstreamError::Request(_) => (
                "request",
                Status::failure(
                    StatusCode::BAD_GATEWAY,
                    "ServiceUnavailable",
                    format!("kubeguard: {}", e),
                ),
            ),
            _ => (
                "credentials",
                Status::internal(format!("kubeguard: {}", error_chain(&e))),
            ),
        };
        self.count_error(kind);
        tracing::warn!(error = %error_chain(&e), "upstream request failed");
        status.into_response()
    }

    fn count_error(&self, kind: &'static str) {
        self.metrics
            .upstream_errors
            .get_or_create(&ErrorLabels { kind })
            .inc();
    }

    /// Records the request in the metrics and the request log.
    fn observe(
        &self,
        api: Option<&ApiRequest>,
        caller: Option<&Caller>,
        audit_id: &HeaderValue,
        resp: Response<ProxyBody>,
        start: Instant,
    ) -> Response<ProxyBody> {
        let route = match resp.body() {
            ProxyBody::Upstream { meter, .. } => meter.route.clone(),
            ProxyBody::Own(_) => self.metrics.route(
                api.map_or("other", |a| a.verb.as_str()),
                api.map_or("invalid", |a| a.resource_label()),
            ),
        };
        self.observe_parts(api, caller, audit_id, resp.status(), &route, start);
        resp
    }

    /// [`Proxy::observe`] for a response the front end writes itself.
    pub(crate) fn observe_parts(
        &self,
        api: Option<&ApiRequest>,
        caller: Option<&Caller>,
        audit_id: &HeaderValue,
        status: StatusCode,
        route: &Arc<Route>,
        start: Instant,
    ) {
        let verb = api.map_or("other", |a| a.verb.as_str());
        let resource = api.map_or("invalid", |a| a.resource_label());
        let code = status.as_u16();
        let elapsed = start.elapsed();
        route.duration.observe(elapsed.as_secs_f64());
        // The user only: never a token (tokens are not part of an Identity).
        let user = caller.map_or("-", |c| c.identity.user.as_str());
        tracing::debug!(
            verb,
            resource,
            user,
            audit_id = audit_id.to_str().unwrap_or("-"),
            code,
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
        self.metrics.count_request(route, code);
    }
}

pub(crate) struct InflightGuard<'a>(&'a Metrics);

impl<'a> InflightGuard<'a> {
    pub(crate) fn new(m: &'a Metrics) -> Self {
        m.inflight.inc();
        InflightGuard(m)
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.inflight.dec();
    }
}

pub(crate) const AUDIT_ID: HeaderName = HeaderName::from_static("audit-id");

/// `Connection: upgrade` plus an `Upgrade` header: a WebSocket or SPDY upgrade.
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Headers that describe one hop and never travel further (RFC 9110 §7.6.1).
pub(crate) const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether a header is hop-by-hop by name (RFC 9110 §7.6.1), `Upgrade` included.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// One pass over the names finds what to remove; most requests and responses carry none, so
/// nothing is hashed or moved for them.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut doomed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_hop_by_hop(name) {
            doomed.push(name.clone());
        }
    }
    if doomed.is_empty() {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&doomed) {
        headers.remove(name);
    }
}

/// Request headers for the upstream: hop-by-hop removed (an upgrade keeps `Connection: Upgrade`
/// and `Upgrade`), `Host` left to the client library (it names kubeguard, not the apiserver),
/// and every identity-asserting header a client may try to smuggle removed (k8s-facts §4):
/// `Impersonate-*` and the front-proxy `X-Remote-*`.
fn prepare_request_headers(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_to = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(headers);
    headers.remove(header::HOST);
    strip_identity_headers(headers);
    if let Some(proto) = upgrade_to {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, proto);
    }
}

/// Removes `Impersonate-*` and `X-Remote-*` headers (any case; header names are lowercase).
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    let smuggled = |k: &HeaderName| {
        let k = k.as_str();
        k.starts_with("impersonate-") || k.starts_with("x-remote-")
    };
    if !headers.keys().any(smuggled) {
        return;
    }
    let doomed: Vec<HeaderName> = headers.keys().filter(|k| smuggled(k)).cloned().collect();
    for k in doomed {
        headers.remove(k);
    }
}

/// The caller, until verified identities land: a hash of the bearer token (never the token
/// itself), or `anonymous`. Only used to key per-client state; never trusted.
pub fn identify(headers: &HeaderMap) -> Identity {
    Identity::unverified(crate::identity::unverified_name(headers))
}

/// The answer to an enforced throttle (429 + integer `Retry-After`, k8s-facts §2) or block.
fn refusal(d: &Decision) -> Response<ProxyBody> {
    match &d.verdict {
        Verdict::Throttle {
            retry_after,
            status,
        } => {
            let mut resp: Response<ProxyBody> = status.clone().into_response();
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            resp
        }
        Verdict::Block(status) => status.clone().into_response(),
        Verdict::Forward | Verdict::Rewrite(_) => {
            Status::internal("kubeguard: a forward is not a refusal").into_response()
        }
    }
}

/// The bytes of a body kubeguard already holds whole.
pub(crate) fn full_bytes(full: &Full<Bytes>) -> Option<Bytes> {
    let mut full = full.clone();
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    match Pin::new(&mut full).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
        _ => Some(Bytes::new()),
    }
}

/// A response body being scanned, and where its summary goes.
pub struct ScanJob {
    scanner: Scanner,
    engine: Arc<PolicyEngine>,
    api: ApiRequest,
    user: String,
    /// The body ended (a dropped body's counts are partial).
    complete: bool,
}

/// Counts response body bytes and adds them to a counter when the body ends or is dropped
/// (a client that goes away mid-watch still has its bytes counted); feeds the scanner, if any.
pub struct Meter {
    /// The metric handles of the request (its bytes are added to `route.response_bytes`).
    route: Arc<Route>,
    bytes: u64,
    scan: Option<Box<ScanJob>>,
    /// The ledger record completed when the body ends or is dropped.
    record: Option<Box<PendingRecord>>,
    /// The per-client expensive-request slot, released with the body.
    permit: Option<Permit>,
    /// The whole-process admission slot (`maxInflight` or `maxLongRunning`), released with the
    /// body.
    admitted: Option<InflightPermit>,
    /// A watch or `logs -f`: an upstream that dies mid-stream ends it with a final chunk /
    /// END_STREAM instead of cutting the client's connection. A watch ending is routine for
    /// clients (the server's own watch timeouts end every watch, k8s-facts §5, and clients
    /// rewatch or relist), and a followed log ends whenever its container stops; a cut shows as
    /// a transport error, and on h2 as a reset stream. Not for proxy: a proxied body cut short
    /// must not look complete.
    end_cleanly: bool,
}

/// Whether an upstream dying mid-body ends this request's body cleanly (see `Meter::end_cleanly`):
/// a watch or `logs -f`.
fn stream_ends_cleanly(api: &ApiRequest) -> bool {
    api.verb == Verb::Watch || (api.verb == Verb::Log && api.options.follow)
}

/// A ledger record waiting for its response body to end.
struct PendingRecord {
    record: CostRecord,
    ledger: Arc<crate::cost::Ledger>,
    start: Instant,
    long_running: bool,
}

/// What the per-client limits said about one request.
enum LimitCheck {
    /// Within its limits (holding its expensive-request slot, if it took one).
    Pass(Option<Permit>),
    /// Over a limit in shadow mode: forwarded, with this warning.
    Warn(HeaderValue),
    /// Over a limit, enforced: answered with this Status (429, or 403 for an unchunked LIST).
    Refuse {
        throttled: bool,
        status: Box<Status>,
    },
}

/// What `Proxy::prepare` concluded. Not boxed: it is moved once per request, and a box would
/// cost an allocation on every forward.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Prepared {
    /// kubeguard's own answer, complete.
    Answer(Response<ProxyBody>),
    Forward(Prepared1),
}

/// A request past the classify, admit and identify steps.
pub(crate) struct Admitted {
    pub api: ApiRequest,
    pub caller: Caller,
    /// The whole-process in-flight slot (`limits.maxInflight`).
    pub admitted: Option<InflightPermit>,
    pub audit_id: HeaderValue,
}

/// A request on its way upstream, with what its answer needs.
pub(crate) struct Prepared1 {
    pub api: ApiRequest,
    pub caller: Caller,
    pub fwd: Forwarding,
    /// The whole-process admission slot (`limits.maxInflight`, or `maxLongRunning` for a
    /// long-running request), kept until the answer's body ends.
    pub admitted: Option<InflightPermit>,
    pub audit_id: HeaderValue,
}

/// What the decide step concluded.
pub(crate) enum Decided {
    /// Answered by kubeguard (a limit, a guard's refusal), with what the ledger records of it.
    Answer(Response<ProxyBody>, Option<Outcome>),
    /// Goes upstream.
    Forward(Forwarding),
}

/// A request the decide step lets through, and what goes with its answer.
pub(crate) struct Forwarding {
    /// The query an enforced rewrite gives the request (without `?`).
    pub rewrite: Option<String>,
    decisions: crate::guards::Decisions,
    /// The per-client expensive-request slot, held until the answer's body ends.
    permit: Option<Permit>,
    /// A shadow-mode limit warning (the header value, made once per client and limit).
    limit_warning: Option<HeaderValue>,
    outcome: Outcome,
}

impl Forwarding {
    /// The decision and warning headers of the answer.
    pub(crate) fn response_headers(
        &self,
        engine: &PolicyEngine,
        identity: &Identity,
        api: &ApiRequest,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) {
        engine.respond(identity, Some(api), &self.decisions, status, headers);
        if let Some(w) = &self.limit_warning {
            headers.append(header::WARNING, w.clone());
        }
    }
}

/// What the decide step did, carried beside the answer to the ledger (`conclude`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    rewritten: bool,
    throttled: bool,
    blocked: bool,
    estimate: Estimate,
    etcd_avoided: u64,
}

impl Meter {
    /// A segment of the response body passed (the front end's own body loop).
    pub(crate) fn data(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(job) = &mut self.scan {
            job.scanner.feed(data);
        }
    }

    /// The body ended as its framing says (not cut).
    pub(crate) fn ended(&mut self) {
        if let Some(job) = &mut self.scan {
            job.complete = true;
        }
    }

    /// An upstream that dies mid-stream ends this body cleanly (a watch or `logs -f`, see
    /// `end_cleanly`).
    pub(crate) fn ends_cleanly(&self) -> bool {
        self.end_cleanly
    }

    pub(crate) fn route(&self) -> &Arc<Route> {
        &self.route
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.settle();
    }
}

impl Meter {
    /// Records what the answer cost and taught (bytes, ledger record, learner): when it is
    /// dropped, or earlier, before its last bytes are written, so that all of it is recorded by
    /// the time the client has the whole answer. Bytes that pass after it are still counted.
    pub(crate) fn settle(&mut self) {
        if self.bytes > 0 {
            self.route.response_bytes.inc_by(self.bytes);
        }
        let summary = self.scan.as_ref().map(|job| job.scanner.summary().clone());
        if let Some(pending) = self.record.take() {
            let PendingRecord {
                mut record,
                ledger,
                start,
                long_running,
            } = *pending;
            record.bytes_out = self.bytes;
            record.duration = start.elapsed();
            if long_running {
                record.long_running_seconds = record.duration.as_secs_f64();
            }
            if let Some(s) = summary {
                match s.collection_size() {
                    Some((items, exact)) => {
                        record.items = items;
                        record.items_exact = exact;
                    }
                    None => record.items = s.events,
                }
            }
            ledger.record(&record);
        }
        if let Some(job) = self.scan.take() {
            job.engine
                .learn(&job.user, &job.api, job.scanner.summary(), job.complete);
        }
        self.bytes = 0;
    }
}

/// The body of every response kubeguard sends: the upstream's, streamed frame by frame, or
/// one kubeguard wrote itself (a `Status`).
pub enum ProxyBody {
    Upstream { body: UpstreamIn, meter: Meter },
    Own(Full<Bytes>),
}

/// An upstream answer's body: from hyper's client, or read by kubeguard itself from an HTTP/1.1
/// connection it keeps (`front/pooled.rs`).
pub enum UpstreamIn {
    Hyper(Incoming),
    Raw(Box<crate::front::pooled::RawBody>),
}

impl Body for UpstreamIn {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamIn::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamIn::Raw(b) => Pin::new(&mut **b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamIn::Hyper(b) => b.is_end_stream(),
            UpstreamIn::Raw(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamIn::Hyper(b) => b.size_hint(),
            UpstreamIn::Raw(b) => b.size_hint(),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ProxyBody {
    pub fn empty() -> Self {
        ProxyBody::Own(Full::new(Bytes::new()))
    }
}

impl From<Bytes> for ProxyBody {
    fn from(b: Bytes) -> Self {
        ProxyBody::Own(Full::new(b))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, meter } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            meter.bytes += data.len() as u64;
                            if let Some(job) = &mut meter.scan {
                                job.scanner.feed(data);
                            }
                        }
                        // The server may stop polling once the body says it has ended;
                        // recorded before this last frame reaches the client (`Meter::settle`).
                        if body.is_end_stream() {
                            meter.ended();
                            meter.settle();
                        }
                    }
                    Poll::Ready(None) => {
                        meter.ended();
                        meter.settle();
                    }
                    Poll::Ready(Some(Err(e))) if meter.end_cleanly => {
                        tracing::debug!(error = %e, "upstream cut a stream; ending it cleanly");
                        return Poll::Ready(None);
                    }
                    _ => {}
                }
                polled
            }
            ProxyBody::Own(full) => match Pin::new(full).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Own(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Own(full) => full.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's futures hold its `ConnInfo` by value in several layers, so every byte
    /// here is paid several times per idle watch: an unboxed token memo (56 bytes) cost S4
    /// 0.7 KiB per watch.
    #[test]
    fn conn_info_stays_small() {
        assert!(
            std::mem::size_of::<ConnInfo>() <= 72,
            "ConnInfo is {} bytes",
            std::mem::size_of::<ConnInfo>()
        );
    }

    #[test]
    fn identity_headers_never_travel() {
        let mut h = HeaderMap::new();
        h.insert("Impersonate-User", HeaderValue::from_static("system:admin"));
        h.append(
            "impersonate-group",
            HeaderValue::from_static("system:masters"),
        );
        h.append("impersonate-group", HeaderValue::from_static("x"));
        h.insert("Impersonate-Extra-Scopes", HeaderValue::from_static("a"));
        h.insert("X-Remote-User", HeaderValue::from_static("root"));
        h.insert("X-Remote-Extra-Foo", HeaderValue::from_static("root"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        prepare_request_headers(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::HOST, HeaderValue::from_static("kubeguard:8443"));
        h.insert("audit-id", HeaderValue::from_static("abc"));
        prepare_request_headers(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["audit-id"], "abc");
    }

    #[test]
    fn upgrades_keep_their_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        assert!(wants_upgrade(&h));
        prepare_request_headers(&mut h, true);
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "Upgrade");
        assert_eq!(h["sec-websocket-protocol"], "v5.channel.k8s.io");
    }

    #[test]
    fn identity_is_a_token_hash_never_the_token() {
        let mut h = HeaderMap::new();
        assert_eq!(identify(&h).user, "unverified");
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cr3t-token"),
        );
        let a = identify(&h).user;
        assert!(
            a.starts_with("token-sha256:") && !a.contains("s3cr3t"),
            "{a}"
        );
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        assert_ne!(identify(&h).user, a);
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!wants_upgrade(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(wants_upgrade(&h));
    }
}
