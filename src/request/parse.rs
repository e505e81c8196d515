//! The classifier itself: kube-apiserver's RequestInfo rules
//! (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) plus the ListOptions query decoding it
//! relies on (k8s.io/apimachinery/pkg/runtime/conversion.go, Go's `url.ParseQuery`).
//!
//! The aim is to see a request exactly as the apiserver will, so that a guard never decides on a
//! different reading of the same bytes. Where kubeguard is stricter (it refuses `//`, `.`/`..`
//! segments and NUL bytes, which the apiserver would turn into surprising readings such as an
//! empty namespace meaning "all namespaces"), the comment says so.

use std::borrow::Cow;

use http::Method;

use super::{ApiRequest, NonResource, QueryOptions, ResourceRef, Target, Verb};
use crate::status::Status;

/// Why a request line could not be classified. Becomes a 400 `Status` (client fault).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifyError {
    #[error("malformed request path: {0}")]
    Path(String),
    #[error("malformed query parameter {name}: {why}")]
    Query { name: &'static str, why: String },
}

impl From<ClassifyError> for Status {
    fn from(err: ClassifyError) -> Self {
        Status::bad_request(err.to_string())
    }
}

/// The most path segments RequestInfo ever looks at:
/// `apis/<group>/<version>/watch/namespaces/<ns>/<resource>/<name>/<subresource>`.
/// Later segments (a proxied sub-path, say) are validated but not kept.
const MAX_SEGMENTS: usize = 9;

/// Classify a request from its method, path and raw query string (without the `?`).
pub fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<ApiRequest, ClassifyError> {
    let decoded = decode_path(path)?;
    let segments = Segments::split(&decoded)?;
    let mut options = parse_query(query.unwrap_or(""))?;
    let (verb, target) = match api_path(segments.kept()) {
        Some(api) => {
            let (verb, resource) = resource_request(method, &api, &options)?;
            (verb, Target::Resource(resource))
        }
        None => (
            non_resource_verb(method),
            Target::NonResource(non_resource(&segments)),
        ),
    };
    if verb == Verb::Watch {
        options.watch = true;
    }
    Ok(ApiRequest::new(verb, target, options))
}

// ---------------------------------------------------------------------------------------------
// Path

/// Percent-decodes the path the way Go's `url.URL.Path` is (`+` stays `+`), refusing what would
/// make the reading ambiguous: bad escapes (Go answers 400 itself), control characters in the raw
/// path (Go refuses those too), NUL and non-UTF-8 bytes after decoding.
fn decode_path(path: &str) -> Result<Cow<'_, str>, ClassifyError> {
    // Looked for without stopping at the first (a loop the compiler can vectorise), then found.
    if path
        .bytes()
        .fold(false, |any, b| any | b.is_ascii_control())
        && let Some(at) = path.bytes().position(|b| b.is_ascii_control())
    {
        return Err(ClassifyError::Path(format!(
            "control character at byte {at}"
        )));
    }
    let decoded = unescape(path, false).map_err(|e| match e {
        Unescape::BadEscape { at } => {
            ClassifyError::Path(format!("invalid percent-encoding at byte {at}"))
        }
        Unescape::NotUtf8 => ClassifyError::Path("not valid UTF-8 after percent-decoding".into()),
    })?;
    // Only decoding can make a NUL: the raw path has no control characters.
    if let Cow::Owned(d) = &decoded
        && d.contains('\0')
    {
        return Err(ClassifyError::Path("NUL byte in path".into()));
    }
    Ok(decoded)
}

/// The decoded path split on `/` like RequestInfo's `splitPath` (leading and trailing slashes
/// trimmed), keeping the first [`MAX_SEGMENTS`] segments without allocating.
struct Segments<'a> {
    kept: [&'a str; MAX_SEGMENTS],
    len: usize,
}

impl<'a> Segments<'a> {
    fn split(path: &'a str) -> Result<Self, ClassifyError> {
        let mut segments = Segments {
            kept: [""; MAX_SEGMENTS],
            len: 0,
        };
        for segment in split_slashes(path) {
            // Stricter than the apiserver: `namespaces//pods` would read as a cluster-wide list
            // there, and `..` is never a valid name; both only hide what a request addresses.
            if segment.is_empty() {
                return Err(ClassifyError::Path(format!(
                    "empty segment after {:?}",
                    segments.kept().last().copied().unwrap_or("")
                )));
            }
            if segment == "." || segment == ".." {
                return Err(ClassifyError::Path(format!(
                    "{segment:?} segments are not allowed"
                )));
            }
            if let Some(slot) = segments.kept.get_mut(segments.len) {
                *slot = segment;
                segments.len += 1;
            }
        }
        Ok(segments)
    }

    fn kept(&self) -> &[&'a str] {
        &self.kept[..self.len]
    }
}

/// `path.trim_matches('/').split('/')`, nothing for an empty rest: by bytes (a `/` is one byte
/// in UTF-8, so every cut is on a character boundary), which for paths this short costs a
/// fraction of `str::split`'s character searcher.
fn split_slashes(path: &str) -> impl Iterator<Item = &str> {
    let bytes = path.as_bytes();
    let start = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b'/')
        .map_or(start, |i| i + 1);
    let mut rest = (start < end).then(|| &path[start..end]);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.bytes().position(|b| b == b'/') {
            Some(i) => {
                rest = Some(&s[i + 1..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

/// The part of an API path after its prefix, group and version.
struct ApiPath<'p, 'a> {
    group: &'a str,
    version: &'a str,
    rest: &'p [&'a str],
}

/// RequestInfo's test for a resource request: `api/<version>/…` or `apis/<group>/<version>/…`
/// with at least one segment after the version.
fn api_path<'p, 'a>(parts: &'p [&'a str]) -> Option<ApiPath<'p, 'a>> {
    match parts {
        ["api", version, rest @ ..] if !rest.is_empty() => Some(ApiPath {
            group: "",
            version,
            rest,
        }),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => Some(ApiPath {
            group,
            version,
            rest,
        }),
        _ => None,
    }
}

/// The heart of RequestInfo for resource paths.
fn resource_request(
    method: &Method,
    api: &ApiPath<'_, '_>,
    options: &QueryOptions,
) -> Result<(Verb, ResourceRef), ClassifyError> {
    let mut parts = api.rest;
    // The legacy `/watch/` and `/proxy/` prefixes name the verb themselves.
    let prefix_verb = match parts.first() {
        Some(&"watch") => Some(Verb::Watch),
        Some(&"proxy") => Some(Verb::Proxy),
        _ => None,
    };
    let mut verb = match prefix_verb {
        Some(verb) => {
            if parts.len() < 2 {
                return Err(ClassifyError::Path(format!(
                    "unable to determine kind and namespace: nothing after /{}/",
                    verb.as_str()
                )));
            }
            parts = &parts[1..];
            verb
        }
        None => method_verb(method),
    };

    // `namespaces/<ns>/<resource>/…`; `namespaces/<ns>[/status|/finalize]` is the Namespace
    // object itself (RequestInfo then also reports <ns> as the namespace).
    let mut namespace = None;
    if let ["namespaces", ns, after @ ..] = parts {
        namespace = Some(*ns);
        if let Some(next) = after.first()
            && !matches!(*next, "status" | "finalize")
        {
            parts = after;
        }
    }

    let resource = parts.first().copied().unwrap_or_default();
    let mut name = parts.get(1).map(|n| (*n).to_owned());
    // `/proxy/` is the one prefix that takes no subresource: the rest is the proxied path.
    let subresource = if prefix_verb == Some(Verb::Proxy) {
        None
    } else {
        parts.get(2).copied()
    };

    if name.is_none() {
        match verb {
            Verb::Get => {
                verb = if options.watch {
                    Verb::Watch
                } else {
                    Verb::List
                };
                // `kubectl wait` and informers on one object: RequestInfo records the name.
                // (It drops it when any ListOptions value fails to decode: bad numbers are
                // refused above already; a bad labelSelector gets the apiserver's own 400.)
                name = options.field_selector.as_deref().and_then(exact_name);
            }
            Verb::Delete => verb = Verb::DeleteCollection,
            _ => {}
        }
    }

    // Streams are told apart by subresource whatever the method: WebSocket exec is a GET,
    // SPDY exec a POST.
    if let Some(stream_verb) = subresource.and_then(stream_verb) {
        verb = stream_verb;
    }

    Ok((
        verb,
        ResourceRef {
            group: api.group.to_owned(),
            version: api.version.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.map(str::to_owned),
            namespace: namespace.map(str::to_owned),
            name,
        },
    ))
}

fn method_verb(method: &Method) -> Verb {
    match *method {
        Method::GET | Method::HEAD => Verb::Get,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE => Verb::Delete,
        _ => Verb::Other,
    }
}

fn stream_verb(subresource: &str) -> Option<Verb> {
    match subresource {
        "exec" => Some(Verb::Exec),
        "attach" => Some(Verb::Attach),
        "portforward" => Some(Verb::PortForward),
        "proxy" => Some(Verb::Proxy),
        "log" => Some(Verb::Log),
        _ => None,
    }
}

/// Non-resource requests keep RequestInfo's lower-cased HTTP method; HEAD (and anything else
/// without a CRUD meaning) is `Other`.
fn non_resource_verb(method: &Method) -> Verb {
    match *method {
        Method::HEAD => Verb::Other,
        _ => method_verb(method),
    }
}

fn non_resource(segments: &Segments<'_>) -> NonResource {
    // `kept` holds every segment of paths this short, so the exact patterns are exact.
    match segments.kept() {
        ["version"] => NonResource::Version,
        ["healthz" | "livez" | "readyz", ..] => NonResource::Health,
        ["metrics", ..] => NonResource::Metrics,
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] => NonResource::Discovery,
        ["openapi", "v2"] | ["openapi", "v3", ..] => NonResource::OpenApi,
        ["swagger.json"] => NonResource::OpenApi,
        _ => NonResource::Other,
    }
}

// ---------------------------------------------------------------------------------------------
// Query

/// The query keys kubeguard reads. Bit positions for "first one wins".
#[derive(Clone, Copy)]
enum Param {
    ResourceVersion,
    ResourceVersionMatch,
    Limit,
    Continue,
    Watch,
    LabelSelector,
    FieldSelector,
    SendInitialEvents,
    AllowWatchBookmarks,
    TimeoutSeconds,
    DryRun,
    Follow,
}

impl Param {
    fn from_key(key: &str) -> Option<Param> {
        Some(match key {
            "resourceVersion" => Param::ResourceVersion,
            "resourceVersionMatch" => Param::ResourceVersionMatch,
            "limit" => Param::Limit,
            "continue" => Param::Continue,
            "watch" => Param::Watch,
            "labelSelector" => Param::LabelSelector,
            "fieldSelector" => Param::FieldSelector,
            "sendInitialEvents" => Param::SendInitialEvents,
            "allowWatchBookmarks" => Param::AllowWatchBookmarks,
            "timeoutSeconds" => Param::TimeoutSeconds,
            "dryRun" => Param::DryRun,
            "follow" => Param::Follow,
            _ => return None,
        })
    }

    fn key(self) -> &'static str {
        match self {
            Param::ResourceVersion => "resourceVersion",
            Param::ResourceVersionMatch => "resourceVersionMatch",
            Param::Limit => "limit",
            Param::Continue => "continue",
            Param::Watch => "watch",
            Param::LabelSelector => "labelSelector",
            Param::FieldSelector => "fieldSelector",
            Param::SendInitialEvents => "sendInitialEvents",
            Param::AllowWatchBookmarks => "allowWatchBookmarks",
            Param::TimeoutSeconds => "timeoutSeconds",
            Param::DryRun => "dryRun",
            Param::Follow => "follow",
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Reads the query as Go's `url.Values` does (pairs split on `&`, a pair holding `;` or a bad
/// escape dropped, `+` is a space, the first value of a key wins) and decodes the values as the
/// apiserver's parameter codec does.
fn parse_query(raw: &str) -> Result<QueryOptions, ClassifyError> {
    let mut options = QueryOptions::default();
    let mut seen = 0u16;
    for pair in raw.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(key) = unescape(raw_key, true) else {
            continue;
        };
        let Some(param) = Param::from_key(&key) else {
            continue;
        };
        // dryRun is a list in DeleteOptions/CreateOptions: every value counts.
        if seen & param.bit() != 0 && !matches!(param, Param::DryRun) {
            continue;
        }
        let value = match unescape(raw_value, true) {
            Ok(value) => value,
            Err(Unescape::BadEscape { .. }) => continue,
            Err(Unescape::NotUtf8) => {
                return Err(ClassifyError::Query {
                    name: param.key(),
                    why: "value is not valid UTF-8 after percent-decoding".into(),
                });
            }
        };
        seen |= param.bit();
        set_param(&mut options, param, value)?;
    }
    Ok(options)
}

fn set_param(
    options: &mut QueryOptions,
    param: Param,
    value: Cow<'_, str>,
) -> Result<(), ClassifyError> {
    match param {
        Param::ResourceVersion => options.resource_version = Some(value.into_owned()),
        Param::ResourceVersionMatch => options.resource_version_match = Some(value.into_owned()),
        Param::Limit => options.limit = Some(non_negative_int(param, &value)?),
        Param::Continue => options.continue_token = Some(value.into_owned()),
        Param::Watch => options.watch = go_bool(&value),
        Param::LabelSelector => options.label_selector = Some(value.into_owned()),
        Param::FieldSelector => options.field_selector = Some(value.into_owned()),
        Param::SendInitialEvents => options.send_initial_events = Some(go_bool(&value)),
        Param::AllowWatchBookmarks => options.allow_watch_bookmarks = go_bool(&value),
        Param::TimeoutSeconds => options.timeout_seconds = Some(non_negative_int(param, &value)?),
        Param::DryRun => options.dry_run |= value == "All",
        Param::Follow => options.follow = go_bool(&value),
    }
    Ok(())
}

/// apimachinery's `Convert_Slice_string_To_bool`: only `0` and `false` (any case) are false;
/// anything else, the empty string included, is true (`watch=` starts a watch).
fn go_bool(value: &str) -> bool {
    !(value == "0" || go_equal_fold(value, "false"))
}

/// Go's `strings.EqualFold` against a lower-case ASCII word: Unicode simple folding adds only
/// `ſ` (U+017F) ≡ `s` and `K` (U+212A) ≡ `k` to ASCII case-insensitivity.
fn go_equal_fold(value: &str, ascii_lower: &str) -> bool {
    let mut chars = value.chars();
    let same = ascii_lower.chars().all(|want| {
        chars.next().is_some_and(|c| {
            c.eq_ignore_ascii_case(&want)
                || (want == 's' && c == '\u{17F}')
                || (want == 'k' && c == '\u{212A}')
        })
    });
    same && chars.next().is_none()
}

/// `strconv.ParseInt(v, 10, 64)`, as the apiserver reads `limit` and `timeoutSeconds`. A negative
/// value parses there and means the same as 0 (no limit; the default timeout), so it becomes 0.
fn non_negative_int(param: Param, value: &str) -> Result<u64, ClassifyError> {
    value
        .parse::<i64>()
        .map(|n| n.max(0).unsigned_abs())
        .map_err(|e| ClassifyError::Query {
            name: param.key(),
            why: format!("{value:?} is not an integer ({e})"),
        })
}

// ---------------------------------------------------------------------------------------------
// Field selector

/// The name a field selector pins, as `fields.ParseSelector(s).RequiresExactMatch("metadata.name")`
/// reads it, kept only if it is a valid path segment name (RequestInfo's condition). A selector
/// the apiserver cannot parse pins nothing.
fn exact_name(selector: &str) -> Option<String> {
    // ParseSelector sorts the terms; the first matching term in that order wins.
    let mut best: Option<(&str, Cow<'_, str>)> = None;
    for term in split_terms(selector) {
        if term.is_empty() {
            continue;
        }
        let (field, equal, raw_value) = split_term(term)?;
        let value = unescape_selector_value(raw_value)?;
        if equal && field == "metadata.name" && best.as_ref().is_none_or(|(t, _)| term < *t) {
            best = Some((term, value));
        }
    }
    let (_, name) = best?;
    // RequestInfo's IsValidPathSegmentName, plus no control characters: such a name matches no
    // object, and leaving it out keeps the request a plain (costlier-looking) list. Found by
    // fuzzing: `metadata.name=a%00b`.
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '%'])
        && !name.contains(char::is_control);
    valid.then(|| name.into_owned())
}

/// Splits on `,` not preceded by a backslash escape.
fn split_terms(selector: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(selector);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                ',' => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

/// Splits a term at the first operator (`!=`, `==` or `=`); returns (field, is-equality, value).
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, equal) in [("!=", false), ("==", true), ("=", true)] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], equal, value));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; a bare `,` or `=` is invalid.
fn unescape_selector_value(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains(['\\', ',', '=']) {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        match c {
            '\\' | ',' | '=' if escaped => {
                out.push(c);
                escaped = false;
            }
            _ if escaped => return None,
            '\\' => escaped = true,
            ',' | '=' => return None,
            _ => out.push(c),
        }
    }
    (!escaped).then_some(Cow::Owned(out))
}

// ---------------------------------------------------------------------------------------------
// Percent-decoding

enum Unescape {
    BadEscape { at: usize },
    NotUtf8,
}

/// Go's `url.PathUnescape` (`plus_is_space == false`) or `url.QueryUnescape` (`true`). Borrows
/// when there is nothing to decode.
fn unescape(s: &str, plus_is_space: bool) -> Result<Cow<'_, str>, Unescape> {
    let bytes = s.as_bytes();
    let plain = if plus_is_space {
        memchr::memchr2(b'%', b'+', bytes).is_none()
    } else {
        memchr::memchr(b'%', bytes).is_none()
    };
    if plain {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&h| hex(h));
                let lo = bytes.get(i + 2).and_then(|&l| hex(l));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(Unescape::BadEscape { at: i });
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| Unescape::NotUtf8)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod split_tests {
    use super::split_slashes;

    /// The byte splitter against what it replaced, `trim_matches('/')` then `split('/')`.
    #[test]
    fn split_slashes_agrees_with_str_split() {
        let cases = [
            "",
            "/",
            "//",
            "///",
            "a",
            "/a",
            "a/",
            "/a/",
            "//a//",
            "/a/b",
            "/a//b/",
            "a/b/c",
            "/api/v1/namespaces/default/pods/p1",
            "/apis/apps/v1/",
            "/é/ü//ß/",
            "/%2F/x",
            "/a/./..",
            "////x////y////",
        ];
        for path in cases {
            let trimmed = path.trim_matches('/');
            let old: Vec<&str> = if trimmed.is_empty() {
                Vec::new()
            } else {
                trimmed.split('/').collect()
            };
            let new: Vec<&str> = split_slashes(path).collect();
            assert_eq!(new, old, "{path:?}");
        }
    }
}

#[cfg(test)]
mod decode_tests {
    use super::{ClassifyError, decode_path, unescape};

    /// What the raw path checks, the fast paths (no `%`, no control character) included, give.
    #[test]
    fn paths_decode_and_fail_as_they_did() {
        for (path, want) in [
            ("/api/v1/pods", Ok("/api/v1/pods")),
            ("/a%41b", Ok("/aAb")),
            ("/a+b", Ok("/a+b")),
            ("/é%C3%A9", Ok("/éé")),
            ("/a\tb", Err("control character at byte 2")),
            ("/a\u{7f}b", Err("control character at byte 2")),
            ("/ab\0", Err("control character at byte 3")),
            ("/a%00b", Err("NUL byte in path")),
            ("/a%zzb", Err("invalid percent-encoding at byte 2")),
            ("/a%4", Err("invalid percent-encoding at byte 2")),
            ("/a%ffb", Err("not valid UTF-8 after percent-decoding")),
        ] {
            let got = decode_path(path);
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{path:?}"),
                Err(w) => assert_eq!(got, Err(ClassifyError::Path(w.into())), "{path:?}"),
            }
        }
        // Query values: `+` is a space, and a value without `%` or `+` is borrowed.
        assert_eq!(unescape("a+b%21", true).ok().as_deref(), Some("a b!"));
        assert!(matches!(
            unescape("plain", true),
            Ok(std::borrow::Cow::Borrowed("plain"))
        ));
    }
}
