//! TokenReview, SubjectAccessReview and SelfSubjectAccessReview: request JSON in, the
//! answered review out, in the shapes of `authentication.k8s.io/v1` and `authorization.k8s.io/v1`.

// `Status` is the error every caller turns straight into a response (see logs.rs).
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering;

use http::StatusCode;
use serde_json::{Value, json};

use super::{AUTHN_GROUP, ResourceAttributes, UserInfo, Users};
use crate::status::{Status, StatusCause, StatusDetails};

impl Users {
    /// `POST /apis/authentication.k8s.io/v1/tokenreviews`: the TokenReview to answer with
    /// `201 Created`. Counted in [`Users::token_reviews_received`].
    pub fn token_review(&self, body: &[u8]) -> Result<Value, Status> {
        self.token_reviews.fetch_add(1, Ordering::Relaxed);
        let review: Value = decode(body, "TokenReview")?;
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        if token.is_empty() {
            return Err(Status::bad_request(
                "token is required for TokenReview in authentication",
            ));
        }
        let mut status = match self.user_for_token(token) {
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
        Ok(json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": review["spec"],
            "status": status,
        }))
    }

    /// `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: the review to answer with
    /// `201 Created`.
    pub fn subject_access_review(&self, body: &[u8]) -> Result<Value, Status> {
        let review: Value = decode(body, "SubjectAccessReview")?;
        let spec = &review["spec"];
        let user = UserInfo {
            username: spec["user"].as_str().unwrap_or_default().into(),
            uid: spec["uid"].as_str().unwrap_or_default().into(),
            groups: serde_json::from_value(spec["groups"].clone()).unwrap_or_default(),
            extra: serde_json::from_value(spec["extra"].clone()).unwrap_or_default(),
        };
        if user.username.is_empty() && user.groups.is_empty() {
            return Err(invalid_review(
                "SubjectAccessReview",
                "spec.user",
                "Invalid value: \"\": at least one of user or group must be specified",
            ));
        }
        self.review(review, &user, "SubjectAccessReview")
    }

    /// `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (`kubectl auth can-i`):
    /// the same question about the caller.
    pub fn self_subject_access_review(
        &self,
        caller: &UserInfo,
        body: &[u8],
    ) -> Result<Value, Status> {
        let review: Value = decode(body, "SelfSubjectAccessReview")?;
        self.review(review, caller, "SelfSubjectAccessReview")
    }

    fn review(&self, mut review: Value, user: &UserInfo, kind: &str) -> Result<Value, Status> {
        let spec = &review["spec"];
        let decision = match (
            spec.get("resourceAttributes"),
            spec.get("nonResourceAttributes"),
        ) {
            (Some(ra), None) => {
                let attrs: ResourceAttributes = serde_json::from_value(ra.clone())
                    .map_err(|e| Status::bad_request(e.to_string()))?;
                self.decide(user, &attrs)
            }
            (None, Some(nra)) => {
                let verb = nra["verb"].as_str().unwrap_or_default();
                let path = nra["path"].as_str().unwrap_or_default();
                self.decide_path(user, verb, path)
            }
            _ => {
                return Err(invalid_review(
                    kind,
                    "spec.resourceAttributes",
                    "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
        };
        let status = match decision {
            Some(reason) => json!({"allowed": true, "reason": reason}),
            None => json!({"allowed": false}),
        };
        review["status"] = status;
        review["kind"] = json!(kind);
        review["apiVersion"] = json!("authorization.k8s.io/v1");
        review["metadata"] = json!({"creationTimestamp": null});
        Ok(review)
    }
}

fn decode(body: &[u8], kind: &str) -> Result<Value, Status> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Status::bad_request(format!("error decoding {kind}: {e}")))?;
    if !v.is_object() {
        return Err(Status::bad_request(format!(
            "error decoding {kind}: not an object"
        )));
    }
    Ok(v)
}

fn invalid_review(kind: &str, field: &str, message: &str) -> Status {
    let group = if kind == "TokenReview" {
        AUTHN_GROUP
    } else {
        "authorization.k8s.io"
    };
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
