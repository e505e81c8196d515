use super::*;
use crate::identity::x509::{Subject, cert_subject};
use http::HeaderValue;
use serde_json::{Value, json};

const FILE: &str = r#"
users:
  - name: alice
    token: alice-token
    uid: "1001"
    groups: [devs]
    rules:
      - verbs: [get, list, watch]
        resources: [pods]
        namespaces: [prod]
  - name: admin
    token: admin-token
    groups: [system:masters]
  - name: imp
    token: imp-token
    canImpersonate: true
  - name: user-imp
    token: user-imp-token
    rules:
      - verbs: [impersonate]
        resources: [users]
  - name: cert-user
    groups: [certs]
  - serviceAccount: {namespace: ci, name: deployer}
    token: ci-token
    rules:
      - verbs: ["*"]
        apiGroups: [apps]
        resources: [deployments]
        namespaces: [ci]
      - verbs: [create]
        resources: ["pods/*"]
        resourceNames: [web-1]
        namespaces: [ci]
groups:
  - name: devs
    rules:
      - verbs: [get]
        resources: [namespaces]
      - verbs: [get]
        nonResourceURLs: [/metrics, /logs/*]
"#;

pub(super) fn users() -> Users {
    Users::from_yaml(FILE).unwrap()
}

pub(super) fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

pub(super) fn user(name: &str) -> UserInfo {
    let token = format!("{name}-token");
    users().authenticate(&bearer(&token), None).unwrap()
}

fn cert(cn: &str, orgs: &[&str]) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "DE");
    if !cn.is_empty() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    // rcgen keeps one value per attribute type: a custom type with O's OID adds a second O.
    let types = [
        rcgen::DnType::OrganizationName,
        rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]),
    ];
    for (ty, org) in types.into_iter().zip(orgs) {
        params.distinguished_name.push(ty, *org);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

// ---- the users file ----

#[test]
fn file_errors_name_the_key() {
    let err = Users::from_yaml("users:\n  - name: a\n    tokn: x\n")
        .err()
        .unwrap();
    assert!(err.contains("tokn"), "{err}");
    let err = Users::from_yaml("users:\n  - token: x\n").err().unwrap();
    assert_eq!(
        err,
        "users[0]: exactly one of name or serviceAccount is required"
    );
    let err = Users::from_yaml("users:\n  - name: a\n    token: t\n  - name: b\n    token: t\n")
        .err()
        .unwrap();
    assert_eq!(err, "users[1].token: the same token as users[0]");
    let err = Users::from_yaml("users:\n  - name: a\n  - name: a\n")
        .err()
        .unwrap();
    assert_eq!(err, "users[1]: duplicate user \"a\" (also users[0])");
    let err = Users::from_yaml("users:\n  - serviceAccount: {namespace: n, name: s}\n")
        .err()
        .unwrap();
    assert!(
        err.starts_with("users[0].token: required for a serviceAccount"),
        "{err}"
    );
    let err =
        Users::from_yaml("users:\n  - name: a\n    rules: [{verbs: [], resources: [pods]}]\n")
            .err()
            .unwrap();
    assert_eq!(
        err,
        "users[0].rules[0].verbs: at least one verb is required"
    );
    let err = Users::from_yaml("groups:\n  - name: g\n    rules: [{verbs: [get]}]\n")
        .err()
        .unwrap();
    assert_eq!(
        err,
        "groups[0].rules[0]: one of resources or nonResourceURLs is required"
    );
    let err = Users::from_yaml(
        "users:\n  - name: a\n    rules: [{verbs: [get], resources: [pods], namespace: [x]}]\n",
    )
    .err()
    .unwrap();
    assert!(err.contains("namespace"), "{err}");
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.yaml");
    std::fs::write(&path, FILE).unwrap();
    let loaded = Users::load(&path).unwrap();
    assert_eq!(
        loaded
            .authenticate(&bearer("alice-token"), None)
            .unwrap()
            .username,
        "alice"
    );
    let missing = dir.path().join("nope.yaml");
    let err = Users::load(&missing).err().unwrap();
    assert!(err.contains("nope.yaml"), "{err}");
}

// ---- authentication ----

#[test]
fn bearer_token_names_the_user_with_system_authenticated() {
    let alice = user("alice");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.uid, "1001");
    assert_eq!(alice.groups, vec!["devs", AUTHENTICATED]);
    // The scheme is case-insensitive, as in the apiserver.
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("bearer admin-token"),
    );
    assert_eq!(users().authenticate(&h, None).unwrap().username, "admin");
}

#[test]
fn service_account_tokens_get_service_account_identity() {
    let sa = users().authenticate(&bearer("ci-token"), None).unwrap();
    assert_eq!(sa.username, "system:serviceaccount:ci:deployer");
    assert_eq!(
        sa.groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:ci",
            AUTHENTICATED
        ]
    );
}

#[test]
fn missing_or_wrong_credentials_are_401_unauthorized() {
    let u = users();
    for headers in [HeaderMap::new(), bearer("wrong"), bearer("")] {
        let err = u.authenticate(&headers, None).unwrap_err();
        let v: Value = serde_json::from_slice(&err.to_bytes()).unwrap();
        assert_eq!(
            v,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
    }
    let mut basic = HeaderMap::new();
    basic.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Basic YWxpY2U6YQ=="),
    );
    assert_eq!(u.authenticate(&basic, None).unwrap_err().code, 401);
}

#[test]
fn client_certificate_gives_cn_and_o() {
    let u = users();
    let info = u
        .authenticate(&HeaderMap::new(), Some(&cert("bob", &["team-a", "team-b"])))
        .unwrap();
    assert_eq!(info.username, "bob");
    assert_eq!(info.groups, vec!["team-a", "team-b", AUTHENTICATED]);
    // A users-file entry with the same name adds its groups.
    let info = u
        .authenticate(&HeaderMap::new(), Some(&cert("cert-user", &["devs"])))
        .unwrap();
    assert_eq!(info.groups, vec!["devs", "certs", AUTHENTICATED]);
}

#[test]
fn certificate_without_cn_falls_back_to_the_token() {
    let u = users();
    let info = u
        .authenticate(&bearer("alice-token"), Some(&cert("", &["x"])))
        .unwrap();
    assert_eq!(info.username, "alice");
    assert_eq!(
        u.authenticate(&HeaderMap::new(), Some(b"not a certificate"))
            .unwrap_err()
            .code,
        401
    );
}

#[test]
fn der_walk_survives_truncation() {
    let der = cert("bob", &["g"]);
    for len in 0..der.len() {
        // Never panics; a cut certificate has no usable subject or a partial one.
        let _ = cert_subject(&der[..len]);
    }
    assert_eq!(
        cert_subject(&der),
        Some(Subject {
            common_name: Some("bob".into()),
            organizations: vec!["g".into()]
        })
    );
}

// ---- impersonation ----

fn impersonating(token: &str, pairs: &[(&str, &str)]) -> Result<UserInfo, Status> {
    let mut h = bearer(token);
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    users().authenticate(&h, None)
}

#[test]
fn an_allowed_impersonator_becomes_the_requested_user() {
    let info = impersonating(
        "imp-token",
        &[
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "g1"),
            ("Impersonate-Group", "g2"),
            ("Impersonate-Uid", "42"),
            ("Impersonate-Extra-Scopes%2Fread", "view"),
            ("Impersonate-Extra-Scopes%2Fread", "edit"),
        ],
    )
    .unwrap();
    assert_eq!(info.username, "jane");
    assert_eq!(info.groups, vec!["g1", "g2", AUTHENTICATED]);
    assert_eq!(info.uid, "42");
    assert_eq!(info.extra["scopes/read"], vec!["view", "edit"]);
    // system:masters may impersonate too.
    assert_eq!(
        impersonating("admin-token", &[("Impersonate-User", "x")])
            .unwrap()
            .username,
        "x"
    );
}

#[test]
fn impersonating_a_service_account_adds_its_groups() {
    let info = impersonating(
        "imp-token",
        &[("Impersonate-User", "system:serviceaccount:ns1:robot")],
    )
    .unwrap();
    assert_eq!(
        info.groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:ns1",
            AUTHENTICATED
        ]
    );
}

#[test]
fn impersonation_without_permission_is_403_like_the_apiserver() {
    let err = impersonating("alice-token", &[("Impersonate-User", "x")]).unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(err.reason, "Forbidden");
    assert_eq!(
        err.message,
        "users \"x\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    let d = err.details.unwrap();
    assert_eq!((d.name.as_str(), d.kind.as_str()), ("x", "users"));
    // May impersonate users, but not groups.
    let err = impersonating(
        "user-imp-token",
        &[("Impersonate-User", "x"), ("Impersonate-Group", "g")],
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "groups \"g\" is forbidden: User \"user-imp\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
    );
    let err = impersonating(
        "user-imp-token",
        &[("Impersonate-User", "x"), ("Impersonate-Uid", "7")],
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "uids.authentication.k8s.io \"7\" is forbidden: User \"user-imp\" cannot impersonate resource \"uids\" in API group \"authentication.k8s.io\" at the cluster scope"
    );
    let err = impersonating(
        "user-imp-token",
        &[("Impersonate-User", "system:serviceaccount:a:b")],
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "serviceaccounts \"b\" is forbidden: User \"user-imp\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"a\""
    );
    assert_eq!(
        impersonating("user-imp-token", &[("Impersonate-User", "x")])
            .unwrap()
            .username,
        "x"
    );
}

#[test]
fn impersonating_groups_without_a_user_is_an_error() {
    let err = impersonating("imp-token", &[("Impersonate-Group", "g")]).unwrap_err();
    assert_eq!(err.code, 500);
    // An unauthenticated impersonation attempt is still just 401.
    let mut h = HeaderMap::new();
    h.insert("impersonate-user", HeaderValue::from_static("admin"));
    assert_eq!(users().authenticate(&h, None).unwrap_err().code, 401);
}

// ---- authorization ----

#[test]
fn rules_allow_what_they_name_and_nothing_else() {
    let u = users();
    let alice = user("alice");
    assert!(
        u.authorize(&alice, &ResourceAttributes::new("list", "", "pods", "prod"))
            .is_ok()
    );
    assert!(
        u.authorize(
            &alice,
            &ResourceAttributes::new("get", "", "pods", "prod").named("p1")
        )
        .is_ok()
    );
    let err = u
        .authorize(&alice, &ResourceAttributes::new("list", "", "pods", "dev"))
        .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"dev\""
    );
    let err = u
        .authorize(
            &alice,
            &ResourceAttributes::new("delete", "", "pods", "prod").named("p1"),
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "pods \"p1\" is forbidden: User \"alice\" cannot delete resource \"pods\" in API group \"\" in the namespace \"prod\""
    );
    // A namespaced rule does not reach the cluster scope (all-namespaces list).
    assert!(
        u.authorize(&alice, &ResourceAttributes::new("list", "", "pods", ""))
            .is_err()
    );
    // A subresource is a resource of its own.
    let err = u
        .authorize(
            &alice,
            &ResourceAttributes::new("create", "", "pods", "prod").subresource("exec"),
        )
        .unwrap_err();
    assert!(
        err.message.contains("cannot create resource \"pods/exec\""),
        "{}",
        err.message
    );
}

#[test]
fn group_rules_apply_to_members() {
    let u = users();
    let alice = user("alice");
    assert!(
        u.authorize(
            &alice,
            &ResourceAttributes::new("get", "", "namespaces", "").named("prod")
        )
        .is_ok()
    );
    assert!(
        u.authorize(
            &user("admin"),
            &ResourceAttributes::new("get", "", "namespaces", "")
        )
        .is_ok()
    );
    assert!(
        u.authorize(
            &user("imp"),
            &ResourceAttributes::new("get", "", "namespaces", "")
        )
        .is_err()
    );
}

#[test]
fn masters_may_do_everything() {
    let u = users();
    let admin = user("admin");
    let attrs = ResourceAttributes::new("deletecollection", "apps", "deployments", "kube-system");
    assert!(u.authorize(&admin, &attrs).is_ok());
    assert!(u.authorize_path(&admin, "post", "/anything").is_ok());
}

#[test]
fn api_groups_resource_names_and_subresource_wildcards() {
    let u = users();
    let sa = u.authenticate(&bearer("ci-token"), None).unwrap();
    assert!(
        u.authorize(
            &sa,
            &ResourceAttributes::new("patch", "apps", "deployments", "ci")
        )
        .is_ok()
    );
    let err = u
        .authorize(
            &sa,
            &ResourceAttributes::new("patch", "extensions", "deployments", "ci"),
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "deployments.extensions is forbidden: User \"system:serviceaccount:ci:deployer\" cannot patch resource \"deployments\" in API group \"extensions\" in the namespace \"ci\""
    );
    let exec = ResourceAttributes::new("create", "", "pods", "ci").subresource("exec");
    assert!(u.authorize(&sa, &exec.clone().named("web-1")).is_ok());
    assert!(u.authorize(&sa, &exec.named("web-2")).is_err());
    // `pods/*` does not cover pods themselves.
    assert!(
        u.authorize(
            &sa,
            &ResourceAttributes::new("create", "", "pods", "ci").named("web-1")
        )
        .is_err()
    );
}

#[test]
fn non_resource_paths() {
    let u = users();
    let alice = user("alice");
    for path in [
        "/api",
        "/api/v1",
        "/apis/apps/v1",
        "/version",
        "/openapi/v3",
        "/healthz",
    ] {
        assert!(u.authorize_path(&alice, "get", path).is_ok(), "{path}");
    }
    assert!(u.authorize_path(&alice, "get", "/metrics").is_ok());
    assert!(
        u.authorize_path(&alice, "get", "/logs/kube-apiserver.log")
            .is_ok()
    );
    let err = u
        .authorize_path(&user("imp"), "get", "/metrics")
        .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "forbidden: User \"imp\" cannot get path \"/metrics\""
    );
    assert!(u.authorize_path(&alice, "post", "/api").is_err());
}
