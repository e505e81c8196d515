//! A streaming scanner of response bodies: fed each chunk as it passes through the proxy, it
//! never buffers the body and keeps O(1) state (a bounded stack of container frames, a bounded
//! buffer for the few scalar values it captures).
//!
//! What it extracts:
//! - JSON lists (`…List`): `metadata.resourceVersion`, whether `metadata.continue` is set,
//!   `metadata.remainingItemCount`, and the number of `items`;
//! - Tables (`as=Table`): the same metadata and the number of `rows`;
//! - watch streams (one JSON event after another): the number of events, the newest
//!   `object.metadata.resourceVersion`, and whether an `ERROR` event carried code 410 (Expired).
//!
//! Protobuf (or anything not JSON) is not scanned: its summary says `format: Unknown`.

use super::scan_block::{self, BLOCK, SkipState, Step, skip_block};

/// Nesting deeper than this is not tracked (nothing kubeguard reads lives that deep); the
/// scanner keeps counting depth so it stays in step.
const MAX_FRAMES: usize = 8;
/// Keys longer than this never match a key kubeguard looks for.
const KEY_CAP: usize = 24;
/// Captured scalar values (resource versions, codes, event types) are at most this long.
const VALUE_CAP: usize = 32;

/// The bytes that change string or nesting state, for the skip over deep values.
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// What kind of body a scanner reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// A single JSON document (a list, a Table, an object, a Status).
    Json,
    /// A JSON watch stream: a sequence of `{"type":…,"object":…}` events.
    WatchJson,
    /// Protobuf, CBOR, or anything else: counted as unknown.
    Unknown,
}

impl BodyKind {
    /// The body kind from the response `Content-Type` and whether the request was a watch.
    pub fn from_content_type(content_type: Option<&str>, watch: bool) -> BodyKind {
        let ct = content_type.unwrap_or("").to_ascii_lowercase();
        let json = ct.starts_with("application/json") || ct.contains("+json");
        match (json, watch) {
            (true, true) => BodyKind::WatchJson,
            (true, false) => BodyKind::Json,
            _ => BodyKind::Unknown,
        }
    }
}

/// What a scan found: the summary the learner and the cost ledger read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// `Json`, `WatchJson` or `Unknown` (protobuf: nothing counted).
    pub format: Option<BodyKind>,
    /// `metadata.resourceVersion` of a list or Table.
    pub list_resource_version: Option<u64>,
    /// The list has a `continue` token (more pages follow).
    pub has_continue: bool,
    /// `metadata.remainingItemCount` of a paginated list (an estimate by the apiserver).
    pub remaining_item_count: Option<u64>,
    /// Entries of `items` (lists) or `rows` (Tables) seen.
    pub items: u64,
    /// The body is a Table (`kind: Table`).
    pub table: bool,
    /// Watch events seen (bookmarks included).
    pub events: u64,
    /// The newest `object.metadata.resourceVersion` of a watch event.
    pub newest_event_rv: Option<u64>,
    /// A watch `ERROR` event with code 410 (Expired / Gone).
    pub expired: bool,
    /// Bytes fed.
    pub bytes: u64,
    /// The body did not parse as expected (counts may be partial).
    pub malformed: bool,
}

impl ScanSummary {
    /// Items in the collection: exact for a complete list, estimated (`items +
    /// remainingItemCount`) for the first page of a paginated one, `None` when unknown.
    pub fn collection_size(&self) -> Option<(u64, bool)> {
        if self.format != Some(BodyKind::Json) || self.malformed {
            return None;
        }
        if !self.has_continue {
            return Some((self.items, true));
        }
        self.remaining_item_count
            .map(|r| (self.items.saturating_add(r), false))
    }

    /// The newest resourceVersion seen in this body (list metadata or watch events).
    pub fn newest_rv(&self) -> Option<u64> {
        self.list_resource_version.max(self.newest_event_rv)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Obj,
    Arr,
}

#[derive(Clone, Copy)]
struct Key {
    buf: [u8; KEY_CAP],
    len: u8,
    /// Too long to match anything, or no key (array element).
    none: bool,
}

impl Key {
    const NONE: Key = Key {
        buf: [0; KEY_CAP],
        len: 0,
        none: true,
    };
    fn is(&self, k: &str) -> bool {
        !self.none && &self.buf[..self.len as usize] == k.as_bytes()
    }
}

#[derive(Clone, Copy)]
struct Frame {
    kind: Kind,
    /// The key this container sits under in its parent object.
    key: Key,
    /// In an object: the next string is a key.
    expect_key: bool,
    /// The key of the value being read in this object.
    current: Key,
}

/// The scanner. Feed it chunks with [`Scanner::feed`]; read [`Scanner::summary`] at the end.
pub struct Scanner {
    kind: BodyKind,
    frames: [Frame; MAX_FRAMES],
    depth: usize,
    /// Nothing kubeguard reads lives deeper than this: lists' `metadata` sits at depth 2 (the
    /// items at 3 are only counted), watch events' `object.metadata` at depth 3.
    skip_depth: usize,
    in_string: bool,
    escape: bool,
    string_is_key: bool,
    /// A number or literal is being read.
    in_scalar: bool,
    value: [u8; VALUE_CAP],
    value_len: usize,
    value_overflow: bool,
    /// Within the current watch event: its type is ERROR, its object code is 410.
    event_error: bool,
    event_code_410: bool,
    summary: ScanSummary,
    /// Tests: skip deep values byte by byte (the reference for the block skip).
    #[cfg(test)]
    bytewise: bool,
}

impl Scanner {
    pub fn new(kind: BodyKind) -> Self {
        let frame = Frame {
            kind: Kind::Obj,
            key: Key::NONE,
            expect_key: false,
            current: Key::NONE,
        };
        Scanner {
            kind,
            frames: [frame; MAX_FRAMES],
            depth: 0,
            skip_depth: match kind {
                BodyKind::WatchJson => 3,
                _ => 2,
            },
            in_string: false,
            escape: false,
            string_is_key: false,
            in_scalar: false,
            value: [0; VALUE_CAP],
            value_len: 0,
            value_overflow: false,
            event_error: false,
            event_code_410: false,
            summary: ScanSummary {
                format: Some(kind),
                ..ScanSummary::default()
            },
            #[cfg(test)]
            bytewise: false,
        }
    }

    /// A scanner that skips deep values byte by byte, as before the block skip.
    #[cfg(test)]
    pub(super) fn new_bytewise(kind: BodyKind) -> Self {
        Scanner {
            bytewise: true,
            ..Scanner::new(kind)
        }
    }

    pub fn summary(&self) -> &ScanSummary {
        &self.summary
    }

    /// Reads one chunk. O(chunk), allocation-free.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.summary.bytes += chunk.len() as u64;
        if self.kind == BodyKind::Unknown || self.summary.malformed {
            return;
        }
        let mut i = 0;
        while i < chunk.len() {
            if self.depth > self.skip_depth {
                i = self.skip_deep(chunk, i);
                continue;
            }
            if self.in_string && !self.escape {
                // Most of a body is string content: skip to its end in one search, keeping only
                // the bounded prefix a captured value needs.
                let rest = &chunk[i..];
                let n = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                let take = n.min(VALUE_CAP - self.value_len);
                self.value[self.value_len..self.value_len + take].copy_from_slice(&rest[..take]);
                self.value_len += take;
                if n > take {
                    self.value_overflow = true;
                }
                i += n;
                if i == chunk.len() {
                    break;
                }
            }
            self.byte(chunk[i]);
            i += 1;
        }
    }

    /// Inside a value nothing is read from (an item of a list, the spec of a watched object):
    /// only string boundaries and nesting matter, so the value is skipped 64 bytes at a time
    /// (see [`scan_block`]) until it ends. Returns the position after the last byte consumed.
    fn skip_deep(&mut self, chunk: &[u8], mut i: usize) -> usize {
        #[cfg(test)]
        if self.bytewise {
            return self.skip_deep_bytewise(chunk, i);
        }
        let floor = self.skip_depth;
        let mut state = self.skip_state();
        let end = loop {
            let rest = &chunk[i..];
            if rest.is_empty() {
                break i;
            }
            let (step, len) = match rest.first_chunk::<BLOCK>() {
                Some(block) => (
                    skip_block(&mut state, &scan_block::classify(block), BLOCK, floor),
                    BLOCK,
                ),
                None => {
                    // A chunk's tail: padded with a byte that means nothing to the skip.
                    let mut block = [b' '; BLOCK];
                    block[..rest.len()].copy_from_slice(rest);
                    let m = scan_block::classify(&block);
                    (skip_block(&mut state, &m, rest.len(), floor), rest.len())
                }
            };
            match step {
                Step::Continues => i += len,
                Step::EndsAt(k) => break i + k + 1,
                Step::Bytewise => {
                    self.set_skip_state(state);
                    i = self.skip_deep_bytewise(&chunk[..i + len], i);
                    state = self.skip_state();
                    if state.depth <= floor {
                        break i;
                    }
                }
            }
        };
        self.set_skip_state(state);
        end
    }

    fn skip_state(&self) -> SkipState {
        SkipState {
            in_string: self.in_string,
            escape: self.escape,
            depth: self.depth,
        }
    }

    fn set_skip_state(&mut self, s: SkipState) {
        self.in_string = s.in_string;
        self.escape = s.escape;
        self.depth = s.depth;
    }

    /// The skip byte by byte: for blocks the masks cannot read (a backslash outside a string),
    /// and the reference the block skip is tested against.
    fn skip_deep_bytewise(&mut self, chunk: &[u8], mut i: usize) -> usize {
        while i < chunk.len() && self.depth > self.skip_depth {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    i += 1;
                    continue;
                }
                let Some(n) = memchr::memchr2(b'"', b'\\', &chunk[i..]) else {
                    return chunk.len();
                };
                i += n;
                if chunk[i] == b'\\' {
                    self.escape = true;
                } else {
                    self.in_string = false;
                }
                i += 1;
                continue;
            }
            let Some(n) = chunk[i..].iter().position(|&b| STRUCTURAL[b as usize]) else {
                return chunk.len();
            };
            i += n;
            match chunk[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                // `}` or `]`: the depth is above the skip depth, so this never underflows.
                _ => self.depth -= 1,
            }
            i += 1;
        }
        i
    }

    fn byte(&mut self, b: u8) {
        if self.in_string {
            if self.escape {
                self.escape = false;
                self.push_value(b);
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                self.end_string();
            } else {
                self.push_value(b);
            }
            return;
        }
        match b {
            b'{' | b'[' => {
                self.end_scalar();
                self.value_start();
                let kind = if b == b'{' { Kind::Obj } else { Kind::Arr };
                self.push(kind);
            }
            b'}' | b']' => {
                self.end_scalar();
                self.pop();
            }
            b'"' => {
                self.end_scalar();
                self.string_is_key = self
                    .top()
                    .is_some_and(|f| f.kind == Kind::Obj && f.expect_key);
                if !self.string_is_key {
                    self.value_start();
                }
                self.in_string = true;
                self.clear_value();
            }
            b':' => {
                self.end_scalar();
                if let Some(f) = self.top_mut() {
                    f.expect_key = false;
                }
            }
            b',' => {
                self.end_scalar();
                if let Some(f) = self.top_mut()
                    && f.kind == Kind::Obj
                {
                    f.expect_key = true;
                    f.current = Key::NONE;
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => self.end_scalar(),
            _ => {
                if !self.in_scalar {
                    self.value_start();
                    self.in_scalar = true;
                    self.clear_value();
                }
                self.push_value(b);
            }
        }
    }

    fn top(&self) -> Option<&Frame> {
        (self.depth > 0 && self.depth <= MAX_FRAMES).then(|| &self.frames[self.depth - 1])
    }

    fn top_mut(&mut self) -> Option<&mut Frame> {
        (self.depth > 0 && self.depth <= MAX_FRAMES).then(|| &mut self.frames[self.depth - 1])
    }

    /// The key of a frame at `depth` (1-based), if tracked.
    fn key_at(&self, depth: usize) -> &Key {
        if depth == 0 || depth > MAX_FRAMES || depth > self.depth {
            return &Key::NONE;
        }
        &self.frames[depth - 1].key
    }

    /// A value (object, array, string, number, literal) begins at the current position.
    fn value_start(&mut self) {
        if self.depth == 0 {
            if self.kind == BodyKind::WatchJson {
                self.summary.events += 1;
                self.event_error = false;
                self.event_code_410 = false;
            }
            return;
        }
        // An element of the root object's `items` (lists) or `rows` (Tables) array.
        if self.kind == BodyKind::Json
            && self.depth == 2
            && self.top().is_some_and(|f| f.kind == Kind::Arr)
        {
            let k = self.key_at(2);
            if k.is("items") || k.is("rows") {
                self.summary.items += 1;
            }
        }
    }

    fn push(&mut self, kind: Kind) {
        let key = self.top().map_or(Key::NONE, |f| {
            if f.kind == Kind::Obj {
                f.current
            } else {
                Key::NONE
            }
        });
        if self.depth < MAX_FRAMES {
            self.frames[self.depth] = Frame {
                kind,
                key,
                expect_key: kind == Kind::Obj,
                current: Key::NONE,
            };
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        if self.depth == 0 {
            self.summary.malformed = true;
            return;
        }
        self.depth -= 1;
        if self.depth == 0
            && self.kind == BodyKind::WatchJson
            && self.event_error
            && self.event_code_410
        {
            self.summary.expired = true;
        }
    }

    fn clear_value(&mut self) {
        self.value_len = 0;
        self.value_overflow = false;
    }

    fn push_value(&mut self, b: u8) {
        if self.value_len < VALUE_CAP {
            self.value[self.value_len] = b;
            self.value_len += 1;
        } else {
            self.value_overflow = true;
        }
    }

    fn end_string(&mut self) {
        if self.string_is_key {
            let mut key = Key::NONE;
            if !self.value_overflow && self.value_len <= KEY_CAP {
                key.buf[..self.value_len].copy_from_slice(&self.value[..self.value_len]);
                key.len = self.value_len as u8;
                key.none = false;
            }
            if let Some(f) = self.top_mut() {
                f.current = key;
            }
            return;
        }
        self.scalar_done(true);
    }

    fn end_scalar(&mut self) {
        if self.in_scalar {
            self.in_scalar = false;
            self.scalar_done(false);
        }
    }

    /// A string or scalar value ended: record it if its path is one kubeguard reads.
    fn scalar_done(&mut self, string: bool) {
        let Some(cur) = self.top().map(|f| f.current) else {
            return;
        };
        let text = &self.value[..self.value_len];
        let number = || -> Option<u64> {
            if self.value_overflow {
                return None;
            }
            std::str::from_utf8(text).ok()?.parse().ok()
        };
        match (self.kind, self.depth) {
            // {"metadata":{"resourceVersion":"…","continue":"…","remainingItemCount":N}}
            (BodyKind::Json, 2) if self.key_at(2).is("metadata") => {
                if cur.is("resourceVersion") {
                    self.summary.list_resource_version = number();
                } else if cur.is("continue") && string {
                    self.summary.has_continue = self.value_len > 0 || self.value_overflow;
                } else if cur.is("remainingItemCount") {
                    self.summary.remaining_item_count = number();
                }
            }
            (BodyKind::Json, 1) if cur.is("kind") && string => {
                self.summary.table = text == b"Table";
            }
            (BodyKind::WatchJson, 1) if cur.is("type") => {
                self.event_error = text == b"ERROR";
            }
            (BodyKind::WatchJson, 2) if self.key_at(2).is("object") && cur.is("code") => {
                self.event_code_410 = number() == Some(410);
            }
            (BodyKind::WatchJson, 3)
                if self.key_at(2).is("object")
                    && self.key_at(3).is("metadata")
                    && cur.is("resourceVersion") =>
            {
                if let Some(rv) = number() {
                    self.summary.newest_event_rv = self.summary.newest_event_rv.max(Some(rv));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_chunks(kind: BodyKind, body: &str, chunk: usize) -> ScanSummary {
        let mut s = Scanner::new(kind);
        for c in body.as_bytes().chunks(chunk) {
            s.feed(c);
        }
        s.summary().clone()
    }

    const LIST: &str = r#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"4711","continue":"eyJ2Ijoi","remainingItemCount":998},"items":[{"metadata":{"name":"a","resourceVersion":"9","labels":{"x":"[{"}},"spec":{"containers":[{"name":"c"}]}},{"metadata":{"name":"b\"}"}},{}]}"#;

    #[test]
    fn lists_are_counted_in_any_chunking() {
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let s = scan_in_chunks(BodyKind::Json, LIST, chunk);
            assert_eq!(s.items, 3, "chunk {chunk}");
            assert_eq!(s.list_resource_version, Some(4711));
            assert!(s.has_continue);
            assert_eq!(s.remaining_item_count, Some(998));
            assert_eq!(s.collection_size(), Some((1001, false)));
            assert!(!s.malformed);
        }
    }

    #[test]
    fn deep_values_are_skipped_without_losing_step() {
        // Escapes, brackets and quotes inside items, split at every position; the metadata
        // after the items must still be read.
        let body = r#"{"items":[{"a":"x\\\"}{[","b":[{"c":"\\\\"},[]],"n":-1.5e3},{"d":{"e":{}}},[]],"metadata":{"resourceVersion":"5"},"kind":"PodList"}"#;
        for chunk in 1..=body.len() {
            let s = scan_in_chunks(BodyKind::Json, body, chunk);
            assert_eq!(s.items, 3, "chunk {chunk}");
            assert_eq!(s.list_resource_version, Some(5), "chunk {chunk}");
            assert!(!s.malformed, "chunk {chunk}");
        }
    }

    #[test]
    fn a_complete_list_has_an_exact_size() {
        let body = r#"{"kind":"NodeList","metadata":{"resourceVersion":"12","continue":""},"items":[{"a":1},{"b":[1,2,3]}]}"#;
        let s = scan_in_chunks(BodyKind::Json, body, 5);
        assert!(!s.has_continue);
        assert_eq!(s.collection_size(), Some((2, true)));
        assert_eq!(s.newest_rv(), Some(12));
    }

    #[test]
    fn tables_count_rows() {
        let body = r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"77"},"columnDefinitions":[{"name":"Name"},{"name":"Ready"}],"rows":[{"cells":["a","1/1"],"object":{"metadata":{"resourceVersion":"5"}}},{"cells":["b","0/1"]}]}"#;
        let s = scan_in_chunks(BodyKind::Json, body, 4);
        assert!(s.table);
        assert_eq!(s.items, 2);
        assert_eq!(s.list_resource_version, Some(77));
    }

    #[test]
    fn watch_streams_count_events_and_newest_rv() {
        let body = concat!(
            r#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"10"}}}"#,
            "\n",
            r#"{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"a","resourceVersion":"12","annotations":{"resourceVersion":"99"}}}}"#,
            "\n",
            r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"11"}}}"#,
            "\n"
        );
        let s = scan_in_chunks(BodyKind::WatchJson, body, 3);
        assert_eq!(s.events, 3);
        assert_eq!(s.newest_event_rv, Some(12));
        assert!(!s.expired);
    }

    #[test]
    fn watch_expired_error_is_seen() {
        let body = r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#;
        let s = scan_in_chunks(BodyKind::WatchJson, body, 6);
        assert_eq!(s.events, 1);
        assert!(s.expired);
    }

    #[test]
    fn protobuf_is_unknown() {
        assert_eq!(
            BodyKind::from_content_type(Some("application/vnd.kubernetes.protobuf"), false),
            BodyKind::Unknown
        );
        let s = scan_in_chunks(BodyKind::Unknown, "\x00k8s\x00garbage{[", 4);
        assert_eq!(s.items, 0);
        assert_eq!(s.bytes, 14);
        assert_eq!(s.collection_size(), None);
        assert_eq!(
            BodyKind::from_content_type(
                Some("application/json;as=Table;v=v1;g=meta.k8s.io"),
                false
            ),
            BodyKind::Json
        );
    }

    #[test]
    fn long_strings_and_escapes_across_chunks() {
        let long = "x".repeat(10_000);
        let body = format!(
            r#"{{"metadata":{{"continue":"{long}","resourceVersion":"9"}},"items":[{{"a":"{long}\"],{{"}},{{"b":"\\"}}]}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["items"][0]["a"].as_str().unwrap().len(), 10_004);
        for chunk in [1, 5, 333, 100_000] {
            let s = scan_in_chunks(BodyKind::Json, &body, chunk);
            assert!(s.has_continue, "chunk {chunk}");
            assert_eq!(s.items, 2, "chunk {chunk}");
            assert_eq!(s.list_resource_version, Some(9));
            assert!(!s.malformed);
        }
    }

    #[test]
    fn deep_nesting_stays_in_step() {
        let deep = format!(
            r#"{{"metadata":{{"resourceVersion":"3"}},"items":[{}1{},{{}}]}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        let s = scan_in_chunks(BodyKind::Json, &deep, 9);
        assert_eq!(s.items, 2);
        assert_eq!(s.list_resource_version, Some(3));
        assert!(!s.malformed);
    }
}
