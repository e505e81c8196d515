//! The rules a user holds: the bootstrap roles kube-apiserver binds to groups, and the rules of
//! the users file; and their listing as a SelfSubjectRulesReview's status.
//!
//! kube-apiserver's bootstrap RBAC policy binds `cluster-admin` (everything) to `system:masters`,
//! and `system:basic-user` (create the self reviews) and `system:discovery` (get the discovery
//! and health paths) to `system:authenticated`. They are rules here like any other, so
//! `kubectl auth can-i create selfsubjectreviews` and `kubectl auth can-i --list` see them.

use std::fmt;
use std::sync::LazyLock;

use serde::Serialize;

use super::{AUTHENTICATED, MASTERS, Rule, UserInfo, Users};

/// Paths every authenticated user may `get` (`system:discovery`, `system:public-info-viewer`).
const PUBLIC_PATHS: [&str; 11] = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/version",
    "/version/",
    "/openapi",
    "/openapi/*",
    "/healthz",
    "/livez",
    "/readyz",
];

/// A ClusterRole of the bootstrap policy and the group it is bound to.
struct BootstrapRole {
    role: &'static str,
    group: &'static str,
    rules: Vec<Rule>,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn resource_rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
    Rule {
        verbs: strings(verbs),
        api_groups: strings(groups),
        resources: strings(resources),
        ..Rule::default()
    }
}

fn path_rule(verbs: &[&str], paths: &[&str]) -> Rule {
    Rule {
        verbs: strings(verbs),
        non_resource_urls: strings(paths),
        ..Rule::default()
    }
}

static BOOTSTRAP: LazyLock<[BootstrapRole; 3]> = LazyLock::new(|| {
    [
        BootstrapRole {
            role: "cluster-admin",
            group: MASTERS,
            rules: vec![
                resource_rule(&["*"], &["*"], &["*"]),
                path_rule(&["*"], &["*"]),
            ],
        },
        BootstrapRole {
            role: "system:basic-user",
            group: AUTHENTICATED,
            rules: vec![
                resource_rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                resource_rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        },
        BootstrapRole {
            role: "system:discovery",
            group: AUTHENTICATED,
            rules: vec![path_rule(&["get"], &PUBLIC_PATHS)],
        },
    ]
});

/// Where a rule comes from, for the `reason` of an allowed request.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source<'a> {
    Bootstrap {
        role: &'static str,
        group: &'static str,
    },
    User {
        user: &'a str,
        index: usize,
    },
    Group {
        group: &'a str,
        index: usize,
    },
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Bootstrap { role, group } => {
                write!(f, "ClusterRole {role:?} (bound to group {group:?})")
            }
            Source::User { user, index } => {
                write!(f, "rule {index} of user {user:?} in the users file")
            }
            Source::Group { group, index } => {
                write!(f, "rule {index} of group {group:?} in the users file")
            }
        }
    }
}

impl Users {
    /// The rules that apply to `user`: the bootstrap roles of its groups, its own entry's, then
    /// its groups' from the users file.
    pub(super) fn rules_of<'a>(
        &'a self,
        user: &'a UserInfo,
    ) -> impl Iterator<Item = (Source<'a>, &'a Rule)> + 'a {
        let bootstrap = BOOTSTRAP
            .iter()
            .filter(|b| user.groups.iter().any(|g| g == b.group))
            .flat_map(|b| {
                b.rules.iter().map(|r| {
                    let source = Source::Bootstrap {
                        role: b.role,
                        group: b.group,
                    };
                    (source, r)
                })
            });
        let own = self.entry(&user.username).into_iter().flat_map(|u| {
            u.rules.iter().enumerate().map(|(index, r)| {
                let source = Source::User {
                    user: &u.info.username,
                    index,
                };
                (source, r)
            })
        });
        let groups = user.groups.iter().flat_map(move |g| {
            self.group_rules
                .get(g)
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(index, r)| (Source::Group { group: g, index }, r))
        });
        bootstrap.chain(own).chain(groups)
    }

    /// RBAC's `RulesFor`: what `user` may do in `namespace`, the status of a
    /// SelfSubjectRulesReview. Rules without `namespaces` hold everywhere (a ClusterRoleBinding),
    /// the others only in the namespaces they name (RoleBindings). Never incomplete: every rule
    /// is known here.
    pub fn rules_review(&self, user: &UserInfo, namespace: &str) -> RulesReviewStatus {
        let mut status = RulesReviewStatus::default();
        if self
            .entry(&user.username)
            .is_some_and(|u| u.can_impersonate)
        {
            status
                .resource_rules
                .push(ResourceRule::from(&resource_rule(
                    &["impersonate"],
                    &["*"],
                    &["*"],
                )));
        }
        for (_, rule) in self.rules_of(user) {
            if !rule.holds_in(namespace) {
                continue;
            }
            if rule.non_resource_urls.is_empty() {
                status.resource_rules.push(ResourceRule::from(rule));
            } else {
                status.non_resource_rules.push(NonResourceRule::from(rule));
            }
        }
        status
    }
}

impl Rule {
    /// Whether the rule grants anything inside `namespace`.
    fn holds_in(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }
}

/// `SubjectRulesReviewStatus` of `authorization.k8s.io/v1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RulesReviewStatus {
    pub resource_rules: Vec<ResourceRule>,
    pub non_resource_rules: Vec<NonResourceRule>,
    pub incomplete: bool,
}

impl RulesReviewStatus {
    /// What kube-apiserver's `AlwaysAllow` authorizer lists: every verb on everything.
    pub fn everything() -> Self {
        RulesReviewStatus {
            resource_rules: vec![ResourceRule::from(&resource_rule(&["*"], &["*"], &["*"]))],
            non_resource_rules: vec![NonResourceRule::from(&path_rule(&["*"], &["*"]))],
            incomplete: false,
        }
    }
}

/// `ResourceRule`: a rule about resources, without its namespaces (the review names one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRule {
    pub verbs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

impl From<&Rule> for ResourceRule {
    fn from(rule: &Rule) -> Self {
        // The users file's "no apiGroups" means any group; RBAC spells that `*`.
        let api_groups = if rule.api_groups.is_empty() {
            vec!["*".to_string()]
        } else {
            rule.api_groups.clone()
        };
        ResourceRule {
            verbs: rule.verbs.clone(),
            api_groups,
            resources: rule.resources.clone(),
            resource_names: rule.resource_names.clone(),
        }
    }
}

/// `NonResourceRule`: verbs on URL paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NonResourceRule {
    pub verbs: Vec<String>,
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

impl From<&Rule> for NonResourceRule {
    fn from(rule: &Rule) -> Self {
        NonResourceRule {
            verbs: rule.verbs.clone(),
            non_resource_urls: rule.non_resource_urls.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
