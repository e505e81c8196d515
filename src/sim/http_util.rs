//! Small HTTP helpers of the emulator: bodies, query strings, content negotiation.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::sync::mpsc;

use super::SimBody;
use crate::status::Status;

pub fn full(b: impl Into<Bytes>) -> SimBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A response with a JSON body that is already serialized.
pub fn json_bytes(code: StatusCode, body: Bytes) -> Response<SimBody> {
    typed(code, "application/json", body)
}

pub fn json_value(code: StatusCode, v: &serde_json::Value) -> Response<SimBody> {
    json_bytes(code, Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
}

pub fn typed(code: StatusCode, content_type: &'static str, body: Bytes) -> Response<SimBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn status(s: Status) -> Response<SimBody> {
    s.into_response::<Full<Bytes>>()
        .map(|b| b.map_err(|never| match never {}).boxed())
}

/// A body fed chunk by chunk from a channel; each chunk is written (and flushed) as it comes.
pub fn channel_body(rx: mpsc::Receiver<Bytes>) -> SimBody {
    StreamBody::new(RxStream(rx)).boxed()
}

struct RxStream(mpsc::Receiver<Bytes>);

impl futures_util::Stream for RxStream {
    type Item = Result<Frame<Bytes>, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A body produced by an iterator of chunks (big lists, without building one buffer).
pub fn iter_body<I>(it: I) -> SimBody
where
    I: Iterator<Item = Bytes> + Send + Sync + 'static,
{
    StreamBody::new(futures_util::stream::iter(it.map(|b| Ok(Frame::data(b))))).boxed()
}

/// A decoded query string.
#[derive(Clone, Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            q.map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(qk, _)| qk == k)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn non_empty(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.is_empty())
    }

    pub fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(qk, _)| qk == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
}

/// Whether the client accepts JSON. Protobuf-only Accept headers get 406 so clients fall back;
/// a list that includes JSON (or a wildcard) gets JSON.
pub fn accepts_json(accept: &str) -> bool {
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|range| {
        let mt = range.split(';').next().unwrap_or_default().trim();
        matches!(
            mt,
            "application/json"
                | "*/*"
                | "application/*"
                | "application/yaml"
                | "text/*"
                | "text/plain"
        ) || mt.starts_with("application/json")
    })
}

pub fn not_acceptable() -> Status {
    Status::failure(
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/json;stream=watch",
    )
}

pub fn unsupported_media_type(ct: &str) -> Status {
    Status::failure(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format ({ct}) - accepted media types include: application/json, application/yaml"
        ),
    )
}

pub fn method_not_allowed() -> Status {
    Status::failure(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

/// The apiserver's 404 for a path it does not serve. Its `details` is empty but present, as
/// the apiserver sends it: kubectl debug dereferences it.
pub fn no_such_resource() -> Status {
    Status::not_found("the server could not find the requested resource")
        .with_details(crate::status::StatusDetails::default())
}

/// The `application/json` media ranges of an `Accept` header, in the client's order, each as
/// its `(g, v, as)` parameters (`None` where absent): how the apiserver negotiates Tables and
/// aggregated discovery.
pub fn json_media_ranges(
    accept: &str,
) -> impl Iterator<Item = (Option<&str>, Option<&str>, Option<&str>)> {
    accept.split(',').filter_map(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/json") {
            return None;
        }
        let (mut g, mut v, mut r#as) = (None, None, None);
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                let val = val.trim().trim_matches('"');
                match k.trim() {
                    "g" => g = Some(val),
                    "v" => v = Some(val),
                    "as" => r#as = Some(val),
                    _ => {}
                }
            }
        }
        Some((g, v, r#as))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert!(accepts_json(""));
        assert!(accepts_json(
            "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
        ));
        assert!(accepts_json(
            "application/vnd.kubernetes.protobuf, application/json"
        ));
        assert!(!accepts_json("application/vnd.kubernetes.protobuf"));
        assert!(accepts_json("*/*"));
    }

    #[test]
    fn query_values() {
        let q = Query::parse(Some(
            "limit=5&labelSelector=app%3Dweb&watch=1&dryRun=All&dryRun=x",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web"));
        assert!(q.flag("watch"));
        assert_eq!(q.all("dryRun").count(), 2);
        assert_eq!(q.non_empty("continue"), None);
    }
}
