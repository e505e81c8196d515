//! HTTP/1.1 to an upstream that speaks only HTTP/1.1 (a plain-HTTP server URL), for the
//! requests hyper serves (h2 streams, connections handed over by the front end): the front end's
//! way of talking to the upstream (heads written and parsed in place, bodies passed on as they
//! arrive, without copies) on idle connections kept per connection worker, in place of hyper's
//! client, its pool and its connection task.
//!
//! An HTTPS upstream keeps hyper's client, which speaks h2 to the apiserver where it is offered:
//! one connection carries many streams.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;

use super::chunked::Decoder;
use super::framing::{self, BodyFraming, FramingField, StatusKind};
use super::head::{self, Framing};
use super::readsize::ReadSize;
use crate::upstream::{H1Io, Upstream, UpstreamBody, UpstreamError};

/// Largest response head accepted from the upstream (as the front end's).
const MAX_HEAD: usize = 1 << 20;
/// First read of a response; a body read that fills its buffer doubles the next (`readsize`).
const READ_MIN: usize = 16 * 1024;

/// Idle upstream connections, one list per connection worker (`workers::slot`): a connection is
/// used by the thread that opened it, never woken from another.
pub struct IdlePool {
    /// Oldest first: the most recently used connection is taken, the oldest are let go.
    slots: Box<[Mutex<VecDeque<Idle>>]>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    io: H1Io,
    since: Instant,
}

impl IdlePool {
    /// `max_idle` connections kept per worker, each for at most `idle_timeout`.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        let slots = (0..crate::workers::slots_per_core())
            .map(|_| Mutex::new(VecDeque::new()))
            .collect();
        IdlePool {
            slots,
            max_idle,
            idle_timeout,
        }
    }

    fn slot(&self) -> &Mutex<VecDeque<Idle>> {
        &self.slots[crate::workers::slot(self.slots.len())]
    }

    /// The most recently used idle connection that is still open and not too old.
    fn take(&self) -> Option<H1Io> {
        let mut idle = self.slot().lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut c) = idle.pop_back() {
            if c.since.elapsed() < self.idle_timeout && !super::conn::looks_closed(&mut c.io) {
                return Some(c.io);
            }
        }
        None
    }

    fn put(&self, io: H1Io) {
        let mut idle = self.slot().lock().unwrap_or_else(|p| p.into_inner());
        // The oldest go: past the limit, or idle too long (so a burst's connections are not
        // kept for ever once traffic falls back).
        while let Some(oldest) = idle.front() {
            if idle.len() < self.max_idle && oldest.since.elapsed() < self.idle_timeout {
                break;
            }
            idle.pop_front();
        }
        if self.max_idle == 0 {
            return;
        }
        idle.push_back(Idle {
            io,
            since: Instant::now(),
        });
    }

    /// Idle connections kept now, over all workers (for tests).
    pub fn idle(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// Sends the request `parts` describe (its URI absolute, its headers prepared for the upstream)
/// with `body` on a kept connection or a new one, and returns the upstream's answer once its
/// head has arrived; the body follows as it arrives. Waits for the head at most `timeout` when
/// given.
///
/// The head is borrowed, not owned: every request's future holds this one's state, and
/// each layer of it is copied once when it is built, so it is kept small.
pub async fn send(
    upstream: &Upstream,
    pool: &Arc<IdlePool>,
    parts: &http::request::Parts,
    body: UpstreamBody,
    timeout: Option<Duration>,
) -> Result<Response<RawBody>, UpstreamError> {
    let exchange = exchange(upstream, pool, parts, body);
    match timeout {
        Some(t) => tokio::time::timeout(t, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout(t))?,
        None => exchange.await,
    }
}

/// How the request body travels.
enum Outgoing {
    None,
    Whole(Bytes),
    /// Passed on frame by frame; `Some(n)`: the client declared its length.
    Stream(crate::upstream::RequestBody, Option<u64>),
}

/// The head is prepared before the future is made, so the future holds only what the exchange
/// still needs.
fn exchange(
    upstream: &Upstream,
    pool: &Arc<IdlePool>,
    parts: &http::request::Parts,
    body: UpstreamBody,
) -> impl Future<Output = Result<Response<RawBody>, UpstreamError>> {
    let outgoing = match body {
        http_body_util::Either::Right(full) => {
            Outgoing::Whole(crate::proxy::full_bytes(&full).unwrap_or_default())
        }
        http_body_util::Either::Left(incoming) if incoming.is_end_stream() => Outgoing::None,
        http_body_util::Either::Left(incoming) => {
            let n = incoming.size_hint().exact();
            Outgoing::Stream(incoming, n)
        }
    };
    let head = request_head(upstream, parts, &outgoing);
    // A GET or HEAD without a body is sent again on a new connection when a kept one fails
    // before any answer (the apiserver closed it while idle); anything else is not.
    let idempotent = matches!(outgoing, Outgoing::None)
        && (parts.method == Method::GET || parts.method == Method::HEAD);
    // Only a request without a body is sent again, so what is left to send on a retry is none.
    let mut outgoing = Some(outgoing);
    let method = &parts.method;
    async move {
        loop {
            let (mut io, fresh) = match pool.take() {
                Some(io) => (io, false),
                None => (upstream.connect_h1().await?, true),
            };
            let sent = match outgoing.take().unwrap_or(Outgoing::None) {
                Outgoing::None => io.write_all(&head).await,
                Outgoing::Whole(bytes) => {
                    let mut bufs = [io::IoSlice::new(&head), io::IoSlice::new(&bytes)];
                    super::conn::write_all_vectored(&mut io, &mut bufs).await
                }
                Outgoing::Stream(incoming, n) => {
                    // Boxed: every request's future would otherwise carry this rare state.
                    Box::pin(stream_body(&mut io, &head, incoming, n.is_none())).await
                }
            };
            let retried = |why: String, answered: bool| {
                if fresh || !idempotent || answered {
                    Err(UpstreamError::Request(why))
                } else {
                    Ok(())
                }
            };
            match sent {
                Err(e) => retried(e.to_string(), false)?,
                Ok(()) => match read_head(&mut io, method).await {
                    Ok((head, buf)) => return Ok(answer(head, buf, io, pool)),
                    Err((why, answered)) => retried(why, answered)?,
                },
            }
        }
    }
}

/// The request line, `Host`, the prepared headers and the body's framing.
fn request_head(upstream: &Upstream, parts: &http::request::Parts, body: &Outgoing) -> Vec<u8> {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = Vec::with_capacity(128 + target.len() + 48 * parts.headers.len());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(upstream.authority().as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // The body's framing is this hop's own (an h2 client's content-length is re-stated).
        if name == HOST || name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        Outgoing::None => {
            // A write without a body still says so (as hyper's client does).
            if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        Outgoing::Whole(bytes) => content_length(&mut out, bytes.len() as u64),
        Outgoing::Stream(_, Some(n)) => content_length(&mut out, *n),
        Outgoing::Stream(_, None) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn content_length(out: &mut Vec<u8>, n: u64) {
    use std::io::Write;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "content-length: {n}\r\n");
}

/// Writes the head, then the client's body frame by frame as it arrives (chunked when its
/// length was not declared).
async fn stream_body(
    io: &mut H1Io,
    head: &[u8],
    mut body: crate::upstream::RequestBody,
    chunked: bool,
) -> io::Result<()> {
    use http_body_util::BodyExt;
    io.write_all(head).await?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
        let Ok(data) = frame.into_data() else {
            // Trailers are not passed on.
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let mut line = [0u8; 18];
            let size = super::chunked::size_line(data.len(), &mut line);
            let mut bufs = [
                io::IoSlice::new(size),
                io::IoSlice::new(&data),
                io::IoSlice::new(b"\r\n"),
            ];
            super::conn::write_all_vectored(io, &mut bufs).await?;
        } else {
            io.write_all(&data).await?;
        }
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// A response head, parsed once: what hyper's server sends on, and how the body is delimited.
struct Head {
    /// Bytes of the head, up to and including its final CRLF.
    len: usize,
    status: http::StatusCode,
    /// Each field's name, and where its value is in the head.
    fields: Vec<(HeaderName, std::ops::Range<usize>)>,
    framing: BodyFraming,
}

impl Head {
    /// The fields as hyper sends them on; their values are slices of `head` (the head's bytes),
    /// not copies.
    fn headers(self, head: &Bytes) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.fields.len());
        for (name, at) in self.fields {
            if let Ok(value) = HeaderValue::from_maybe_shared(head.slice(at)) {
                headers.append(name, value);
            }
        }
        headers
    }
}

/// The name of a field. Those every apiserver answer carries are picked by length and one
/// comparison: `HeaderName::from_bytes` would allocate for the apiserver's own names, and look up
/// the standard ones in its full table.
fn field_name(name: &str) -> Option<HeaderName> {
    const AUDIT_ID: HeaderName = HeaderName::from_static("audit-id");
    const FLOW_SCHEMA: HeaderName = HeaderName::from_static("x-kubernetes-pf-flowschema-uid");
    const PRIORITY_LEVEL: HeaderName = HeaderName::from_static("x-kubernetes-pf-prioritylevel-uid");
    let likely = match name.len() {
        4 => http::header::DATE,
        8 => AUDIT_ID,
        12 => http::header::CONTENT_TYPE,
        13 => http::header::CACHE_CONTROL,
        14 => http::header::CONTENT_LENGTH,
        30 => FLOW_SCHEMA,
        33 => PRIORITY_LEVEL,
        _ => return HeaderName::from_bytes(name.as_bytes()).ok(),
    };
    if name.eq_ignore_ascii_case(likely.as_str()) {
        return Some(likely);
    }
    HeaderName::from_bytes(name.as_bytes()).ok()
}

enum Parsed {
    Partial,
    /// A 1xx other than 101 of this many bytes: skipped, the real answer follows.
    Informational(usize),
    Head(Head),
}

/// Parses a response head at the start of `buf`, for a request made with `method`.
fn parse_head(buf: &[u8], method: &Method) -> Result<Parsed, &'static str> {
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; head::MAX_HEADERS * 2];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(_) => return Err("malformed response head"),
    };
    let status = match framing::status(resp.code)? {
        StatusKind::Informational => return Ok(Parsed::Informational(len)),
        StatusKind::Final(status) => status,
    };
    // The headers `Connection` names are taken out with the other hop-by-hop ones by the caller
    // (`Proxy::passthrough_response`), as for hyper's client.
    let fields = resp
        .headers
        .iter()
        .map(|h| (FramingField::of(h.name.as_bytes()), h.value));
    let framing = framing::body_framing(resp.version, status, method, fields, |_| {})?;
    let mut fields = Vec::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        // With chunked coding a Content-Length is wrong and never travels (RFC 9112 §6.3).
        if framing.chunked && h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if let Some(name) = field_name(h.name) {
            // httparse's values are slices of `buf`.
            let start = h.value.as_ptr() as usize - buf.as_ptr() as usize;
            fields.push((name, start..start + h.value.len()));
        }
    }
    Ok(Parsed::Head(Head {
        len,
        status,
        fields,
        framing,
    }))
}

/// Reads the response head (skipping 1xx answers); the bytes after it stay in the buffer.
/// Err: why, and whether any of an answer had arrived.
async fn read_head(io: &mut H1Io, method: &Method) -> Result<(Head, BytesMut), (String, bool)> {
    let mut buf = BytesMut::with_capacity(READ_MIN);
    let mut answered = false;
    loop {
        if !buf.is_empty() {
            match parse_head(&buf, method) {
                Ok(Parsed::Head(h)) => return Ok((h, buf)),
                Ok(Parsed::Informational(n)) => {
                    buf.advance(n);
                    continue;
                }
                Err(why) => {
                    return Err((format!("invalid response from the apiserver: {why}"), true));
                }
                Ok(Parsed::Partial) if buf.len() >= MAX_HEAD => {
                    return Err((
                        "response head from the apiserver larger than 1 MiB".into(),
                        true,
                    ));
                }
                Ok(Parsed::Partial) => {}
            }
        }
        if buf.capacity() - buf.len() < READ_MIN / 2 {
            buf.reserve(READ_MIN);
        }
        match tokio::io::AsyncReadExt::read_buf(io, &mut buf).await {
            Ok(0) => {
                return Err((
                    "the apiserver closed the connection without an answer".into(),
                    answered,
                ));
            }
            Ok(_) => answered = true,
            Err(e) => return Err((e.to_string(), answered)),
        }
    }
}

/// The answer as hyper's server sends it on: status, the upstream's headers (the hop-by-hop ones
/// are taken out by the caller, as for hyper's client) and the body as it arrives.
fn answer(head: Head, mut buf: BytesMut, io: H1Io, pool: &Arc<IdlePool>) -> Response<RawBody> {
    let head_bytes = buf.split_to(head.len).freeze();
    let status = head.status;
    let close = head.framing.close;
    let framing = head.framing.framing;
    let state = match framing {
        Framing::None | Framing::Length(0) => State::Done,
        Framing::Length(n) => State::Length(n),
        Framing::Chunked => State::Chunked(Decoder::new()),
        Framing::Close => State::Close,
    };
    let mut body = RawBody {
        io: Some(io),
        buf,
        read_size: ReadSize::new(READ_MIN),
        state,
        pending: VecDeque::new(),
        keep: !close && framing != Framing::Close,
        pool: pool.clone(),
        ranges: Vec::new(),
    };
    if matches!(body.state, State::Done) {
        body.finish();
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = head.headers(&head_bytes);
    resp
}

enum State {
    Length(u64),
    Chunked(Decoder),
    /// Until the upstream closes the connection.
    Close,
    Done,
}

/// An upstream answer's body, read from its connection as the client's side asks for it; the
/// connection goes back to its worker's idle list once the body has ended (not when it is cut
/// or dropped part-way: then it is closed).
pub struct RawBody {
    io: Option<H1Io>,
    /// Bytes read and not yet passed on.
    buf: BytesMut,
    read_size: ReadSize,
    state: State,
    /// Data of a chunked body decoded and not yet passed on.
    pending: VecDeque<Bytes>,
    /// The connection may be kept once the body has ended.
    keep: bool,
    pool: Arc<IdlePool>,
    ranges: Vec<std::ops::Range<usize>>,
}

impl RawBody {
    /// The body has ended as its framing says: the connection is kept when it may be.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(io) = self.io.take()
            && self.keep
            && self.buf.is_empty()
        {
            self.pool.put(io);
        }
        self.buf = BytesMut::new();
        self.read_size.reset();
    }

    fn cut(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.state = State::Done;
        self.io = None;
        self.buf = BytesMut::new();
        self.read_size.reset();
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(data) = this.pending.pop_front() {
                if this.pending.is_empty()
                    && let State::Chunked(d) = &this.state
                    && d.is_done()
                {
                    this.finish();
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if !this.buf.is_empty() {
                match &mut this.state {
                    State::Length(left) => {
                        let n = this
                            .buf
                            .len()
                            .min(usize::try_from(*left).unwrap_or(usize::MAX));
                        *left -= n as u64;
                        let data = this.buf.split_to(n).freeze();
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    State::Chunked(decoder) => {
                        this.ranges.clear();
                        let used = match decoder.decode(&this.buf, &mut this.ranges) {
                            Ok(used) => used,
                            Err(e) => {
                                return this.cut(io::Error::new(io::ErrorKind::InvalidData, e));
                            }
                        };
                        let done = decoder.is_done();
                        let decoded = this.buf.split_to(used).freeze();
                        this.pending
                            .extend(this.ranges.iter().map(|r| decoded.slice(r.clone())));
                        if done && this.pending.is_empty() {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        if !this.pending.is_empty() {
                            continue;
                        }
                    }
                    State::Close => {
                        let data = this.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    State::Done => {
                        // Bytes past the end: the connection is not reused.
                        this.buf = BytesMut::new();
                        return Poll::Ready(None);
                    }
                }
            }
            if matches!(this.state, State::Done) {
                return Poll::Ready(None);
            }
            let Some(io) = this.io.as_mut() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < this.read_size.get() / 2 {
                this.buf.reserve(this.read_size.get());
            }
            let room = this.buf.capacity() - this.buf.len();
            match tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut this.buf) {
                Poll::Pending => {
                    // Caught up: a stream waiting for its next event holds no read buffer and
                    // no large read (`readsize`).
                    this.read_size.reset();
                    if this.buf.is_empty() {
                        this.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return this.cut(e),
                Poll::Ready(Ok(0)) => {
                    if matches!(this.state, State::Close) {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    return this.cut(io::ErrorKind::UnexpectedEof.into());
                }
                Poll::Ready(Ok(n)) => {
                    if n == room {
                        this.read_size.filled();
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done) && self.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done if self.pending.is_empty() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` connected client sockets (the server ends are returned too, to keep them open).
    async fn sockets(n: usize) -> (Vec<H1Io>, Vec<tokio::net::TcpStream>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mut clients, mut servers) = (Vec::new(), Vec::new());
        for _ in 0..n {
            clients.push(H1Io::Plain(
                tokio::net::TcpStream::connect(addr).await.unwrap(),
            ));
            servers.push(listener.accept().await.unwrap().0);
        }
        (clients, servers)
    }

    fn port(io: &H1Io) -> u16 {
        match io {
            H1Io::Plain(s) => s.local_addr().unwrap().port(),
            H1Io::Tls(_) => unreachable!(),
        }
    }

    #[tokio::test]
    async fn the_pool_keeps_the_newest_up_to_its_limit_and_lets_closed_or_old_ones_go() {
        let pool = IdlePool::new(2, Duration::from_secs(60));
        let (clients, mut servers) = sockets(3).await;
        let ports: Vec<u16> = clients.iter().map(port).collect();
        for c in clients {
            pool.put(c);
        }
        assert_eq!(pool.idle(), 2, "the oldest went past the limit");
        // The most recently used first.
        assert_eq!(pool.take().map(|io| port(&io)), Some(ports[2]));
        // One the upstream closed while idle is not handed out, once the reactor has seen the
        // close (`yield_now` resumes this task only after the I/O driver has been polled).
        drop(servers.remove(1));
        tokio::task::yield_now().await;
        assert!(pool.take().is_none(), "closed connection handed out");
        assert_eq!(pool.idle(), 0);

        // Past the idle timeout, a connection is neither handed out nor kept.
        let pool = IdlePool::new(8, Duration::ZERO);
        let (clients, _servers) = sockets(2).await;
        for c in clients {
            pool.put(c);
        }
        assert_eq!(
            pool.idle(),
            1,
            "the expired one was let go when the next came"
        );
        assert!(pool.take().is_none());
        // A pool of none keeps none.
        let pool = IdlePool::new(0, Duration::from_secs(60));
        let (clients, _servers) = sockets(1).await;
        pool.put(clients.into_iter().next().unwrap());
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_body_that_caught_up_holds_no_buffer_and_reads_small_again() {
        use http_body_util::BodyExt;
        use tokio::io::AsyncWriteExt;
        let (mut clients, mut servers) = sockets(1).await;
        let mut body = RawBody {
            io: clients.pop(),
            buf: BytesMut::new(),
            read_size: ReadSize::new(READ_MIN),
            state: State::Length(4 << 20),
            pending: VecDeque::new(),
            keep: true,
            pool: Arc::new(IdlePool::new(1, Duration::from_secs(60))),
            ranges: Vec::new(),
        };
        // 1 MiB at once: reads fill their buffers and grow.
        let sent = 1 << 20;
        let mut server = servers.pop().unwrap();
        let writer = tokio::spawn(async move {
            server.write_all(&vec![b'x'; sent]).await.unwrap();
            server
        });
        let (mut got, mut largest) = (0, 0);
        while got < sent {
            let frame = body.frame().await.unwrap().unwrap();
            got += frame.into_data().unwrap().len();
            largest = largest.max(body.read_size.get());
        }
        assert_eq!(got, sent);
        assert!(largest > READ_MIN, "reads never grew: {largest}");
        let _server = writer.await.unwrap();
        // Nothing more has come: the next poll waits, holding nothing.
        let waiting =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx).is_pending()))
                .await;
        assert!(waiting);
        assert_eq!(body.read_size.get(), READ_MIN);
        assert_eq!(body.buf.capacity(), 0);
    }

    #[test]
    fn a_head_is_parsed_once_into_what_hyper_sends_on() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAudit-Id: a1\r\n\
            Transfer-Encoding: chunked\r\nContent-Length: 99\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n5\r\nhello";
        let Ok(Parsed::Head(h)) = parse_head(raw, &Method::GET) else {
            panic!("a complete head");
        };
        assert_eq!(&raw[h.len..], b"5\r\nhello");
        assert_eq!(h.status, 200);
        assert_eq!(h.framing.framing, Framing::Chunked);
        assert!(!h.framing.close);
        let headers = h.headers(&Bytes::from_static(raw));
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["audit-id"], "a1");
        // A Content-Length beside chunked coding is wrong and does not travel.
        assert!(!headers.contains_key("content-length"));
        let multi: Vec<_> = headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["1", "2"]);
        assert_eq!(headers.len(), 5);

        // The names every apiserver answer carries, whatever their case, and others of the
        // same lengths.
        for name in [
            "Audit-Id",
            "X-Kubernetes-Pf-Flowschema-Uid",
            "x-kubernetes-pf-prioritylevel-uid",
            "Content-Type",
            "Cache-Control",
            "Content-Length",
            "DATE",
            "X-Other",
            "Location",
            "ETag",
            "Last-Modified",
            "X-Kubernetes-Pf-Flowschema-Ui2",
        ] {
            assert_eq!(
                field_name(name).unwrap().as_str(),
                name.to_ascii_lowercase()
            );
        }
        assert!(field_name("bad name").is_none());

        assert!(matches!(
            parse_head(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n",
                &Method::GET
            ),
            Ok(Parsed::Informational(25))
        ));
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Le", &Method::GET),
            Ok(Parsed::Partial)
        ));
        assert_eq!(
            parse_head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &Method::GET).err(),
            Some("101 to a request without Upgrade")
        );
        assert_eq!(
            parse_head(b"HTTX/1.1 200\r\n\r\n", &Method::GET).err(),
            Some("malformed response head")
        );
    }
}
