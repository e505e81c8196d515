//! The decide step as the pipeline sees it: the live policy, the guards and what they remember,
//! in one value shared by every request. [`crate::proxy`] calls [`PolicyEngine::decide`] before
//! forwarding, [`PolicyEngine::respond`] on the way back, and hands each scanned response body
//! to [`PolicyEngine::learn`].

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{Mode, Policy, PolicyStore};
use crate::guards::upstream_facts::UpstreamFacts;
use crate::guards::windows::ClientWindows;
use crate::guards::{Decisions, GuardCtx, Guards, ListRewrite};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::observe::{Learner, ScanSummary};
use crate::request::{ApiRequest, Verb};
use crate::upstream::Upstream;

/// `X-Kubeguard-Decision`: what kubeguard decided, on every response.
pub static DECISION_HEADER: HeaderName = HeaderName::from_static("x-kubeguard-decision");

pub struct PolicyEngine {
    pub store: Arc<PolicyStore>,
    pub guards: Guards,
    pub facts: Arc<UpstreamFacts>,
    pub learner: Arc<Learner>,
    pub windows: Arc<ClientWindows>,
}

impl PolicyEngine {
    /// An engine around `policy`, with upstream facts to be filled by [`Self::refresh_upstream`]
    /// (or given, in tests).
    pub fn new(policy: Policy, facts: Arc<UpstreamFacts>) -> Self {
        let learner = Arc::new(Learner::new());
        // The client table's size is fixed at start (a reload does not resize it).
        let windows = Arc::new(ClientWindows::new(policy.list_rewrite.max_clients));
        let max_intents = policy.delete_guard.max_intents;
        PolicyEngine {
            store: Arc::new(PolicyStore::new(policy)),
            guards: Guards {
                list_rewrite: ListRewrite {
                    facts: facts.clone(),
                    learner: learner.clone(),
                    windows: windows.clone(),
                },
                // The intent table's size is fixed at start, like the client table.
                delete_guard: crate::guards::DeleteGuard::new(max_intents),
            },
            facts,
            learner,
            windows,
        }
    }

    /// Runs the guards the live policy selects; counts and logs every decision.
    pub fn decide(&self, ctx: &GuardCtx<'_>, metrics: &Metrics) -> Decisions {
        if ctx.api.verb.is_write()
            && let Some(r) = ctx.api.resource()
            && r.subresource.is_none()
        {
            // Read-your-writes window (k8s-facts §1): marked when the write is asked for.
            self.windows
                .mark_write(&ctx.identity.user, ctx.api.resource_label(), ctx.now);
        }
        let policy = self.store.load();
        let decisions = self.guards.decide(ctx, &policy);
        for d in &decisions.0 {
            metrics.count_decision(d.guard, d.verdict.kind(), d.mode.as_str());
            if d.mode != Mode::Off && d.verdict.kind() != "forward" {
                tracing::info!(
                    guard = d.guard,
                    verdict = d.verdict.kind(),
                    mode = d.mode.as_str(),
                    rule = d.rule.as_deref().unwrap_or("-"),
                    user = %ctx.identity.user,
                    resource = %ctx.api.resource_label(),
                    reason = %d.reason,
                    "guard decision"
                );
            } else {
                tracing::debug!(guard = d.guard, reason = %d.reason, "guard forwards");
            }
        }
        decisions
    }

    /// On the way back: remembers relist-recovery answers (410 Gone / Expired, 504
    /// ResourceVersionTooLarge, k8s-facts §1) and adds the decision and shadow warning headers.
    pub fn respond(
        &self,
        identity: &Identity,
        api: Option<&ApiRequest>,
        decisions: &Decisions,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) {
        if let Some(api) = api
            && matches!(api.verb, Verb::List | Verb::Watch)
            && (status == StatusCode::GONE || status == StatusCode::GATEWAY_TIMEOUT)
        {
            self.windows
                .mark_error(&identity.user, api.resource_label(), Instant::now());
        }
        let value = match decisions.header_value() {
            Cow::Borrowed(v) => Ok(HeaderValue::from_static(v)),
            Cow::Owned(v) => HeaderValue::try_from(v),
        };
        if let Ok(v) = value {
            headers.insert(DECISION_HEADER.clone(), v);
        }
        for d in decisions.shadowed() {
            if let Ok(v) = HeaderValue::from_str(&warning(&d.warning_text())) {
                headers.append(http::header::WARNING, v);
            }
        }
    }

    /// A response body of `api` ended (or was dropped): learn from what the scanner saw.
    pub fn learn(&self, user: &str, api: &ApiRequest, summary: &ScanSummary, complete: bool) {
        let resource = api.resource_label();
        if summary.expired {
            self.windows.mark_error(user, resource, Instant::now());
        }
        let o = &api.options;
        let unfiltered = api.verb == Verb::List
            && complete
            && o.label_selector.as_deref().is_none_or(str::is_empty)
            && o.field_selector.as_deref().is_none_or(str::is_empty);
        let scope = crate::observe::scope_key(api.resource().and_then(|r| r.namespace.as_deref()));
        self.learner.record(resource, &scope, unfiltered, summary);
    }

    /// Reads the upstream's version and discovery now, then every `upstreamRefreshInterval`
    /// until `shutdown`.
    pub async fn refresh_upstream(
        self: Arc<Self>,
        upstream: Upstream,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            self.facts.refresh(&upstream).await;
            let every = self
                .store
                .load()
                .list_rewrite
                .upstream_refresh_interval
                .max(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// `299 - "<text>"` with the text made safe for a quoted header value (k8s-facts §3).
pub fn warning(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str("299 - \"");
    out.extend(text.chars().map(|c| match c {
        '"' | '\\' => '\'',
        c if c.is_ascii() && !c.is_ascii_control() => c,
        _ => '?',
    }));
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_quoted_safely() {
        assert_eq!(
            warning("would \"rewrite\" → x"),
            "299 - \"would 'rewrite' ? x\""
        );
    }
}
