//! The `policy:` section of the config file, as written. [`super::Policy::compile`] turns it into
//! the runtime policy (regexes compiled, windows as `Duration`s).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration;

/// What a guard's verdict does.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// The verdict is applied (rewrite the query, answer 429, answer 403).
    Enforce,
    /// The request goes on unchanged; the verdict is counted, logged and told to the client as
    /// a `Warning: 299` header.
    #[default]
    Shadow,
    /// The guard does not run.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
            Mode::Off => "off",
        }
    }
}

/// `policy:`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySection {
    /// The mode of every guard unless a guard or a rule says otherwise. Default `shadow`: safe on
    /// a real cluster (nothing changes, everything is reported).
    #[serde(default)]
    pub mode: Mode,
    /// Settings of each guard.
    #[serde(default)]
    pub guards: GuardsSection,
    /// Rules, tried in order; the first that matches a request decides which guards apply and
    /// in which mode. A request no rule matches gets every enabled guard in its default mode.
    #[serde(default)]
    pub rules: Vec<RuleSection>,
}

impl Default for PolicySection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

/// `policy.guards:`
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardsSection {
    /// The unversioned-LIST rewrite (k8s-facts §1).
    #[serde(default)]
    pub list_rewrite: ListRewriteSection,
    /// Destructive deletes held until a person confirms them (k8s-facts §3).
    #[serde(default)]
    pub delete_guard: crate::guards::delete_guard::DeleteGuardSection,
}

/// `policy.guards.listRewrite:`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListRewriteSection {
    /// Whether the guard runs at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// This guard's mode; default the global `policy.mode`.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// `resourceVersion=0` ignores `limit` (the whole collection comes back in one response):
    /// a LIST that has a `limit` is rewritten to RV=0 only when the collection kubeguard learned
    /// for that resource and scope has fewer items than this.
    #[serde(default = "default_max_rv0_items")]
    pub max_rv0_items: u64,
    /// After a client got 410 Gone / Expired / ResourceVersionTooLarge for a resource, its LISTs
    /// of that resource are not rewritten for this long (the relist recovery path).
    #[serde(default = "default_error_window", with = "duration")]
    pub error_window: Duration,
    /// After a client wrote to a resource type, its LISTs of that type are not rewritten for
    /// this long (it may expect to read its own write).
    #[serde(default = "default_ryw_window", with = "duration")]
    pub read_your_writes_window: Duration,
    /// Callers whose LISTs are never rewritten (garbage collector, prune, backup tools).
    #[serde(default = "default_consistency_sensitive")]
    pub consistency_sensitive: Vec<MatchSection>,
    /// On upstreams ≥ 1.34 (which already serve consistent LISTs from cache) the rewrite gains
    /// little: off unless this is true; shadow mode still reports what it would have saved.
    #[serde(default)]
    pub rewrite_on_134_and_later: bool,
    /// How often the upstream's /version and discovery are read again.
    #[serde(default = "default_refresh", with = "duration")]
    pub upstream_refresh_interval: Duration,
    /// Clients whose error and write windows are remembered (least recently seen forgotten).
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
}

impl Default for ListRewriteSection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

fn yes() -> bool {
    true
}
fn default_max_rv0_items() -> u64 {
    5_000
}
fn default_error_window() -> Duration {
    Duration::from_secs(300)
}
fn default_ryw_window() -> Duration {
    Duration::from_secs(10)
}
fn default_refresh() -> Duration {
    Duration::from_secs(300)
}
fn default_max_clients() -> usize {
    10_000
}
/// The garbage collector and namespace controller need consistent reads; so do backup tools.
fn default_consistency_sensitive() -> Vec<MatchSection> {
    vec![
        MatchSection {
            service_accounts: vec![
                "kube-system/generic-garbage-collector".into(),
                "kube-system/namespace-controller".into(),
                "kube-system/resourcequota-controller".into(),
            ],
            ..MatchSection::default()
        },
        MatchSection {
            user_agents: vec![UserAgentMatch {
                prefix: Some("velero".into()),
                regex: None,
            }],
            ..MatchSection::default()
        },
    ]
}

/// One rule: a match, a mode, and which guards apply.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleSection {
    /// A name for logs, the decision header and check-config.
    pub name: String,
    /// Which requests the rule applies to; every condition given must hold.
    #[serde(default, rename = "match")]
    pub match_: MatchSection,
    /// The mode of every guard under this rule; default the guard's own mode.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// The guards that apply under this rule, with their settings; when absent, every enabled
    /// guard applies with its global settings.
    #[serde(default)]
    pub guards: Option<RuleGuards>,
}

/// `rules[].guards:`: a guard named here applies; one left out does not.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleGuards {
    /// The LIST rewrite under this rule.
    #[serde(default)]
    pub list_rewrite: Option<ListRewriteOverride>,
    /// The delete guard under this rule.
    #[serde(default)]
    pub delete_guard: Option<crate::guards::delete_guard::DeleteGuardOverride>,
}

/// Per-rule settings of the LIST rewrite.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListRewriteOverride {
    /// The guard's mode under this rule (wins over the rule's and the guard's mode).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// `maxRv0Items` under this rule.
    #[serde(default)]
    pub max_rv0_items: Option<u64>,
}

/// Conditions on the caller and the request. An empty list means "any".
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchSection {
    /// User names, exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Groups; the caller must be in one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Service accounts as `namespace/name` (`namespace/*` for all in a namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// User-Agent conditions: `{prefix: "kubectl/"}` or `{regex: "^velero/"}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_agents: Vec<UserAgentMatch>,
    /// Verbs as the apiserver names them: get, list, watch, create, update, patch, delete,
    /// deletecollection (and exec, attach, portforward, proxy, log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// API groups (`""` for the core group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (plural, e.g. `pods`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// A User-Agent condition: exactly one of `prefix` and `regex` (checked, and the regex
/// compiled, while parsing, so an error names its key and line).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    try_from = "RawUserAgentMatch"
)]
pub struct UserAgentMatch {
    /// The User-Agent starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The User-Agent matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// [`UserAgentMatch`] as written, before its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawUserAgentMatch {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    regex: Option<String>,
}

impl TryFrom<RawUserAgentMatch> for UserAgentMatch {
    type Error = String;
    fn try_from(raw: RawUserAgentMatch) -> Result<Self, String> {
        match (&raw.prefix, &raw.regex) {
            (Some(_), None) => {}
            (None, Some(r)) => {
                regex::Regex::new(r).map_err(|e| format!("invalid regex: {e}"))?;
            }
            _ => return Err("give exactly one of prefix and regex".into()),
        }
        Ok(UserAgentMatch {
            prefix: raw.prefix,
            regex: raw.regex,
        })
    }
}
