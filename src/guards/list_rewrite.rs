//! The unversioned-LIST rewrite (k8s-facts §1): a LIST with no resourceVersion is a quorum read
//! from etcd on apiservers up to 1.30; `resourceVersion=0` (or, from 1.31,
//! `resourceVersion=<newest seen>&resourceVersionMatch=NotOlderThan`) is served from the watch
//! cache instead. Every case k8s-facts §1 says never to rewrite is checked first, in
//! [`ListRewrite::never_rewrite`].

use std::sync::Arc;

use crate::observe::{Learner, scope_key};
use crate::policy::ListRewriteSettings;
use crate::request::{ApiRequest, Verb};

use super::upstream_facts::UpstreamFacts;
use super::windows::ClientWindows;
use super::{Guard, GuardCtx, Outcome, Rewrite, Verdict};

pub struct ListRewrite {
    pub facts: Arc<UpstreamFacts>,
    pub learner: Arc<Learner>,
    pub windows: Arc<ClientWindows>,
}

impl Guard for ListRewrite {
    type Settings = ListRewriteSettings;
    const NAME: &'static str = "list_rewrite";

    fn check(&self, ctx: &GuardCtx<'_>, s: &ListRewriteSettings) -> Outcome {
        if let Some(why) = self.never_rewrite(ctx, s) {
            return Outcome::forward(why);
        }
        let Some(minor) = self.facts.minor() else {
            return Outcome::forward("upstream version not known yet");
        };
        let api = ctx.api;
        let resource = api.resource_label();
        let scope = scope_key(api.resource().and_then(|r| r.namespace.as_deref()));
        let size = self.learner.collection_size(resource, &scope);
        let saved = size.map_or_else(
            || "an etcd read of the whole collection".to_string(),
            |c| format!("an etcd read of ~{} objects", c.items),
        );
        let newest = self.learner.newest_rv(resource);
        let (query, label) = if (31..=33).contains(&minor)
            && let Some(rv) = newest
        {
            (
                rewritten_query(ctx.query, &rv.to_string(), Some("NotOlderThan")),
                "notOlderThan",
            )
        } else {
            // RV=0 ignores limit (k8s-facts §1): with a limit, only for a collection known to
            // be small, or one huge response would replace many small pages.
            let limited = api.options.limit.is_some_and(|l| l > 0);
            if limited && size.is_none_or(|c| c.items >= s.max_rv0_items) {
                return Outcome::forward(format!(
                    "limit set and collection size {} (RV=0 would ignore the limit; cap {})",
                    size.map_or("unknown".to_string(), |c| c.items.to_string()),
                    s.max_rv0_items
                ));
            }
            (rewritten_query(ctx.query, "0", None), "rv0")
        };
        let report_only = minor >= 34 && !s.rewrite_on_134_and_later;
        let reason = if report_only {
            format!("upstream 1.{minor} serves this from cache already; would save {saved}")
        } else {
            format!("saves {saved}")
        };
        Outcome {
            verdict: Verdict::Rewrite(Rewrite { query, label }),
            reason: reason.into(),
            report_only,
        }
    }
}

impl ListRewrite {
    /// The cases k8s-facts §1 forbids, each with its reason; `None` when the LIST is a candidate.
    fn never_rewrite(&self, ctx: &GuardCtx<'_>, s: &ListRewriteSettings) -> Option<&'static str> {
        let api: &ApiRequest = ctx.api;
        let o = &api.options;
        if api.verb != Verb::List {
            return Some("not a list");
        }
        if o.watch || o.send_initial_events.is_some() {
            return Some("watch");
        }
        if o.continue_token.as_deref().is_some_and(|c| !c.is_empty()) {
            return Some("continue token");
        }
        if o.resource_version.as_deref().is_some_and(|v| !v.is_empty())
            || o.resource_version_match
                .as_deref()
                .is_some_and(|v| !v.is_empty())
        {
            return Some("resourceVersion already set");
        }
        let r = api.resource()?;
        let name_selected = o.field_selector.as_deref().is_some_and(|f| {
            f.split(',').any(|t| {
                t.trim().starts_with("metadata.name=") || t.trim().starts_with("metadata.name==")
            })
        });
        if r.name.is_some() || name_selected {
            return Some("single-name list");
        }
        let resource = api.resource_label();
        match self.facts.watch_cached(resource) {
            None => return Some("upstream discovery not known yet"),
            Some(false) => return Some("not served from the watch cache"),
            Some(true) => {}
        }
        let subject = crate::policy::Subject {
            identity: ctx.identity,
            api,
            user_agent: ctx.user_agent,
        };
        if s.consistency_sensitive.iter().any(|m| m.matches(&subject)) {
            return Some("consistency-sensitive caller");
        }
        let user = &ctx.identity.user;
        if self
            .windows
            .recent_error(user, resource, s.error_window, ctx.now)
        {
            return Some("client recently got 410/Expired/too large resource version");
        }
        if self
            .windows
            .recent_write(user, resource, s.read_your_writes_window, ctx.now)
        {
            return Some("client wrote to this resource recently (read-your-writes)");
        }
        None
    }
}

/// The query with `resourceVersion` (and `resourceVersionMatch`) replaced; everything else kept
/// in order, as sent.
pub fn rewritten_query(query: Option<&str>, rv: &str, rv_match: Option<&str>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "resourceVersion" && k != "resourceVersionMatch" {
            out.append_pair(&k, &v);
        }
    }
    out.append_pair("resourceVersion", rv);
    if let Some(m) = rv_match {
        out.append_pair("resourceVersionMatch", m);
    }
    out.finish()
}

#[cfg(test)]
#[path = "list_rewrite_tests.rs"]
mod tests;
