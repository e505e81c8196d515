use super::*;
use crate::request::classify;

fn policy(yaml: &str) -> Policy {
    let section: PolicySection = serde_norway::from_str(yaml).unwrap();
    Policy::compile(&section).unwrap()
}

fn api(path: &str, query: Option<&str>) -> ApiRequest {
    classify(&http::Method::GET, path, query).unwrap()
}

fn mode_for(p: &Policy, id: &Identity, ua: &str, a: &ApiRequest) -> Option<Mode> {
    let s = Subject {
        identity: id,
        api: a,
        user_agent: ua,
    };
    p.select(&s).list_rewrite.map(|l| l.mode)
}

#[test]
fn defaults_are_shadow() {
    let p = policy("{}");
    let a = api("/api/v1/pods", None);
    assert_eq!(
        mode_for(&p, &Identity::unverified("x"), "kubectl/v1.32", &a),
        Some(Mode::Shadow)
    );
    assert!(!p.list_rewrite.consistency_sensitive.is_empty());
}

#[test]
fn first_match_wins_and_modes_resolve_most_specific_first() {
    let p = policy(
        r#"
mode: enforce
rules:
  - name: ci-off
    match: {userAgents: [{prefix: "argocd/"}], verbs: [list]}
    mode: off
  - name: alice-shadow
    match: {users: [alice]}
    mode: shadow
  - name: alice-enforce
    match: {users: [alice]}
    mode: enforce
  - name: sa-guard-override
    match: {serviceAccounts: ["team/*"], namespaces: [prod]}
    mode: shadow
    guards:
      listRewrite: {mode: enforce, maxRv0Items: 10}
  - name: no-guards
    match: {userAgents: [{regex: "^velero/"}]}
    guards: {}
"#,
    );
    let pods = api("/api/v1/pods", None);
    let prod = api("/api/v1/namespaces/prod/pods", None);
    let bob = Identity::unverified("bob");
    assert_eq!(mode_for(&p, &bob, "argocd/2", &pods), None);
    assert_eq!(
        mode_for(&p, &Identity::unverified("alice"), "kubectl", &pods),
        Some(Mode::Shadow)
    );
    let sa = Identity::unverified("system:serviceaccount:team:builder");
    let sel_mode = mode_for(&p, &sa, "x", &prod);
    assert_eq!(sel_mode, Some(Mode::Enforce));
    let s = Subject {
        identity: &sa,
        api: &prod,
        user_agent: "x",
    };
    let sel = p.select(&s);
    assert_eq!(sel.rule.map(|r| &*r.name), Some("sa-guard-override"));
    assert_eq!(sel.list_rewrite.map(|l| l.max_rv0_items), Some(10));
    // Outside prod the SA rule does not match: the global mode applies.
    assert_eq!(mode_for(&p, &sa, "x", &pods), Some(Mode::Enforce));
    assert_eq!(mode_for(&p, &bob, "velero/1.12", &pods), None);
    assert_eq!(mode_for(&p, &bob, "kubectl", &pods), Some(Mode::Enforce));
}

#[test]
fn matches_groups_api_groups_and_resources() {
    let p = policy(
        r#"
rules:
  - name: apps-for-devs
    match: {groups: [devs], apiGroups: [apps], resources: [deployments]}
    mode: enforce
"#,
    );
    let mut dev = Identity::unverified("d");
    dev.groups.push("devs".into());
    let deploy = api("/apis/apps/v1/deployments", None);
    let pods = api("/api/v1/pods", None);
    assert_eq!(mode_for(&p, &dev, "", &deploy), Some(Mode::Enforce));
    assert_eq!(mode_for(&p, &dev, "", &pods), Some(Mode::Shadow));
    assert_eq!(
        mode_for(&p, &Identity::unverified("o"), "", &deploy),
        Some(Mode::Shadow)
    );
}

#[test]
fn bad_policies_name_the_key() {
    let err = crate::config::FileConfig::from_yaml(
        "policy:\n  rules:\n    - name: r\n      match: {userAgents: [{regex: \"(\"}]}\n",
        "f.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("policy.rules[0].match.userAgents[0]") && err.contains("line 4"),
        "{err}"
    );
    let section: PolicySection =
        serde_norway::from_str("rules:\n  - name: r\n    match: {serviceAccounts: [x]}\n").unwrap();
    let e = Policy::compile(&section).unwrap_err();
    assert!(e.key.ends_with("serviceAccounts[0]"), "{}", e.key);
    let err = crate::config::FileConfig::from_yaml("policy:\n  mode: enforced\n", "f.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("policy.mode") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn describe_prints_the_effective_policy() {
    let p = policy("mode: enforce\nrules: [{name: r1, mode: off}]\n");
    let text = p.describe();
    assert!(text.contains("maxRv0Items: 5000"), "{text}");
    assert!(text.contains("errorWindow: 300s"), "{text}");
    assert!(text.contains("rule \"r1\": mode off"), "{text}");
    // What it prints parses back.
    let _: PolicySection = serde_norway::from_str(&text).unwrap();
}
