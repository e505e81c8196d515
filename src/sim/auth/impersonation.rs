//! Who the `Impersonate-*` headers ask to become, and who calls when authentication is off.

// `Status` is the error every caller turns straight into a response (see logs.rs).
#![allow(clippy::result_large_err)]

use http::HeaderMap;

use super::{AUTHENTICATED, AUTHN_GROUP, ResourceAttributes, SA_PREFIX, UserInfo};
use crate::status::Status;

/// The user kube-apiserver's anonymous authenticator names.
pub const ANONYMOUS: &str = "system:anonymous";
/// The group of [`ANONYMOUS`].
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// An impersonation request: the identity asked for, and what the caller must be allowed
/// (the `impersonate` verb on each part) to take it.
pub(super) struct Impersonation {
    pub(super) user: UserInfo,
    pub(super) checks: Vec<ResourceAttributes>,
}

impl Impersonation {
    /// Reads the `Impersonate-*` headers; `None` when there are none.
    pub(super) fn requested(headers: &HeaderMap) -> Result<Option<Impersonation>, Status> {
        // The same reading of the headers as kubeguard's own (identity/sar.rs).
        let wanted = match crate::identity::sar::requested(headers) {
            Ok(None) => return Ok(None),
            Ok(Some(wanted)) => wanted,
            Err(why) => {
                return Err(Status::internal(format!("Internal error occurred: {why}")));
            }
        };
        let crate::identity::sar::Requested {
            user: username,
            groups,
            uid,
            extra,
        } = wanted;

        let mut checks = Vec::new();
        let mut new_groups = groups.clone();
        match username
            .strip_prefix(SA_PREFIX)
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, name)) => {
                checks.push(
                    ResourceAttributes::new("impersonate", "", "serviceaccounts", ns).named(name),
                );
                if groups.is_empty() {
                    new_groups = vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{ns}"),
                    ];
                }
            }
            None => checks
                .push(ResourceAttributes::new("impersonate", "", "users", "").named(&username)),
        }
        for g in &groups {
            checks.push(ResourceAttributes::new("impersonate", "", "groups", "").named(g));
        }
        if let Some(uid) = &uid {
            checks.push(ResourceAttributes::new("impersonate", AUTHN_GROUP, "uids", "").named(uid));
        }
        for (key, vals) in &extra {
            for v in vals {
                checks.push(
                    ResourceAttributes::new("impersonate", AUTHN_GROUP, "userextras", "")
                        .subresource(key)
                        .named(v),
                );
            }
        }
        if username != ANONYMOUS && !new_groups.iter().any(|g| g == AUTHENTICATED) {
            new_groups.push(AUTHENTICATED.into());
        }
        let user = UserInfo {
            username,
            uid: uid.unwrap_or_default(),
            groups: new_groups,
            extra,
        };
        Ok(Some(Impersonation { user, checks }))
    }
}

/// The caller when authentication is off (no users file), as kube-apiserver sees it with only
/// anonymous authentication and the `AlwaysAllow` authorizer: `system:anonymous` in
/// `system:unauthenticated` (bearer tokens are not read: no authenticator would accept them),
/// or whoever the `Impersonate-*` headers name, which `AlwaysAllow` lets anyone become.
pub fn unauthenticated_caller(headers: &HeaderMap) -> Result<UserInfo, Status> {
    Ok(match Impersonation::requested(headers)? {
        Some(wanted) => wanted.user,
        None => UserInfo {
            username: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
            ..UserInfo::default()
        },
    })
}
