//! How an upstream's HTTP/1.1 response is delimited (RFC 9112 §6.3) and whether its connection
//! ends with it (§9.3): the rules both readers of upstream answers follow (`head::parse_response`
//! for the front end, `pooled` for the answers hyper serves).

use http::{Method, StatusCode};

use super::head::Framing;

/// What a response's status says before its headers are looked at.
pub enum StatusKind {
    /// A final answer.
    Final(StatusCode),
    /// A 1xx other than 101: skipped, the real answer follows.
    Informational,
}

/// The status of a parsed response head; `Err` for one no request of kubeguard's can get.
pub fn status(code: Option<u16>) -> Result<StatusKind, &'static str> {
    let code = code.ok_or("no status code")?;
    let status = StatusCode::from_u16(code).map_err(|_| "bad status code")?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err("101 to a request without Upgrade");
    }
    if status.is_informational() {
        return Ok(StatusKind::Informational);
    }
    Ok(StatusKind::Final(status))
}

/// How the body of a final answer is delimited, and whether the connection closes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFraming {
    pub framing: Framing,
    pub close: bool,
    /// The body is chunked: a `Content-Length` beside it is wrong and does not travel.
    pub chunked: bool,
}

/// The fields that delimit a body, as a reader of a head tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingField {
    Connection,
    TransferEncoding,
    ContentLength,
    Other,
}

impl FramingField {
    pub fn of(name: &[u8]) -> FramingField {
        if name.eq_ignore_ascii_case(b"connection") {
            FramingField::Connection
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            FramingField::TransferEncoding
        } else if name.eq_ignore_ascii_case(b"content-length") {
            FramingField::ContentLength
        } else {
            FramingField::Other
        }
    }
}

/// The framing of a final answer with `status` to `method`, from its HTTP minor version and its
/// fields (each with its kind, as the caller told it). `named` is told each field the
/// `Connection` header names (hop-by-hop as well).
pub fn body_framing<'h>(
    minor_version: Option<u8>,
    status: StatusCode,
    method: &Method,
    fields: impl Iterator<Item = (FramingField, &'h [u8])>,
    mut named: impl FnMut(&'h [u8]),
) -> Result<BodyFraming, &'static str> {
    let http10 = minor_version == Some(0);
    let mut close = http10;
    let mut chunked = false;
    let mut length: Option<u64> = None;
    for (field, value) in fields {
        match field {
            FramingField::Connection => {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        if http10 {
                            close = false;
                        }
                    } else if !token.is_empty() {
                        named(token);
                    }
                }
            }
            FramingField::TransferEncoding => {
                let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
                if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err("transfer coding other than chunked");
                }
                chunked = true;
            }
            FramingField::ContentLength => {
                for v in value.split(|&b| b == b',') {
                    let n = super::head::parse_u64(v.trim_ascii()).ok_or("bad Content-Length")?;
                    if length.is_some_and(|l| l != n) {
                        return Err("conflicting Content-Length");
                    }
                    length = Some(n);
                }
            }
            FramingField::Other => {}
        }
    }
    let no_body = *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (no_body, chunked, length) {
        (true, _, _) => Framing::None,
        (false, true, _) => Framing::Chunked,
        (false, false, Some(n)) => Framing::Length(n),
        (false, false, None) => Framing::Close,
    };
    Ok(BodyFraming {
        framing,
        close,
        chunked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing_of(head: &[u8], method: Method) -> Result<BodyFraming, &'static str> {
        let mut fields = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut fields);
        assert!(resp.parse(head).unwrap().is_complete());
        let StatusKind::Final(status) = status(resp.code).unwrap() else {
            panic!("not a final answer");
        };
        let fields = resp
            .headers
            .iter()
            .map(|h| (FramingField::of(h.name.as_bytes()), h.value));
        body_framing(resp.version, status, &method, fields, |_| {})
    }

    /// A response head, the request's method, and the framing and `close` expected.
    type Case = (&'static [u8], Method, Result<(Framing, bool), &'static str>);

    #[test]
    fn every_way_a_body_is_delimited() {
        let cases: &[Case] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n",
                Method::GET,
                Ok((Framing::Length(12), false)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 12, 12\r\n\r\n",
                Method::GET,
                Ok((Framing::Length(12), false)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Length: 13\r\n\r\n",
                Method::GET,
                Err("conflicting Content-Length"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                Method::GET,
                Err("bad Content-Length"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
                Method::GET,
                Ok((Framing::Chunked, false)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                Method::GET,
                Err("transfer coding other than chunked"),
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                Method::GET,
                Ok((Framing::Close, false)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                Method::GET,
                Ok((Framing::Length(1), true)),
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                Method::GET,
                Ok((Framing::Length(1), true)),
            ),
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                Method::GET,
                Ok((Framing::Length(1), false)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
                Method::HEAD,
                Ok((Framing::None, false)),
            ),
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                Method::DELETE,
                Ok((Framing::None, false)),
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
                Method::GET,
                Ok((Framing::None, false)),
            ),
        ];
        for (head, method, want) in cases {
            let got = framing_of(head, method.clone()).map(|f| (f.framing, f.close));
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn connection_named_headers_are_told_and_status_is_checked() {
        let mut fields = [httparse::EMPTY_HEADER; 4];
        let mut resp = httparse::Response::new(&mut fields);
        resp.parse(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop , close\r\n\r\n")
            .unwrap();
        let mut named = Vec::new();
        let fields = resp
            .headers
            .iter()
            .map(|h| (FramingField::of(h.name.as_bytes()), h.value));
        let f = body_framing(resp.version, StatusCode::OK, &Method::GET, fields, |n| {
            named.push(n.to_vec())
        })
        .unwrap();
        assert!(f.close);
        assert_eq!(named, vec![b"X-Hop".to_vec()]);
        assert!(matches!(status(Some(100)), Ok(StatusKind::Informational)));
        assert!(matches!(status(Some(103)), Ok(StatusKind::Informational)));
        assert_eq!(
            status(Some(101)).err(),
            Some("101 to a request without Upgrade")
        );
        assert_eq!(status(None).err(), Some("no status code"));
        assert!(matches!(status(Some(404)), Ok(StatusKind::Final(s)) if s == 404));
    }
}
