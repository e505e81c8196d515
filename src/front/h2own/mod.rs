//! kubeguard's own HTTP/2 server (RFC 9113), in place of hyper's (`server.h2Server: kubeguard`,
//! the default; `hyper` serves h2 with hyper's server instead). Every stream's pipeline future
//! is polled inside the connection's task (`FuturesUnordered`), never spawned; frames are
//! gathered in one output buffer and written when nothing else is ready.
//!
//! Measured (`N=10000 ONLY=kubeguard PROTO=h2 bash loadtests/callgrind.sh`, h2c, 4 connections
//! x 8 streams): 34.5k instructions per request, against 57.7k with hyper's h2 server. At 34.9k
//! (before the request futures were made smaller, see `Proxy::handle`) they were spent so: the
//! pipeline (`Proxy::handle` with the pooled upstream exchange) ~22.5k, of which the upstream
//! response head (parsed, then made a `HeaderMap`) ~7.3k; request HEADERS ~5.7k (HPACK decode
//! 2.8k of it, the Huffman-coded path 0.95k; `http::Request` and its `HeaderMap` the rest);
//! response HEADERS, DATA and the body's polling (with the meter's settling) ~4.8k; the rest the
//! loop and tokio. Allocation, spread over all of these: ~2k (26 blocks). Over TLS 1.3
//! (`PROTO=h2tls`) 47.5k, AES-GCM sealing 7.9k of the difference.
//!
//! HPACK: decoded by `hdecode` (loona-hpack was tried first: its Huffman decoder builds a hash
//! map for every string, ~200k instructions per request), encoded by `hpack` (literals only).
//!
//! It serves the connections the HTTP/1.1 front end serves (TLS with ALPN h2, and h2c with prior
//! knowledge handed over); with `server.http1FrontEnd: false` hyper serves every connection.
//!
//! Hardening: request bodies stream to the pipeline as they arrive and flow-control window is
//! given back only as the pipeline takes (or drops) bytes, so one connection holds at most
//! `CONN_RECV_WINDOW` (8 MiB) of request bodies; a body over `MAX_REQUEST_BODY` is refused
//! (413 when declared, RST_STREAM(CANCEL) when it arrives); malformed requests (RFC 9113
//! §8.1.1, §8.2, §8.3, content-length disagreeing with DATA) are reset with PROTOCOL_ERROR;
//! rapid reset (CVE-2023-44487, `server.h2MaxPendingAcceptResets`), MadeYouReset
//! (CVE-2025-8671, `server.h2MaxLocalErrorResets`) and CONTINUATION floods (bytes and
//! `MAX_CONTINUATIONS` frames per block) end in GOAWAY(ENHANCE_YOUR_CALM); keep-alive PING
//! every 30 s, closed without ACK in 20 s.
//!
//! Robustness: 200 random clients of well-formed and mutated frames (tests.rs,
//! `random_frames_never_break_the_server`) and the cargo-fuzz targets `h2_server` and `hpack`
//! check that no input panics or hangs the server, that it writes only valid frames within the
//! peer's limits, and nothing after a connection error's GOAWAY.
//!
//! Floods of SETTINGS, PING, WINDOW_UPDATE, PRIORITY or empty frames each cost a small reply
//! or none: a client that does not read its replies stops being read past `WBUF_HIGH`
//! (`a_client_that_never_reads_cannot_grow_the_servers_buffers`). As with hyper's server as
//! kubeguard configures it, an idle connection is kept while it answers the keep-alive PINGs
//! (`server.maxConnections` bounds them). Not served: extended CONNECT (RFC 8441; the apiserver
//! speaks WebSocket and SPDY over HTTP/1.1 only); request trailers are not passed on.

mod body;
mod frame;
mod hdecode;
mod hpack;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::header::{COOKIE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::proxy::{ConnInfo, ProxyBody};
use crate::upstream::RequestBody;

pub use body::H2Body;
pub use frame::PREFACE;
/// The HPACK decoder, for the `hpack` fuzz target (fuzz/fuzz_targets/hpack.rs) only.
#[doc(hidden)]
pub use hdecode::Decoder as HpackDecoder;

/// What the server advertises and enforces.
#[derive(Clone, Copy, Debug)]
pub struct H2Options {
    pub max_concurrent_streams: u32,
    pub max_header_list_size: usize,
    /// Rapid reset (CVE-2023-44487): streams the client may cancel before their answer began;
    /// each answered stream gives one back, and one more gets GOAWAY(ENHANCE_YOUR_CALM).
    pub max_early_resets: usize,
    /// MadeYouReset (CVE-2025-8671): streams kubeguard itself may reset because the client
    /// broke the protocol; one more gets GOAWAY(ENHANCE_YOUR_CALM).
    pub max_local_resets: usize,
}

/// A request body larger than this is refused: with 413 when its content-length says so
/// before the request goes on, with RST_STREAM(CANCEL) when more arrives than this without a
/// declared length (the request is on its way by then and its answer may have begun; the body
/// ends in an error, so the upstream request is aborted, never passed on cut short). Above
/// the apiserver's own 3 MiB (`MaxRequestBodyBytes`).
const MAX_REQUEST_BODY: u64 = 4 << 20;
/// The connection's receive window: request-body bytes one connection may have buffered in
/// kubeguard at once. Window is given back only as the pipeline takes (or drops) bytes.
const CONN_RECV_WINDOW: i64 = 8 << 20;
/// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE), as hyper's server's.
const STREAM_RECV_WINDOW: i64 = 1 << 20;
/// Output gathered but not yet written past which no more responses or body frames are taken
/// (a slow reader), and no more frames are read.
const WBUF_HIGH: usize = 256 * 1024;
/// CONTINUATION frames one header block may have (empty ones included), past which the
/// connection gets GOAWAY(ENHANCE_YOUR_CALM) (the 2024 CONTINUATION flood, CVE-2024-27316 and
/// kin: bytes alone do not bound it, empty frames cost work and add none). 128 carry a
/// 1 MiB header list (`server.maxHeaderBytes`' default) in 8 KiB frames; clients send one or two.
const MAX_CONTINUATIONS: usize = 128;
/// A PING every this long while the connection is open (as hyper's `keep_alive_interval`)...
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);
/// ...and the connection is closed when its ACK has not come within this.
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// The opaque data of kubeguard's keep-alive PINGs.
const KEEPALIVE_PAYLOAD: &[u8; 8] = b"kgalive\0";
/// Reads per wakeup before the task yields.
const READ_BUDGET: usize = 32;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project_lite::pin_project! {
    /// A stream's pipeline future, tagged with the stream, droppable from outside (client
    /// RST_STREAM): `cancel` drops it and wakes its task, so `FuturesUnordered` lets it go.
    /// Boxed: the pipeline's future is kilobytes, and `FuturesUnordered::push` moves what it
    /// is given three times (into its task, the task into an `Arc`); a box is moved once.
    struct Handling<F> {
        id: u32,
        waker: Option<Waker>,
        #[pin]
        fut: Option<Pin<Box<F>>>,
    }
}

impl<F: Future> Future for Handling<F> {
    type Output = (u32, Option<F::Output>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.fut.as_pin_mut() {
            None => Poll::Ready((*this.id, None)),
            Some(f) => match f.poll(cx) {
                Poll::Ready(out) => Poll::Ready((*this.id, Some(out))),
                Poll::Pending => {
                    if this.waker.is_none() {
                        *this.waker = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            },
        }
    }
}

impl<F> Handling<F> {
    fn cancel(self: Pin<&mut Self>) {
        let mut this = self.project();
        this.fut.set(None);
        if let Some(w) = this.waker.take() {
            w.wake();
        }
    }
}

type Polled = Option<Result<Frame<Bytes>, BoxError>>;

/// The next frame of a response body that was not ready.
struct NextFrame {
    id: u32,
    body: Option<ProxyBody>,
    waker: Option<Waker>,
}

impl Future for NextFrame {
    type Output = (u32, Option<(ProxyBody, Polled)>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready((this.id, None));
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(polled) => Poll::Ready((this.id, this.body.take().map(|b| (b, polled)))),
            Poll::Pending => {
                if this.waker.is_none() {
                    this.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl NextFrame {
    fn cancel(&mut self) {
        self.body = None;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// A request body still arriving.
struct Receiving {
    feed: body::Feed,
    /// Our receive window for the stream.
    window: i64,
    received: u64,
    /// Its content-length.
    declared: Option<u64>,
}

#[derive(Default)]
struct Stream {
    /// Our send window for this stream.
    window: i64,
    /// The response head was sent.
    answered: bool,
    receiving: Option<Box<Receiving>>,
    /// Answered before its body came (413): what still comes is released at once.
    discard: bool,
    /// Data that did not fit the send windows, and whether the stream ends with it.
    parked: Option<(Bytes, bool)>,
    /// The body to go on with once the parked data is sent.
    body: Option<ProxyBody>,
}

/// A header block spread over HEADERS and CONTINUATION frames.
struct Continuation {
    id: u32,
    end_stream: bool,
    block: Vec<u8>,
    /// CONTINUATION frames so far.
    frames: usize,
}

/// A connection error: GOAWAY with this code, then close.
struct ConnError(u32);

struct Conn<IO, H, F> {
    io: IO,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    wpos: usize,
    need_flush: bool,
    hblock: Vec<u8>,
    handler: H,
    info: Arc<ConnInfo>,
    opts: H2Options,
    decoder: hdecode::Decoder,
    handling: FuturesUnordered<Handling<F>>,
    bodies: FuturesUnordered<NextFrame>,
    streams: HashMap<u32, Stream, foldhash::fast::RandomState>,
    conn_window: i64,
    peer_initial_window: i64,
    peer_max_frame: usize,
    last_stream: u32,
    /// What is left of `max_early_resets`.
    reset_credit: usize,
    /// Streams reset by kubeguard because the client broke the protocol (MadeYouReset).
    local_resets: usize,
    /// Shared with the streams' bodies: the bytes they took.
    shared: Arc<body::ConnShared>,
    released: Vec<(u32, usize)>,
    /// Our receive window for the connection.
    recv_window: i64,
    /// Request-body bytes queued and not yet taken (at most `CONN_RECV_WINDOW`).
    buffered: usize,
    preface: bool,
    got_settings: bool,
    continuation: Option<Continuation>,
    /// GOAWAY sent with an error: write what is gathered and close.
    closing: bool,
    /// GOAWAY sent or received without error: no new streams, close once none are left.
    draining: bool,
    shutdown: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// When the next keep-alive PING goes, or (one outstanding) when the connection is dead.
    keepalive: Pin<Box<tokio::time::Sleep>>,
    ping_outstanding: bool,
    /// Bytes were read since the keep-alive PING went, or written while reading was stopped
    /// (a full output buffer stops reading, so its ACK may wait behind a large answer): the
    /// peer is there, only slow.
    alive: bool,
}

/// Serves an HTTP/2 connection (the client preface not yet read) until it closes.
pub async fn serve<IO, H, F>(
    io: IO,
    handler: H,
    info: Arc<ConnInfo>,
    opts: H2Options,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    let mut wbuf = Vec::with_capacity(16 * 1024);
    frame::settings(
        &mut wbuf,
        &[
            (
                frame::SETTINGS_MAX_CONCURRENT_STREAMS,
                opts.max_concurrent_streams,
            ),
            (
                frame::SETTINGS_MAX_HEADER_LIST_SIZE,
                u32::try_from(opts.max_header_list_size).unwrap_or(u32::MAX),
            ),
            (
                frame::SETTINGS_INITIAL_WINDOW_SIZE,
                STREAM_RECV_WINDOW as u32,
            ),
        ],
    );
    frame::window_update(
        &mut wbuf,
        0,
        (CONN_RECV_WINDOW - frame::DEFAULT_WINDOW) as u32,
    );
    let mut conn = Conn {
        io,
        rbuf: BytesMut::with_capacity(16 * 1024),
        wbuf,
        wpos: 0,
        need_flush: false,
        hblock: Vec::with_capacity(512),
        handler,
        info,
        opts,
        decoder: hdecode::Decoder::default(),
        handling: FuturesUnordered::new(),
        bodies: FuturesUnordered::new(),
        streams: HashMap::default(),
        conn_window: frame::DEFAULT_WINDOW,
        peer_initial_window: frame::DEFAULT_WINDOW,
        peer_max_frame: frame::DEFAULT_MAX_FRAME,
        last_stream: 0,
        reset_credit: opts.max_early_resets,
        local_resets: 0,
        shared: Arc::new(body::ConnShared::default()),
        released: Vec::new(),
        recv_window: CONN_RECV_WINDOW,
        buffered: 0,
        preface: false,
        got_settings: false,
        continuation: None,
        closing: false,
        draining: false,
        shutdown: Box::pin(shutdown.cancelled_owned()),
        keepalive: Box::pin(tokio::time::sleep(KEEPALIVE_INTERVAL)),
        ping_outstanding: false,
        alive: false,
    };
    std::future::poll_fn(|cx| conn.poll(cx)).await
}

impl<IO, H, F> Conn<IO, H, F>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // 0. Request-body bytes the pipeline took: their window goes back to the client.
            // After a connection error's GOAWAY nothing more is written (RFC 9113 §5.4.1): no
            // window given back (the streams' bodies dropped with it release theirs), no
            // keep-alive PING, no shutdown GOAWAY.
            self.shared.waker.register(cx.waker());
            if !self.closing {
                self.take_released();
            }
            // Keep-alive: a PING every KEEPALIVE_INTERVAL; no ACK within KEEPALIVE_TIMEOUT and
            // the peer is gone.
            if self.keepalive.as_mut().poll(cx).is_ready() {
                // Closing, and the GOAWAY still not taken by the peer by then: closed.
                if self.closing {
                    return Poll::Ready(());
                }
                if self.ping_outstanding {
                    if !std::mem::take(&mut self.alive) {
                        tracing::debug!("h2 keep-alive PING not answered; closing");
                        return Poll::Ready(());
                    }
                    let at = tokio::time::Instant::now() + KEEPALIVE_TIMEOUT;
                    self.keepalive.as_mut().reset(at);
                    continue;
                }
                frame::head(&mut self.wbuf, 8, frame::PING, 0, 0);
                self.wbuf.extend_from_slice(KEEPALIVE_PAYLOAD);
                self.ping_outstanding = true;
                self.alive = false;
                let at = tokio::time::Instant::now() + KEEPALIVE_TIMEOUT;
                self.keepalive.as_mut().reset(at);
                continue;
            }
            if !self.draining && !self.closing && self.shutdown.as_mut().poll(cx).is_ready() {
                frame::goaway(&mut self.wbuf, self.last_stream, frame::NO_ERROR);
                self.draining = true;
            }
            // 1. Read and handle every frame that has arrived.
            if !self.closing && self.wbuf.len() < WBUF_HIGH {
                let mut reads = 0;
                loop {
                    if let Err(ConnError(code)) = self.handle_frames(cx) {
                        frame::goaway(&mut self.wbuf, self.last_stream, code);
                        self.closing = true;
                        break;
                    }
                    if reads == READ_BUDGET {
                        cx.waker().wake_by_ref();
                        break;
                    }
                    reads += 1;
                    if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                        self.rbuf.reserve(16 * 1024);
                    }
                    match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
                    {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Ready(Ok(_)) => self.alive = true,
                        Poll::Pending => break,
                    }
                }
            }
            // 2. Responses whose heads are ready.
            let mut throttled = false;
            while !self.closing {
                if self.wbuf.len() >= WBUF_HIGH {
                    throttled = true;
                    break;
                }
                match self.handling.poll_next_unpin(cx) {
                    Poll::Ready(Some((id, Some(resp)))) => self.respond(id, resp, cx),
                    Poll::Ready(Some((_, None))) => {}
                    _ => break,
                }
            }
            // 3. Body frames that have come.
            while !self.closing {
                if self.wbuf.len() >= WBUF_HIGH {
                    throttled = true;
                    break;
                }
                match self.bodies.poll_next_unpin(cx) {
                    Poll::Ready(Some((id, Some((body, polled))))) => {
                        if self.body_frame(id, &body, polled) {
                            self.drive_body(id, body, cx);
                        }
                    }
                    Poll::Ready(Some((_, None))) => {}
                    _ => break,
                }
            }
            // 4. Write what was gathered.
            while self.wpos < self.wbuf.len() {
                match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(n)) => {
                        // While reading is stopped (output past WBUF_HIGH), the peer taking
                        // our output is what shows it is there.
                        self.alive |= self.wbuf.len() >= WBUF_HIGH;
                        self.wpos += n;
                        self.need_flush = true;
                    }
                    Poll::Pending => break,
                }
            }
            let written = self.wpos == self.wbuf.len();
            if written {
                self.wbuf.clear();
                self.wpos = 0;
                if self.need_flush {
                    match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => self.need_flush = false,
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => {}
                    }
                }
            }
            if written && !self.need_flush {
                if self.closing || (self.draining && self.streams.is_empty()) {
                    return Poll::Ready(());
                }
                if throttled {
                    continue;
                }
            }
            return Poll::Pending;
        }
    }

    /// Handles the complete frames in the read buffer.
    fn handle_frames(&mut self, cx: &mut Context<'_>) -> Result<(), ConnError> {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let result = self.frames_in(&mut rbuf, cx);
        self.rbuf = rbuf;
        result
    }

    fn frames_in(&mut self, rbuf: &mut BytesMut, cx: &mut Context<'_>) -> Result<(), ConnError> {
        if !self.preface {
            let n = rbuf.len().min(PREFACE.len());
            if rbuf[..n] != PREFACE[..n] {
                return Err(ConnError(frame::PROTOCOL_ERROR));
            }
            if n < PREFACE.len() {
                return Ok(());
            }
            rbuf.advance(PREFACE.len());
            self.preface = true;
        }
        while rbuf.len() >= frame::HEADER_LEN && !self.closing {
            let mut h = [0u8; frame::HEADER_LEN];
            h.copy_from_slice(&rbuf[..frame::HEADER_LEN]);
            let head = frame::Head::parse(&h);
            if head.len > frame::DEFAULT_MAX_FRAME {
                return Err(ConnError(frame::FRAME_SIZE_ERROR));
            }
            if rbuf.len() < frame::HEADER_LEN + head.len {
                break;
            }
            let payload = &rbuf[frame::HEADER_LEN..frame::HEADER_LEN + head.len];
            let result = self.frame_in(head, payload, cx);
            rbuf.advance(frame::HEADER_LEN + head.len);
            result?;
        }
        Ok(())
    }

    fn frame_in(
        &mut self,
        head: frame::Head,
        payload: &[u8],
        cx: &mut Context<'_>,
    ) -> Result<(), ConnError> {
        if !self.got_settings && head.kind != frame::SETTINGS {
            return Err(ConnError(frame::PROTOCOL_ERROR));
        }
        if let Some(c) = &self.continuation
            && (head.kind != frame::CONTINUATION || head.stream != c.id)
        {
            return Err(ConnError(frame::PROTOCOL_ERROR));
        }
        match head.kind {
            frame::DATA => self.data_in(head, payload),
            frame::HEADERS => self.headers_in(head, payload, cx),
            frame::CONTINUATION => {
                let Some(mut c) = self.continuation.take() else {
                    return Err(ConnError(frame::PROTOCOL_ERROR));
                };
                c.block.extend_from_slice(payload);
                c.frames += 1;
                // CONTINUATION flood: a block is never larger than the header list allowed,
                // nor spread over more than MAX_CONTINUATIONS frames.
                if c.block.len() > self.opts.max_header_list_size || c.frames > MAX_CONTINUATIONS {
                    return Err(ConnError(frame::ENHANCE_YOUR_CALM));
                }
                if head.flags & frame::END_HEADERS != 0 {
                    self.header_block(c.id, c.end_stream, &c.block, cx)
                } else {
                    self.continuation = Some(c);
                    Ok(())
                }
            }
            frame::PRIORITY => {
                if head.stream == 0 {
                    return Err(ConnError(frame::PROTOCOL_ERROR));
                }
                Ok(())
            }
            frame::RST_STREAM => {
                if head.stream == 0 || head.len != 4 {
                    return Err(ConnError(if head.stream == 0 {
                        frame::PROTOCOL_ERROR
                    } else {
                        frame::FRAME_SIZE_ERROR
                    }));
                }
                if head.stream > self.last_stream {
                    return Err(ConnError(frame::PROTOCOL_ERROR));
                }
                self.reset_by_peer(head.stream)
            }
            frame::SETTINGS => self.settings_in(head, payload, cx),
            frame::PUSH_PROMISE => Err(ConnError(frame::PROTOCOL_ERROR)),
            frame::PING => {
                if head.stream != 0 {
                    return Err(ConnError(frame::PROTOCOL_ERROR));
                }
                if head.len != 8 {
                    return Err(ConnError(frame::FRAME_SIZE_ERROR));
                }
                if head.flags & frame::ACK == 0 {
                    frame::ping_ack(&mut self.wbuf, payload);
                } else if self.ping_outstanding && payload == KEEPALIVE_PAYLOAD {
                    self.ping_outstanding = false;
                    let at = tokio::time::Instant::now() + KEEPALIVE_INTERVAL;
                    self.keepalive.as_mut().reset(at);
                }
                Ok(())
            }
            frame::GOAWAY => {
                if head.stream != 0 {
                    return Err(ConnError(frame::PROTOCOL_ERROR));
                }
                self.draining = true;
                Ok(())
            }
            frame::WINDOW_UPDATE => self.window_update_in(head, payload, cx),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    fn settings_in(
        &mut self,
        head: frame::Head,
        payload: &[u8],
        cx: &mut Context<'_>,
    ) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(ConnError(frame::PROTOCOL_ERROR));
        }
        if head.flags & frame::ACK != 0 {
            if head.len != 0 {
                return Err(ConnError(frame::FRAME_SIZE_ERROR));
            }
            return Ok(());
        }
        if !head.len.is_multiple_of(6) {
            return Err(ConnError(frame::FRAME_SIZE_ERROR));
        }
        self.got_settings = true;
        let mut grown = false;
        for p in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([p[0], p[1]]);
            let value = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            match id {
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(ConnError(frame::FLOW_CONTROL_ERROR));
                    }
                    let delta = value - self.peer_initial_window;
                    self.peer_initial_window = value;
                    for st in self.streams.values_mut() {
                        st.window += delta;
                        if st.window > frame::MAX_WINDOW {
                            return Err(ConnError(frame::FLOW_CONTROL_ERROR));
                        }
                    }
                    grown |= delta > 0;
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(ConnError(frame::PROTOCOL_ERROR));
                    }
                    self.peer_max_frame = value as usize;
                }
                // HEADER_TABLE_SIZE: our encoder never uses the dynamic table. ENABLE_PUSH,
                // MAX_CONCURRENT_STREAMS: we never push. MAX_HEADER_LIST_SIZE: advisory.
                _ => {}
            }
        }
        frame::settings_ack(&mut self.wbuf);
        if grown {
            self.resume_parked(cx);
        }
        Ok(())
    }

    fn window_update_in(
        &mut self,
        head: frame::Head,
        payload: &[u8],
        cx: &mut Context<'_>,
    ) -> Result<(), ConnError> {
        if head.len != 4 {
            return Err(ConnError(frame::FRAME_SIZE_ERROR));
        }
        let inc = i64::from(
            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
        );
        if head.stream == 0 {
            if inc == 0 {
                return Err(ConnError(frame::PROTOCOL_ERROR));
            }
            self.conn_window += inc;
            if self.conn_window > frame::MAX_WINDOW {
                return Err(ConnError(frame::FLOW_CONTROL_ERROR));
            }
            self.resume_parked(cx);
            return Ok(());
        }
        let Some(st) = self.streams.get_mut(&head.stream) else {
            return Ok(());
        };
        if inc == 0 || st.window + inc > frame::MAX_WINDOW {
            let code = if inc == 0 {
                frame::PROTOCOL_ERROR
            } else {
                frame::FLOW_CONTROL_ERROR
            };
            // The MadeYouReset vector (CVE-2025-8671): counted.
            return self.local_reset(head.stream, code, body::Broken::Reset);
        }
        st.window += inc;
        if st.parked.is_some() {
            self.resume(head.stream, cx);
        }
        Ok(())
    }

    fn data_in(&mut self, head: frame::Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError(frame::PROTOCOL_ERROR));
        }
        if head.stream > self.last_stream {
            return Err(ConnError(frame::PROTOCOL_ERROR));
        }
        // The whole frame counts against flow control (RFC 9113 §6.9.1).
        self.recv_window -= head.len as i64;
        if self.recv_window < 0 {
            return Err(ConnError(frame::FLOW_CONTROL_ERROR));
        }
        let id = head.stream;
        let data = strip_padding(head.flags, payload)?;
        let end = head.flags & frame::END_STREAM != 0;
        let Some(st) = self.streams.get_mut(&id) else {
            self.give_back(head.len);
            return Ok(());
        };
        if st.discard {
            self.give_back(head.len);
            return Ok(());
        }
        let Some(rx) = st.receiving.as_mut() else {
            // Half-closed (remote): STREAM_CLOSED (§5.1).
            self.give_back(head.len);
            return self.local_reset(id, frame::STREAM_CLOSED, body::Broken::Reset);
        };
        rx.window -= head.len as i64;
        rx.received += data.len() as u64;
        let broken = if rx.window < 0 {
            Some((frame::FLOW_CONTROL_ERROR, body::Broken::Reset))
        } else if rx.declared.is_some_and(|d| rx.received > d) {
            // Never more than the content-length sent upstream (request smuggling).
            Some((frame::PROTOCOL_ERROR, body::Broken::LengthMismatch))
        } else if rx.received > MAX_REQUEST_BODY {
            Some((frame::CANCEL, body::Broken::TooLarge))
        } else {
            None
        };
        if let Some((code, why)) = broken {
            self.give_back(head.len);
            return if code == frame::CANCEL {
                self.reset_with(id, code, why);
                Ok(())
            } else {
                self.local_reset(id, code, why)
            };
        }
        let padding = head.len - data.len();
        let taken = data.is_empty() || rx.feed.push(Bytes::copy_from_slice(data));
        let given = if taken {
            self.buffered += data.len();
            padding
        } else {
            // The pipeline dropped the body: nothing is kept.
            head.len
        };
        if given > 0 {
            self.give_back(given);
            self.give_back_stream(id, given);
        }
        if end {
            return self.body_complete(id);
        }
        Ok(())
    }

    /// Window back to the client for the connection.
    fn give_back(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.recv_window += n as i64;
        frame::window_update(&mut self.wbuf, 0, n as u32);
    }

    /// Window back for a stream whose body is still arriving.
    fn give_back_stream(&mut self, id: u32, n: usize) {
        if let Some(rx) = self
            .streams
            .get_mut(&id)
            .and_then(|st| st.receiving.as_mut())
        {
            rx.window += n as i64;
            frame::window_update(&mut self.wbuf, id, n as u32);
        }
    }

    /// Bytes the bodies' readers took or dropped.
    fn take_released(&mut self) {
        let mut released = std::mem::take(&mut self.released);
        self.shared.take_released(&mut released);
        for &(id, n) in &released {
            self.buffered = self.buffered.saturating_sub(n);
            self.give_back(n);
            self.give_back_stream(id, n);
        }
        released.clear();
        self.released = released;
    }

    /// END_STREAM on a request body: it ends, if as long as its content-length said.
    fn body_complete(&mut self, id: u32) -> Result<(), ConnError> {
        let Some(rx) = self.streams.get_mut(&id).and_then(|st| st.receiving.take()) else {
            return Ok(());
        };
        if rx.declared.is_some_and(|d| d != rx.received) {
            // RFC 9113 §8.1.1: malformed; the body ends in an error, never cut short upstream.
            let n = rx.feed.break_off(body::Broken::LengthMismatch);
            self.buffered = self.buffered.saturating_sub(n);
            self.give_back(n);
            return self.local_reset(id, frame::PROTOCOL_ERROR, body::Broken::LengthMismatch);
        }
        rx.feed.end();
        Ok(())
    }

    fn headers_in(
        &mut self,
        head: frame::Head,
        payload: &[u8],
        cx: &mut Context<'_>,
    ) -> Result<(), ConnError> {
        let id = head.stream;
        if id == 0 {
            return Err(ConnError(frame::PROTOCOL_ERROR));
        }
        let mut block = strip_padding(head.flags, payload)?;
        if head.flags & frame::PRIORITY_FLAG != 0 {
            if block.len() < 5 {
                return Err(ConnError(frame::FRAME_SIZE_ERROR));
            }
            block = &block[5..];
        }
        let end_stream = head.flags & frame::END_STREAM != 0;
        if head.flags & frame::END_HEADERS == 0 {
            if block.len() > self.opts.max_header_list_size {
                return Err(ConnError(frame::ENHANCE_YOUR_CALM));
            }
            self.continuation = Some(Continuation {
                id,
                end_stream,
                block: block.to_vec(),
                frames: 0,
            });
            return Ok(());
        }
        self.header_block(id, end_stream, block, cx)
    }

    /// A complete header block: a new request, or the trailers of one whose body is arriving.
    fn header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
        cx: &mut Context<'_>,
    ) -> Result<(), ConnError> {
        let trailers = id <= self.last_stream;
        if trailers {
            // Decoded all the same: the decoder's table must follow the peer's encoder.
            self.decoder
                .decode(block, |_, _| {})
                .map_err(|_| ConnError(frame::COMPRESSION_ERROR))?;
            match self.streams.get(&id) {
                // Closed by us (answered, or reset): frames that cross ours are ignored
                // (RFC 9113 §5.1), and so are a discarded body's.
                None => return Ok(()),
                Some(st) if st.discard => return Ok(()),
                // Half-closed (remote): STREAM_CLOSED.
                Some(st) if st.receiving.is_none() => {
                    return self.local_reset(id, frame::STREAM_CLOSED, body::Broken::Reset);
                }
                Some(_) => {}
            }
            if !end_stream {
                return self.local_reset(id, frame::PROTOCOL_ERROR, body::Broken::Reset);
            }
            return self.body_complete(id);
        }
        if id.is_multiple_of(2) {
            return Err(ConnError(frame::PROTOCOL_ERROR));
        }
        self.last_stream = id;
        let decoded = self.decode_request(block)?;
        if self.draining {
            return Ok(());
        }
        if self.streams.len() >= self.opts.max_concurrent_streams as usize {
            frame::rst_stream(&mut self.wbuf, id, frame::REFUSED_STREAM);
            return Ok(());
        }
        let Some(req) = decoded else {
            frame::rst_stream(&mut self.wbuf, id, frame::PROTOCOL_ERROR);
            return self.count_local_reset();
        };
        let st = Stream {
            window: self.peer_initial_window,
            ..Stream::default()
        };
        self.streams.insert(id, st);
        let declared = match req.headers().get(http::header::CONTENT_LENGTH) {
            None => None,
            Some(v) => match v.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(n) => Some(n),
                None => {
                    return self.local_reset(id, frame::PROTOCOL_ERROR, body::Broken::Reset);
                }
            },
        };
        if end_stream {
            // §8.1.1: a content-length the DATA (none) disagrees with is malformed.
            if declared.is_some_and(|n| n != 0) {
                return self.local_reset(id, frame::PROTOCOL_ERROR, body::Broken::LengthMismatch);
            }
            self.start(id, req.map(|()| RequestBody::Whole(None)));
            return Ok(());
        }
        // The body streams to the pipeline as it arrives.
        if declared.is_some_and(|n| n > MAX_REQUEST_BODY) {
            // Refused before the request goes on: the client is told why, and what it still
            // sends is released at once; then the stream ends (RFC 9113 §8.1).
            if let Some(st) = self.streams.get_mut(&id) {
                st.discard = true;
            }
            let resp = crate::status::Status::failure(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!("kubeguard: request body larger than {MAX_REQUEST_BODY} bytes"),
            )
            .into_response();
            self.respond(id, resp, cx);
            return Ok(());
        }
        let (feed, body) = body::channel(id, self.shared.clone(), declared);
        if let Some(st) = self.streams.get_mut(&id) {
            st.receiving = Some(Box::new(Receiving {
                feed,
                window: STREAM_RECV_WINDOW,
                received: 0,
                declared,
            }));
        }
        self.start(id, req.map(|()| RequestBody::H2(body)));
        Ok(())
    }

    /// Decodes a request head; `None` when it is malformed (a stream error).
    fn decode_request(&mut self, block: &[u8]) -> Result<Option<Request<()>>, ConnError> {
        let mut method = None;
        let mut path = None;
        let mut authority = None;
        let mut scheme = false;
        let mut headers = HeaderMap::new();
        let mut cookie: Option<Vec<u8>> = None;
        let mut malformed = false;
        let mut regular = false;
        let mut size = 0usize;
        let limit = self.opts.max_header_list_size;
        self.decoder
            .decode(block, |name, value| {
                size += name.len() + value.len() + 32;
                if size > limit || malformed {
                    malformed = true;
                    return;
                }
                // RFC 9113 §8.2.1: no upper case in names; no leading or trailing whitespace
                // in values (CR, LF and NUL anywhere are refused by HeaderValue below).
                if name.iter().any(u8::is_ascii_uppercase)
                    || value.first().zip(value.last()).is_some_and(|(a, b)| {
                        matches!(a, b' ' | b'\t') || matches!(b, b' ' | b'\t')
                    })
                {
                    malformed = true;
                    return;
                }
                if name.first() == Some(&b':') {
                    // §8.3: pseudo-header fields come first, once each, and only these.
                    if regular {
                        malformed = true;
                        return;
                    }
                    let dup = match name {
                        b":method" => method
                            .replace(Method::from_bytes(value).map_err(|_| ()))
                            .is_some(),
                        b":path" => path.replace(Bytes::copy_from_slice(value)).is_some(),
                        b":authority" => authority
                            .replace(HeaderValue::from_bytes(value).map_err(|_| ()))
                            .is_some(),
                        b":scheme" => std::mem::replace(&mut scheme, true),
                        _ => true,
                    };
                    malformed |= dup;
                    return;
                }
                regular = true;
                // §8.2.2: connection-specific fields, and TE other than "trailers".
                if matches!(
                    name,
                    b"connection"
                        | b"keep-alive"
                        | b"proxy-connection"
                        | b"transfer-encoding"
                        | b"upgrade"
                ) || (name == b"te" && value != b"trailers")
                {
                    malformed = true;
                    return;
                }
                if name == b"cookie" {
                    // RFC 9113 §8.2.3: crumbs are joined with "; ".
                    let c = cookie.get_or_insert_with(Vec::new);
                    if !c.is_empty() {
                        c.extend_from_slice(b"; ");
                    }
                    c.extend_from_slice(value);
                    return;
                }
                match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                    (Ok(n), Ok(v)) => {
                        headers.append(n, v);
                    }
                    _ => malformed = true,
                }
            })
            .map_err(|_| ConnError(frame::COMPRESSION_ERROR))?;
        let (Some(Ok(method)), Some(path), true, false) = (method, path, scheme, malformed) else {
            return Ok(None);
        };
        let authority = match authority {
            Some(Ok(a)) => Some(a),
            Some(Err(())) => return Ok(None),
            None => None,
        };
        // §8.3.1: ":path" is never empty for http and https.
        if path.is_empty() {
            return Ok(None);
        }
        // One content-length (§8.1.1); several are refused rather than guessed between.
        let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
        if lengths.next().is_some() && lengths.next().is_some() {
            return Ok(None);
        }
        if method == Method::CONNECT {
            return Ok(None);
        }
        let Ok(uri) = Uri::from_maybe_shared(path) else {
            return Ok(None);
        };
        if let Some(c) = cookie {
            match HeaderValue::from_bytes(&c) {
                Ok(v) => {
                    headers.insert(COOKIE, v);
                }
                Err(_) => return Ok(None),
            }
        }
        if let Some(a) = authority
            && !headers.contains_key(HOST)
        {
            headers.insert(HOST, a);
        }
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = http::Version::HTTP_2;
        *req.headers_mut() = headers;
        Ok(Some(req))
    }

    /// The pipeline takes the request, in this connection's task.
    fn start(&mut self, id: u32, req: Request<RequestBody>) {
        let fut = (self.handler)(req, self.info.clone());
        self.handling.push(Handling {
            id,
            waker: None,
            fut: Some(Box::pin(fut)),
        });
    }

    /// The response head: HEADERS (and CONTINUATION), then the body.
    fn respond(&mut self, id: u32, resp: Response<ProxyBody>, cx: &mut Context<'_>) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        st.answered = true;
        self.reset_credit = (self.reset_credit + 1).min(self.opts.max_early_resets);
        let (parts, body) = resp.into_parts();
        let mut block = std::mem::take(&mut self.hblock);
        block.clear();
        hpack::status(&mut block, parts.status.as_u16());
        for (name, value) in &parts.headers {
            // Connection-specific fields have no place in h2 (RFC 9113 §8.2.2).
            if is_connection_specific(name) {
                continue;
            }
            hpack::field(&mut block, name.as_str(), value.as_bytes());
        }
        let end = body.is_end_stream();
        let mut rest = &block[..];
        let mut kind = frame::HEADERS;
        loop {
            let n = rest.len().min(self.peer_max_frame);
            let last = n == rest.len();
            let mut flags = if last { frame::END_HEADERS } else { 0 };
            if kind == frame::HEADERS && end {
                flags |= frame::END_STREAM;
            }
            frame::head(&mut self.wbuf, n, kind, flags, id);
            self.wbuf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            kind = frame::CONTINUATION;
            if last {
                break;
            }
        }
        self.hblock = block;
        if end {
            self.finish(id);
            return;
        }
        self.drive_body(id, body, cx);
    }

    /// Takes the body's frames while they are ready and the windows allow; parks it or leaves
    /// it to `bodies` otherwise.
    fn drive_body(&mut self, id: u32, mut body: ProxyBody, cx: &mut Context<'_>) {
        loop {
            let Some(st) = self.streams.get_mut(&id) else {
                return;
            };
            if st.parked.is_some() {
                st.body = Some(body);
                return;
            }
            if self.wbuf.len() >= WBUF_HIGH {
                self.bodies.push(NextFrame {
                    id,
                    body: Some(body),
                    waker: None,
                });
                return;
            }
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Pending => {
                    self.bodies.push(NextFrame {
                        id,
                        body: Some(body),
                        waker: None,
                    });
                    return;
                }
                Poll::Ready(polled) => {
                    if !self.body_frame(id, &body, polled) {
                        return;
                    }
                }
            }
        }
    }

    /// One polled body frame; whether the body goes on.
    fn body_frame(&mut self, id: u32, body: &ProxyBody, polled: Polled) -> bool {
        match polled {
            Some(Ok(f)) => match f.into_data() {
                Ok(data) => {
                    let end = body.is_end_stream();
                    self.send_data(id, data, end);
                    !end
                }
                // Trailers are not passed on.
                Err(_) => true,
            },
            None => {
                self.send_data(id, Bytes::new(), true);
                false
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, stream = id, "response body failed");
                self.reset(id, frame::INTERNAL_ERROR);
                false
            }
        }
    }

    /// DATA frames within the peer's frame size and the send windows; what does not fit waits
    /// for WINDOW_UPDATE.
    fn send_data(&mut self, id: u32, mut data: Bytes, end: bool) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        loop {
            let window = self.conn_window.min(st.window).max(0) as usize;
            let n = data.len().min(self.peer_max_frame).min(window);
            if n == 0 && !data.is_empty() {
                st.parked = Some((data, end));
                return;
            }
            let last = n == data.len();
            frame::head(
                &mut self.wbuf,
                n,
                frame::DATA,
                if last && end { frame::END_STREAM } else { 0 },
                id,
            );
            self.wbuf.extend_from_slice(&data[..n]);
            data.advance(n);
            self.conn_window -= n as i64;
            st.window -= n as i64;
            if last {
                if end {
                    self.finish(id);
                }
                return;
            }
        }
    }

    /// A stream's window grew: its parked data goes, then its body goes on.
    fn resume(&mut self, id: u32, cx: &mut Context<'_>) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        let Some((data, end)) = st.parked.take() else {
            return;
        };
        let body = st.body.take();
        self.send_data(id, data, end);
        if let Some(body) = body {
            self.drive_body(id, body, cx);
        }
    }

    fn resume_parked(&mut self, cx: &mut Context<'_>) {
        let parked: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, st)| st.parked.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in parked {
            if self.conn_window <= 0 {
                break;
            }
            self.resume(id, cx);
        }
    }

    /// The response is complete. A request body still arriving (or being discarded) is not
    /// wanted any more: RST_STREAM(NO_ERROR) tells the client to stop (RFC 9113 §8.1), and
    /// the body, should the pipeline still hold it, ends in an error.
    fn finish(&mut self, id: u32) {
        if let Some(st) = self.streams.remove(&id)
            && (st.receiving.is_some() || st.discard)
        {
            frame::rst_stream(&mut self.wbuf, id, frame::NO_ERROR);
        }
    }

    /// We end a stream with RST_STREAM.
    fn reset(&mut self, id: u32, code: u32) {
        self.reset_with(id, code, body::Broken::Reset);
    }

    /// We end a stream with RST_STREAM; its body, if still arriving, ends in `why`.
    fn reset_with(&mut self, id: u32, code: u32, why: body::Broken) {
        if let Some(rx) = self.streams.get_mut(&id).and_then(|st| st.receiving.take()) {
            let n = rx.feed.break_off(why);
            self.buffered = self.buffered.saturating_sub(n);
            self.give_back(n);
        }
        frame::rst_stream(&mut self.wbuf, id, code);
        self.drop_stream(id);
    }

    /// We reset a stream because the client broke the protocol: counted against
    /// `max_local_resets` (MadeYouReset, CVE-2025-8671).
    fn local_reset(&mut self, id: u32, code: u32, why: body::Broken) -> Result<(), ConnError> {
        self.reset_with(id, code, why);
        self.count_local_reset()
    }

    fn count_local_reset(&mut self) -> Result<(), ConnError> {
        self.local_resets += 1;
        if self.local_resets > self.opts.max_local_resets {
            return Err(ConnError(frame::ENHANCE_YOUR_CALM));
        }
        Ok(())
    }

    fn reset_by_peer(&mut self, id: u32) -> Result<(), ConnError> {
        let early = self.streams.get(&id).is_some_and(|st| !st.answered);
        self.drop_stream(id);
        if early {
            if self.reset_credit == 0 {
                return Err(ConnError(frame::ENHANCE_YOUR_CALM));
            }
            self.reset_credit -= 1;
        }
        Ok(())
    }

    /// Drops a stream's state, and its pipeline future or body wherever they are.
    fn drop_stream(&mut self, id: u32) {
        let Some(st) = self.streams.remove(&id) else {
            return;
        };
        if let Some(rx) = st.receiving {
            let n = rx.feed.break_off(body::Broken::Reset);
            self.buffered = self.buffered.saturating_sub(n);
            self.give_back(n);
        }
        for h in Pin::new(&mut self.handling).iter_pin_mut() {
            if h.id == id {
                h.cancel();
                break;
            }
        }
        for b in self.bodies.iter_mut() {
            if b.id == id {
                b.cancel();
                break;
            }
        }
    }
}

fn strip_padding(flags: u8, payload: &[u8]) -> Result<&[u8], ConnError> {
    if flags & frame::PADDED == 0 {
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(ConnError(frame::FRAME_SIZE_ERROR));
    };
    let pad = usize::from(pad);
    if pad > rest.len() {
        return Err(ConnError(frame::PROTOCOL_ERROR));
    }
    Ok(&rest[..rest.len() - pad])
}

fn is_connection_specific(name: &HeaderName) -> bool {
    use http::header::{CONNECTION, TRANSFER_ENCODING, UPGRADE};
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

#[cfg(test)]
mod tests;
