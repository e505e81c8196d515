//! `POST …/serviceaccounts/<name>/token`: the TokenRequest API behind `kubectl create token`.
//!
//! The answer has the apiserver's shape (pkg/registry/core/serviceaccount/storage/token.go): the
//! request echoed with its spec defaulted (audiences: the API's own, expiry: one hour), the
//! service account's name and namespace, and a status with the token and its
//! `expirationTimestamp`. Validation and errors follow it too: 404 for an unknown service
//! account, 422 for an expiry under ten minutes or a name that is not the service account's,
//! 400 for a bound object of a kind a token cannot be bound to.
//!
//! # The token
//! A JWT in form only: `header.claims.signature` with the claims a kube-apiserver token carries
//! (`iss`, `sub` = `system:serviceaccount:<ns>:<name>`, `aud`, `exp`, `iat`, `nbf`, `jti`,
//! `kubernetes.io`), but signed with HMAC-SHA256 under a key the emulator draws at start, not
//! with the service-account issuer's RSA key: nothing outside the emulator can verify it.
//!
//! When the emulator runs with a users file (authentication on), it accepts the tokens it minted
//! until they expire, as the service account: the user `system:serviceaccount:<ns>:<name>` in
//! `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`, with the
//! rules the users file gives that service account (none if it has no entry) — so a minted
//! token works as a caller's credential through kubeguard, TokenReview included. Unlike the
//! apiserver, the emulator does not re-check on each request that the service account (or the
//! bound object) still exists. Without a users file nothing is authenticated, so the token is
//! never checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::{AUTHENTICATED, UserInfo};
use super::registry::ResourceType;
use super::store::{self, Store};
use crate::status::{Status, StatusCause};

/// The issuer a kube-apiserver with default flags names in its tokens (and its default audience).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// `SetDefaults_TokenRequestSpec`: one hour.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest expiry the API accepts (`ValidateTokenRequest`).
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest: 2^32 seconds.
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
const SA_PREFIX: &str = "system:serviceaccount:";
/// The extra a 1.30 apiserver attaches to service-account tokens (the token's `jti`).
pub const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Mints and verifies the emulator's service-account tokens (see the module doc).
pub struct Issuer {
    key: [u8; 32],
}

impl Default for Issuer {
    /// A fresh random signing key.
    fn default() -> Self {
        use rand::Rng;
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        Issuer { key }
    }
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str("Issuer")
    }
}

/// Who a token is for and until when.
pub struct Claims<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub service_account_uid: &'a str,
    pub audiences: &'a [Value],
    pub issued_at: i64,
    pub expires_at: i64,
}

impl Issuer {
    /// A signed token for `claims`.
    pub fn mint(&self, claims: &Claims<'_>) -> String {
        let header = json!({"alg": "HS256", "kid": "kubeguard-sim", "typ": "JWT"});
        let body = json!({
            "aud": claims.audiences,
            "exp": claims.expires_at,
            "iat": claims.issued_at,
            "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {
                "namespace": claims.namespace,
                "serviceaccount": {"name": claims.service_account, "uid": claims.service_account_uid},
            },
            "nbf": claims.issued_at,
            "sub": format!("{SA_PREFIX}{}:{}", claims.namespace, claims.service_account),
        });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(body.to_string())
        );
        let signature = B64.encode(self.sign(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// The service account a token this issuer minted stands for, if its signature holds and
    /// it has not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Option<UserInfo> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (_, body) = signing_input.split_once('.')?;
        let given = B64.decode(signature).ok()?;
        let expected = self.sign(signing_input.as_bytes());
        // Constant time: the comparison does not stop at the first differing byte.
        let differ = given.len() != expected.len()
            || given
                .iter()
                .zip(expected)
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                != 0;
        if differ {
            return None;
        }
        let claims: Value = serde_json::from_slice(&B64.decode(body).ok()?).ok()?;
        if claims["exp"].as_i64()? <= now || claims["nbf"].as_i64()? > now {
            return None;
        }
        let username = claims["sub"].as_str()?;
        let namespace = claims["kubernetes.io"]["namespace"].as_str()?;
        username.strip_prefix(SA_PREFIX)?;
        let uid = claims["kubernetes.io"]["serviceaccount"]["uid"]
            .as_str()
            .unwrap_or_default();
        let jti = claims["jti"].as_str().unwrap_or_default();
        Some(UserInfo {
            username: username.to_string(),
            uid: uid.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
            extra: [(CREDENTIAL_ID.to_string(), vec![format!("JTI={jti}")])].into(),
        })
    }

    fn sign(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.key, message)
    }
}

/// HMAC (RFC 2104) over SHA-256 with a key of one block or less.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// A 422 about the TokenRequest, named like the apiserver's (`TokenRequest.authentication.k8s.io`).
fn invalid(name: &str, field: &str, value: &Value, detail: &str) -> Status {
    let cause = StatusCause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {detail}"),
        field: field.into(),
    };
    store::invalid_kind("authentication.k8s.io", "TokenRequest", name, vec![cause])
}

/// Answers a TokenRequest for service account `ns/name` of type `sa_type` (`serviceaccounts`):
/// the TokenRequest to return with `201 Created`.
pub fn token_request(
    store: &Store,
    issuer: &Issuer,
    sa_type: &ResourceType,
    ns: &str,
    name: &str,
    body: &Value,
) -> Result<Value, Status> {
    let kind_ok = body["kind"].as_str().is_none_or(|k| k == "TokenRequest");
    let version_ok = body["apiVersion"]
        .as_str()
        .is_none_or(|v| v == "authentication.k8s.io/v1");
    if !kind_ok || !version_ok {
        return Err(Status::bad_request(format!(
            "the body must be an authentication.k8s.io/v1 TokenRequest, not {} {}",
            body["apiVersion"].as_str().unwrap_or("?"),
            body["kind"].as_str().unwrap_or("?")
        )));
    }
    let md = &body["metadata"];
    for (field, want, what) in [("name", name, "name"), ("namespace", ns, "namespace")] {
        if let Some(given) = md[field].as_str().filter(|s| !s.is_empty())
            && given != want
        {
            let detail = format!("must match the service account {what} if specified");
            return Err(invalid(
                name,
                &format!("metadata.{field}"),
                &md[field],
                &detail,
            ));
        }
    }
    let sa = store
        .get(&store::gr_of(sa_type), ns, name)
        .ok_or_else(|| store::not_found(sa_type, name))?
        .value();
    let spec = &body["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v
            .as_i64()
            .ok_or_else(|| Status::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        let v = &json!(expiration);
        return Err(invalid(
            "",
            "spec.expirationSeconds",
            v,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        let v = &json!(expiration);
        return Err(invalid(
            "",
            "spec.expirationSeconds",
            v,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    check_bound_object(store, ns, name, &spec["boundObjectRef"])?;
    let audiences = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a.clone(),
        _ => vec![json!(ISSUER)],
    };
    let now = jiff::Timestamp::now().as_second();
    let expires_at = now + expiration;
    let token = issuer.mint(&Claims {
        namespace: ns,
        service_account: name,
        service_account_uid: sa["metadata"]["uid"].as_str().unwrap_or_default(),
        audiences: &audiences,
        issued_at: now,
        expires_at,
    });
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": rfc3339(now)},
        "spec": {
            "audiences": audiences,
            "expirationSeconds": expiration,
            "boundObjectRef": spec["boundObjectRef"],
        },
        "status": {"token": token, "expirationTimestamp": rfc3339(expires_at)},
    }))
}

/// A token may be bound to a Pod (running as this service account) or a Secret that exists.
fn check_bound_object(store: &Store, ns: &str, sa: &str, r: &Value) -> Result<(), Status> {
    if r.is_null() {
        return Ok(());
    }
    let kind = r["kind"].as_str().unwrap_or_default();
    let version = r["apiVersion"].as_str().unwrap_or("v1");
    let resource = match (version, kind) {
        ("v1", "Pod") => "pods",
        ("v1", "Secret") => "secrets",
        _ => {
            return Err(Status::bad_request(format!(
                "cannot bind token to object of type {kind} in {version}"
            )));
        }
    };
    let name = r["name"].as_str().unwrap_or_default();
    let rt = store
        .find_type("", "v1", resource)
        .ok_or_else(|| Status::bad_request(format!("{resource} are not served")))?;
    let obj = store
        .get(&store::gr_of(&rt), ns, name)
        .ok_or_else(|| store::not_found(&rt, name))?
        .value();
    if kind == "Pod"
        && obj["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
            != sa
    {
        return Err(Status::bad_request(format!(
            "cannot bind token for serviceaccount \"{sa}\" to pod running with different serviceaccount name."
        )));
    }
    if let Some(uid) = r["uid"].as_str().filter(|u| !u.is_empty())
        && obj["metadata"]["uid"].as_str() != Some(uid)
    {
        return Err(store::conflict(&rt, name));
    }
    Ok(())
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
