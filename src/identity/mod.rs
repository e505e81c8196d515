//! Identify: who is calling. Every request carries an [`Identity`] to the later steps (policy,
//! rate limits, the cost ledger, the request log) and, in impersonate mode, to the upstream.

use std::collections::BTreeMap;

/// How kubeguard learned who the caller is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentitySource {
    /// A client certificate verified against the configured client CA (CN = user, O = groups).
    ClientCert,
    /// A bearer token verified by TokenReview (or its cache).
    Token,
    /// The fixed identity of a sidecar listener.
    Sidecar,
    /// No credentials, and the config allows anonymous callers.
    Anonymous,
    /// Not verified by kubeguard (identity checks off): only for accounting, never trusted.
    Unverified,
}

/// The caller, as the apiserver would see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub source: IdentitySource,
}

impl Identity {
    /// `system:anonymous` in `system:unauthenticated`, as the apiserver names it.
    pub fn anonymous() -> Self {
        Identity {
            user: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            uid: None,
            extra: BTreeMap::new(),
            source: IdentitySource::Anonymous,
        }
    }

    /// A caller whose identity kubeguard does not check (for accounting only).
    pub fn unverified(user: impl Into<String>) -> Self {
        Identity {
            user: user.into(),
            groups: Vec::new(),
            uid: None,
            extra: BTreeMap::new(),
            source: IdentitySource::Unverified,
        }
    }

    pub fn verified(&self) -> bool {
        !matches!(self.source, IdentitySource::Unverified)
    }

    /// `(namespace, name)` for `system:serviceaccount:<ns>:<name>` users.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let rest = self.user.strip_prefix("system:serviceaccount:")?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_are_recognised() {
        let id = Identity::unverified("system:serviceaccount:kube-system:helm");
        assert_eq!(id.service_account(), Some(("kube-system", "helm")));
        assert_eq!(Identity::unverified("alice").service_account(), None);
        assert_eq!(
            Identity::unverified("system:serviceaccount:x").service_account(),
            None
        );
        assert!(Identity::anonymous().in_group("system:unauthenticated"));
    }
}
