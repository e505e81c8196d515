//! TokenReview (`authentication.k8s.io/v1`) and SubjectAccessReview (`authorization.k8s.io/v1`)
//! sent to the upstream with kubeguard's own credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use super::{Identity, IdentitySource};
use crate::upstream::{Upstream, UpstreamBody, error_chain};

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
/// A review answer is small; anything larger is not one.
const MAX_REVIEW_BYTES: usize = 64 * 1024;

/// Why a review could not be had (the caller was neither accepted nor refused).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReviewUnavailable(pub String);

/// Asks the upstream who `token` belongs to: `Ok(None)` when it is not a valid token.
pub async fn token_review(
    upstream: &Upstream,
    token: &str,
    audiences: &[String],
    timeout: Duration,
) -> Result<Option<Identity>, ReviewUnavailable> {
    let mut spec = json!({ "token": token });
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": spec,
    });
    let answer = post(upstream, TOKEN_REVIEWS, &body, timeout).await?;
    let status = &answer["status"];
    if status["authenticated"] != true {
        return Ok(None);
    }
    let user = &status["user"];
    let Some(name) = user["username"].as_str().filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let mut identity = Identity {
        user: name.to_string(),
        groups: serde_json::from_value(user["groups"].clone()).unwrap_or_default(),
        uid: user["uid"]
            .as_str()
            .filter(|u| !u.is_empty())
            .map(str::to_string),
        extra: serde_json::from_value(user["extra"].clone()).unwrap_or_default(),
        source: IdentitySource::Token,
    };
    // Service-account tokens: the apiserver's groups (k8s-facts §4), whether or not the
    // reviewer listed them.
    if let Some((ns, _)) = identity.service_account() {
        let ns_group = format!("system:serviceaccounts:{ns}");
        for g in ["system:serviceaccounts", ns_group.as_str()] {
            if !identity.in_group(g) {
                identity.groups.push(g.to_string());
            }
        }
    }
    if !identity.in_group(super::AUTHENTICATED) {
        identity.groups.push(super::AUTHENTICATED.into());
    }
    Ok(Some(identity))
}

/// What a SubjectAccessReview asks: may `subject` do `verb` on `resource` (named `name`)?
pub struct Access<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Asks the upstream whether `subject` may `impersonate` what `access` names.
pub async fn may_impersonate(
    upstream: &Upstream,
    subject: &Identity,
    access: &Access<'_>,
    timeout: Duration,
) -> Result<bool, ReviewUnavailable> {
    let extra: BTreeMap<&str, &Vec<String>> =
        subject.extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let body = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": subject.user,
            "groups": subject.groups,
            "uid": subject.uid.clone().unwrap_or_default(),
            "extra": extra,
            "resourceAttributes": {
                "verb": "impersonate",
                "group": access.group,
                "resource": access.resource,
                "subresource": access.subresource,
                "namespace": access.namespace,
                "name": access.name,
            },
        },
    });
    let answer = post(upstream, SUBJECT_ACCESS_REVIEWS, &body, timeout).await?;
    Ok(answer["status"]["allowed"] == true)
}

/// POSTs a review with kubeguard's own credentials; a non-2xx answer or a body that is not
/// a review is "unavailable" (kubeguard cannot decide; the caller answers 503).
async fn post(
    upstream: &Upstream,
    path: &'static str,
    body: &Value,
    timeout: Duration,
) -> Result<Value, ReviewUnavailable> {
    let unavailable = |what: &str| ReviewUnavailable(format!("{path}: {what}"));
    let uri = upstream
        .uri_for(&PathAndQuery::from_static(path))
        .map_err(|e| unavailable(&e.to_string()))?;
    let mut req = Request::post(uri)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .body(UpstreamBody::Right(Full::new(Bytes::from(
            body.to_string(),
        ))))
        .map_err(|e| unavailable(&e.to_string()))?;
    if let Some(auth) = upstream
        .own_authorization()
        .await
        .map_err(|e| unavailable(&error_chain(&e)))?
    {
        req.headers_mut().insert(AUTHORIZATION, auth);
    }
    let work = async {
        let resp = upstream
            .send(req, false, None)
            .await
            .map_err(|e| unavailable(&error_chain(&e)))?;
        let code = resp.status();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_REVIEW_BYTES);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| unavailable(&format!("reading the answer: {e}")))?
            .to_bytes();
        if !code.is_success() {
            return Err(unavailable(&format!("the upstream answered {code}")));
        }
        serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| unavailable(&format!("the answer is not JSON: {e}")))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| unavailable(&format!("no answer within {timeout:?}")))?
}
