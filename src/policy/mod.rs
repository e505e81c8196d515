//! Policy: which guards apply to a request, with which settings, in which mode.
//!
//! The live policy is a value: an `Arc<Policy>` behind an `ArcSwap` ([`PolicyStore`]), read once
//! per request without a lock and replaced whole on reload ([`reload`]). Rules are tried in order;
//! the first whose match holds decides. Modes resolve most specific first: the rule's setting for
//! the guard, then the rule's mode, then the guard's mode, then the global `policy.mode`.

pub mod config;
pub mod engine;
pub mod reload;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use regex::Regex;

use config::{MatchSection, RuleSection, UserAgentMatch};
pub use config::{Mode, PolicySection};

pub use crate::guards::delete_guard::DeleteGuardSettings;
use crate::identity::Identity;
use crate::request::ApiRequest;

/// The runtime policy, compiled from a [`PolicySection`].
#[derive(Debug)]
pub struct Policy {
    pub mode: Mode,
    pub list_rewrite: ListRewriteSettings,
    pub delete_guard: DeleteGuardSettings,
    pub rules: Vec<Rule>,
    /// The LIST rewrite's settings for requests no rule matches (`None`: it does not run).
    unmatched_list_rewrite: Option<ListRewriteSettings>,
    /// The delete guard's settings for requests no rule matches (`None`: it does not run).
    unmatched_delete_guard: Option<DeleteGuardSettings>,
    /// The section it was compiled from (printed by `check-config`).
    pub source: PolicySection,
}

/// The LIST rewrite's settings, after the global mode and a rule's overrides are applied.
#[derive(Clone, Debug)]
pub struct ListRewriteSettings {
    pub enabled: bool,
    pub mode: Mode,
    pub max_rv0_items: u64,
    pub error_window: Duration,
    pub read_your_writes_window: Duration,
    pub consistency_sensitive: Vec<Matcher>,
    pub rewrite_on_134_and_later: bool,
    pub upstream_refresh_interval: Duration,
    pub max_clients: usize,
}

#[derive(Debug)]
pub struct Rule {
    pub name: Arc<str>,
    pub matcher: Matcher,
    pub mode: Option<Mode>,
    pub guards: Option<config::RuleGuards>,
    /// The LIST rewrite's settings under this rule, resolved at compile time so a request only
    /// borrows them (`None`: it does not run).
    list_rewrite: Option<ListRewriteSettings>,
    /// The delete guard's settings under this rule (`None`: it does not run).
    delete_guard: Option<DeleteGuardSettings>,
}

/// A compiled [`MatchSection`].
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    users: Vec<String>,
    groups: Vec<String>,
    /// `(namespace, name)`; name `*` for every account of the namespace.
    service_accounts: Vec<(String, String)>,
    ua_prefixes: Vec<String>,
    ua_regexes: Vec<Regex>,
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    namespaces: Vec<String>,
}

/// What the request looks like to a matcher.
pub struct Subject<'a> {
    pub identity: &'a Identity,
    pub api: &'a ApiRequest,
    pub user_agent: &'a str,
}

/// A policy that does not compile, with the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct PolicyError {
    pub key: String,
    pub message: String,
}

fn any_or<T>(list: &[T], f: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

impl Matcher {
    fn compile(m: &MatchSection, key: &str) -> Result<Matcher, PolicyError> {
        let mut out = Matcher {
            users: m.users.clone(),
            groups: m.groups.clone(),
            verbs: m.verbs.iter().map(|v| v.to_ascii_lowercase()).collect(),
            api_groups: m.api_groups.clone(),
            resources: m.resources.clone(),
            namespaces: m.namespaces.clone(),
            ..Matcher::default()
        };
        for (i, sa) in m.service_accounts.iter().enumerate() {
            let (ns, name) = sa.split_once('/').ok_or_else(|| PolicyError {
                key: format!("{key}.serviceAccounts[{i}]"),
                message: format!("{sa:?} is not namespace/name (or namespace/*)"),
            })?;
            out.service_accounts
                .push((ns.to_string(), name.to_string()));
        }
        for (i, ua) in m.user_agents.iter().enumerate() {
            match ua {
                UserAgentMatch {
                    prefix: Some(p),
                    regex: None,
                } => out.ua_prefixes.push(p.clone()),
                UserAgentMatch {
                    prefix: None,
                    regex: Some(r),
                } => out.ua_regexes.push(Regex::new(r).map_err(|e| PolicyError {
                    key: format!("{key}.userAgents[{i}].regex"),
                    message: e.to_string(),
                })?),
                _ => {
                    return Err(PolicyError {
                        key: format!("{key}.userAgents[{i}]"),
                        message: "give exactly one of prefix and regex".into(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every condition given holds.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let id = s.identity;
        let r = s.api.resource();
        let ua_given = !self.ua_prefixes.is_empty() || !self.ua_regexes.is_empty();
        any_or(&self.users, |u| *u == id.user)
            && any_or(&self.groups, |g| id.in_group(g))
            && any_or(&self.service_accounts, |(ns, name)| {
                id.service_account()
                    .is_some_and(|(n, a)| n == ns && (name == "*" || a == name))
            })
            && (!ua_given
                || self.ua_prefixes.iter().any(|p| s.user_agent.starts_with(p))
                || self.ua_regexes.iter().any(|re| re.is_match(s.user_agent)))
            && any_or(&self.verbs, |v| v == s.api.verb.as_str())
            && any_or(&self.api_groups, |g| r.is_some_and(|r| r.group == *g))
            && any_or(&self.resources, |res| r.is_some_and(|r| r.resource == *res))
            && any_or(&self.namespaces, |ns| {
                r.and_then(|r| r.namespace.as_deref()) == Some(ns.as_str())
            })
    }
}

/// The guards that apply to one request, as the first matching rule decided.
#[derive(Debug)]
pub struct Selection<'p> {
    /// The rule that matched, if any.
    pub rule: Option<&'p Rule>,
    /// The LIST rewrite's settings for this request; `None` when it does not apply.
    pub list_rewrite: Option<&'p ListRewriteSettings>,
    /// The delete guard's settings for this request; `None` when it does not apply.
    pub delete_guard: Option<&'p DeleteGuardSettings>,
}

impl Policy {
    /// Compiles a policy section; errors name the key under `policy.`.
    pub fn compile(section: &PolicySection) -> Result<Policy, PolicyError> {
        let lr = &section.guards.list_rewrite;
        let consistency_sensitive = lr
            .consistency_sensitive
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Matcher::compile(
                    m,
                    &format!("policy.guards.listRewrite.consistencySensitive[{i}]"),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if lr.max_clients == 0 {
            return Err(PolicyError {
                key: "policy.guards.listRewrite.maxClients".into(),
                message: "must be at least 1".into(),
            });
        }
        if lr.upstream_refresh_interval < Duration::from_secs(1) {
            return Err(PolicyError {
                key: "policy.guards.listRewrite.upstreamRefreshInterval".into(),
                message: "must be at least 1s".into(),
            });
        }
        let list_rewrite = ListRewriteSettings {
            enabled: lr.enabled,
            mode: lr.mode.unwrap_or(section.mode),
            max_rv0_items: lr.max_rv0_items,
            error_window: lr.error_window,
            read_your_writes_window: lr.read_your_writes_window,
            consistency_sensitive,
            rewrite_on_134_and_later: lr.rewrite_on_134_and_later,
            upstream_refresh_interval: lr.upstream_refresh_interval,
            max_clients: lr.max_clients,
        };
        let delete_guard =
            DeleteGuardSettings::compile(&section.guards.delete_guard, section.mode)?;
        let mut rules = Vec::new();
        for (i, r) in section.rules.iter().enumerate() {
            let mut rule = Rule::compile(r, i)?;
            rule.list_rewrite = list_rewrite_for(&list_rewrite, Some(&rule));
            rule.delete_guard = delete_guard.for_rule(rule.mode, rule.guards.as_ref());
            rules.push(rule);
        }
        Ok(Policy {
            mode: section.mode,
            unmatched_list_rewrite: list_rewrite_for(&list_rewrite, None),
            unmatched_delete_guard: delete_guard.for_rule(None, None),
            delete_guard,
            list_rewrite,
            rules,
            source: section.clone(),
        })
    }

    /// The first matching rule and the guards it applies.
    pub fn select(&self, s: &Subject<'_>) -> Selection<'_> {
        let rule = self.rules.iter().find(|r| r.matcher.matches(s));
        let (list_rewrite, delete_guard) = match rule {
            Some(r) => (r.list_rewrite.as_ref(), r.delete_guard.as_ref()),
            None => (
                self.unmatched_list_rewrite.as_ref(),
                self.unmatched_delete_guard.as_ref(),
            ),
        };
        Selection {
            rule,
            list_rewrite,
            delete_guard,
        }
    }

    /// The effective policy as YAML (defaults filled in), for `check-config`.
    pub fn describe(&self) -> String {
        let mut out = serde_norway::to_string(&self.source).unwrap_or_default();
        out.push_str(&format!(
            "# effective: listRewrite {} in mode {}; deleteGuard {} in mode {}; {} rule(s), first match wins\n",
            if self.list_rewrite.enabled {
                "enabled"
            } else {
                "disabled"
            },
            self.list_rewrite.mode.as_str(),
            if self.delete_guard.enabled {
                "enabled"
            } else {
                "disabled"
            },
            self.delete_guard.mode.as_str(),
            self.rules.len()
        ));
        for r in &self.rules {
            out.push_str(&format!(
                "#   rule {:?}: mode {}, guards {}\n",
                r.name,
                r.mode.map_or("(guard default)", Mode::as_str),
                match &r.guards {
                    None => "all enabled".to_string(),
                    Some(g) => {
                        let named: Vec<&str> = [
                            g.list_rewrite.as_ref().map(|_| "listRewrite"),
                            g.delete_guard.as_ref().map(|_| "deleteGuard"),
                        ]
                        .into_iter()
                        .flatten()
                        .collect();
                        if named.is_empty() {
                            "none".to_string()
                        } else {
                            named.join(", ")
                        }
                    }
                }
            ));
        }
        out
    }
}

/// The LIST rewrite's settings under `rule` (or for unmatched requests): the rule's setting for
/// the guard wins over the rule's mode, which wins over the guard's own.
fn list_rewrite_for(
    global: &ListRewriteSettings,
    rule: Option<&Rule>,
) -> Option<ListRewriteSettings> {
    if !global.enabled {
        return None;
    }
    let mut s = global.clone();
    if let Some(rule) = rule {
        let over = match &rule.guards {
            Some(g) => Some(g.list_rewrite.as_ref()?),
            None => None,
        };
        s.mode = over.and_then(|o| o.mode).or(rule.mode).unwrap_or(s.mode);
        if let Some(max) = over.and_then(|o| o.max_rv0_items) {
            s.max_rv0_items = max;
        }
    }
    (s.mode != Mode::Off).then_some(s)
}

impl Rule {
    fn compile(r: &RuleSection, i: usize) -> Result<Rule, PolicyError> {
        if r.name.trim().is_empty() {
            return Err(PolicyError {
                key: format!("policy.rules[{i}].name"),
                message: "must not be empty".into(),
            });
        }
        Ok(Rule {
            name: r.name.as_str().into(),
            matcher: Matcher::compile(&r.match_, &format!("policy.rules[{i}].match"))?,
            mode: r.mode,
            guards: r.guards.clone(),
            list_rewrite: None,
            delete_guard: None,
        })
    }
}

/// The live policy: read per request without a lock, replaced whole on reload.
pub struct PolicyStore {
    current: ArcSwap<Policy>,
}

impl PolicyStore {
    pub fn new(policy: Policy) -> Self {
        PolicyStore {
            current: ArcSwap::from_pointee(policy),
        }
    }

    pub fn load(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn store(&self, policy: Policy) {
        self.current.store(Arc::new(policy));
    }
}

#[cfg(test)]
mod tests;
