//! Guards: each looks at one request and returns a [`Verdict`]. The policy decides which guards
//! run and in which mode; the pipeline ([`crate::proxy`]) applies what was enforced and reports
//! the rest.
//!
//! A guard is a [`Guard`]: `check` is synchronous and cheap (no I/O on the hot path). A guard
//! that needs the request body (the delete guard reads `dryRun` from DeleteOptions) says so with
//! [`Guard::body_limit`]; the pipeline then reads at most that many bytes before deciding and
//! passes them in [`GuardCtx::body`].
//!
//! Adding a guard: its settings in `policy/config.rs` (global and per rule), its resolution in
//! [`crate::policy::Policy::select`], one `decide` line in [`Guards::decide`].

pub mod delete_guard;
pub mod list_rewrite;
pub mod upstream_facts;
pub mod windows;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;

use crate::identity::Identity;
use crate::policy::{Mode, Policy, Selection, Subject};
use crate::request::ApiRequest;
use crate::status::Status;

pub use delete_guard::DeleteGuard;
pub use list_rewrite::ListRewrite;

/// What a guard wants done with a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Let it through unchanged.
    Forward,
    /// Send it upstream with another query string.
    Rewrite(Rewrite),
    /// Answer 429 with an integer `Retry-After` and a `TooManyRequests` Status (k8s-facts §2).
    Throttle { retry_after: u32, status: Status },
    /// Refuse: the Status (403 for the delete guard) is the answer.
    Block(Status),
}

/// A query rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The new query string (without `?`).
    pub query: String,
    /// Short name for the decision header: `rv0`, `notOlderThan`.
    pub label: &'static str,
}

impl Verdict {
    /// `forward`, `rewrite`, `throttle`, `block` (metric label).
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Forward => "forward",
            Verdict::Rewrite(_) => "rewrite",
            Verdict::Throttle { .. } => "throttle",
            Verdict::Block(_) => "block",
        }
    }
}

/// What a guard returns: its verdict, why, and whether it may only be reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Why, in a few words (logged, and in shadow warnings).
    pub reason: Cow<'static, str>,
    /// The guard asks that this verdict be reported, never enforced (e.g. the LIST rewrite on
    /// a ≥1.34 upstream): an enforce mode becomes shadow for it.
    pub report_only: bool,
}

impl Outcome {
    pub fn forward(reason: impl Into<Cow<'static, str>>) -> Self {
        Outcome {
            verdict: Verdict::Forward,
            reason: reason.into(),
            report_only: false,
        }
    }
}

/// One guard's decision on one request: the record the pipeline acts on, counts and logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub guard: &'static str,
    pub verdict: Verdict,
    pub reason: Cow<'static, str>,
    /// The mode it ran in (after rule, guard and global resolution, and `report_only`).
    pub mode: Mode,
    /// The rule that matched, if any.
    pub rule: Option<String>,
}

impl Decision {
    /// The verdict takes effect (enforce mode and not a plain forward).
    pub fn enforced(&self) -> bool {
        self.mode == Mode::Enforce && self.verdict != Verdict::Forward
    }

    /// A shadow-mode verdict other than forward: reported as a warning.
    pub fn shadowed(&self) -> bool {
        self.mode == Mode::Shadow && self.verdict != Verdict::Forward
    }

    /// The part of `X-Kubeguard-Decision` for this decision, e.g. `rewrite=rv0`,
    /// `would-rewrite=rv0`, `throttle=5s`, `block=list_rewrite`.
    fn header_part(&self) -> String {
        let what = match &self.verdict {
            Verdict::Forward => return "forward".into(),
            Verdict::Rewrite(r) => format!("rewrite={}", r.label),
            Verdict::Throttle { retry_after, .. } => format!("throttle={retry_after}s"),
            Verdict::Block(_) => format!("block={}", self.guard),
        };
        if self.enforced() {
            what
        } else {
            format!("would-{what}")
        }
    }

    /// The shadow warning text (without the `299 - "…"` framing).
    pub fn warning_text(&self) -> String {
        let action = match &self.verdict {
            Verdict::Forward => "forward",
            Verdict::Rewrite(r) => {
                return format!(
                    "kubeguard (shadow): would rewrite this LIST to ?{} ({})",
                    r.query, self.reason
                );
            }
            Verdict::Throttle { retry_after, .. } => {
                return format!(
                    "kubeguard (shadow): would throttle this request (retry after {retry_after}s): {}",
                    self.reason
                );
            }
            Verdict::Block(_) => "block",
        };
        format!(
            "kubeguard (shadow): would {action} this request: {}",
            self.reason
        )
    }
}

/// The decisions on one request, in guard order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decisions(pub Vec<Decision>);

impl Decisions {
    /// The value of `X-Kubeguard-Decision`: the non-forward decisions joined by `, `, or
    /// `forward`.
    pub fn header_value(&self) -> Cow<'static, str> {
        if self.0.iter().all(|d| d.verdict == Verdict::Forward) {
            return Cow::Borrowed("forward");
        }
        let mut out = String::new();
        for d in self.0.iter().filter(|d| d.verdict != Verdict::Forward) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            let _ = write!(out, "{}", d.header_part());
        }
        Cow::Owned(out)
    }

    /// The first enforced decision that answers the request itself (throttle or block).
    pub fn refusal(&self) -> Option<&Decision> {
        self.0.iter().find(|d| {
            d.enforced() && matches!(d.verdict, Verdict::Throttle { .. } | Verdict::Block(_))
        })
    }

    /// The enforced rewrite, if any.
    pub fn rewrite(&self) -> Option<&Rewrite> {
        self.0.iter().find_map(|d| match &d.verdict {
            Verdict::Rewrite(r) if d.enforced() => Some(r),
            _ => None,
        })
    }

    pub fn shadowed(&self) -> impl Iterator<Item = &Decision> {
        self.0.iter().filter(|d| d.shadowed())
    }
}

/// What a guard sees of a request.
pub struct GuardCtx<'a> {
    pub identity: &'a Identity,
    pub api: &'a ApiRequest,
    /// The raw query string (without `?`), as sent.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub user_agent: &'a str,
    /// The request body, when a guard asked for it with [`Guard::body_limit`] and it fit.
    pub body: Option<&'a Bytes>,
    /// What the pipeline read about the object a guarded delete targets (delete guard only).
    pub delete_lookup: Option<&'a delete_guard::DeleteLookup>,
    pub now: Instant,
}

/// A guard. `Settings` are its settings for this request, as the policy resolved them.
pub trait Guard {
    type Settings;
    /// The name in metrics, logs and the decision header.
    const NAME: &'static str;
    fn check(&self, ctx: &GuardCtx<'_>, settings: &Self::Settings) -> Outcome;
    /// How many body bytes this guard needs to see for this request (`None`: no body).
    fn body_limit(&self, _api: &ApiRequest) -> Option<usize> {
        None
    }
}

/// Every guard, in the order they decide.
pub struct Guards {
    pub list_rewrite: ListRewrite,
    pub delete_guard: DeleteGuard,
}

impl Guards {
    /// Runs the guards the policy selects for this request.
    pub fn decide(&self, ctx: &GuardCtx<'_>, policy: &Policy) -> Decisions {
        let subject = Subject {
            identity: ctx.identity,
            api: ctx.api,
            user_agent: ctx.user_agent,
        };
        let sel: Selection<'_> = policy.select(&subject);
        let rule = sel.rule.map(|r| r.name.to_string());
        let mut out = Decisions::default();
        if let Some(s) = sel.list_rewrite {
            out.0.push(run(&self.list_rewrite, ctx, s, s.mode, &rule));
        }
        if let Some(s) = sel.delete_guard {
            out.0.push(run(&self.delete_guard, ctx, s, s.mode, &rule));
        }
        out
    }

    /// The largest body any guard needs for this request.
    pub fn body_limit(&self, api: &ApiRequest) -> Option<usize> {
        self.list_rewrite
            .body_limit(api)
            .max(self.delete_guard.body_limit(api))
    }
}

fn run<G: Guard>(
    guard: &G,
    ctx: &GuardCtx<'_>,
    settings: &G::Settings,
    mode: Mode,
    rule: &Option<String>,
) -> Decision {
    let o = guard.check(ctx, settings);
    let mode = if o.report_only && mode == Mode::Enforce {
        Mode::Shadow
    } else {
        mode
    };
    Decision {
        guard: G::NAME,
        verdict: o.verdict,
        reason: o.reason,
        mode,
        rule: rule.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn d(verdict: Verdict, mode: Mode) -> Decision {
        Decision {
            guard: "g",
            verdict,
            reason: "why".into(),
            mode,
            rule: None,
        }
    }

    #[test]
    fn header_names_enforced_and_shadowed_verdicts() {
        let rw = Verdict::Rewrite(Rewrite {
            query: "resourceVersion=0".into(),
            label: "rv0",
        });
        assert_eq!(Decisions::default().header_value(), "forward");
        let enf = Decisions(vec![d(rw.clone(), Mode::Enforce)]);
        assert_eq!(enf.header_value(), "rewrite=rv0");
        assert!(enf.rewrite().is_some());
        let sh = Decisions(vec![
            d(rw, Mode::Shadow),
            d(
                Verdict::Throttle {
                    retry_after: 3,
                    status: Status::failure(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "x"),
                },
                Mode::Shadow,
            ),
        ]);
        assert_eq!(sh.header_value(), "would-rewrite=rv0, would-throttle=3s");
        assert!(sh.rewrite().is_none() && sh.refusal().is_none());
        assert_eq!(sh.shadowed().count(), 2);
        assert!(
            sh.0[1]
                .warning_text()
                .starts_with("kubeguard (shadow): would throttle")
        );
        let block = Decisions(vec![d(
            Verdict::Block(Status::bad_request("no")),
            Mode::Enforce,
        )]);
        assert_eq!(block.header_value(), "block=g");
        assert!(block.refusal().is_some());
    }
}
