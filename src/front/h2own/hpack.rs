//! A minimal HPACK encoder (RFC 7541) for response heads: `:status` by its static index where it
//! has one, every other field a "literal without indexing" (§6.2.2) with the static table's name
//! index where it has the name, no Huffman. Valid for every decoder, and it costs almost nothing;
//! it never touches the dynamic table, so the peer's SETTINGS_HEADER_TABLE_SIZE does not matter.

/// §5.1: `value` with an N-bit prefix, the first byte's high bits `first`.
pub fn integer(out: &mut Vec<u8>, first: u8, prefix_bits: u8, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// §5.2, without Huffman.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

pub fn status(out: &mut Vec<u8>, code: u16) {
    let index = match code {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => 0,
    };
    if index != 0 {
        // §6.1 indexed field.
        out.push(0x80 | index);
        return;
    }
    // Literal without indexing, name `:status` (index 8).
    integer(out, 0, 4, 8);
    let mut digits = [0u8; 3];
    let mut c = code.min(999);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (c % 10) as u8;
        c /= 10;
    }
    string(out, &digits);
}

/// One field as a literal without indexing (§6.2.2).
pub fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    match static_name(name) {
        Some(index) => integer(out, 0, 4, index),
        None => {
            out.push(0);
            string(out, name.as_bytes());
        }
    }
    string(out, value);
}

/// The static table's index of a (lower-case) field name (Appendix A).
fn static_name(name: &str) -> Option<usize> {
    Some(match name {
        "accept-charset" => 15,
        "accept-encoding" => 16,
        "accept-language" => 17,
        "accept-ranges" => 18,
        "accept" => 19,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "authorization" => 23,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "cookie" => 32,
        "date" => 33,
        "etag" => 34,
        "expect" => 35,
        "expires" => 36,
        "from" => 37,
        "host" => 38,
        "if-match" => 39,
        "if-modified-since" => 40,
        "if-none-match" => 41,
        "if-range" => 42,
        "if-unmodified-since" => 43,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "max-forwards" => 47,
        "proxy-authenticate" => 48,
        "proxy-authorization" => 49,
        "range" => 50,
        "referer" => 51,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "transfer-encoding" => 57,
        "user-agent" => 58,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_with_a_real_decoder() {
        let mut out = Vec::new();
        status(&mut out, 200);
        status(&mut out, 429);
        field(&mut out, "content-type", b"application/json");
        field(&mut out, "audit-id", b"abc");
        field(&mut out, "www-authenticate", &[b'x'; 300]);
        let mut d = super::super::hdecode::Decoder::default();
        let mut got = Vec::new();
        d.decode(&out, |n, v| got.push((n.to_vec(), v.to_vec())))
            .unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b":status".to_vec(), b"200".to_vec()),
            (b":status".to_vec(), b"429".to_vec()),
            (b"content-type".to_vec(), b"application/json".to_vec()),
            (b"audit-id".to_vec(), b"abc".to_vec()),
            (b"www-authenticate".to_vec(), vec![b'x'; 300]),
        ];
        assert_eq!(got, want);
    }
}
