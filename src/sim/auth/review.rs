//! The review APIs: request JSON in, the answered review out, in the shapes of
//! `authentication.k8s.io/v1` (TokenReview, SelfSubjectReview) and `authorization.k8s.io/v1`
//! (SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview,
//! SelfSubjectRulesReview). Nothing is stored; the caller answers `201 Created` with the review.
//!
//! A body that is not JSON, or whose field has the wrong type, is a 400 naming the field
//! (`SelfSubjectRulesReview in version "v1" cannot be handled as a SelfSubjectRulesReview:
//! spec.namespace: invalid type: …`, as the apiserver's decoder words it); a body that decodes
//! but breaks the API's validation is a 422 `Invalid` with the field in its cause.

// `Status` is the error every caller turns straight into a response (see logs.rs).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{AUTHN_GROUP, Authorizer, ResourceAttributes, UserInfo, Users};
use crate::status::{Status, StatusCause, StatusDetails};

const AUTHZ_GROUP: &str = "authorization.k8s.io";

/// The parts of a review body every review reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Review<S> {
    kind: Option<String>,
    api_version: Option<String>,
    metadata: Metadata,
    spec: S,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Metadata {
    namespace: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenReviewSpec {
    token: String,
}

/// The spec of SubjectAccessReview and its local and self variants (the self ones have no
/// subject: a subject sent anyway is ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct AccessReviewSpec {
    resource_attributes: Option<ResourceAttributes>,
    non_resource_attributes: Option<NonResourceAttributes>,
    user: String,
    uid: String,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NonResourceAttributes {
    path: String,
    verb: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RulesReviewSpec {
    namespace: String,
}

impl Users {
    /// `POST /apis/authentication.k8s.io/v1/tokenreviews`: the TokenReview to answer with.
    /// Counted in [`Users::token_reviews_received`].
    pub fn token_review(&self, body: &[u8]) -> Result<Value, Status> {
        self.token_reviews.fetch_add(1, Ordering::Relaxed);
        let (mut review, token) = token_review_request(body)?;
        let mut status = match self.user_for_token(&token) {
            Some(user) => json!({"authenticated": true, "user": user}),
            None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
        };
        if let Some(aud) = review["spec"]["audiences"]
            .as_array()
            .filter(|a| !a.is_empty())
            && status["authenticated"] == true
        {
            status["audiences"] = Value::Array(aud.clone());
        }
        review["status"] = status;
        Ok(review)
    }
}

/// A TokenReview where no token authenticator is configured (authentication off): the review
/// comes back with an empty status, as kube-apiserver's `tokenreviews` storage answers then.
pub fn token_review_without_authenticator(body: &[u8]) -> Result<Value, Status> {
    let (mut review, _) = token_review_request(body)?;
    review["status"] = json!({"user": {}});
    Ok(review)
}

fn token_review_request(body: &[u8]) -> Result<(Value, String), Status> {
    let (mut review, parsed) = decode::<TokenReviewSpec>(body, "TokenReview", AUTHN_GROUP)?;
    if parsed.spec.token.is_empty() {
        return Err(Status::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    stamp(&mut review, "TokenReview", AUTHN_GROUP);
    Ok((review, parsed.spec.token))
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`): the
/// caller's user info, as authentication (and impersonation) left it.
pub fn self_subject_review(caller: &UserInfo, body: &[u8]) -> Result<Value, Status> {
    decode::<Value>(body, "SelfSubjectReview", AUTHN_GROUP)?;
    let created = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Ok(json!({
        "kind": "SelfSubjectReview",
        "apiVersion": format!("{AUTHN_GROUP}/v1"),
        "metadata": {"creationTimestamp": created},
        "status": {"userInfo": caller},
    }))
}

impl Authorizer<'_> {
    /// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: may the subject of the spec
    /// do this?
    pub fn subject_access_review(&self, body: &[u8]) -> Result<Value, Status> {
        const KIND: &str = "SubjectAccessReview";
        let (review, parsed) = decode::<AccessReviewSpec>(body, KIND, AUTHZ_GROUP)?;
        self.subject_review(review, &parsed.spec, KIND)
    }

    /// `POST /apis/authorization.k8s.io/v1/namespaces/<ns>/localsubjectaccessreviews`: a
    /// SubjectAccessReview confined to the namespace of the path.
    pub fn local_subject_access_review(
        &self,
        namespace: &str,
        body: &[u8],
    ) -> Result<Value, Status> {
        const KIND: &str = "LocalSubjectAccessReview";
        let (mut review, parsed) = decode::<AccessReviewSpec>(body, KIND, AUTHZ_GROUP)?;
        if !parsed.metadata.namespace.is_empty() && parsed.metadata.namespace != namespace {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        review["metadata"]["namespace"] = json!(namespace);
        if parsed.spec.non_resource_attributes.is_some() {
            return Err(invalid_review(
                KIND,
                "spec.nonResourceAttributes",
                "Invalid value: \"object\": disallowed on this kind of request",
            ));
        }
        if let Some(ra) = &parsed.spec.resource_attributes
            && ra.namespace != namespace
        {
            return Err(invalid_review(
                KIND,
                "spec.resourceAttributes.namespace",
                &format!(
                    "Invalid value: {:?}: must match metadata.namespace",
                    ra.namespace
                ),
            ));
        }
        self.subject_review(review, &parsed.spec, KIND)
    }

    /// The two reviews about a subject named in the spec.
    fn subject_review(
        &self,
        review: Value,
        spec: &AccessReviewSpec,
        kind: &str,
    ) -> Result<Value, Status> {
        if spec.user.is_empty() && spec.groups.is_empty() {
            return Err(invalid_review(
                kind,
                "spec.user",
                "Invalid value: \"\": at least one of user or group must be specified",
            ));
        }
        let subject = UserInfo {
            username: spec.user.clone(),
            uid: spec.uid.clone(),
            groups: spec.groups.clone(),
            extra: spec.extra.clone(),
        };
        self.access_review(review, spec, &subject, kind)
    }

    /// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`):
    /// the same question about the caller.
    pub fn self_subject_access_review(
        &self,
        caller: &UserInfo,
        body: &[u8],
    ) -> Result<Value, Status> {
        const KIND: &str = "SelfSubjectAccessReview";
        let (review, parsed) = decode::<AccessReviewSpec>(body, KIND, AUTHZ_GROUP)?;
        self.access_review(review, &parsed.spec, caller, KIND)
    }

    /// `POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews` (`kubectl auth can-i
    /// --list`): everything the caller may do in `spec.namespace` (required, as in the
    /// apiserver: kubectl sends its current namespace).
    pub fn self_subject_rules_review(
        &self,
        caller: &UserInfo,
        body: &[u8],
    ) -> Result<Value, Status> {
        const KIND: &str = "SelfSubjectRulesReview";
        let (mut review, parsed) = decode::<RulesReviewSpec>(body, KIND, AUTHZ_GROUP)?;
        if parsed.spec.namespace.is_empty() {
            return Err(Status::bad_request("no namespace on request"));
        }
        let status = self.rules_review(caller, &parsed.spec.namespace);
        review["status"] = serde_json::to_value(status)
            .map_err(|e| Status::internal(format!("Internal error occurred: {e}")))?;
        stamp(&mut review, KIND, AUTHZ_GROUP);
        Ok(review)
    }

    /// Decides an access review's spec for `subject` and writes the status into `review`.
    fn access_review(
        &self,
        mut review: Value,
        spec: &AccessReviewSpec,
        subject: &UserInfo,
        kind: &str,
    ) -> Result<Value, Status> {
        let decision = match (&spec.resource_attributes, &spec.non_resource_attributes) {
            (Some(attrs), None) => self.decide(subject, attrs),
            (None, Some(nra)) => self.decide_path(subject, &nra.verb, &nra.path),
            (Some(_), Some(_)) => {
                return Err(invalid_review(
                    kind,
                    "spec.nonResourceAttributes",
                    "Invalid value: \"object\": cannot be specified in combination with resourceAttributes",
                ));
            }
            (None, None) => {
                return Err(invalid_review(
                    kind,
                    "spec.resourceAttributes",
                    "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
        };
        review["status"] = match decision {
            Some(reason) if reason.is_empty() => json!({"allowed": true}),
            Some(reason) => json!({"allowed": true, "reason": reason}),
            None => json!({"allowed": false}),
        };
        stamp(&mut review, kind, AUTHZ_GROUP);
        Ok(review)
    }
}

/// Parses a review body: the JSON as sent (to echo its spec back) and its typed reading. A body
/// that is not a JSON object, a field of the wrong type, or another kind is a 400.
fn decode<S: DeserializeOwned + Default>(
    body: &[u8],
    kind: &str,
    group: &str,
) -> Result<(Value, Review<S>), Status> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| cannot_handle(kind, &e.to_string()))?;
    if !value.is_object() {
        return Err(cannot_handle(kind, "the body is not a JSON object"));
    }
    let parsed: Review<S> = serde_path_to_error::deserialize(&value)
        .map_err(|e| cannot_handle(kind, &format!("{}: {}", e.path(), e.inner())))?;
    if let Some(k) = parsed.kind.as_deref().filter(|k| *k != kind) {
        return Err(cannot_handle(kind, &format!("kind: {k:?} is not {kind}")));
    }
    let api_version = format!("{group}/v1");
    if let Some(v) = parsed.api_version.as_deref().filter(|v| *v != api_version) {
        return Err(cannot_handle(
            kind,
            &format!("apiVersion: {v:?} is not {api_version:?}"),
        ));
    }
    Ok((value, parsed))
}

/// The decoder's 400: `<Kind> in version "v1" cannot be handled as a <Kind>: <why>`.
fn cannot_handle(kind: &str, why: &str) -> Status {
    Status::bad_request(format!(
        "{kind} in version \"v1\" cannot be handled as a {kind}: {why}"
    ))
}

/// Sets the type and the metadata of an answered review.
fn stamp(review: &mut Value, kind: &str, group: &str) {
    let namespace = review["metadata"]["namespace"].clone();
    review["kind"] = json!(kind);
    review["apiVersion"] = json!(format!("{group}/v1"));
    review["metadata"] = json!({"creationTimestamp": null});
    if namespace.is_string() {
        review["metadata"]["namespace"] = namespace;
    }
}

/// The 422 of an `authorization.k8s.io` review that decoded but is not valid.
fn invalid_review(kind: &str, field: &str, message: &str) -> Status {
    let group = AUTHZ_GROUP;
    Status::failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("{kind}.{group} \"\" is invalid: {field}: {message}"),
    )
    .with_details(StatusDetails {
        group: group.into(),
        kind: kind.into(),
        causes: vec![StatusCause {
            reason: "FieldValueInvalid".into(),
            message: message.into(),
            field: field.into(),
        }],
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
