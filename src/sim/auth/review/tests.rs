use serde_json::{Value, json};

use super::super::tests::{user, users};
use super::*;
use crate::sim::auth::{AUTHENTICATED, UNAUTHENTICATED, unauthenticated_caller};

#[test]
fn token_review_answers_in_the_api_shape_and_is_counted() {
    let u = users();
    assert_eq!(u.token_reviews_received(), 0);
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                      "spec": {"token": "alice-token", "audiences": ["https://kubernetes.default.svc"]}});
    let review = u.token_review(body.to_string().as_bytes()).unwrap();
    assert_eq!(review["kind"], "TokenReview");
    assert_eq!(review["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(
        review["status"]["user"],
        json!({"username": "alice", "uid": "1001", "groups": ["devs", AUTHENTICATED]})
    );
    assert_eq!(
        review["status"]["audiences"],
        json!(["https://kubernetes.default.svc"])
    );

    let bad = json!({"spec": {"token": "nope"}});
    let review = u.token_review(bad.to_string().as_bytes()).unwrap();
    assert_eq!(review["status"]["authenticated"], false);
    assert!(review["status"]["error"].is_string());
    assert_eq!(u.token_reviews_received(), 2);

    assert_eq!(u.token_review(br#"{"spec": {}}"#).unwrap_err().code, 400);
    assert_eq!(u.token_review(b"{not json").unwrap_err().code, 400);
    assert_eq!(u.token_reviews_received(), 4);
}

#[test]
fn without_a_token_authenticator_a_token_review_authenticates_no_one() {
    let body = json!({"spec": {"token": "alice-token"}});
    let review = token_review_without_authenticator(body.to_string().as_bytes()).unwrap();
    assert_eq!(review["kind"], "TokenReview");
    assert_eq!(review["spec"]["token"], "alice-token");
    assert_eq!(review["status"], json!({"user": {}}));
    let err = token_review_without_authenticator(br#"{"spec": {}}"#).unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "token is required for TokenReview in authentication")
    );
}

fn sar(spec: Value) -> Result<Value, Status> {
    let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
    Authorizer::Rules(&users()).subject_access_review(body.to_string().as_bytes())
}

#[test]
fn subject_access_review_decides_with_the_same_rules() {
    let allowed = sar(json!({"user": "alice", "groups": ["devs"],
        "resourceAttributes": {"namespace": "prod", "verb": "list", "version": "v1", "resource": "pods"}}))
    .unwrap();
    assert_eq!(allowed["kind"], "SubjectAccessReview");
    assert_eq!(allowed["status"]["allowed"], true);
    assert!(
        allowed["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("user \"alice\"")
    );
    assert_eq!(allowed["spec"]["user"], "alice");

    let denied = sar(json!({"user": "alice",
        "resourceAttributes": {"namespace": "dev", "verb": "list", "resource": "pods"}}))
    .unwrap();
    assert_eq!(denied["status"], json!({"allowed": false}));

    // The impersonate verb, as kubeguard asks before impersonating.
    let imp = sar(json!({"user": "imp",
        "resourceAttributes": {"verb": "impersonate", "resource": "users", "name": "jane"}}))
    .unwrap();
    assert_eq!(imp["status"]["allowed"], true);
    let imp = sar(json!({"user": "alice",
        "resourceAttributes": {"verb": "impersonate", "resource": "users", "name": "jane"}}))
    .unwrap();
    assert_eq!(imp["status"]["allowed"], false);

    // A group alone is enough of a subject; system:masters holds cluster-admin.
    let by_group = sar(json!({"groups": ["system:masters"],
        "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}))
    .unwrap();
    assert_eq!(by_group["status"]["allowed"], true);
    assert_eq!(
        by_group["status"]["reason"],
        "allowed by ClusterRole \"cluster-admin\" (bound to group \"system:masters\")"
    );
}

#[test]
fn malformed_subject_access_reviews_are_422() {
    let err = sar(json!({"resourceAttributes": {"verb": "get", "resource": "pods"}})).unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("at least one of user or group"),
        "{}",
        err.message
    );
    let err = sar(json!({"user": "alice"})).unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("exactly one of nonResourceAttributes or resourceAttributes"),
        "{}",
        err.message
    );
    let err = sar(
        json!({"user": "alice", "resourceAttributes": {"verb": "get"},
        "nonResourceAttributes": {"verb": "get", "path": "/metrics"}}),
    )
    .unwrap_err();
    assert_eq!(err.code, 422);
    let details = err.details.unwrap();
    assert_eq!(details.causes[0].field, "spec.nonResourceAttributes");
}

#[test]
fn a_field_of_the_wrong_type_is_400_naming_the_field() {
    let err = sar(json!({"user": "alice", "resourceAttributes": {"verb": 7}})).unwrap_err();
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "SubjectAccessReview in version \"v1\" cannot be handled as a SubjectAccessReview: \
         spec.resourceAttributes.verb: invalid type: integer `7`, expected a string"
    );
    let always = Authorizer::AlwaysAllow;
    let err = always
        .self_subject_rules_review(&user("alice"), br#"{"spec": {"namespace": ["prod"]}}"#)
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.message.contains("spec.namespace: invalid type"),
        "{}",
        err.message
    );
    let err = always
        .self_subject_access_review(&user("alice"), b"[1, 2]")
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.message.contains("not a JSON object"), "{}", err.message);
    let err = always
        .self_subject_access_review(&user("alice"), br#"{"kind": "Pod"}"#)
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.message
            .ends_with("kind: \"Pod\" is not SelfSubjectAccessReview"),
        "{}",
        err.message
    );
    let err = self_subject_review(&user("alice"), br#"{"apiVersion": "v1"}"#).unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.message.contains("apiVersion"), "{}", err.message);
}

#[test]
fn self_subject_access_review_asks_about_the_caller() {
    let u = users();
    let body = json!({"kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "prod", "verb": "watch", "resource": "pods"}}});
    let rules = Authorizer::Rules(&u);
    let review = rules
        .self_subject_access_review(&user("alice"), body.to_string().as_bytes())
        .unwrap();
    assert_eq!(review["kind"], "SelfSubjectAccessReview");
    assert_eq!(review["status"]["allowed"], true);
    let review = rules
        .self_subject_access_review(&user("imp"), body.to_string().as_bytes())
        .unwrap();
    assert_eq!(review["status"]["allowed"], false);
    // AlwaysAllow gives no reason, as kube-apiserver's.
    let review = Authorizer::AlwaysAllow
        .self_subject_access_review(&user("imp"), body.to_string().as_bytes())
        .unwrap();
    assert_eq!(review["status"], json!({"allowed": true}));
}

#[test]
fn self_reviews_are_open_to_every_authenticated_user() {
    let u = users();
    let imp = user("imp");
    for (group, resource) in [
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    ] {
        u.authorize(
            &imp,
            &ResourceAttributes::new("create", group, resource, ""),
        )
        .unwrap();
    }
    let err = u
        .authorize(
            &imp,
            &ResourceAttributes::new("create", "authorization.k8s.io", "subjectaccessreviews", ""),
        )
        .unwrap_err();
    assert_eq!(err.code, 403);
}

#[test]
fn local_subject_access_review_stays_in_its_namespace() {
    let u = users();
    let rules = Authorizer::Rules(&u);
    let review = |spec: Value| json!({"spec": spec}).to_string();
    let ok = rules
        .local_subject_access_review(
            "prod",
            review(json!({"user": "alice", "resourceAttributes":
                {"namespace": "prod", "verb": "get", "resource": "pods"}}))
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(ok["kind"], "LocalSubjectAccessReview");
    assert_eq!(ok["metadata"]["namespace"], "prod");
    assert_eq!(ok["status"]["allowed"], true);

    let err = rules
        .local_subject_access_review(
            "prod",
            review(json!({"user": "alice", "resourceAttributes":
                {"namespace": "dev", "verb": "get", "resource": "pods"}}))
            .as_bytes(),
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.details.unwrap().causes[0].field,
        "spec.resourceAttributes.namespace"
    );
    let err = rules
        .local_subject_access_review(
            "prod",
            review(json!({"user": "alice", "nonResourceAttributes": {"verb": "get", "path": "/"}}))
                .as_bytes(),
        )
        .unwrap_err();
    assert_eq!(err.code, 422);
    let err = rules
        .local_subject_access_review("prod", br#"{"metadata": {"namespace": "dev"}, "spec": {}}"#)
        .unwrap_err();
    assert_eq!(err.code, 400);
}

#[test]
fn self_subject_review_tells_the_caller_who_it_is() {
    let mut alice = user("alice");
    alice
        .extra
        .insert("scopes".into(), vec!["read".into(), "write".into()]);
    let review = self_subject_review(&alice, br#"{"kind": "SelfSubjectReview"}"#).unwrap();
    assert_eq!(review["kind"], "SelfSubjectReview");
    assert_eq!(review["apiVersion"], "authentication.k8s.io/v1");
    assert!(review["metadata"]["creationTimestamp"].is_string());
    assert_eq!(
        review["status"]["userInfo"],
        json!({"username": "alice", "uid": "1001", "groups": ["devs", AUTHENTICATED],
               "extra": {"scopes": ["read", "write"]}})
    );
    assert_eq!(self_subject_review(&alice, b"").unwrap_err().code, 400);
}

#[test]
fn without_authentication_the_caller_is_anonymous_or_impersonated() {
    let anon = unauthenticated_caller(&http::HeaderMap::new()).unwrap();
    assert_eq!(
        (anon.username.as_str(), anon.groups.clone()),
        ("system:anonymous", vec![UNAUTHENTICATED.to_string()])
    );
    let mut h = http::HeaderMap::new();
    h.insert("impersonate-user", "jane".parse().unwrap());
    h.append("impersonate-group", "devs".parse().unwrap());
    let jane = unauthenticated_caller(&h).unwrap();
    assert_eq!(jane.username, "jane");
    assert_eq!(jane.groups, vec!["devs", AUTHENTICATED]);
}

#[test]
fn self_subject_rules_review_lists_the_rules_of_the_namespace() {
    let u = users();
    let rules = Authorizer::Rules(&u);
    let body = |ns: &str| json!({"spec": {"namespace": ns}}).to_string();
    let prod = rules
        .self_subject_rules_review(&user("alice"), body("prod").as_bytes())
        .unwrap();
    assert_eq!(prod["kind"], "SelfSubjectRulesReview");
    assert_eq!(prod["spec"]["namespace"], "prod");
    assert_eq!(prod["status"]["incomplete"], false);
    let resource_rules = prod["status"]["resourceRules"].as_array().unwrap();
    assert!(resource_rules.contains(
        &json!({"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["pods"]})
    ));
    let dev = rules
        .self_subject_rules_review(&user("alice"), body("dev").as_bytes())
        .unwrap();
    assert!(
        !dev["status"]["resourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["pods"]))
    );

    let err = rules
        .self_subject_rules_review(&user("alice"), br#"{"spec": {}}"#)
        .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "no namespace on request")
    );

    let all = Authorizer::AlwaysAllow
        .self_subject_rules_review(&user("alice"), body("dev").as_bytes())
        .unwrap();
    assert_eq!(
        all["status"],
        json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
               "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
               "incomplete": false})
    );
}
