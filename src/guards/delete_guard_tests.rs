use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::*;
use crate::identity::IdentitySource;
use crate::request::classify;

fn settings() -> DeleteGuardSettings {
    DeleteGuardSettings::compile(&DeleteGuardSection::default(), Mode::Enforce).unwrap()
}

fn check(
    g: &DeleteGuard,
    s: &DeleteGuardSettings,
    id: &Identity,
    line: (&str, &str, Option<&str>),
    body: Option<&str>,
    lookup: Option<&DeleteLookup>,
    now: Instant,
) -> Outcome {
    let api = classify(&line.0.parse::<Method>().unwrap(), line.1, line.2).unwrap();
    let headers = HeaderMap::new();
    let body = body.map(|b| Bytes::from(b.to_string()));
    let ctx = GuardCtx {
        identity: id,
        api: &api,
        query: line.2,
        headers: &headers,
        user_agent: "kubectl/v1.33",
        body: body.as_ref(),
        delete_lookup: lookup,
        now,
    };
    g.check(&ctx, s)
}

const DEL_PROD: (&str, &str, Option<&str>) = ("DELETE", "/api/v1/namespaces/prod", None);
const DRY_PROD: (&str, &str, Option<&str>) =
    ("DELETE", "/api/v1/namespaces/prod", Some("dryRun=All"));

fn blocked(o: &Outcome) -> bool {
    matches!(o.verdict, Verdict::Block(_))
}

fn sa() -> Identity {
    Identity {
        user: "system:serviceaccount:ci:helm".into(),
        groups: vec!["system:serviceaccounts".into()],
        uid: None,
        extra: BTreeMap::new(),
        source: IdentitySource::Token,
    }
}

#[test]
fn only_guarded_deletes_are_held() {
    let (g, s) = (DeleteGuard::new(10), settings());
    let a = Identity::unverified("alice");
    let now = Instant::now();
    let pod = ("DELETE", "/api/v1/namespaces/prod/pods/p", None);
    assert!(!blocked(&check(&g, &s, &a, pod, None, None, now)));
    let get = ("GET", "/api/v1/namespaces/prod", None);
    assert!(!blocked(&check(&g, &s, &a, get, None, None, now)));
    assert!(blocked(&check(&g, &s, &a, DEL_PROD, None, None, now)));
    let crd = (
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        None,
    );
    assert!(blocked(&check(&g, &s, &a, crd, None, None, now)));
    let pv = ("DELETE", "/api/v1/persistentvolumes/pv-1", None);
    assert!(blocked(&check(&g, &s, &a, pv, None, None, now)));
    let coll = ("DELETE", "/api/v1/namespaces/prod/pods", None);
    assert!(blocked(&check(&g, &s, &a, coll, None, None, now)));
}

#[test]
fn dry_run_confirms_once_for_the_same_identity_and_uid_within_the_window() {
    let (g, s) = (DeleteGuard::new(10), settings());
    let (a, b) = (Identity::unverified("alice"), Identity::unverified("bob"));
    let t0 = Instant::now();
    // Body dry run, as kubectl sends it, with a UID precondition.
    let body = r#"{"kind":"DeleteOptions","dryRun":["All"],"preconditions":{"uid":"u1"}}"#;
    assert!(!blocked(&check(&g, &s, &a, DEL_PROD, Some(body), None, t0)));
    assert!(blocked(&check(
        &g,
        &s,
        &b,
        DEL_PROD,
        Some(r#"{"preconditions":{"uid":"u1"}}"#),
        None,
        t0
    )));
    // Another UID (the namespace was recreated) is not confirmed.
    assert!(blocked(&check(
        &g,
        &s,
        &a,
        DEL_PROD,
        Some(r#"{"preconditions":{"uid":"u2"}}"#),
        None,
        t0
    )));
    let real = r#"{"preconditions":{"uid":"u1"}}"#;
    assert!(!blocked(&check(&g, &s, &a, DEL_PROD, Some(real), None, t0)));
    // Once.
    assert!(blocked(&check(&g, &s, &a, DEL_PROD, Some(real), None, t0)));
    // Expired.
    assert!(!blocked(&check(&g, &s, &a, DRY_PROD, None, None, t0)));
    let late = t0 + s.confirm_window + Duration::from_millis(1);
    assert!(blocked(&check(&g, &s, &a, DEL_PROD, None, None, late)));
}

#[test]
fn service_accounts_confirm_only_with_the_annotation() {
    let (g, s) = (DeleteGuard::new(10), settings());
    let now = Instant::now();
    assert!(!blocked(&check(&g, &s, &sa(), DRY_PROD, None, None, now)));
    let o = check(&g, &s, &sa(), DEL_PROD, None, None, now);
    let Verdict::Block(st) = &o.verdict else {
        panic!("{o:?}")
    };
    assert!(!st.message.contains("--dry-run=server"), "{}", st.message);
    let stamp = jiff::Timestamp::now().to_string();
    let l = DeleteLookup {
        confirm_annotation: Some(stamp),
        ..DeleteLookup::default()
    };
    assert!(!blocked(&check(
        &g,
        &s,
        &sa(),
        DEL_PROD,
        None,
        Some(&l),
        now
    )));
}

#[test]
fn annotation_must_be_fresh() {
    let w = Duration::from_secs(300);
    let now = SystemTime::now();
    let ts = |d: i64| {
        (jiff::Timestamp::try_from(now).unwrap() + jiff::SignedDuration::from_secs(d)).to_string()
    };
    assert!(annotation_fresh(&ts(-10), w, now));
    assert!(annotation_fresh(&ts(30), w, now));
    assert!(!annotation_fresh(&ts(-301), w, now));
    assert!(!annotation_fresh(&ts(3600), w, now));
    assert!(!annotation_fresh("yesterday", w, now));
    assert!(annotation_fresh(
        &jiff::Timestamp::try_from(now)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        w,
        now
    ));
}

#[test]
fn config_keys_are_checked_and_rules_can_guard_every_delete() {
    let sec = DeleteGuardSection {
        max_intents: 0,
        ..DeleteGuardSection::default()
    };
    let e = DeleteGuardSettings::compile(&sec, Mode::Enforce).unwrap_err();
    assert_eq!(e.key, "policy.guards.deleteGuard.maxIntents");
    let s = settings();
    let rg = RuleGuards {
        delete_guard: Some(DeleteGuardOverride {
            mode: None,
            all_deletes: Some(true),
        }),
        ..RuleGuards::default()
    };
    let under = s.for_rule(None, Some(&rg)).unwrap();
    let api = classify(&Method::DELETE, "/api/v1/namespaces/prod/pods/p", None).unwrap();
    assert!(under.guards(&api) && !s.guards(&api));
    // A rule that names other guards only leaves this one out.
    assert!(s.for_rule(None, Some(&RuleGuards::default())).is_none());
}

#[test]
fn intents_follow_the_objects_uid() {
    let (g, s) = (DeleteGuard::new(10), settings());
    let a = Identity::unverified("alice");
    let now = Instant::now();
    let old = DeleteLookup {
        uid: Some("old".into()),
        ..DeleteLookup::default()
    };
    let new = DeleteLookup {
        uid: Some("new".into()),
        ..DeleteLookup::default()
    };
    assert!(!blocked(&check(
        &g,
        &s,
        &a,
        DRY_PROD,
        None,
        Some(&old),
        now
    )));
    // prod was deleted and recreated in between: not the object the dry run was about.
    assert!(blocked(&check(&g, &s, &a, DEL_PROD, None, Some(&new), now)));
    assert!(!blocked(&check(
        &g,
        &s,
        &a,
        DEL_PROD,
        None,
        Some(&old),
        now
    )));
}
