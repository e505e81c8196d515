//! One client connection on the front end: read a request head, run the pipeline, exchange it
//! with this connection's own upstream connection, stream the answer back; again, until the
//! client closes or something unusual comes, which is handed to hyper with the bytes read.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap};
use http::{Method, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::chunked::{self, Decoder};
use super::head::{self, Framing, Parsed, ParsedResponse, RequestHead, ResponseHead};
use super::prepend::Prepend;
use super::readsize::ReadSize;
use crate::proxy::{
    AUDIT_ID, ConnInfo, InflightGuard, Meter, Prepared, Prepared1, Proxy, ProxyBody,
};
use crate::upstream::{H1Io, UpstreamError};

/// Limits of the front end (the `server:` section).
#[derive(Clone, Debug)]
pub struct FrontOptions {
    /// A client must send a complete request head within this (slowloris); the first from
    /// the moment it connected, later ones from their first byte.
    pub header_read_timeout: Duration,
    /// Largest request head; a larger one goes to hyper, which answers 431.
    pub max_header_bytes: usize,
}

/// Read buffer of an upstream connection for a body that did not come with its head, at first;
/// reads that fill it double it (`readsize`: a large LIST then moves in MiBs per system call).
const BODY_BUF: usize = 64 * 1024;
/// What is read at once from a stream that is mostly idle (a watch): on the stack, so an idle
/// watch holds no read buffer.
const IDLE_READ: usize = 16 * 1024;

/// Serves a client connection until it closes, or hands it to `handoff` (hyper) with what was
/// read. `shutdown` asks it to finish the request in progress and close.
pub async fn serve<IO, H, F>(
    mut io: IO,
    proxy: Arc<Proxy>,
    conn: Arc<ConnInfo>,
    opts: FrontOptions,
    shutdown: CancellationToken,
    handoff: H,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
    H: FnOnce(Prepend<IO>) -> F,
    F: Future<Output = ()>,
{
    let mut c = Conn {
        proxy,
        conn,
        buf: Vec::new(),
        up: None,
    };
    let mut deadline = Some(Instant::now() + opts.header_read_timeout);
    // The response-header timer, kept between requests (see `serve_one`).
    let mut timer = None;
    loop {
        let head = match c.read_head(&mut io, &opts, deadline, &shutdown).await {
            HeadRead::Ready(head) => head,
            HeadRead::Handoff => {
                // hyper takes the connection, and the upstream connection is no longer needed.
                c.up = None;
                return handoff(Prepend::new(io, std::mem::take(&mut c.buf))).await;
            }
            HeadRead::Close => return,
        };
        let keep = match Box::pin(c.serve_one(&mut io, head, &mut timer)).await {
            Next::Done(keep) => keep,
            Next::Stream(st) => c.stream_back(&mut io, st).await,
        };
        if !keep || shutdown.is_cancelled() {
            let _ = io.shutdown().await;
            return;
        }
        deadline = None;
    }
}

enum HeadRead {
    Ready(RequestHead),
    Handoff,
    Close,
}

/// What the answer to one request did to the client connection.
type KeepAlive = bool;

/// Where a request stands once its response head is known.
enum Next {
    /// Answered (by kubeguard, or the exchange failed).
    Done(KeepAlive),
    /// The upstream's answer is to be streamed back.
    Stream(Streaming),
}

/// An upstream answer ready to stream back: only what streaming its body needs.
struct Streaming {
    /// The response head for the client, written with the first body bytes.
    out: Vec<u8>,
    meter: Meter,
    framing: Framing,
    /// Bytes of the upstream's response head, at the start of the upstream buffer.
    head_len: usize,
    /// The upstream closes its connection after this answer.
    upstream_close: bool,
    /// The client connection closes after this answer.
    close: bool,
    long_running: bool,
}

struct Conn {
    proxy: Arc<Proxy>,
    conn: Arc<ConnInfo>,
    /// Bytes read from the client and not yet used.
    buf: Vec<u8>,
    /// This client connection's own upstream connection, kept between requests.
    up: Option<Upstream1>,
}

/// An upstream connection and the bytes read from it and not yet used.
struct Upstream1 {
    io: H1Io,
    buf: Vec<u8>,
    /// What the next body read asks for (from `BODY_BUF`).
    read_size: ReadSize,
}

impl Drop for Upstream1 {
    /// A connection let go in the middle of a large LIST (the client or the apiserver left)
    /// hands its large buffer back too.
    fn drop(&mut self) {
        self.read_size.release(&mut self.buf);
    }
}

impl Conn {
    async fn read_head<IO: AsyncRead + Unpin>(
        &mut self,
        io: &mut IO,
        opts: &FrontOptions,
        mut deadline: Option<Instant>,
        shutdown: &CancellationToken,
    ) -> HeadRead {
        loop {
            if !self.buf.is_empty() {
                match head::parse_request(&self.buf) {
                    // A head over the limit goes to hyper too, which answers 431 and closes.
                    Parsed::Mine(h) if h.len <= opts.max_header_bytes => {
                        return HeadRead::Ready(h);
                    }
                    Parsed::Mine(_) | Parsed::NotMine => return HeadRead::Handoff,
                    Parsed::Partial if self.buf.len() > opts.max_header_bytes => {
                        return HeadRead::Handoff;
                    }
                    Parsed::Partial => {}
                }
                deadline.get_or_insert_with(|| Instant::now() + opts.header_read_timeout);
            }
            let idle = self.buf.is_empty();
            if idle {
                // Between requests nothing is held: the next head is read through the stack.
                self.buf = Vec::new();
            } else if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            let read = async {
                let read = async {
                    if idle {
                        read_idle(io, &mut self.buf).await
                    } else {
                        io.read_buf(&mut self.buf).await
                    }
                };
                match deadline {
                    Some(d) => tokio::time::timeout_at(d.into(), read).await.ok(),
                    None => Some(read.await),
                }
            };
            let n = tokio::select! {
                r = read => r,
                _ = shutdown.cancelled(), if idle => return HeadRead::Close,
            };
            match n {
                Some(Ok(0)) | Some(Err(_)) => return HeadRead::Close,
                Some(Ok(_)) => {}
                None => {
                    tracing::debug!(peer = %self.conn.peer, "request head not complete in time; closing");
                    return HeadRead::Close;
                }
            }
        }
    }

    /// Serves one request whose head is at the start of `self.buf`, up to the upstream's
    /// response head. Boxed by the caller: its state is large and short-lived, and a
    /// connection's task should hold only what streaming an answer needs (a watch lives long).
    async fn serve_one<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        mut req: RequestHead,
        timer: &mut Option<Pin<Box<Sleep>>>,
    ) -> Next {
        let start = Instant::now();
        let proxy = self.proxy.clone();
        let inflight = InflightGuard::new(proxy.metrics());
        let close = req.close;
        let head_only = req.method == Method::HEAD;
        // Always ASCII (`head::parse_request`): the UTF-8 check's fast path, not a lossy walk.
        let raw = &self.buf[req.target.clone()];
        let target = match std::str::from_utf8(raw) {
            Ok(t) => t.to_owned(),
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        };
        self.buf.drain(..req.len);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target.as_str(), None),
        };
        let a = match proxy
            .admit_request(&req.method, path, query, &req.headers, &self.conn, start)
            .await
        {
            Ok(a) => a,
            Err(resp) => {
                drop(inflight);
                return Next::Done(self.answer(io, resp, head_only, close, req.body_len).await);
            }
        };
        // A guard that must see the body (the delete guard reads DeleteOptions) gets at most
        // its limit, read before deciding; a larger body is refused with 413.
        let held = match proxy.guard_body_limit(&a.api) {
            Some(limit) if req.body_len > 0 => {
                if req.body_len > limit as u64 {
                    drop(inflight);
                    let resp = proxy.body_too_large(a, limit, start);
                    return Next::Done(self.answer(io, resp, head_only, close, req.body_len).await);
                }
                match self.read_body(io, req.body_len as usize).await {
                    Some(body) => Some(body),
                    None => return Next::Done(false),
                }
            }
            _ => None,
        };
        let unread = if held.is_some() { 0 } else { req.body_len };
        let p = match proxy
            .decide_admitted(a, &req.headers, query, held.as_ref(), start)
            .await
        {
            Prepared::Answer(resp) => {
                drop(inflight);
                return Next::Done(self.answer(io, resp, head_only, close, unread).await);
            }
            Prepared::Forward(p) => p,
        };
        // Credentials as the identity step decided (the client's own, or kubeguard's with
        // Impersonate-*), and the Audit-ID the apiserver records.
        let mut extra = HeaderMap::new();
        if let Some(auth) = req.headers.remove(AUTHORIZATION) {
            extra.insert(AUTHORIZATION, auth);
        }
        if let Err(resp) = proxy
            .apply_credentials(&p.caller, &mut extra, &self.conn)
            .await
        {
            let resp = proxy.failed_forward(p, resp, start);
            drop(inflight);
            return Next::Done(self.answer(io, resp, head_only, close, unread).await);
        }
        extra.insert(AUDIT_ID, p.audit_id.clone());
        let upstream = proxy.upstream();
        let head = head::upstream_request(
            &req.method,
            upstream.prefix(),
            path,
            p.fwd.rewrite.as_deref().or(query),
            upstream.authority().as_str(),
            &req.forward,
            &extra,
        );
        let body = match held {
            Some(bytes) => RequestBody::Held(bytes),
            None if unread > 0 => RequestBody::Stream(unread),
            None => RequestBody::None,
        };
        let long_running = p.api.is_long_running();
        let timeout = (!long_running).then_some(proxy.settings().response_header_timeout);
        let exchange = self.exchange(io, &head, &req.method, body);
        let answer = match timeout {
            Some(t) => {
                let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(t)));
                // Moving a kept timer later takes no lock and wakes no driver; a new timer
                // each request would wake the runtime's driver whenever it is the earliest.
                timer.as_mut().reset(tokio::time::Instant::now() + t);
                tokio::select! {
                    biased;
                    answer = exchange => answer,
                    () = timer.as_mut() => Err(Failed::Upstream(UpstreamError::Timeout(t))),
                }
            }
            None => exchange.await,
        };
        let resp_head = match answer {
            Ok(h) => h,
            Err(Failed::Upstream(e)) => {
                self.up = None;
                let resp = proxy.upstream_failure(e);
                let resp = proxy.failed_forward(p, resp, start);
                drop(inflight);
                // A body only partly sent upstream cannot be finished: close after the answer.
                let body_left = unread > 0;
                let written = write_own(io, resp, head_only, close || body_left).await;
                return Next::Done(written && !body_left);
            }
            Err(Failed::Client) => {
                self.up = None;
                return Next::Done(false);
            }
        };
        drop(inflight);
        Next::Stream(self.start_stream(p, resp_head, close, start))
    }

    /// Writes an answer of kubeguard's own to a request whose body (`unread` bytes) was not
    /// read: a small one is read and dropped so the connection goes on, a large one closes it.
    async fn answer<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        resp: Response<ProxyBody>,
        head_only: bool,
        close: bool,
        unread: u64,
    ) -> KeepAlive {
        let skip = unread <= SKIP_BODY_MAX && self.skip_body(io, unread).await;
        let written = write_own(io, resp, head_only, close || !skip).await;
        if !skip && written {
            // A client still sending its body would see its connection reset, and lose the
            // answer, if it closed at once: stop writing, then drop what still comes for a
            // moment (a lingering close, as nginx does).
            let _ = io.shutdown().await;
            let linger = async {
                let mut dropped = 0u64;
                while dropped < LINGER_MAX_BYTES {
                    let mut sink = Vec::new();
                    match read_idle(io, &mut sink).await {
                        Ok(n) if n > 0 => dropped += n as u64,
                        _ => return,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, linger).await;
        }
        written && skip
    }

    /// Reads and drops `n` bytes of a request body.
    async fn skip_body<IO: AsyncRead + Unpin>(&mut self, io: &mut IO, mut n: u64) -> bool {
        loop {
            let have = self.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            self.buf.drain(..have);
            n -= have as u64;
            if n == 0 {
                return true;
            }
            if !matches!(read_idle(io, &mut self.buf).await, Ok(r) if r > 0) {
                return false;
            }
        }
    }

    /// Reads a whole request body of `n` bytes (already checked against a guard's limit).
    async fn read_body<IO: AsyncRead + Unpin>(&mut self, io: &mut IO, n: usize) -> Option<Bytes> {
        while self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
            match io.read_buf(&mut self.buf).await {
                Ok(r) if r > 0 => {}
                _ => return None,
            }
        }
        let body = Bytes::copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        Some(body)
    }

    /// Sends the request on this connection's upstream connection (a new one when there is
    /// none or a kept one turns out closed) and reads the response head.
    async fn exchange<IO: AsyncRead + Unpin>(
        &mut self,
        io: &mut IO,
        request: &[u8],
        method: &Method,
        body: RequestBody,
    ) -> Result<ResponseHead, Failed> {
        // A GET or HEAD is sent again on a new connection when a kept one fails before any
        // answer (the apiserver closed it while idle); a write is not: a kept connection is
        // checked before it is used instead.
        let idempotent = matches!(body, RequestBody::None)
            && (*method == Method::GET || *method == Method::HEAD);
        loop {
            if !idempotent && self.up.as_mut().is_some_and(|up| looks_closed(&mut up.io)) {
                self.up = None;
            }
            let fresh = self.up.is_none();
            let up = match &mut self.up {
                Some(up) => up,
                None => self.up.insert(Upstream1 {
                    io: Box::pin(self.proxy.upstream().connect_h1())
                        .await
                        .map_err(Failed::Upstream)?,
                    buf: Vec::new(),
                    read_size: ReadSize::new(BODY_BUF),
                }),
            };
            let sent = match &body {
                RequestBody::None => up.io.write_all(request).await,
                RequestBody::Held(bytes) => {
                    write_all_vectored(
                        &mut up.io,
                        &mut [IoSlice::new(request), IoSlice::new(bytes)],
                    )
                    .await
                }
                RequestBody::Stream(n) => {
                    return match stream_body(io, &mut self.buf, up, request, *n).await {
                        Ok(()) => read_response_head(up, method)
                            .await
                            .map_err(|e| Failed::Upstream(UpstreamError::Request(e.why))),
                        Err(e) => Err(e),
                    };
                }
            };
            if let Err(e) = sent {
                self.up = None;
                if fresh || !idempotent {
                    return Err(Failed::Upstream(UpstreamError::Request(e.to_string())));
                }
                continue;
            }
            match read_response_head(up, method).await {
                Ok(head) => return Ok(head),
                Err(e) => {
                    self.up = None;
                    if fresh || !idempotent || !e.before_answer {
                        return Err(Failed::Upstream(UpstreamError::Request(e.why)));
                    }
                }
            }
        }
    }

    /// The head of the upstream's answer as the client gets it, and the meter its body goes
    /// through. Done before anything is awaited, so the request's state (its classification,
    /// caller, decision; ~1 KiB) is not part of the state a stream keeps while it waits.
    fn start_stream(
        &self,
        p: Prepared1,
        resp: ResponseHead,
        close: bool,
        start: Instant,
    ) -> Streaming {
        let proxy = &self.proxy;
        let Prepared1 {
            api,
            caller,
            fwd,
            admitted,
            audit_id,
        } = p;
        let mut extra = HeaderMap::new();
        fwd.response_headers(
            proxy.engine(),
            &caller.identity,
            &api,
            resp.status,
            &mut extra,
        );
        if !resp.has_audit_id {
            extra.insert(AUDIT_ID, audit_id.clone());
        }
        let content_type = resp.content_type(self.up.as_ref().map_or(&[], |up| &up.buf));
        let mut out = resp.out;
        head::write_headers(&mut out, &extra);
        let close = close || resp.framing == Framing::Close;
        if resp.framing == Framing::Chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let meter = proxy.upstream_meter(
            &api,
            &caller,
            resp.status,
            content_type,
            fwd,
            admitted,
            start,
        );
        proxy.observe_parts(
            Some(&api),
            Some(&caller),
            &audit_id,
            resp.status,
            meter.route(),
            start,
        );
        Streaming {
            out,
            meter,
            framing: resp.framing,
            head_len: resp.len,
            upstream_close: resp.close,
            close,
            long_running: api.is_long_running(),
        }
    }

    /// Streams the upstream's answer to the client, as its framing says, through the meter.
    async fn stream_back<IO: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut IO,
        st: Streaming,
    ) -> KeepAlive {
        let Streaming {
            out,
            mut meter,
            framing,
            head_len,
            upstream_close,
            close,
            long_running,
        } = st;
        let Some(up) = self.up.as_mut() else {
            return false;
        };
        // A body with a length is passed on from where it starts in the buffer (moving it to the
        // front first would copy it once more); the others start at the front.
        if !matches!(framing, Framing::Length(_)) {
            up.buf.drain(..head_len);
        }
        let body = match framing {
            Framing::None => {
                // Recorded before the client has the answer (see `Meter::settle`).
                meter.ended();
                meter.settle();
                write_all_vectored(io, &mut [IoSlice::new(&out)])
                    .await
                    .map(|()| Ended::Complete)
                    .map_err(Cut::Client)
            }
            Framing::Length(n) => copy_length(io, up, &mut meter, out, head_len, n).await,
            Framing::Chunked => {
                let watched = long_running.then_some(&mut self.buf);
                copy_chunked(io, up, &mut meter, out, watched).await
            }
            Framing::Close => copy_until_close(io, up, &mut meter, out).await,
        };
        match body {
            Ok(Ended::Complete) => {
                meter.ended();
                if upstream_close || framing == Framing::Close || !up.buf.is_empty() {
                    self.up = None;
                } else {
                    // An idle upstream connection holds no buffer either.
                    up.read_size.release(&mut up.buf);
                }
                !close
            }
            Ok(Ended::ClientGone) => {
                self.up = None;
                false
            }
            Err(Cut::Upstream(e)) => {
                self.up = None;
                if meter.ends_cleanly() && framing == Framing::Chunked {
                    tracing::debug!(error = %e, "upstream cut a watch; ending it cleanly");
                    write_all_vectored(io, &mut [IoSlice::new(b"0\r\n\r\n")])
                        .await
                        .is_ok()
                        && !close
                } else {
                    tracing::debug!(error = %e, "upstream cut a response body");
                    false
                }
            }
            Err(Cut::Client(e)) => {
                tracing::debug!(error = %e, "client went away mid-answer");
                self.up = None;
                false
            }
        }
    }
}

/// The most of an unread request body read and dropped to keep a connection after an answer
/// of kubeguard's own; a larger one closes the connection instead.
const SKIP_BODY_MAX: u64 = 1024 * 1024;
/// How long, and how much, a connection closed after an answer to an unread body still reads.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The body of a request on its way upstream.
enum RequestBody {
    None,
    /// Read whole for a guard.
    Held(Bytes),
    /// This many bytes still to come from the client, passed on as they arrive.
    Stream(u64),
}

/// Why an exchange failed.
enum Failed {
    Upstream(UpstreamError),
    /// The client went away while its body was being passed on.
    Client,
}

/// Passes the request head and `n` body bytes (first what is in `client_buf`, then from the
/// client) to the upstream.
async fn stream_body<IO: AsyncRead + Unpin>(
    client: &mut IO,
    client_buf: &mut Vec<u8>,
    up: &mut Upstream1,
    head: &[u8],
    mut n: u64,
) -> Result<(), Failed> {
    let mut head = Some(head);
    loop {
        let have = client_buf
            .len()
            .min(usize::try_from(n).unwrap_or(usize::MAX));
        let h = head.take().unwrap_or_default();
        write_all_vectored(
            &mut up.io,
            &mut [IoSlice::new(h), IoSlice::new(&client_buf[..have])],
        )
        .await
        .map_err(|e| Failed::Upstream(UpstreamError::Request(e.to_string())))?;
        client_buf.drain(..have);
        n -= have as u64;
        if n == 0 {
            return Ok(());
        }
        if client_buf.capacity() < BODY_BUF {
            client_buf.reserve(BODY_BUF);
        }
        match client.read_buf(client_buf).await {
            Ok(r) if r > 0 => {}
            _ => return Err(Failed::Client),
        }
    }
}

/// Whether a kept upstream connection was closed (or sent something unasked) while idle.
pub(super) fn looks_closed(io: &mut H1Io) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 1];
    let mut rb = ReadBuf::new(&mut byte);
    !matches!(
        std::pin::Pin::new(io).poll_read(&mut cx, &mut rb),
        Poll::Pending
    )
}

/// Why a response head could not be read.
struct HeadError {
    why: String,
    /// Nothing of an answer had arrived (the connection was closed or reset first).
    before_answer: bool,
}

async fn read_response_head(
    up: &mut Upstream1,
    method: &Method,
) -> Result<ResponseHead, HeadError> {
    up.buf.clear();
    let mut got_any = false;
    loop {
        if !up.buf.is_empty() {
            match head::parse_response(&up.buf, method) {
                ParsedResponse::Head(h) => return Ok(h),
                ParsedResponse::Informational(n) => {
                    up.buf.drain(..n);
                    continue;
                }
                ParsedResponse::Invalid(why) => {
                    return Err(HeadError {
                        why: format!("invalid response from the apiserver: {why}"),
                        before_answer: false,
                    });
                }
                ParsedResponse::Partial if up.buf.len() >= 1 << 20 => {
                    return Err(HeadError {
                        why: "response head from the apiserver larger than 1 MiB".into(),
                        before_answer: false,
                    });
                }
                ParsedResponse::Partial => {}
            }
        }
        // Straight into the connection's buffer (a read through the stack would copy the
        // answer once more); a stream gives the buffer back whenever it waits for its next
        // event, and an idle connection holds none.
        if up.buf.capacity() - up.buf.len() < IDLE_READ / 2 {
            up.buf.reserve(IDLE_READ);
        }
        match up.io.read_buf(&mut up.buf).await {
            Ok(0) => {
                return Err(HeadError {
                    why: "the apiserver closed the connection without an answer".into(),
                    before_answer: !got_any,
                });
            }
            Ok(_) => got_any = true,
            Err(e) => {
                return Err(HeadError {
                    why: e.to_string(),
                    before_answer: !got_any,
                });
            }
        }
    }
}

/// How a body ended.
enum Ended {
    Complete,
    /// The client closed its connection during a long-running answer.
    ClientGone,
}

/// Who cut a body short.
enum Cut {
    Upstream(io::Error),
    Client(io::Error),
}

/// A body of `left` bytes, starting at `from` in the upstream buffer.
async fn copy_length<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    up: &mut Upstream1,
    meter: &mut Meter,
    head: Vec<u8>,
    mut from: usize,
    mut left: u64,
) -> Result<Ended, Cut> {
    let mut head = Some(head);
    loop {
        let n = (up.buf.len() - from).min(usize::try_from(left).unwrap_or(usize::MAX));
        let data = &up.buf[from..from + n];
        // Scanned once written, so the client reads these bytes meanwhile; the last ones before,
        // so what the answer teaches is recorded by the time the client has all of it.
        let last = n as u64 == left;
        if last {
            meter.data(data);
            meter.ended();
            meter.settle();
        }
        let h = head.take().unwrap_or_default();
        write_all_vectored(io, &mut [IoSlice::new(&h), IoSlice::new(data)])
            .await
            .map_err(Cut::Client)?;
        drop(h);
        if !last {
            meter.data(&up.buf[from..from + n]);
        }
        up.buf.drain(..from + n);
        from = 0;
        left -= n as u64;
        if left == 0 {
            return Ok(Ended::Complete);
        }
        read_more(up).await?;
    }
}

async fn copy_until_close<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    up: &mut Upstream1,
    meter: &mut Meter,
    head: Vec<u8>,
) -> Result<Ended, Cut> {
    let mut head = Some(head);
    loop {
        let h = head.take().unwrap_or_default();
        write_all_vectored(io, &mut [IoSlice::new(&h), IoSlice::new(&up.buf)])
            .await
            .map_err(Cut::Client)?;
        drop(h);
        meter.data(&up.buf);
        up.buf.clear();
        match read_more(up).await {
            Ok(()) => {}
            // The end of the connection is the end of this body.
            Err(Cut::Upstream(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Ok(Ended::Complete);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A chunked body: decoded to find its data (scanned) and its end, re-framed for the client
/// chunk for chunk as it arrives, so a watch event is never held back. With `watched` (a
/// long-running answer), the client connection is watched meanwhile: a client that goes away
/// ends the stream at once, and nothing is held in a read buffer while the stream is idle.
async fn copy_chunked<IO: AsyncRead + AsyncWrite + Unpin>(
    io: &mut IO,
    up: &mut Upstream1,
    meter: &mut Meter,
    head: Vec<u8>,
    mut watched: Option<&mut Vec<u8>>,
) -> Result<Ended, Cut> {
    let mut head = Some(head);
    let mut decoder = Decoder::new();
    let mut ranges = Vec::new();
    let mut frames: Vec<u8> = Vec::new();
    let mut client_done = false;
    loop {
        ranges.clear();
        let used = decoder
            .decode(&up.buf, &mut ranges)
            .map_err(|e| Cut::Upstream(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        frames.clear();
        let mut size_at = Vec::with_capacity(ranges.len());
        // Scanned once written, so the client reads these bytes meanwhile; the last ones before,
        // so what the answer teaches is recorded by the time the client has all of it.
        let last = decoder.is_done();
        for r in &ranges {
            if last {
                meter.data(&up.buf[r.clone()]);
            }
            let mut line = [0u8; 18];
            let from = frames.len();
            frames.extend_from_slice(chunked::size_line(r.len(), &mut line));
            size_at.push(from..frames.len());
        }
        if last {
            meter.ended();
            meter.settle();
        }
        let h = head.take().unwrap_or_default();
        let mut slices = Vec::with_capacity(2 + 3 * ranges.len());
        slices.push(IoSlice::new(&h));
        for (r, s) in ranges.iter().zip(&size_at) {
            slices.push(IoSlice::new(&frames[s.clone()]));
            slices.push(IoSlice::new(&up.buf[r.clone()]));
            slices.push(IoSlice::new(b"\r\n"));
        }
        if decoder.is_done() {
            slices.push(IoSlice::new(b"0\r\n\r\n"));
        }
        write_all_vectored(io, &mut slices)
            .await
            .map_err(Cut::Client)?;
        drop(slices);
        // The response head is not kept while the stream waits for its next event.
        drop(h);
        if !last {
            for r in &ranges {
                meter.data(&up.buf[r.clone()]);
            }
        }
        up.buf.drain(..used);
        if decoder.is_done() {
            return Ok(Ended::Complete);
        }
        match watched.as_deref_mut() {
            None => read_more(up).await?,
            Some(client_buf) => {
                // Nothing held while idle: the buffers are given back between events.
                up.buf = Vec::new();
                if client_buf.is_empty() {
                    *client_buf = Vec::new();
                }
                let read = read_idle(&mut up.io, &mut up.buf);
                tokio::select! {
                    r = read => match r {
                        Ok(0) => return Err(Cut::Upstream(io::ErrorKind::UnexpectedEof.into())),
                        Ok(_) => {}
                        Err(e) => return Err(Cut::Upstream(e)),
                    },
                    r = read_idle(io, client_buf), if !client_done => match r {
                        // Bytes of a pipelined request stay for after the stream.
                        Ok(n) if n > 0 => client_done = client_buf.len() > 64 * 1024,
                        _ => return Ok(Ended::ClientGone),
                    },
                }
            }
        }
    }
}

/// Reads more of a body into the (empty or partly used) upstream buffer; the end of the
/// connection here is a cut.
async fn read_more(up: &mut Upstream1) -> Result<(), Cut> {
    up.read_size.prepare(&mut up.buf);
    let room = up.buf.capacity() - up.buf.len();
    match up.io.read_buf(&mut up.buf).await {
        Ok(0) => Err(Cut::Upstream(io::ErrorKind::UnexpectedEof.into())),
        Ok(n) => {
            if n == room {
                up.read_size.filled();
            }
            Ok(())
        }
        Err(e) => Err(Cut::Upstream(e)),
    }
}

/// Reads what is there into `into` through a buffer on the stack, so nothing is allocated
/// while waiting (an idle watch holds no buffer).
async fn read_idle<R: AsyncRead + Unpin>(r: &mut R, into: &mut Vec<u8>) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        // Not zeroed: 16 KiB of memset on every read would cost more than the read.
        let mut stack = [std::mem::MaybeUninit::<u8>::uninit(); IDLE_READ];
        let mut rb = ReadBuf::uninit(&mut stack);
        match std::pin::Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                into.extend_from_slice(rb.filled());
                Poll::Ready(Ok(rb.filled().len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Writes every slice (one system call when the socket takes it all).
pub(super) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = w.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Writes an answer of kubeguard's own (a `Status`).
async fn write_own<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    resp: Response<ProxyBody>,
    head_only: bool,
    close: bool,
) -> KeepAlive {
    let (parts, body) = resp.into_parts();
    let body = match &body {
        ProxyBody::Own(full) => crate::proxy::full_bytes(full).unwrap_or_default(),
        ProxyBody::Upstream { .. } => Bytes::new(),
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut headers = parts.headers;
    headers.remove(http::header::CONTENT_LENGTH);
    head::write_headers(&mut out, &headers);
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let body: &[u8] = if head_only { &[] } else { &body };
    write_all_vectored(io, &mut [IoSlice::new(&out), IoSlice::new(body)])
        .await
        .is_ok()
        && !close
}
