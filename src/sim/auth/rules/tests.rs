use super::super::tests::{user, users};
use super::*;
use serde_json::json;

fn rule(yaml: &str) -> Rule {
    serde_norway::from_str(yaml).unwrap()
}

#[test]
fn a_resource_rule_lists_any_group_as_star_and_keeps_names() {
    let r = ResourceRule::from(&rule(
        "{verbs: [create], resources: [pods/exec], resourceNames: [web-1], namespaces: [ci]}",
    ));
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"verbs": ["create"], "apiGroups": ["*"], "resources": ["pods/exec"],
               "resourceNames": ["web-1"]})
    );
    let r = ResourceRule::from(&rule(
        "{verbs: [get], apiGroups: [apps], resources: [deployments]}",
    ));
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]})
    );
    let n = NonResourceRule::from(&rule("{verbs: [get], nonResourceURLs: [/metrics]}"));
    assert_eq!(
        serde_json::to_value(&n).unwrap(),
        json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]})
    );
}

#[test]
fn rules_hold_where_their_namespaces_say() {
    let everywhere = rule("{verbs: [get], resources: [pods]}");
    assert!(everywhere.holds_in("a") && everywhere.holds_in("b"));
    let some = rule("{verbs: [get], resources: [pods], namespaces: [a]}");
    assert!(some.holds_in("a") && !some.holds_in("b"));
    let any = rule("{verbs: [get], resources: [pods], namespaces: ['*']}");
    assert!(any.holds_in("b"));
}

#[test]
fn a_review_lists_bootstrap_own_and_group_rules() {
    let u = users();
    let alice = u.rules_review(&user("alice"), "prod");
    assert!(!alice.incomplete);
    let resources: Vec<Vec<String>> = alice
        .resource_rules
        .iter()
        .map(|r| r.resources.clone())
        .collect();
    assert_eq!(
        resources,
        vec![
            vec![
                "selfsubjectaccessreviews".to_string(),
                "selfsubjectrulesreviews".into()
            ],
            vec!["selfsubjectreviews".into()],
            vec!["pods".into()],
            vec!["namespaces".into()],
        ]
    );
    let paths: Vec<&str> = alice
        .non_resource_rules
        .iter()
        .flat_map(|r| r.non_resource_urls.iter().map(String::as_str))
        .collect();
    assert!(
        paths.contains(&"/apis/*") && paths.contains(&"/metrics"),
        "{paths:?}"
    );
    // Outside prod alice's own rule does not hold.
    let elsewhere = u.rules_review(&user("alice"), "dev");
    assert!(
        !elsewhere
            .resource_rules
            .iter()
            .any(|r| r.resources == ["pods"])
    );
}

#[test]
fn masters_and_impersonators_show_their_powers() {
    let u = users();
    let admin = u.rules_review(&user("admin"), "any");
    assert_eq!(
        admin.resource_rules[0],
        ResourceRule::from(&rule("{verbs: ['*'], apiGroups: ['*'], resources: ['*']}"))
    );
    assert!(
        admin
            .non_resource_rules
            .iter()
            .any(|r| r.non_resource_urls == ["*"])
    );
    let imp = u.rules_review(&user("imp"), "any");
    assert_eq!(imp.resource_rules[0].verbs, ["impersonate"]);
    // The service account's rules hold in its namespace only.
    let ci = users()
        .authenticate(&super::super::tests::bearer("ci-token"), None)
        .unwrap();
    let in_ci = u.rules_review(&ci, "ci");
    assert!(
        in_ci
            .resource_rules
            .iter()
            .any(|r| r.resource_names == ["web-1"])
    );
    let in_prod = u.rules_review(&ci, "prod");
    assert!(
        !in_prod
            .resource_rules
            .iter()
            .any(|r| r.resources == ["deployments"])
    );
}
