//! Kubernetes `Status` bodies: the one shape every error kubeguard (or the emulator) produces.
//!
//! kubectl and client-go decode a `Status` from any non-2xx answer and print its `message`, so a
//! refusal that is a `Status` reads as naturally as one from the apiserver itself.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::{Deserialize, Serialize};

/// A `meta.k8s.io/v1` Status object (`status: Failure`, or `Success` for deletes that return one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

/// `details` of a Status: which object the failure is about, and structured causes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

/// One cause inside `details.causes` (used by 422 Invalid answers).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl Status {
    /// A `Failure` status with the given HTTP code, machine-readable reason and human message.
    pub fn failure(code: StatusCode, reason: &str, message: impl Into<String>) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Default::default(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code: code.as_u16(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::failure(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::failure(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::failure(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    pub fn http_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn to_bytes(&self) -> Bytes {
        // Serialising a struct of strings and numbers cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The status as an HTTP response with a JSON body, in any body type built from `Bytes`.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut resp = Response::new(B::from(self.to_bytes()));
        *resp.status_mut() = self.http_code();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.details.as_ref().and_then(|d| d.retry_after_seconds) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_serialises_like_the_apiserver() {
        let s = Status::not_found(r#"pods "p1" not found"#).with_details(StatusDetails {
            name: "p1".into(),
            kind: "pods".into(),
            ..Default::default()
        });
        let v: serde_json::Value = serde_json::from_slice(&s.to_bytes()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NotFound");
        assert_eq!(v["code"], 404);
        assert_eq!(v["details"]["name"], "p1");
        assert!(v["details"].get("group").is_none());
    }

    #[test]
    fn retry_after_becomes_an_integer_header() {
        let s = Status::failure(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "slow down",
        )
        .with_details(StatusDetails {
            retry_after_seconds: Some(3),
            ..Default::default()
        });
        let resp: Response<http_body_util::Full<Bytes>> = s.into_response();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
    }
}
