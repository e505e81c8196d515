//! Fuzz the request classifier with request lines: `METHOD /path?query`.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run classify -- -max_total_time=60` from the repository
//! root (seed corpus in `fuzz/corpus/classify/`, one request line per file).
//!
//! Beyond "never panics" it checks what the rest of kubeguard relies on: the answer is
//! deterministic, and every name-like field of a resource request is a non-empty single path
//! segment (no `/`, NUL, `.` or `..`).

#![no_main]

use http::Method;
use kubeguard::request::{ApiRequest, Target, Verb, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, target) = text.split_once(' ').unwrap_or(("GET", text));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let first = classify(&method, path, query);
    assert_eq!(first, classify(&method, path, query), "not deterministic");
    if let Ok(request) = first {
        check(&request);
    }
});

fn check(request: &ApiRequest) {
    if request.verb == Verb::Watch {
        assert!(request.options.watch);
    }
    let Target::Resource(r) = &request.target else {
        return;
    };
    let fields = [Some(&r.version), Some(&r.resource)]
        .into_iter()
        .chain([
            r.subresource.as_ref(),
            r.namespace.as_ref(),
            r.name.as_ref(),
        ])
        .flatten();
    for field in fields {
        assert!(!field.is_empty(), "{request:?}");
        assert!(!field.contains(['/', '\0']), "{request:?}");
        assert!(field != "." && field != "..", "{request:?}");
    }
}
