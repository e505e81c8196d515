use super::*;

fn q(s: &str) -> Query {
    Query::parse(Some(s))
}

fn src(s: &str, minor: u32) -> (Source, Option<usize>, bool) {
    let p = plan(&q(s), minor).unwrap();
    (p.source, p.limit, p.at.is_some())
}

#[test]
fn sources_follow_the_version_table() {
    use Source::*;
    // RV unset: etcd up to 1.30, cache (after a revision check) from 1.31.
    assert_eq!(src("limit=500", 30), (Etcd, Some(500), false));
    assert_eq!(src("limit=500", 31), (Cache, Some(500), false));
    assert!(plan(&q("limit=500"), 31).unwrap().revision_check);
    // RV=0: cache, limit ignored, every version.
    for m in [27, 30, 31, 34] {
        assert_eq!(src("resourceVersion=0&limit=500", m), (Cache, None, false));
    }
    // RV=N with limit: exact; etcd until 1.33, cache snapshot on 1.34.
    assert_eq!(src("resourceVersion=7&limit=5", 30), (Etcd, Some(5), true));
    assert_eq!(src("resourceVersion=7&limit=5", 33), (Etcd, Some(5), true));
    assert_eq!(src("resourceVersion=7&limit=5", 34), (Cache, Some(5), true));
    // RV=N without limit: not older than N, from the cache.
    assert_eq!(src("resourceVersion=7", 30), (Cache, None, false));
    // NotOlderThan + limit: etcd on ≤1.30, cache from 1.31.
    let not_older = "resourceVersion=7&resourceVersionMatch=NotOlderThan&limit=5";
    assert_eq!(src(not_older, 30), (Etcd, Some(5), false));
    assert_eq!(src(not_older, 31), (Cache, Some(5), false));
    // Exact: etcd until 1.33.
    let exact = "resourceVersion=7&resourceVersionMatch=Exact";
    assert_eq!(src(exact, 33), (Etcd, None, true));
    assert_eq!(src(exact, 34), (Cache, None, true));
    // continue: etcd until 1.33, cache on 1.34.
    let tok = encode_continue(9, &("ns".into(), "a".into()));
    assert_eq!(
        src(&format!("continue={tok}&limit=2"), 33),
        (Etcd, Some(2), true)
    );
    assert_eq!(
        src(&format!("continue={tok}&limit=2"), 34),
        (Cache, Some(2), true)
    );
}

#[test]
fn rejections_are_bad_requests() {
    let tok = encode_continue(9, &("".into(), "a".into()));
    for bad in [
        "resourceVersionMatch=NotOlderThan".to_string(),
        format!("resourceVersion=5&resourceVersionMatch=NotOlderThan&continue={tok}"),
        "resourceVersion=0&resourceVersionMatch=Exact".into(),
        format!("resourceVersion=5&continue={tok}"),
        "sendInitialEvents=true".into(),
        "resourceVersion=abc".into(),
        "continue=garbage".into(),
        "resourceVersion=5&resourceVersionMatch=Newest".into(),
    ] {
        let e = plan(&q(&bad), 30).unwrap_err();
        assert_eq!(e.code, 400, "{bad}: {}", e.message);
    }
    // continue with RV=0 is allowed.
    assert!(plan(&q(&format!("resourceVersion=0&continue={tok}")), 30).is_ok());
}

#[test]
fn continue_tokens_round_trip() {
    for key in [
        ("ns".to_string(), "p-1".to_string()),
        (String::new(), "node-1".to_string()),
    ] {
        let t = encode_continue(42, &key);
        assert_eq!(decode_continue(&t).unwrap(), (42, key));
    }
    assert!(decode_continue("eyJ2IjoieCJ9").is_err());
}

#[test]
fn minor_versions() {
    assert_eq!(minor_of("v1.30.4"), Some(30));
    assert_eq!(minor_of("v1.31"), Some(31));
    assert_eq!(minor_of("v1.34.0-rc.1"), Some(34));
    assert_eq!(minor_of("garbage"), None);
}

#[test]
fn list_bodies_stream_in_chunks_and_parse() {
    let store = Store::new(super::super::registry::Registry::builtin(), 100);
    let reg = store.registry();
    let rt = reg.find("", "v1", "namespaces").unwrap();
    let pad = "x".repeat(3000);
    for i in 0..50 {
        let v = json!({"metadata": {"name": format!("n{i:02}"), "annotations": {"pad": pad}}});
        store.create(rt, "", v, false).unwrap();
    }
    let page = store
        .list(&("".into(), "namespaces".into()), &ListQuery::default())
        .unwrap();
    let chunks: Vec<Bytes> = list_chunks("v1", "NamespaceList", page).collect();
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    let all: Vec<u8> = chunks.concat();
    let v: Value = serde_json::from_slice(&all).unwrap();
    assert_eq!(v["kind"], "NamespaceList");
    assert_eq!(v["items"].as_array().unwrap().len(), 50);
}
