//! The scanner's skip over deep values, 64 bytes at a time (the "stage 1" idea of simdjson:
//! classify a block into bitmasks, then work on the masks instead of on bytes).
//!
//! Per block: masks of `"`, `\`, `{`/`[` and `}`/`]`; the quotes escaped by an odd run of
//! backslashes are dropped; the in-string mask is the prefix XOR of the remaining quotes; the
//! brackets outside strings then move the depth one by one (a `trailing_zeros` loop), which
//! finds the exact byte where the value ends.
//!
//! The masks assume every backslash sits inside a string (true of JSON). A block where one does
//! not is reported as [`Step::Bytewise`], and the caller walks it byte by byte, so malformed input
//! gives the same result as the byte-wise skip.

/// Bytes per block: one bit of a `u64` mask each.
pub(super) const BLOCK: usize = 64;

/// Bit `k` of each mask describes byte `k` of a block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Masks {
    pub quote: u64,
    pub backslash: u64,
    /// `{` or `[`.
    pub open: u64,
    /// `}` or `]`.
    pub close: u64,
}

/// The skip's state between blocks and between chunks: the scanner's own fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SkipState {
    pub in_string: bool,
    /// Inside a string, the next byte is escaped.
    pub escape: bool,
    pub depth: usize,
}

/// What a block did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// The block was consumed and the deep value goes on.
    Continues,
    /// The deep value ended at this offset (its closing bracket) within the block.
    EndsAt(usize),
    /// A backslash outside a string (not JSON): nothing was changed, walk the block bytewise.
    Bytewise,
}

/// Bytes that repeat `b` in every lane of a `u64`.
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}
/// `{`/`[` and `}`/`]` differ only in bit 5 (0x7B/0x5B, 0x7D/0x5D): setting it folds each pair.
const FOLD: u8 = 0x20;
/// Bits at odd positions.
const ODD_BITS: u64 = 0xAAAA_AAAA_AAAA_AAAA;

/// The masks of a block (SSE2 on x86_64, where it is in the baseline target).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
pub(super) fn classify(block: &[u8; BLOCK]) -> Masks {
    classify_sse2(block)
}

/// The masks of a block (portable SWAR).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
pub(super) fn classify(block: &[u8; BLOCK]) -> Masks {
    classify_swar(block)
}

/// 16 bytes per compare. `safe_arch` wraps the intrinsics: they are `#[target_feature]` functions,
/// which safe code may call only from another function with that attribute (and calling that one
/// is unsafe again), even where the feature is enabled for the whole build.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
pub(super) fn classify_sse2(block: &[u8; BLOCK]) -> Masks {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let quote = set_splat_i8_m128i(b'"' as i8);
    let backslash = set_splat_i8_m128i(b'\\' as i8);
    let open = set_splat_i8_m128i(b'{' as i8);
    let close = set_splat_i8_m128i(b'}' as i8);
    let fold = set_splat_i8_m128i(FOLD as i8);
    // The mask of the 16 bytes equal to `c`, in place for lane group `k`.
    let bits = |v: m128i, c: m128i, k: usize| -> u64 {
        u64::from(move_mask_i8_m128i(cmp_eq_mask_i8_m128i(v, c)) as u16) << (16 * k)
    };
    let mut m = Masks::default();
    for (k, lanes) in block.as_chunks::<16>().0.iter().enumerate() {
        let v = load_unaligned_m128i(lanes);
        let folded = bitor_m128i(v, fold);
        m.quote |= bits(v, quote, k);
        m.backslash |= bits(v, backslash, k);
        m.open |= bits(folded, open, k);
        m.close |= bits(folded, close, k);
    }
    m
}

/// 8 bytes per `u64`: the portable fallback (tested on every target).
#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
pub(super) fn classify_swar(block: &[u8; BLOCK]) -> Masks {
    // 8 bits: bit j set where byte j of `w` is `c`. `t` is zero exactly in those bytes; adding
    // 0x7F to each byte's low 7 bits sets its high bit unless they are zero, without carrying
    // into the next byte; a multiply then gathers the 8 high bits into the top byte.
    fn eq_bits(w: u64, c: u8) -> u64 {
        let low7 = splat(0x7F);
        let t = w ^ splat(c);
        let zero_high = !(((t & low7) + low7) | t | low7);
        ((zero_high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
    }
    let mut m = Masks::default();
    for (k, bytes) in block.as_chunks::<8>().0.iter().enumerate() {
        let w = u64::from_le_bytes(*bytes);
        let folded = w | splat(FOLD);
        let at = 8 * k;
        m.quote |= eq_bits(w, b'"') << at;
        m.backslash |= eq_bits(w, b'\\') << at;
        m.open |= eq_bits(folded, b'{') << at;
        m.close |= eq_bits(folded, b'}') << at;
    }
    m
}

/// The bytes escaped by a backslash: the byte after each odd-length run of backslashes (and
/// byte 0 when `escape_in`, which also makes a backslash there a literal); a backslash escaped
/// within a run is not marked, as only quotes are read from the mask. Returns the mask and
/// whether the byte after the block is escaped (a run of odd length ends the block).
///
/// A run starting at `s` of length `l` escapes byte `s + l` when `l` is odd, that is when `s`
/// and `s + l` differ in parity. Adding a run's start bit to the mask carries through the run
/// and lands on `s + l`, so the runs are split by the parity of their start.
pub(super) fn escaped(backslash: u64, escape_in: bool) -> (u64, bool) {
    let first = u64::from(escape_in);
    let runs = backslash & !first;
    let starts = runs & !(runs << 1);
    let (from_even, _) = runs.overflowing_add(starts & !ODD_BITS);
    let (from_odd, carry_out) = runs.overflowing_add(starts & ODD_BITS);
    // A run from an even start reaching byte 63 has even length: its carry escapes nothing.
    let escaped = (from_even & !runs & ODD_BITS) | (from_odd & !runs & !ODD_BITS) | first;
    (escaped, carry_out)
}

/// Bit k: an odd number of the bits 0..=k are set.
pub(super) fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// Skips through one block of `len` bytes (`len <= 64`; bits from `len` on are clear) until the
/// depth falls back to `floor`. `state.depth > floor` on entry.
#[inline]
pub(super) fn skip_block(state: &mut SkipState, m: &Masks, len: usize, floor: usize) -> Step {
    // Most blocks of API objects hold no backslash.
    let (escaped, escape_out) = if m.backslash == 0 && !state.escape {
        (0, false)
    } else {
        escaped(m.backslash, state.escape)
    };
    let quotes = m.quote & !escaped;
    // Set from an opening quote up to (not including) its closing quote.
    let in_string = prefix_xor(quotes) ^ if state.in_string { !0 } else { 0 };
    if m.backslash & !in_string != 0 {
        return Step::Bytewise;
    }
    let opens = m.open & !in_string;
    let closes = m.close & !in_string;
    // Bracket by bracket (about one per block in API objects): cheaper than counting them,
    // as x86_64's baseline has no popcount instruction.
    let mut brackets = opens | closes;
    let mut depth = state.depth;
    while brackets != 0 {
        let k = brackets.trailing_zeros();
        // +1 for an open, -1 for a close; `depth > floor >= 0` here, so this never underflows.
        depth = depth + 1 - 2 * (closes >> k & 1) as usize;
        if depth == floor {
            state.depth = depth;
            state.in_string = false;
            state.escape = false;
            return Step::EndsAt(k as usize);
        }
        brackets &= brackets - 1;
    }
    state.depth = depth;
    // No quote lies past `len`, so bit 63 is the state after the last byte.
    state.in_string = in_string >> 63 != 0;
    state.escape = if len == BLOCK {
        escape_out
    } else {
        escaped >> len & 1 != 0
    };
    Step::Continues
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::scan::{BodyKind, ScanSummary, Scanner};

    /// The tests' splitmix64 generator: deterministic, so a failure names its case.
    use crate::sim::seed::TestRng as Rng;

    fn ws(r: &mut Rng, out: &mut String) {
        if r.chance(15) {
            out.push_str(r.pick(&[" ", "\n", "\t ", "\r\n  "]));
        }
    }

    fn string(r: &mut Rng, out: &mut String) {
        out.push('"');
        let n = if r.chance(5) {
            64 + r.index(300)
        } else {
            r.index(16)
        };
        for _ in 0..n {
            match r.index(24) {
                0 => out.push_str(r#"\""#),
                1 => out.push_str(r"\\"),
                2 => out.push_str(r#"\\\""#),
                3 => out.push_str(r"\\\\"),
                4 => out.push_str(r"\n"),
                5 => out.push_str(r"\u00e9"),
                6 => out.push_str(r.pick(&["é", "日本", "🦀"])),
                7 => out.push_str(r.pick(&["{", "}", "[", "]", ",", ":", r#"{\"a\":["#, "]}"])),
                _ => out.push(char::from(b'a' + r.index(26) as u8)),
            }
        }
        out.push('"');
    }

    fn value(r: &mut Rng, depth: usize, out: &mut String) {
        ws(r, out);
        match r.index(if depth >= 7 { 4 } else { 8 }) {
            0 | 1 => string(r, out),
            2 => out.push_str(r.pick(&["0", "-12", "3.25e-7", "410", "123456789012", "1E3"])),
            3 => out.push_str(r.pick(&["true", "false", "null"])),
            4..=6 => {
                out.push('{');
                for k in 0..r.index(5) {
                    if k > 0 {
                        out.push(',');
                    }
                    ws(r, out);
                    string(r, out);
                    ws(r, out);
                    out.push(':');
                    value(r, depth + 1, out);
                }
                ws(r, out);
                out.push('}');
            }
            _ => {
                out.push('[');
                for k in 0..r.index(5) {
                    if k > 0 {
                        out.push(',');
                    }
                    value(r, depth + 1, out);
                }
                ws(r, out);
                out.push(']');
            }
        }
        ws(r, out);
    }

    fn object_meta(r: &mut Rng, out: &mut String) {
        out.push_str(r#"{"metadata":{"name":"#);
        string(r, out);
        out.push_str(&format!(r#","resourceVersion":"{}""#, r.index(100_000)));
        out.push_str(r#","labels":"#);
        value(r, 3, out);
        out.push_str(r#"},"spec":"#);
        value(r, 2, out);
        out.push('}');
    }

    /// A list or Table, its metadata before or after the items.
    fn list(r: &mut Rng) -> String {
        let table = r.chance(15);
        let mut meta = format!(r#""metadata":{{"resourceVersion":"{}""#, r.index(1_000_000));
        if r.chance(50) {
            meta.push_str(r#","continue":"#);
            if r.chance(30) {
                meta.push_str(r#""""#);
            } else {
                string(r, &mut meta);
            }
            meta.push_str(&format!(r#","remainingItemCount":{}"#, r.index(5000)));
        }
        meta.push('}');
        let mut items = format!(r#""{}":["#, if table { "rows" } else { "items" });
        for k in 0..r.index(8) {
            if k > 0 {
                items.push(',');
            }
            ws(r, &mut items);
            if r.chance(80) {
                object_meta(r, &mut items);
            } else {
                value(r, 2, &mut items);
            }
        }
        items.push(']');
        let kind = if table { "Table" } else { "PodList" };
        let mut body = format!(r#"{{"kind":"{kind}","apiVersion":"v1","#);
        if r.chance(50) {
            body.push_str(&format!("{meta},{items}}}"));
        } else {
            body.push_str(&format!("{items},{meta}}}"));
        }
        body
    }

    fn watch(r: &mut Rng) -> String {
        let mut body = String::new();
        for _ in 0..1 + r.index(6) {
            let kind = r.pick(&["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]);
            body.push_str(&format!(r#"{{"type":"{kind}","object":"#));
            if kind == "ERROR" {
                let code = r.pick(&["410", "500"]);
                body.push_str(r#"{"kind":"Status","metadata":{},"details":"#);
                value(r, 3, &mut body);
                body.push_str(&format!(r#","code":{code}}}"#));
            } else {
                object_meta(r, &mut body);
            }
            body.push_str("}\n");
        }
        body
    }

    /// A random byte replaced, a backslash put outside a string, or the body cut short.
    fn mutate(r: &mut Rng, body: &mut Vec<u8>) {
        for _ in 0..1 + r.index(3) {
            let at = r.index(body.len().max(1));
            match r.index(4) {
                0 => body.truncate(at),
                1 => body.insert(at.min(body.len()), b'\\'),
                _ => {
                    if let Some(b) = body.get_mut(at) {
                        *b = *b"\"\\{}[] x:,\xff".get(r.index(11)).unwrap_or(&b'x');
                    }
                }
            }
        }
    }

    fn scan(mut s: Scanner, chunks: impl Iterator<Item = impl AsRef<[u8]>>) -> ScanSummary {
        for c in chunks {
            s.feed(c.as_ref());
        }
        s.summary().clone()
    }

    /// The block skip and the byte-wise skip agree on `body` in this chunking.
    fn agree(kind: BodyKind, body: &[u8], sizes: &[usize], case: &str) -> ScanSummary {
        let split = |sizes: &[usize]| {
            let mut parts = Vec::new();
            let (mut at, mut k) = (0, 0);
            while at < body.len() {
                let n = sizes[k % sizes.len()].min(body.len() - at);
                parts.push(&body[at..at + n]);
                at += n;
                k += 1;
            }
            parts
        };
        let parts = split(sizes);
        let new = scan(Scanner::new(kind), parts.iter());
        let old = scan(Scanner::new_bytewise(kind), parts.iter());
        assert_eq!(new, old, "{case}, chunks {sizes:?}");
        new
    }

    fn agree_in_all_chunkings(r: &mut Rng, kind: BodyKind, body: &[u8], case: &str) {
        for size in [1, 2, 3, 7, 63, 64, 65, 4096] {
            agree(kind, body, &[size], case);
        }
        let random: Vec<usize> = (0..16).map(|_| 1 + r.index(150)).collect();
        agree(kind, body, &random, case);
    }

    #[test]
    fn block_skip_agrees_with_bytewise_on_random_bodies() {
        let mut r = Rng(0x5EED);
        let (mut bytes, mut lists_read) = (0, 0);
        for case in 0..1000 {
            let watch_stream = r.chance(40);
            let (kind, body) = if watch_stream {
                (BodyKind::WatchJson, watch(&mut r))
            } else {
                (BodyKind::Json, list(&mut r))
            };
            if !watch_stream {
                // The generator writes JSON; the scanner then reads what serde reads.
                let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
                let key = if parsed["kind"] == "Table" {
                    "rows"
                } else {
                    "items"
                };
                let want = parsed[key].as_array().unwrap().len() as u64;
                let got = agree(BodyKind::Json, body.as_bytes(), &[4096], "whole");
                assert_eq!(got.items, want, "case {case}: {body}");
                assert!(!got.malformed, "case {case}");
                lists_read += 1;
            }
            bytes += body.len();
            agree_in_all_chunkings(&mut r, kind, body.as_bytes(), &format!("case {case}"));
            let mut broken = body.into_bytes();
            mutate(&mut r, &mut broken);
            agree_in_all_chunkings(&mut r, kind, &broken, &format!("mutated case {case}"));
        }
        assert!(
            lists_read > 400 && bytes > 300_000,
            "{lists_read} lists, {bytes} bytes"
        );
    }

    #[test]
    fn backslash_runs_across_blocks_and_chunks() {
        for run in 0..=6 {
            for pad in 0..=72 {
                let mut s = format!(
                    r#"{{"items":[{{"a":"{}{}""#,
                    "x".repeat(pad),
                    "\\".repeat(run)
                );
                if run % 2 == 1 {
                    // The quote was escaped: the string goes on.
                    s.push_str(r#"}]""#);
                }
                s.push_str(r#","b":"]}"}],"metadata":{"resourceVersion":"7"}}"#);
                let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
                assert_eq!(parsed["items"].as_array().unwrap().len(), 1);
                let body = s.as_bytes();
                for at in 0..=body.len() {
                    let case = format!("run {run}, pad {pad}, split at {at}");
                    let (a, b) = body.split_at(at);
                    let new = scan(Scanner::new(BodyKind::Json), [a, b].iter());
                    let old = scan(Scanner::new_bytewise(BodyKind::Json), [a, b].iter());
                    assert_eq!(new, old, "{case}");
                    assert_eq!(new.items, 1, "{case}");
                    assert_eq!(new.list_resource_version, Some(7), "{case}");
                    assert!(!new.malformed, "{case}");
                }
                for size in [1, 63, 64, 65] {
                    agree(
                        BodyKind::Json,
                        body,
                        &[size],
                        &format!("run {run}, pad {pad}"),
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_bodies_agree_and_do_not_panic() {
        let cases: &[(&str, bool)] = &[
            (r#"{"items":[{"a":1}]]]}"#, true),
            (
                r#"{"items":[{"a":\"x"}],"metadata":{"resourceVersion":"3"}}"#,
                false,
            ),
            (r#"{"items":[{"a":"\\" \"}"]]]]]]"#, true),
            (r#"{"items":[{"a":"unterminated"#, false),
            (r#"{"items":[{]]]]}}}}}}}}}}"#, true),
            ("{\"items\":[{\"\u{ff}\\\u{0}\":[\\\\\\]}]]}}", true),
            (r#"}}}}"#, true),
        ];
        let mut r = Rng(7);
        for (body, malformed) in cases {
            let whole = agree(BodyKind::Json, body.as_bytes(), &[4096], body);
            assert_eq!(whole.malformed, *malformed, "{body}");
            agree_in_all_chunkings(&mut r, BodyKind::Json, body.as_bytes(), body);
            agree_in_all_chunkings(&mut r, BodyKind::WatchJson, body.as_bytes(), body);
        }
        // A backslash outside a string inside an item, at every offset of a block.
        for pad in 0..70 {
            let body = format!(r#"{{"items":[{{"a":[{}\]}}]]}}"#, " ".repeat(pad));
            let s = agree(BodyKind::Json, body.as_bytes(), &[4096], &body);
            assert!(s.malformed, "{body}");
            assert_eq!(s.items, 1, "{body}");
        }
    }

    fn naive_masks(block: &[u8; BLOCK]) -> Masks {
        let mut m = Masks::default();
        for (k, &b) in block.iter().enumerate() {
            let bit = 1 << k;
            match b {
                b'"' => m.quote |= bit,
                b'\\' => m.backslash |= bit,
                b'{' | b'[' => m.open |= bit,
                b'}' | b']' => m.close |= bit,
                _ => {}
            }
        }
        m
    }

    #[test]
    fn classifiers_match_a_byte_loop() {
        let mut r = Rng(42);
        let alphabet = b"\"\\{}[]x :,\x7b\x5b\x7d\x5d\xfb\xdb\xfd\xdd\x3b\x1b\x02\xa2\xdc\x7c\x5c";
        for _ in 0..2000 {
            let mut block = [0u8; BLOCK];
            for b in &mut block {
                *b = if r.chance(50) {
                    alphabet[r.index(alphabet.len())]
                } else {
                    r.next() as u8
                };
            }
            let want = naive_masks(&block);
            assert_eq!(classify_swar(&block), want, "{block:?}");
            assert_eq!(classify(&block), want, "{block:?}");
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            assert_eq!(classify_sse2(&block), want, "{block:?}");
        }
    }

    #[test]
    fn escapes_and_prefix_xor_match_a_bit_loop() {
        let mut r = Rng(99);
        for case in 0..20_000 {
            // Long runs are likelier than uniform random bits give.
            let backslash = match case % 3 {
                0 => r.next(),
                1 => r.next() | r.next() | r.next(),
                _ => !(r.next() & r.next()) & r.next().rotate_left(r.index(64) as u32),
            };
            let escape_in = r.chance(50);
            let (mut want, mut esc) = (0u64, escape_in);
            for k in 0..BLOCK {
                if esc {
                    want |= 1 << k;
                    esc = false;
                } else if backslash >> k & 1 == 1 {
                    esc = true;
                }
            }
            // Backslashes escaped inside a run are not marked: only what follows a run counts.
            let (got, carry) = escaped(backslash, escape_in);
            assert_eq!(
                (got & !backslash, carry),
                (want & !backslash, esc),
                "{backslash:064b} {escape_in}"
            );
            let x = r.next();
            let mut parity = 0u64;
            let mut want_xor = 0u64;
            for k in 0..BLOCK {
                parity ^= x >> k & 1;
                want_xor |= parity << k;
            }
            assert_eq!(prefix_xor(x), want_xor);
        }
    }

    #[test]
    fn swar_fallback_drives_the_skip() {
        // The portable classifier through the whole block skip on x86 too.
        let body = br#""a":"x\\\"}","b":[{"c":"]"},[[]]],"d":"\\"}"#;
        let mut block = [b' '; BLOCK];
        block[..body.len()].copy_from_slice(body);
        for m in [classify_swar(&block), classify(&block)] {
            let mut st = SkipState {
                in_string: false,
                escape: false,
                depth: 3,
            };
            assert_eq!(
                skip_block(&mut st, &m, body.len(), 2),
                Step::EndsAt(body.len() - 1)
            );
            assert_eq!(st.depth, 2);
        }
    }
}
