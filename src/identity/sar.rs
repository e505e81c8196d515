//! A client's own impersonation (`kubectl --as`, `--as-group`, `--as-uid`): honoured only after
//! a SubjectAccessReview said this caller may impersonate each part, as the apiserver's
//! impersonation filter checks it (k8s-facts §4). kubeguard then impersonates the result with
//! its own credentials; the client's headers never travel.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderMap;

use super::review::{self, Access, ReviewUnavailable};
use super::token::ReviewCache;
use super::{AUTHENTICATED, Identity};
use crate::upstream::Upstream;

/// What the client's `Impersonate-*` headers ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requested {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Reads the client's impersonation headers: `Ok(None)` when there are none; `Err` when they
/// ask for groups, a uid or extras without a user (the apiserver refuses that too).
pub fn requested(headers: &HeaderMap) -> Result<Option<Requested>, &'static str> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let user = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("impersonate-extra-")
            && let Ok(v) = value.to_str()
        {
            let key = percent_encoding::percent_decode_str(key)
                .decode_utf8_lossy()
                .to_lowercase();
            extra.entry(key).or_default().push(v.to_string());
        }
    }
    match user {
        Some(user) if !user.is_empty() => Ok(Some(Requested {
            user,
            groups,
            uid,
            extra,
        })),
        _ if groups.is_empty() && uid.is_none() && extra.is_empty() => Ok(None),
        _ => Err("requested impersonation of groups, uid or extra without impersonating a user"),
    }
}

/// Why an impersonation was not granted.
#[derive(Debug)]
pub enum Denied {
    /// The review said no: the message names what was refused.
    Forbidden(String),
    Unavailable(ReviewUnavailable),
}

/// Checks every part of `wanted` for `caller` (answers remembered in `cache`); the identity to
/// impersonate when all are allowed.
pub async fn authorize(
    upstream: &Upstream,
    cache: &ReviewCache<bool>,
    caller: &Identity,
    wanted: Requested,
    timeout: Duration,
) -> Result<Identity, Denied> {
    let sa = wanted
        .user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'));
    let mut checks: Vec<(Access<'_>, String)> = Vec::new();
    let user_check = match sa {
        Some((ns, name)) => Access {
            group: "",
            resource: "serviceaccounts",
            subresource: "",
            namespace: ns,
            name,
        },
        None => Access {
            group: "",
            resource: "users",
            subresource: "",
            namespace: "",
            name: &wanted.user,
        },
    };
    checks.push((user_check, format!("user {:?}", wanted.user)));
    for g in &wanted.groups {
        checks.push((
            Access {
                group: "",
                resource: "groups",
                subresource: "",
                namespace: "",
                name: g,
            },
            format!("group {g:?}"),
        ));
    }
    if let Some(uid) = &wanted.uid {
        checks.push((
            Access {
                group: "authentication.k8s.io",
                resource: "uids",
                subresource: "",
                namespace: "",
                name: uid,
            },
            format!("uid {uid:?}"),
        ));
    }
    for (key, values) in &wanted.extra {
        for v in values {
            checks.push((
                Access {
                    group: "authentication.k8s.io",
                    resource: "userextras",
                    subresource: key,
                    namespace: "",
                    name: v,
                },
                format!("userextras/{key} {v:?}"),
            ));
        }
    }
    for (access, what) in &checks {
        let question = serde_json::json!([
            caller.user,
            caller.groups,
            caller.uid,
            caller.extra,
            access.group,
            access.resource,
            access.subresource,
            access.namespace,
            access.name,
        ])
        .to_string();
        let allowed = cache
            .lookup(question.as_bytes(), || {
                review::may_impersonate(upstream, caller, access, timeout)
            })
            .await
            .map_err(Denied::Unavailable)?;
        if !allowed.answer {
            return Err(Denied::Forbidden(format!(
                "{:?} cannot impersonate {what}",
                caller.user
            )));
        }
    }
    let mut groups = wanted.groups.clone();
    if let Some((ns, _)) = sa
        && groups.is_empty()
    {
        groups = vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
        ];
    }
    if wanted.user != "system:anonymous" && !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Ok(Identity {
        user: wanted.user,
        groups,
        uid: wanted.uid,
        extra: wanted.extra,
        source: caller.source,
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn reads_kubectl_as_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(requested(&h), Ok(None));
        h.insert("impersonate-group", HeaderValue::from_static("devs"));
        assert!(requested(&h).is_err());
        h.insert("impersonate-user", HeaderValue::from_static("bob"));
        h.append("impersonate-group", HeaderValue::from_static("ops"));
        h.insert(
            "impersonate-extra-Scopes%2Fa",
            HeaderValue::from_static("x"),
        );
        let r = requested(&h).unwrap().unwrap();
        assert_eq!(r.user, "bob");
        assert_eq!(r.groups, vec!["devs", "ops"]);
        assert_eq!(r.extra["scopes/a"], vec!["x"]);
    }
}
