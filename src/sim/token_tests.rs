use super::*;
use crate::sim::registry::Registry;

fn store_with_sa() -> (Store, ResourceType) {
    let store = Store::new(Registry::builtin(), 100);
    let sa = store.find_type("", "v1", "serviceaccounts").unwrap();
    let ns = store.find_type("", "v1", "namespaces").unwrap();
    store
        .create(&ns, "", json!({"metadata": {"name": "ci"}}), false)
        .unwrap();
    store
        .create(&sa, "ci", json!({"metadata": {"name": "helm"}}), false)
        .unwrap();
    (store, sa)
}

fn claims(expires_at: i64) -> Claims<'static> {
    Claims {
        namespace: "ci",
        service_account: "helm",
        service_account_uid: "uid-1",
        audiences: &[],
        issued_at: 1_000,
        expires_at,
    }
}

#[test]
fn minted_tokens_verify_as_the_service_account_until_they_expire() {
    let issuer = Issuer::default();
    let token = issuer.mint(&claims(5_000));
    assert_eq!(token.split('.').count(), 3, "{token}");
    let user = issuer.verify(&token, 4_999).unwrap();
    assert_eq!(user.username, "system:serviceaccount:ci:helm");
    assert_eq!(user.uid, "uid-1");
    assert_eq!(
        user.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            "system:authenticated"
        ]
    );
    assert!(user.extra[CREDENTIAL_ID][0].starts_with("JTI="));
    assert!(issuer.verify(&token, 5_000).is_none(), "expired");
    assert!(issuer.verify(&token, 999).is_none(), "not yet valid");
    // Another emulator's key, or a tampered body, does not verify.
    assert!(Issuer::default().verify(&token, 2_000).is_none());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = B64.encode(
        json!({"sub": "system:serviceaccount:kube-system:admin", "exp": 9_999, "nbf": 0,
               "kubernetes.io": {"namespace": "kube-system"}})
        .to_string(),
    );
    parts[1] = &forged;
    assert!(issuer.verify(&parts.join("."), 2_000).is_none());
    assert!(issuer.verify("not-a-token", 2_000).is_none());
}

#[test]
fn hmac_matches_rfc_4231_shape() {
    // RFC 4231 test case 2 uses a short key; ours are 32 bytes, zero-padded like any short key.
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(b"Jefe");
    let mac = hmac_sha256(&key, b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn a_token_request_is_answered_with_defaults_and_a_token() {
    let (store, sa) = store_with_sa();
    let issuer = Issuer::default();
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"audiences": null, "expirationSeconds": null}});
    let tr = token_request(&store, &issuer, &sa, "ci", "helm", &body).unwrap();
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["metadata"]["name"], "helm");
    assert_eq!(tr["metadata"]["namespace"], "ci");
    assert_eq!(tr["spec"]["expirationSeconds"], DEFAULT_EXPIRATION_SECONDS);
    assert_eq!(tr["spec"]["audiences"], json!([ISSUER]));
    let token = tr["status"]["token"].as_str().unwrap();
    let now = jiff::Timestamp::now().as_second();
    let user = issuer.verify(token, now).unwrap();
    assert_eq!(user.username, "system:serviceaccount:ci:helm");
    let expires: jiff::Timestamp = tr["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = expires.as_second() - now;
    assert!((3590..=3600).contains(&left), "{left}");
}

#[test]
fn bad_token_requests_get_the_apiservers_errors() {
    let (store, sa) = store_with_sa();
    let issuer = Issuer::default();
    let short = json!({"spec": {"expirationSeconds": 60}});
    let e = token_request(&store, &issuer, &sa, "ci", "helm", &short).unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("TokenRequest.authentication.k8s.io")
            && e.message.contains(
                "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
            ),
        "{}",
        e.message
    );
    let e = token_request(&store, &issuer, &sa, "ci", "nobody", &json!({})).unwrap_err();
    assert_eq!(e.code, 404);
    assert_eq!(e.message, "serviceaccounts \"nobody\" not found");
    let renamed = json!({"metadata": {"name": "other"}});
    let e = token_request(&store, &issuer, &sa, "ci", "helm", &renamed).unwrap_err();
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("must match the service account name"),
        "{}",
        e.message
    );
    let deployment = json!({"spec": {"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}}});
    let e = token_request(&store, &issuer, &sa, "ci", "helm", &deployment).unwrap_err();
    assert_eq!(e.code, 400);
    assert!(
        e.message
            .contains("cannot bind token to object of type Deployment"),
        "{}",
        e.message
    );
    let missing_secret = json!({"spec": {"boundObjectRef": {"kind": "Secret", "name": "gone"}}});
    let e = token_request(&store, &issuer, &sa, "ci", "helm", &missing_secret).unwrap_err();
    assert_eq!(e.code, 404);
    let wrong_kind = json!({"apiVersion": "v1", "kind": "Pod"});
    let e = token_request(&store, &issuer, &sa, "ci", "helm", &wrong_kind).unwrap_err();
    assert_eq!(e.code, 400);
}
