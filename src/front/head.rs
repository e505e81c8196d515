//! Message heads of the front end: a client's request head, read for the pipeline and
//! rewritten for the upstream; the upstream's response head, rewritten for the client. Only
//! hop-by-hop headers and the identity headers a client may not send change (RFC 9110 §7.6.1,
//! k8s-facts §4); every other header travels as the bytes it came as.

use std::mem::MaybeUninit;
use std::ops::Range;

use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, StatusCode};

use super::framing::{self, BodyFraming, FramingField, StatusKind};

/// Header fields of one head the front end parses at most; a head with more goes to hyper.
pub const MAX_HEADERS: usize = 64;

/// A request head the front end serves itself.
#[derive(Debug)]
pub struct RequestHead {
    /// Bytes of the head, up to and including its final CRLF.
    pub len: usize,
    /// Bytes of the body that follows (`Content-Length`; 0 without one).
    pub body_len: u64,
    pub method: Method,
    /// The request target (origin-form) within the buffer it was parsed from.
    pub target: Range<usize>,
    /// The headers the pipeline reads: `Authorization`, `User-Agent`, `Audit-ID`,
    /// `Impersonate-*`. Everything else only travels.
    pub headers: HeaderMap,
    /// The headers that travel upstream as they came, each `name: value\r\n`.
    pub forward: Vec<u8>,
    /// The client asked to close the connection after this request.
    pub close: bool,
}

/// What a buffer holds.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    Mine(RequestHead),
    /// A request the front end leaves to hyper: another protocol version, a body, an upgrade,
    /// `Expect`, a head it does not parse, or anything unusual. hyper serves it, or answers it
    /// with the error the HTTP/1.1 rules call for.
    NotMine,
}

/// Parses a request head at the start of `buf`.
pub fn parse_request(buf: &[u8]) -> Parsed {
    // Not zeroed first (2 KiB): the parser writes each field it returns.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotMine,
    };
    if req.version != Some(1) {
        return Parsed::NotMine;
    }
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("PATCH") => Method::PATCH,
        Some("DELETE") => Method::DELETE,
        _ => return Parsed::NotMine,
    };
    let Some(path) = req.path else {
        return Parsed::NotMine;
    };
    if !path.starts_with('/') || !path.bytes().all(plain_target_byte) {
        return Parsed::NotMine;
    }
    let target_start = path.as_ptr() as usize - buf.as_ptr() as usize;
    let target = target_start..target_start + path.len();

    // First pass: what the head asks of this hop.
    let mut close = false;
    let mut body_len: Option<u64> = None;
    let mut named: Vec<&[u8]> = Vec::new();
    // Each field's kind, found once for both passes.
    let mut kinds = [Field::Other; MAX_HEADERS];
    for (h, kind) in req.headers.iter().zip(kinds.iter_mut()) {
        let field = Field::of(h.name.as_bytes());
        *kind = field;
        if field == Field::Connection {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::NotMine;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    named.push(token);
                }
            }
        } else if field == Field::ContentLength {
            // One plain decimal length; anything else is hyper's to refuse (request smuggling
            // hides in repeated or odd lengths, RFC 9112 §6.3).
            let v = h.value.trim_ascii();
            if body_len.is_some()
                || v.is_empty()
                || v.len() > 18
                || !v.iter().all(u8::is_ascii_digit)
            {
                return Parsed::NotMine;
            }
            body_len = Some(v.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')));
        } else if matches!(
            field,
            Field::TransferEncoding | Field::Upgrade | Field::Expect
        ) {
            return Parsed::NotMine;
        }
    }

    // Second pass: what the pipeline reads, and what travels.
    let mut headers = HeaderMap::new();
    let mut forward = Vec::with_capacity(len);
    for (h, &field) in req.headers.iter().zip(kinds.iter()) {
        let name = h.name.as_bytes();
        if field.is_hop_or_host()
            || (!named.is_empty() && named.iter().any(|n| n.eq_ignore_ascii_case(name)))
        {
            continue;
        }
        match field {
            Field::Authorization => {
                if !insert(&mut headers, AUTHORIZATION, h.value) {
                    return Parsed::NotMine;
                }
                continue;
            }
            Field::AuditId => {
                if !insert(&mut headers, crate::proxy::AUDIT_ID, h.value) {
                    return Parsed::NotMine;
                }
                continue;
            }
            Field::Impersonate => {
                // Read by the identity step, never forwarded (k8s-facts §4).
                let Ok(n) = HeaderName::from_bytes(name) else {
                    return Parsed::NotMine;
                };
                if !insert(&mut headers, n, h.value) {
                    return Parsed::NotMine;
                }
                continue;
            }
            Field::XRemote => continue,
            Field::UserAgent if !insert(&mut headers, USER_AGENT, h.value) => {
                return Parsed::NotMine;
            }
            _ => {}
        }
        forward.extend_from_slice(name);
        forward.extend_from_slice(b": ");
        forward.extend_from_slice(h.value);
        forward.extend_from_slice(b"\r\n");
    }
    Parsed::Mine(RequestHead {
        len,
        body_len: body_len.unwrap_or(0),
        method,
        target,
        headers,
        forward,
        close,
    })
}

/// Appends a header the pipeline reads; false when its value is not a valid header value.
fn insert(headers: &mut HeaderMap, name: HeaderName, value: &[u8]) -> bool {
    match HeaderValue::from_bytes(value) {
        Ok(v) => {
            headers.append(name, v);
            true
        }
        Err(_) => false,
    }
}

/// Bytes of an origin-form target the front end passes on as they are: RFC 3986's unreserved,
/// sub-delims, `:@/?%`. Anything else (spaces, quotes, non-ASCII, `#`) is left to hyper's rules.
fn plain_target_byte(b: u8) -> bool {
    PLAIN_TARGET[usize::from(b)]
}

/// [`plain_target_byte`] as a table: one load per byte of the target.
const PLAIN_TARGET: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~!$&'()*+,;=:@/?%";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// The header fields the front end looks at, told apart by length first: one comparison per
/// field instead of one per name it might be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Connection,
    ContentLength,
    TransferEncoding,
    Upgrade,
    Expect,
    Host,
    /// Another hop-by-hop field (`Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`,
    /// `Proxy-Authorization`, `TE`, `Trailer`).
    Hop,
    Authorization,
    AuditId,
    UserAgent,
    ContentType,
    /// `Impersonate-*`.
    Impersonate,
    /// `X-Remote-*`.
    XRemote,
    Other,
}

impl Field {
    fn of(name: &[u8]) -> Field {
        let Some(first) = name.first() else {
            return Field::Other;
        };
        let is = |n: &[u8]| same_name(name, n);
        // Length and first letter pick the one name a field can be; only that is compared.
        match (name.len(), first.to_ascii_lowercase()) {
            (2, b't') if is(b"te") => Field::Hop,
            (4, b'h') if is(b"host") => Field::Host,
            (6, b'e') if is(b"expect") => Field::Expect,
            (7, b'u') if is(b"upgrade") => Field::Upgrade,
            (7, b't') if is(b"trailer") => Field::Hop,
            (8, b'a') if is(b"audit-id") => Field::AuditId,
            (10, b'c') if is(b"connection") => Field::Connection,
            (10, b'k') if is(b"keep-alive") => Field::Hop,
            (10, b'u') if is(b"user-agent") => Field::UserAgent,
            (12, b'c') if is(b"content-type") => Field::ContentType,
            (13, b'a') if is(b"authorization") => Field::Authorization,
            (14, b'c') if is(b"content-length") => Field::ContentLength,
            (16, b'p') if is(b"proxy-connection") => Field::Hop,
            (17, b't') if is(b"transfer-encoding") => Field::TransferEncoding,
            (18, b'p') if is(b"proxy-authenticate") => Field::Hop,
            (19, b'p') if is(b"proxy-authorization") => Field::Hop,
            (12.., b'i') if starts_with_ignore_case(name, b"impersonate-") => Field::Impersonate,
            (9.., b'x') if starts_with_ignore_case(name, b"x-remote-") => Field::XRemote,
            _ => Field::Other,
        }
    }

    /// [`is_hop_or_host`] of the field's name.
    fn is_hop_or_host(self) -> bool {
        matches!(
            self,
            Field::Connection | Field::TransferEncoding | Field::Upgrade | Field::Host | Field::Hop
        )
    }
}

/// `str::parse::<u64>` of bytes (an optional `+`, then at least one digit, no overflow), without
/// checking UTF-8 first: anything else is not a number either way.
pub(super) fn parse_u64(b: &[u8]) -> Option<u64> {
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `name.eq_ignore_ascii_case(lower)` for a lower-case `lower`, without stopping at the first
/// difference: a loop the compiler unrolls and vectorises for the short, fixed names compared.
fn same_name(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .fold(0u8, |diff, (a, b)| diff | (a.to_ascii_lowercase() ^ b))
            == 0
}

fn starts_with_ignore_case(name: &[u8], prefix: &[u8]) -> bool {
    name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1: the pipeline's one list, `Upgrade` included) and `Host`
/// (the upstream hop names its own). The reference [`Field::is_hop_or_host`] is tested against.
#[cfg(test)]
fn is_hop_or_host(name: &[u8]) -> bool {
    crate::proxy::HOP_BY_HOP
        .iter()
        .map(|n| n.as_str().as_bytes())
        .chain([&b"upgrade"[..], b"host"])
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// The request head kubeguard sends upstream.
pub fn upstream_request(
    method: &Method,
    prefix: &str,
    path: &str,
    query: Option<&str>,
    authority: &str,
    forward: &[u8],
    extra: &HeaderMap,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + path.len() + forward.len() + 64 * (extra.len() + 1));
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(path.as_bytes());
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(forward);
    write_headers(&mut out, extra);
    out.extend_from_slice(b"\r\n");
    out
}

/// Appends `name: value\r\n` for each header.
pub fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: an answer to HEAD, 1xx, 204, 304.
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// An upstream response head, rewritten for the client.
#[derive(Debug)]
pub struct ResponseHead {
    /// Bytes of the head, up to and including its final CRLF.
    pub len: usize,
    pub status: StatusCode,
    pub framing: Framing,
    /// The upstream will close the connection after this response.
    pub close: bool,
    /// Where the upstream's last `Content-Type` value is in the buffer the head was parsed
    /// from: read with [`ResponseHead::content_type`], nothing copied.
    content_type: Option<Range<usize>>,
    pub has_audit_id: bool,
    /// The status line and the headers that travel, without the final CRLF.
    pub out: Vec<u8>,
}

impl ResponseHead {
    /// The upstream's `Content-Type`, if any (and UTF-8), from `buf`: the buffer the head was
    /// parsed from.
    pub fn content_type<'a>(&self, buf: &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(buf.get(self.content_type.clone()?)?).ok()
    }
}

/// What a buffer of upstream bytes holds.
#[derive(Debug)]
pub enum ParsedResponse {
    Partial,
    Head(ResponseHead),
    /// A 1xx other than 101 of this many bytes: skipped, the real answer follows.
    Informational(usize),
    Invalid(&'static str),
}

/// Parses a response head at the start of `buf`, for a request made with `method`.
pub fn parse_response(buf: &[u8], method: &Method) -> ParsedResponse {
    // Not zeroed first (4 KiB): the parser writes each field it returns.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS * 2];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return ParsedResponse::Partial,
        Err(_) => return ParsedResponse::Invalid("malformed response head"),
    };
    let status = match framing::status(resp.code) {
        Ok(StatusKind::Final(status)) => status,
        Ok(StatusKind::Informational) => return ParsedResponse::Informational(len),
        Err(why) => return ParsedResponse::Invalid(why),
    };
    // Each field's kind, found once for both passes.
    let mut kinds = [Field::Other; MAX_HEADERS * 2];
    for (h, kind) in resp.headers.iter().zip(kinds.iter_mut()) {
        *kind = Field::of(h.name.as_bytes());
    }
    let mut named: Vec<&[u8]> = Vec::new();
    let fields = resp.headers.iter().zip(kinds.iter()).map(|(h, field)| {
        let kind = match field {
            Field::Connection => FramingField::Connection,
            Field::TransferEncoding => FramingField::TransferEncoding,
            Field::ContentLength => FramingField::ContentLength,
            _ => FramingField::Other,
        };
        (kind, h.value)
    });
    let BodyFraming {
        framing,
        close,
        chunked,
    } = match framing::body_framing(resp.version, status, method, fields, |n| named.push(n)) {
        Ok(f) => f,
        Err(why) => return ParsedResponse::Invalid(why),
    };

    // Room for what is added before it is sent (decision and warning headers): a shadow-mode
    // limit warning alone is ~150 bytes, and growing the head would copy it.
    let mut out = Vec::with_capacity(len + 512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut content_type = None;
    let mut has_audit_id = false;
    for (h, &field) in resp.headers.iter().zip(kinds.iter()) {
        let name = h.name.as_bytes();
        if field.is_hop_or_host() && field != Field::Host {
            continue;
        }
        if !named.is_empty() && named.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        // With chunked coding a Content-Length is wrong and never travels (RFC 9112 §6.3).
        if chunked && field == Field::ContentLength {
            continue;
        }
        if field == Field::ContentType {
            let at = h.value.as_ptr() as usize - buf.as_ptr() as usize;
            content_type = Some(at..at + h.value.len());
        } else if field == Field::AuditId {
            has_audit_id = true;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    ParsedResponse::Head(ResponseHead {
        len,
        status,
        framing,
        close,
        content_type,
        has_audit_id,
        out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mine(raw: &[u8]) -> RequestHead {
        match parse_request(raw) {
            Parsed::Mine(h) => h,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn a_plain_get_travels_with_its_headers_minus_hop_by_hop_and_identity() {
        let raw = b"GET /api/v1/pods?limit=500 HTTP/1.1\r\nHost: kubeguard:8443\r\n\
            Accept: application/json\r\nAuthorization: Bearer t0k\r\nUser-Agent: kubectl/v1.32\r\n\
            Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\n\
            Impersonate-User: system:admin\r\nX-Remote-User: root\r\nAudit-ID: abc-1\r\n\r\nNEXT";
        let h = mine(raw);
        assert_eq!(&raw[h.len..], b"NEXT");
        assert_eq!(h.method, Method::GET);
        assert_eq!(&raw[h.target.clone()], b"/api/v1/pods?limit=500");
        assert_eq!(
            String::from_utf8(h.forward.clone()).unwrap(),
            "Accept: application/json\r\nUser-Agent: kubectl/v1.32\r\n"
        );
        assert_eq!(h.headers[AUTHORIZATION], "Bearer t0k");
        assert_eq!(h.headers["impersonate-user"], "system:admin");
        assert_eq!(h.headers["audit-id"], "abc-1");
        assert_eq!(h.headers[USER_AGENT], "kubectl/v1.32");
        assert!(!h.close);
        assert!(mine(b"HEAD / HTTP/1.1\r\nconnection: close\r\n\r\n").close);
        let post = mine(b"POST /api/v1/namespaces HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!((post.method, post.body_len), (Method::POST, 2));
        assert_eq!(post.forward, b"Content-Length: 2\r\n");
        assert_eq!(
            mine(b"DELETE /api/v1/namespaces/prod HTTP/1.1\r\n\r\n").body_len,
            0
        );
    }

    #[test]
    fn anything_unusual_is_left_to_hyper() {
        for raw in [
            &b"POST /api/v1/namespaces HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"PUT /api/v1/namespaces/a HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"OPTIONS / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"GET /a\"b HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(
                matches!(parse_request(raw), Parsed::NotMine),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
        let many: Vec<u8> = std::iter::once(&b"GET / HTTP/1.1\r\n"[..])
            .chain(std::iter::repeat_n(&b"a: b\r\n"[..], MAX_HEADERS + 1))
            .chain(std::iter::once(&b"\r\n"[..]))
            .flatten()
            .copied()
            .collect();
        assert!(matches!(parse_request(&many), Parsed::NotMine));
    }

    #[test]
    fn the_upstream_request_names_the_upstream() {
        let h = mine(b"GET /api?x=1 HTTP/1.1\r\nHost: kg\r\nAccept: */*\r\n\r\n");
        let mut extra = HeaderMap::new();
        extra.insert("audit-id", HeaderValue::from_static("id-1"));
        let out = upstream_request(
            &h.method,
            "/k8s/c1",
            "/api",
            Some("x=2"),
            "10.0.0.1:6443",
            &h.forward,
            &extra,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /k8s/c1/api?x=2 HTTP/1.1\r\nhost: 10.0.0.1:6443\r\nAccept: */*\r\naudit-id: id-1\r\n\r\n"
        );
    }

    /// `Field` against the name comparisons it replaced, for every name it knows in three
    /// spellings, near misses, and the prefixes.
    #[test]
    fn fields_are_told_apart_as_by_name() {
        let known = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "host",
            "content-length",
            "expect",
            "authorization",
            "audit-id",
            "user-agent",
            "content-type",
            "impersonate-user",
            "impersonate-",
            "impersonate",
            "x-remote-user",
            "x-remote-",
            "x-remote",
            "accept",
            "te2",
            "hosts",
            "content-lengths",
            "contenttype-",
            "connectio",
            "proxy-authorizatio",
            "a",
            "",
        ];
        for name in known {
            let upper = name.to_ascii_uppercase();
            let mixed: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for n in [name, upper.as_str(), mixed.as_str()] {
                let b = n.as_bytes();
                let f = Field::of(b);
                assert_eq!(f.is_hop_or_host(), is_hop_or_host(b), "{n}");
                let by_name = |w: &str| b.eq_ignore_ascii_case(w.as_bytes());
                assert_eq!(f == Field::Connection, by_name("connection"), "{n}");
                assert_eq!(f == Field::ContentLength, by_name("content-length"), "{n}");
                assert_eq!(
                    f == Field::TransferEncoding,
                    by_name("transfer-encoding"),
                    "{n}"
                );
                assert_eq!(f == Field::Upgrade, by_name("upgrade"), "{n}");
                assert_eq!(f == Field::Expect, by_name("expect"), "{n}");
                assert_eq!(f == Field::Host, by_name("host"), "{n}");
                assert_eq!(f == Field::Authorization, by_name("authorization"), "{n}");
                assert_eq!(f == Field::AuditId, by_name("audit-id"), "{n}");
                assert_eq!(f == Field::UserAgent, by_name("user-agent"), "{n}");
                assert_eq!(f == Field::ContentType, by_name("content-type"), "{n}");
                assert_eq!(
                    f == Field::Impersonate,
                    starts_with_ignore_case(b, b"impersonate-"),
                    "{n}"
                );
                assert_eq!(
                    f == Field::XRemote,
                    starts_with_ignore_case(b, b"x-remote-"),
                    "{n}"
                );
            }
        }
    }

    /// `parse_u64` against what it replaced, `from_utf8` then `str::parse::<u64>`.
    #[test]
    fn content_lengths_read_as_str_parse_reads_them() {
        for v in [
            &b""[..],
            b"0",
            b"7",
            b"+7",
            b"++7",
            b"+",
            b"-0",
            b"-7",
            b"007",
            b"12a",
            b" 12",
            b"1 2",
            b"3018",
            b"18446744073709551615",
            b"18446744073709551616",
            b"99999999999999999999",
            b"+18446744073709551615",
            b"\xff1",
            b"\xc3\xa91",
            "\u{0661}".as_bytes(),
        ] {
            let old = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            assert_eq!(parse_u64(v), old, "{:?}", String::from_utf8_lossy(v));
        }
    }

    /// `same_name` against `eq_ignore_ascii_case` over every byte in every position of a name.
    #[test]
    fn same_name_is_eq_ignore_ascii_case() {
        for lower in [&b"content-type"[..], b"te", b"x"] {
            for at in 0..lower.len() {
                for b in 0..=255u8 {
                    let mut name = lower.to_vec();
                    name[at] = b;
                    assert_eq!(
                        same_name(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{name:?}"
                    );
                }
            }
            assert!(!same_name(&lower[1..], lower));
        }
    }

    #[test]
    fn the_target_byte_table_is_the_rule() {
        for b in 0..=255u8 {
            assert_eq!(
                plain_target_byte(b),
                b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b),
                "{b}"
            );
        }
    }

    fn head(raw: &[u8], method: &Method) -> ResponseHead {
        match parse_response(raw, method) {
            ParsedResponse::Head(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
              Content-Length: 9\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nAudit-Id: a\r\n\r\n5\r\n";
        let chunked = head(raw, &Method::GET);
        assert_eq!(chunked.framing, Framing::Chunked);
        assert_eq!(chunked.content_type(raw), Some("application/json"));
        // The last one counts, and one that is not UTF-8 is none.
        for (raw, want) in [
            (
                &b"HTTP/1.1 200 OK\r\ncontent-type: a/b\r\ncontent-type: c/d\r\n\r\n"[..],
                Some("c/d"),
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-type: a/b\r\ncontent-type: \xff\r\n\r\n",
                None,
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", None),
        ] {
            assert_eq!(head(raw, &Method::GET).content_type(raw), want);
        }
        assert!(chunked.has_audit_id && !chunked.close);
        assert_eq!(
            String::from_utf8(chunked.out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAudit-Id: a\r\n"
        );
        let sized = head(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n",
            &Method::GET,
        );
        assert_eq!(sized.framing, Framing::Length(12));
        assert_eq!(
            head(
                b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n",
                &Method::HEAD
            )
            .framing,
            Framing::None
        );
        assert_eq!(
            head(b"HTTP/1.1 304 Not Modified\r\n\r\n", &Method::GET).framing,
            Framing::None
        );
        let closing = head(b"HTTP/1.0 200 OK\r\n\r\n", &Method::GET);
        assert_eq!(closing.framing, Framing::Close);
        assert!(closing.close);
        assert!(matches!(
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", &Method::GET),
            ParsedResponse::Informational(25)
        ));
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
        ] {
            assert!(matches!(
                parse_response(bad, &Method::GET),
                ParsedResponse::Invalid(_)
            ));
        }
    }
}
