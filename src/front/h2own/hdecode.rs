//! HPACK decoding (RFC 7541): integers, the static and dynamic tables, and Huffman-coded
//! strings, decoded with the canonical-code property of Appendix B's code (codes of one length
//! are consecutive, in symbol order), so only each symbol's code length is tabled.

use std::collections::VecDeque;
use std::sync::OnceLock;

/// Appendix B: the length in bits of each symbol's code (256 is EOS).
const LENS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// Appendix A.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// A block that does not decode: COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Debug, PartialEq)]
pub struct Error;

struct Huffman {
    /// For each length: its first code, how many codes, and where its symbols start in `syms`.
    first: [u32; 31],
    count: [u32; 31],
    offset: [u32; 31],
    syms: [u16; 257],
    /// The symbol whose code (of at most 8 bits) starts the next 8 bits, and its length; length
    /// 0 when the code is longer. Most of a path, a name or a token has codes of 5 to 8 bits.
    fast: [(u8, u8); 256],
}

/// Codes no longer than this are decoded with one look-up in `Huffman::fast`.
const FAST_BITS: u32 = 8;

fn huffman() -> &'static Huffman {
    static H: OnceLock<Huffman> = OnceLock::new();
    H.get_or_init(|| {
        let mut h = Huffman {
            first: [0; 31],
            count: [0; 31],
            offset: [0; 31],
            syms: [0; 257],
            fast: [(0, 0); 256],
        };
        for &l in &LENS {
            h.count[usize::from(l)] += 1;
        }
        let (mut code, mut at) = (0u32, 0u32);
        for l in 1..31 {
            h.first[l] = code;
            h.offset[l] = at;
            code = (code + h.count[l]) << 1;
            at += h.count[l];
        }
        let mut next = h.offset;
        for (sym, &l) in LENS.iter().enumerate() {
            let l = usize::from(l);
            h.syms[next[l] as usize] = sym as u16;
            next[l] += 1;
        }
        for l in 1..=FAST_BITS {
            let i = l as usize;
            for k in 0..h.count[i] {
                let (code, sym) = (h.first[i] + k, h.syms[(h.offset[i] + k) as usize]);
                // Every 8-bit value that starts with this code (EOS, 256, is 30 bits long).
                let from = (code << (FAST_BITS - l)) as usize;
                for slot in &mut h.fast[from..from + (1 << (FAST_BITS - l))] {
                    *slot = (sym as u8, l as u8);
                }
            }
        }
        h
    })
}

impl Huffman {
    /// The code of `from..=to` bits (`to <= nbits`) that the top `nbits` bits of `acc` start
    /// with: its symbol and length; none when no code of those lengths matches; an error for
    /// EOS, which never appears in a string (§5.2).
    fn search(&self, acc: u64, nbits: u32, from: u32, to: u32) -> Result<Option<(u8, u32)>, Error> {
        for l in from..=to {
            let code = ((acc >> (nbits - l)) & ((1u64 << l) - 1)) as u32;
            let i = l as usize;
            let k = code.wrapping_sub(self.first[i]);
            if k < self.count[i] {
                return match self.syms[(self.offset[i] + k) as usize] {
                    256 => Err(Error),
                    sym => Ok(Some((sym as u8, l))),
                };
            }
        }
        Ok(None)
    }
}

/// Appends the Huffman-decoded `input` to `out` (§5.2: the padding is at most 7 bits, all ones).
///
/// While input lasts, the bit buffer is refilled with whole bytes to more than 56 bits (eight
/// bytes read as one word where the input has them), then symbols are taken while more than 30
/// bits (the longest code) remain: every symbol is one look-up of its first 8 bits, or, for the
/// rare longer codes, a search from 9 bits. Only the last few symbols go through `decode_tail`.
pub fn huffman_decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let h = huffman();
    // Codes are at least 5 bits: no more symbols than this.
    out.reserve(input.len() * 8 / 5);
    let mut acc: u64 = 0;
    let mut nbits: u32 = 0;
    let mut rest = input;
    loop {
        // Bits above `nbits` are left over from decoded symbols: every read below masks them.
        let room = ((64 - nbits) / 8) as usize;
        if let Some(word) = rest.first_chunk::<8>() {
            let word = u64::from_be_bytes(*word);
            let fill = 8 * room as u32;
            // `room` is 8 only when the buffer is empty.
            acc = acc.checked_shl(fill).unwrap_or(0) | (word >> (64 - fill));
            nbits += fill;
            rest = &rest[room..];
        } else {
            for _ in 0..room {
                let Some((&b, tail)) = rest.split_first() else {
                    break;
                };
                acc = (acc << 8) | u64::from(b);
                nbits += 8;
                rest = tail;
            }
        }
        if nbits < 30 {
            // The input has ended.
            return decode_tail(h, acc, nbits, out);
        }
        while nbits >= 30 {
            let (sym, l) = h.fast[((acc >> (nbits - FAST_BITS)) & 0xff) as usize];
            if l != 0 {
                out.push(sym);
                nbits -= u32::from(l);
                continue;
            }
            // Longer than FAST_BITS (every shorter code is in the table).
            let (sym, l) = h.search(acc, nbits, FAST_BITS + 1, 30)?.ok_or(Error)?;
            out.push(sym);
            nbits -= l;
        }
    }
}

/// The symbols in the last `nbits` (< 30) bits of `acc`, then the padding check.
///
/// Fewer than 8 bits are looked up as if followed by ones: the padding is ones, and no code of
/// at most 8 bits is all ones, so a code found that is longer than the bits left was read into
/// the padding, and what is left is padding.
fn decode_tail(h: &Huffman, mut acc: u64, mut nbits: u32, out: &mut Vec<u8>) -> Result<(), Error> {
    acc &= (1u64 << nbits) - 1;
    while nbits >= 5 {
        let top = if nbits >= FAST_BITS {
            acc >> (nbits - FAST_BITS)
        } else {
            (acc << (FAST_BITS - nbits)) | ((1 << (FAST_BITS - nbits)) - 1)
        };
        let (sym, l) = h.fast[(top & 0xff) as usize];
        let (sym, l) = if l != 0 {
            if u32::from(l) > nbits {
                break;
            }
            (sym, u32::from(l))
        } else {
            // A code of more than 8 bits (none when fewer than 9 are left).
            match h.search(acc, nbits, FAST_BITS + 1, nbits)? {
                Some(code) => code,
                None => break,
            }
        };
        out.push(sym);
        nbits -= l;
        acc &= (1u64 << nbits) - 1;
    }
    let mask = (1u64 << nbits) - 1;
    if nbits > 7 || acc & mask != mask {
        return Err(Error);
    }
    Ok(())
}

/// A dynamic table entry: name, value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// The decoding context of one connection.
pub struct Decoder {
    /// Newest first: index 62 is `table[0]`.
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// Our SETTINGS_HEADER_TABLE_SIZE (the default, 4096).
    allowed: usize,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: 4096,
            allowed: 4096,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }
}

/// §5.1: an integer with an N-bit prefix at `*pos`.
fn integer(block: &[u8], pos: &mut usize, prefix_bits: u8) -> Result<usize, Error> {
    let max = (1usize << prefix_bits) - 1;
    let first = usize::from(*block.get(*pos).ok_or(Error)?) & max;
    *pos += 1;
    if first < max {
        return Ok(first);
    }
    let mut value = max;
    let mut shift = 0;
    loop {
        let b = *block.get(*pos).ok_or(Error)?;
        *pos += 1;
        if shift > 21 {
            return Err(Error);
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// §5.2: a string at `*pos`, raw from the block or Huffman-decoded into `buf`.
fn string<'a>(block: &'a [u8], pos: &mut usize, buf: &'a mut Vec<u8>) -> Result<&'a [u8], Error> {
    let huff = *block.get(*pos).ok_or(Error)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(Error)?;
    let raw = block.get(*pos..end).ok_or(Error)?;
    *pos = end;
    if !huff {
        return Ok(raw);
    }
    buf.clear();
    huffman_decode(raw, buf)?;
    Ok(&buf[..])
}

impl Decoder {
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), Error> {
        match index {
            0 => Err(Error),
            1..=61 => Ok(STATIC[index - 1]),
            _ => self
                .table
                .get(index - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(Error),
        }
    }

    fn evict(&mut self) {
        while self.size > self.max_size {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => break,
            }
        }
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + 32;
        self.size += size;
        self.table.push_front((name.into(), value.into()));
        // §4.4: an entry larger than the table empties it.
        self.evict();
    }

    /// The dynamic table's size (§4.1), for the `hpack` fuzz target: never above 4096, the
    /// SETTINGS_HEADER_TABLE_SIZE we allow.
    #[doc(hidden)]
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// Decodes a header block, calling `cb` with each field.
    pub fn decode(&mut self, block: &[u8], mut cb: impl FnMut(&[u8], &[u8])) -> Result<(), Error> {
        let mut name_buf = std::mem::take(&mut self.name_buf);
        let mut value_buf = std::mem::take(&mut self.value_buf);
        let result = self.decode_into(block, &mut cb, &mut name_buf, &mut value_buf);
        self.name_buf = name_buf;
        self.value_buf = value_buf;
        result
    }

    fn decode_into(
        &mut self,
        block: &[u8],
        cb: &mut impl FnMut(&[u8], &[u8]),
        name_buf: &mut Vec<u8>,
        value_buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut pos = 0;
        let mut owned_name = Vec::new();
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                let index = integer(block, &mut pos, 7)?;
                let (n, v) = self.entry(index)?;
                cb(n, v);
                continue;
            }
            if b & 0xe0 == 0x20 {
                let size = integer(block, &mut pos, 5)?;
                if size > self.allowed {
                    return Err(Error);
                }
                self.max_size = size;
                self.evict();
                continue;
            }
            let (prefix, indexing) = if b & 0x40 != 0 { (6, true) } else { (4, false) };
            let index = integer(block, &mut pos, prefix)?;
            let name: &[u8] = if index == 0 {
                string(block, &mut pos, name_buf)?
            } else {
                let (n, _) = self.entry(index)?;
                owned_name.clear();
                owned_name.extend_from_slice(n);
                &owned_name
            };
            let value = string(block, &mut pos, value_buf)?;
            cb(name, value);
            if indexing {
                let (name, value) = (name.to_vec(), value.to_vec());
                self.insert(&name, &value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(block, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })
        .unwrap();
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Huffman-codes `input` with the canonical codes of `LENS` (RFC 7541 Appendix B), padded
    /// with ones.
    fn huffman_encode(input: &[u8]) -> Vec<u8> {
        let h = huffman();
        let mut codes = [(0u32, 0u32); 257];
        for l in 1..31 {
            for k in 0..h.count[l] {
                let sym = h.syms[(h.offset[l] + k) as usize];
                codes[usize::from(sym)] = (h.first[l] + k, l as u32);
            }
        }
        let (mut out, mut acc, mut nbits) = (Vec::new(), 0u64, 0u32);
        for &b in input {
            let (code, len) = codes[usize::from(b)];
            acc = (acc << len) | u64::from(code);
            nbits += len;
            while nbits >= 8 {
                out.push((acc >> (nbits - 8)) as u8);
                nbits -= 8;
                acc &= (1u64 << nbits) - 1;
            }
        }
        if nbits > 0 {
            out.push(((acc << (8 - nbits)) | ((1 << (8 - nbits)) - 1)) as u8);
        }
        out
    }

    /// Every byte value, alone and in runs, and pseudo-random strings decode to what was coded:
    /// the one-look-up path for short codes and the per-length path for long ones agree.
    #[test]
    fn huffman_round_trips_every_symbol() {
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        inputs.extend((0..=255u8).map(|b| vec![b; 7]));
        inputs.push((0..=255u8).collect());
        inputs.push(b"/api/v1/namespaces/default/pods/p1?limit=500&resourceVersion=0".to_vec());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for n in 0..500 {
            let s = (0..n % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            inputs.push(s);
        }
        for input in inputs {
            let mut out = Vec::new();
            huffman_decode(&huffman_encode(&input), &mut out).unwrap();
            assert_eq!(out, input);
        }
        // Padding longer than 7 bits, or not all ones, is an error (§5.2).
        assert!(huffman_decode(&[0xff, 0xff], &mut Vec::new()).is_err());
        let a = huffman_encode(b"a"); // 5 bits of code, 3 of padding
        assert!(huffman_decode(&[a[0] & !1], &mut Vec::new()).is_err());
    }

    /// Bit by bit over the same canonical code: the reference `huffman_decode` is checked against.
    fn reference_decode(input: &[u8]) -> Result<Vec<u8>, Error> {
        let h = huffman();
        let (mut out, mut code, mut len) = (Vec::new(), 0u32, 0usize);
        for bit in input
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        {
            code = (code << 1) | u32::from(bit);
            len += 1;
            let k = code.wrapping_sub(h.first[len]);
            if k < h.count[len] {
                match h.syms[(h.offset[len] + k) as usize] {
                    256 => return Err(Error),
                    sym => out.push(sym as u8),
                }
                (code, len) = (0, 0);
            }
        }
        if len > 7 || code != (1 << len) - 1 {
            return Err(Error);
        }
        Ok(out)
    }

    /// Every cut of coded strings, and random bytes (mostly not valid Huffman, rich in the ones
    /// that long codes, EOS and padding are made of), decode exactly as bit by bit: the same
    /// symbols, the same errors.
    #[test]
    fn huffman_decoding_agrees_with_a_bit_by_bit_decoder() {
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for text in [
            &b"/api/v1/namespaces/default/pods/p1?limit=500&resourceVersion=0"[..],
            b"application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io",
            b"\x00\xff~|{}<>^`\\\x7f\x80\xfe",
        ] {
            let coded = huffman_encode(text);
            inputs.extend((0..=coded.len()).map(|n| coded[..n].to_vec()));
        }
        let mut rng = crate::sim::seed::TestRng(7);
        for n in 0..4000 {
            inputs.push(
                (0..n % 23)
                    .map(|_| {
                        let r = rng.next();
                        // Half the bytes all ones, the rest random.
                        if r & 1 == 0 { 0xff } else { (r >> 8) as u8 }
                    })
                    .collect(),
            );
        }
        for input in inputs {
            let mut out = Vec::new();
            let got = huffman_decode(&input, &mut out).map(|()| out);
            assert_eq!(got, reference_decode(&input), "input {input:02x?}");
        }
    }

    /// RFC 7541 C.4: requests with Huffman coding, the dynamic table carried between them.
    #[test]
    fn rfc_7541_c4_requests_with_huffman() {
        let mut d = Decoder::default();
        let first = decode_all(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
        assert_eq!(
            first,
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        let second = decode_all(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf"));
        assert_eq!(
            second,
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        let third = decode_all(
            &mut d,
            &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        );
        assert_eq!(
            third,
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut d = Decoder::default();
        // Index 0, an index past the tables, a truncated string, EOS in a string.
        for block in [
            &[0x80][..],
            &[0xff, 0x7f],
            &[0x40, 0x05, b'a'],
            &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00],
        ] {
            assert_eq!(d.decode(block, |_, _| {}), Err(Error), "{block:?}");
        }
        // A size update above what we allow.
        assert_eq!(d.decode(&[0x3f, 0xe2, 0x1f], |_, _| {}), Err(Error));
    }
}
