//! Authentication and authorization of the emulator, on when `kubeguard sim --users FILE` is given.
//!
//! # The users file
//!
//! ```yaml
//! users:
//!   - name: alice                 # a bearer-token user
//!     token: alice-token
//!     uid: "1001"                 # optional
//!     groups: [devs]
//!     rules:                      # what alice may do, besides her groups' rules
//!       - verbs: [get, list, watch]
//!         resources: [pods, pods/log]
//!         namespaces: [prod]
//!   - name: admin
//!     token: admin-token
//!     groups: [system:masters]    # system:masters may do everything
//!     canImpersonate: true        # may send Impersonate-* headers (verb impersonate on all)
//!   - name: cert-user             # no token: authenticated by a client certificate whose
//!     groups: [devs]              # CN is the name; its O values are groups, these are added
//!   - serviceAccount: {namespace: ci, name: deployer}
//!     token: ci-token             # system:serviceaccount:ci:deployer
//!     rules:
//!       - verbs: ["*"]
//!         apiGroups: [apps]
//!         resources: [deployments]
//!         namespaces: [ci]
//! groups:                         # rules for every member of a group
//!   - name: devs
//!     rules:
//!       - verbs: [get, list]
//!         resources: [pods]
//!       - verbs: [get]
//!         nonResourceURLs: [/metrics]
//! ```
//!
//! Unknown keys are errors, and every error names its key (`users[1].token: …`). A rule has
//! `verbs` (required), `apiGroups` (absent: any group), `resources` (`pods`, `pods/exec`,
//! `pods/*`, `*`), `resourceNames` (absent: any name), `namespaces` (absent: every namespace and
//! the cluster scope; present: only requests inside those namespaces), or `nonResourceURLs`
//! (`/metrics`, `/logs/*`) instead of resources. `"*"` matches anything wherever it appears.
//!
//! # Semantics (as kube-apiserver with x509 + token authenticators and RBAC)
//! - A verified client certificate (the TLS layer verifies it; this module only reads its
//!   subject) authenticates CN as the user and each O as a group; then `Authorization: Bearer`.
//!   Neither: 401 `Unauthorized`. Every authenticated user is in `system:authenticated`;
//!   service accounts also in `system:serviceaccounts` and `system:serviceaccounts:<ns>`.
//! - `Impersonate-User`, `Impersonate-Group` (repeated), `Impersonate-Uid`, `Impersonate-Extra-<key>`
//!   are honoured only if the caller may `impersonate` each of them (resources `users`, `groups`,
//!   `serviceaccounts`, and `uids` / `userextras/<key>` in `authentication.k8s.io`), else 403
//!   with the apiserver's message.
//! - The bootstrap roles hold as in kube-apiserver (rules.rs): `system:masters` may do
//!   everything (`cluster-admin`); every authenticated user may `get` the discovery and health
//!   paths (`/api`, `/apis`, `/version`, `/openapi/*`, `/healthz`…, `system:discovery`) and
//!   create the self reviews (`system:basic-user`).
//! - The review APIs are answered with the real API's shapes (review.rs): TokenReview (counted,
//!   so that kubeguard's tests can prove its token cache works), SubjectAccessReview and
//!   LocalSubjectAccessReview, SelfSubjectAccessReview (`kubectl auth can-i`),
//!   SelfSubjectRulesReview (`kubectl auth can-i --list`, from the same rules) and
//!   SelfSubjectReview (`kubectl auth whoami`).
//!
//! # Without a users file
//! The emulator is kube-apiserver with only anonymous authentication and the `AlwaysAllow`
//! authorizer ([`Authorizer::AlwaysAllow`]): credentials are not read, every request is allowed,
//! and the review APIs say so: `kubectl auth whoami` is `system:anonymous` in
//! `system:unauthenticated` (or the `--as` user: `AlwaysAllow` lets anyone impersonate),
//! `kubectl auth can-i` is always `yes`, `--list` shows `*` on everything, and a TokenReview
//! authenticates no one (no token authenticator is configured).

// `Status` is the error every caller turns straight into a response (see logs.rs).
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::status::{Status, StatusDetails};

pub const AUTHENTICATED: &str = "system:authenticated";
pub const MASTERS: &str = "system:masters";
const SA_PREFIX: &str = "system:serviceaccount:";
const AUTHN_GROUP: &str = "authentication.k8s.io";

/// Who a request runs as: the shape of `TokenReview.status.user` and of a SAR's spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// What a request does to which resource: `SubjectAccessReview.spec.resourceAttributes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceAttributes {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceAttributes {
    /// Attributes without a subresource or name, the common case.
    pub fn new(verb: &str, group: &str, resource: &str, namespace: &str) -> Self {
        ResourceAttributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            ..Default::default()
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.into();
        self
    }

    /// `pods` or `pods/exec`: how RBAC names the resource.
    fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The users file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
    #[serde(default)]
    groups: Vec<GroupEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserEntry {
    /// The user name (also a certificate's CN). Exactly one of `name`, `serviceAccount`.
    name: Option<String>,
    service_account: Option<ServiceAccountRef>,
    /// The bearer token; without one the user can only come by client certificate.
    token: Option<String>,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    groups: Vec<String>,
    /// Shorthand for a rule allowing `impersonate` on everything.
    #[serde(default)]
    can_impersonate: bool,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceAccountRef {
    namespace: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupEntry {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

/// One permission: an RBAC PolicyRule with namespaces folded in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub verbs: Vec<String>,
    /// Empty: any group.
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    /// Empty: any name.
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// Empty: everywhere, the cluster scope included.
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

fn any_or(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == "*" || v == value)
}

impl Rule {
    fn matches(&self, a: &ResourceAttributes) -> bool {
        let resource = a.full_resource();
        // RBAC's ResourceMatches: `pods/*` and `*/exec` match only subresource requests.
        let has_sub = !a.subresource.is_empty();
        let resource_ok = self.resources.iter().any(|r| {
            r == "*"
                || *r == resource
                || (has_sub && r.strip_suffix("/*") == Some(a.resource.as_str()))
                || (has_sub && r.strip_prefix("*/") == Some(a.subresource.as_str()))
        });
        let namespace_ok = self.namespaces.is_empty()
            || (!a.namespace.is_empty() && any_or(&self.namespaces, &a.namespace));
        self.verbs.iter().any(|v| v == "*" || *v == a.verb)
            && any_or(&self.api_groups, &a.group)
            && resource_ok
            && any_or(&self.resource_names, &a.name)
            && namespace_ok
    }

    fn matches_path(&self, verb: &str, path: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
            && self.non_resource_urls.iter().any(|u| url_matches(u, path))
    }
}

fn url_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// A users-file entry, converted for use.
#[derive(Debug)]
struct User {
    /// Base identity; `system:authenticated` already in the groups.
    info: UserInfo,
    can_impersonate: bool,
    rules: Vec<Rule>,
}

/// The loaded users file: who is who, and who may do what.
#[derive(Debug, Default)]
pub struct Users {
    users: Vec<User>,
    by_token: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    group_rules: HashMap<String, Vec<Rule>>,
    token_reviews: AtomicU64,
    /// Mints `kubectl create token` tokens and accepts them back (token.rs).
    issuer: super::token::Issuer,
}

impl Users {
    /// Reads and checks a users file.
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("users file {}: {e}", path.display()))?;
        Users::from_yaml(&text).map_err(|e| format!("users file {}: {e}", path.display()))
    }

    /// Parses and checks a users file; the error names the offending key.
    pub fn from_yaml(text: &str) -> Result<Users, String> {
        let file: UsersFile = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        let mut users = Users::default();
        for (i, entry) in file.users.into_iter().enumerate() {
            users.add_user(i, entry)?;
        }
        for (i, group) in file.groups.into_iter().enumerate() {
            if group.name.is_empty() {
                return Err(format!("groups[{i}].name: must not be empty"));
            }
            check_rules(&group.rules, &format!("groups[{i}]"))?;
            users
                .group_rules
                .entry(group.name)
                .or_default()
                .extend(group.rules);
        }
        Ok(users)
    }

    fn add_user(&mut self, i: usize, entry: UserEntry) -> Result<(), String> {
        let at = format!("users[{i}]");
        let (username, mut groups) = match (&entry.name, &entry.service_account) {
            (Some(name), None) if !name.is_empty() => (name.clone(), Vec::new()),
            (Some(_), None) => return Err(format!("{at}.name: must not be empty")),
            (None, Some(sa)) if !sa.namespace.is_empty() && !sa.name.is_empty() => {
                if entry.token.is_none() {
                    return Err(format!(
                        "{at}.token: required for a serviceAccount (service accounts have no certificates)"
                    ));
                }
                let username = format!("{SA_PREFIX}{}:{}", sa.namespace, sa.name);
                let groups = vec![
                    "system:serviceaccounts".to_string(),
                    format!("system:serviceaccounts:{}", sa.namespace),
                ];
                (username, groups)
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{at}.serviceAccount: namespace and name must not be empty"
                ));
            }
            _ => {
                return Err(format!(
                    "{at}: exactly one of name or serviceAccount is required"
                ));
            }
        };
        for g in entry.groups {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        groups.push(AUTHENTICATED.to_string());
        check_rules(&entry.rules, &at)?;
        if let Some(&j) = self.by_name.get(&username) {
            return Err(format!(
                "{at}: duplicate user {username:?} (also users[{j}])"
            ));
        }
        if let Some(token) = entry.token {
            if token.is_empty() {
                return Err(format!("{at}.token: must not be empty"));
            }
            if let Some(&j) = self.by_token.get(&token) {
                return Err(format!("{at}.token: the same token as users[{j}]"));
            }
            self.by_token.insert(token, i);
        }
        self.by_name.insert(username.clone(), i);
        self.users.push(User {
            info: UserInfo {
                username,
                uid: entry.uid,
                groups,
                extra: BTreeMap::new(),
            },
            can_impersonate: entry.can_impersonate,
            rules: entry.rules,
        });
        Ok(())
    }

    /// How many TokenReviews have been received.
    pub fn token_reviews_received(&self) -> u64 {
        self.token_reviews.load(Ordering::Relaxed)
    }

    /// Who is calling: a client certificate (already verified by TLS) or a bearer token, then
    /// the `Impersonate-*` headers if the caller may impersonate. 401 or 403 as the apiserver.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        peer_cert_der: Option<&[u8]>,
    ) -> Result<UserInfo, Status> {
        let caller = peer_cert_der
            .and_then(|der| self.by_certificate(der))
            .or_else(|| self.by_bearer(headers))
            .ok_or_else(unauthorized)?;
        self.impersonate(caller, headers)
    }

    fn by_certificate(&self, der: &[u8]) -> Option<UserInfo> {
        let subject = x509::cert_subject(der)?;
        let username = subject.common_name.filter(|cn| !cn.is_empty())?;
        let mut groups = subject.organizations;
        if let Some(user) = self.by_name.get(&username).map(|&i| &self.users[i]) {
            for g in &user.info.groups {
                if !groups.contains(g) {
                    groups.push(g.clone());
                }
            }
        }
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        Some(UserInfo {
            username,
            groups,
            ..Default::default()
        })
    }

    fn by_bearer(&self, headers: &HeaderMap) -> Option<UserInfo> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.user_for_token(token.trim())
    }

    fn user_for_token(&self, token: &str) -> Option<UserInfo> {
        match self.by_token.get(token) {
            Some(&i) => Some(self.users[i].info.clone()),
            // A service-account token the TokenRequest API minted.
            None => self
                .issuer
                .verify(token, jiff::Timestamp::now().as_second()),
        }
    }

    /// The issuer of service-account tokens these users authenticate with.
    pub fn token_issuer(&self) -> &super::token::Issuer {
        &self.issuer
    }

    /// The impersonation filter: the identity the `Impersonate-*` headers ask for, each part
    /// authorised for `caller`; `caller` itself when there are none.
    fn impersonate(&self, caller: UserInfo, headers: &HeaderMap) -> Result<UserInfo, Status> {
        let Some(wanted) = Impersonation::requested(headers)? else {
            return Ok(caller);
        };
        for check in &wanted.checks {
            self.authorize(&caller, check)?;
        }
        Ok(wanted.user)
    }

    /// May `user` do what `attrs` describe? 403 with the apiserver's message if not.
    pub fn authorize(&self, user: &UserInfo, attrs: &ResourceAttributes) -> Result<(), Status> {
        match self.decide(user, attrs) {
            Some(_) => Ok(()),
            None => Err(forbidden(user, attrs)),
        }
    }

    /// May `user` send `verb` (lower-case HTTP method: get, post…) to a non-resource `path`?
    pub fn authorize_path(&self, user: &UserInfo, verb: &str, path: &str) -> Result<(), Status> {
        match self.decide_path(user, verb, path) {
            Some(_) => Ok(()),
            None => Err(Status::failure(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "forbidden: User {:?} cannot {verb} path {path:?}",
                    user.username
                ),
            )
            .with_details(StatusDetails::default())),
        }
    }

    /// `Some(reason)` when allowed.
    fn decide(&self, user: &UserInfo, attrs: &ResourceAttributes) -> Option<String> {
        if attrs.verb == "impersonate"
            && self
                .entry(&user.username)
                .is_some_and(|u| u.can_impersonate)
        {
            return Some(format!("allowed: {:?} has canImpersonate", user.username));
        }
        self.rules_of(user)
            .find(|(_, r)| r.matches(attrs))
            .map(|(source, _)| format!("allowed by {source}"))
    }

    fn decide_path(&self, user: &UserInfo, verb: &str, path: &str) -> Option<String> {
        self.rules_of(user)
            .find(|(_, r)| r.matches_path(verb, path))
            .map(|(source, _)| format!("allowed by {source}"))
    }

    /// The users-file entry of `username`, if it has one.
    fn entry(&self, username: &str) -> Option<&User> {
        self.by_name.get(username).map(|&i| &self.users[i])
    }
}

fn check_rules(rules: &[Rule], at: &str) -> Result<(), String> {
    for (j, rule) in rules.iter().enumerate() {
        if rule.verbs.is_empty() {
            return Err(format!(
                "{at}.rules[{j}].verbs: at least one verb is required"
            ));
        }
        match (rule.resources.is_empty(), rule.non_resource_urls.is_empty()) {
            (true, true) => {
                return Err(format!(
                    "{at}.rules[{j}]: one of resources or nonResourceURLs is required"
                ));
            }
            (false, false) => {
                return Err(format!(
                    "{at}.rules[{j}]: resources and nonResourceURLs cannot be in the same rule"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The apiserver's 401 for a request without valid credentials.
pub fn unauthorized() -> Status {
    Status::failure(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}

/// RBAC's 403: `pods "p" is forbidden: User "u" cannot get resource "pods" in API group "" in
/// the namespace "ns"`.
pub fn forbidden(user: &UserInfo, a: &ResourceAttributes) -> Status {
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let subject = if a.name.is_empty() {
        qualified
    } else {
        format!("{qualified} {:?}", a.name)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    Status::failure(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{subject} is forbidden: User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.username,
            a.verb,
            a.full_resource(),
            a.group
        ),
    )
    .with_details(StatusDetails {
        name: a.name.clone(),
        group: a.group.clone(),
        kind: a.resource.clone(),
        ..Default::default()
    })
}

/// Who decides whether a request is allowed: the users file's rules, or, with authentication
/// off, kube-apiserver's `AlwaysAllow` authorizer (everything, for everyone, with no reason).
#[derive(Clone, Copy, Debug)]
pub enum Authorizer<'a> {
    Rules(&'a Users),
    AlwaysAllow,
}

impl Authorizer<'_> {
    /// `Some(reason)` when allowed (`AlwaysAllow` gives an empty reason).
    fn decide(&self, user: &UserInfo, attrs: &ResourceAttributes) -> Option<String> {
        match self {
            Authorizer::Rules(users) => users.decide(user, attrs),
            Authorizer::AlwaysAllow => Some(String::new()),
        }
    }

    fn decide_path(&self, user: &UserInfo, verb: &str, path: &str) -> Option<String> {
        match self {
            Authorizer::Rules(users) => users.decide_path(user, verb, path),
            Authorizer::AlwaysAllow => Some(String::new()),
        }
    }

    /// What `user` may do in `namespace` (a SelfSubjectRulesReview's status).
    pub fn rules_review(&self, user: &UserInfo, namespace: &str) -> RulesReviewStatus {
        match self {
            Authorizer::Rules(users) => users.rules_review(user, namespace),
            Authorizer::AlwaysAllow => RulesReviewStatus::everything(),
        }
    }
}

mod impersonation;
mod review;
mod rules;
use crate::identity::x509;
use impersonation::Impersonation;
pub use impersonation::{ANONYMOUS, UNAUTHENTICATED, unauthenticated_caller};
pub use review::{self_subject_review, token_review_without_authenticator};
pub use rules::{NonResourceRule, ResourceRule, RulesReviewStatus};

#[cfg(test)]
mod tests;
