//! The server driven frame by frame over an in-memory pipe, with handlers that show what the
//! pipeline would see (bodies held unread, released on a signal).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

use super::*;

fn opts() -> H2Options {
    H2Options {
        max_concurrent_streams: 250,
        max_header_list_size: 64 * 1024,
        max_early_resets: 20,
        max_local_resets: 1024,
    }
}

fn info() -> Arc<ConnInfo> {
    Arc::new(ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        loopback_listener: true,
        tls: false,
        peer_cert: None,
        tokens: Default::default(),
    })
}

fn ok() -> Response<ProxyBody> {
    crate::status::Status::failure(StatusCode::OK, "", "").into_response()
}

struct Client {
    io: DuplexStream,
    rbuf: BytesMut,
    decoder: hdecode::Decoder,
}

#[derive(Debug)]
struct In {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Bytes,
}

impl Client {
    /// Starts `serve` with `handler` and does the client's side of the handshake.
    async fn start<H, F>(opts: H2Options, handler: H) -> Client
    where
        H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Send + 'static,
        F: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        Client::start_with(opts, handler, CancellationToken::new()).await
    }

    /// As `start`, with the front end's shutdown signal.
    async fn start_with<H, F>(opts: H2Options, handler: H, shutdown: CancellationToken) -> Client
    where
        H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Send + 'static,
        F: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(serve(server, handler, info(), opts, shutdown));
        let mut c = Client {
            io: client,
            rbuf: BytesMut::new(),
            decoder: hdecode::Decoder::default(),
        };
        let mut out = PREFACE.to_vec();
        frame::settings(&mut out, &[]);
        c.send(&out).await;
        c
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    async fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let mut out = Vec::with_capacity(9 + payload.len());
        frame::head(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        self.send(&out).await;
    }

    /// A request head; `fields` after the pseudo-headers of a POST (or `pseudo` instead).
    async fn headers(&mut self, stream: u32, end_stream: bool, block: &[u8]) {
        let flags = frame::END_HEADERS | if end_stream { frame::END_STREAM } else { 0 };
        self.frame(frame::HEADERS, flags, stream, block).await;
    }

    /// The next frame, or `None` when the server closed.
    async fn next(&mut self) -> Option<In> {
        loop {
            if self.rbuf.len() >= 9 {
                let mut h = [0u8; 9];
                h.copy_from_slice(&self.rbuf[..9]);
                let head = frame::Head::parse(&h);
                if self.rbuf.len() >= 9 + head.len {
                    self.rbuf.advance(9);
                    let payload = self.rbuf.split_to(head.len).freeze();
                    return Some(In {
                        kind: head.kind,
                        flags: head.flags,
                        stream: head.stream,
                        payload,
                    });
                }
            }
            let n = tokio::time::timeout(Duration::from_secs(60), self.io.read_buf(&mut self.rbuf))
                .await
                .expect("a frame within 60 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Frames up to the ACK of a PING sent now: everything the server did with what came
    /// before it.
    async fn sync(&mut self) -> Vec<In> {
        self.frame(frame::PING, 0, 0, b"syncsync").await;
        let mut got = Vec::new();
        while let Some(f) = self.next().await {
            if f.kind == frame::PING && f.flags & frame::ACK != 0 {
                return got;
            }
            got.push(f);
        }
        got
    }

    /// The next frame of `kind` on `stream` (each frame waited for at most 60 s).
    async fn until(&mut self, kind: u8, stream: u32) -> In {
        loop {
            let f = self.next().await.expect("the connection is open");
            if f.kind == kind && f.stream == stream {
                return f;
            }
        }
    }

    fn status(&mut self, f: &In) -> Option<u16> {
        let mut status = None;
        self.decoder
            .decode(&f.payload, |n, v| {
                if n == b":status" {
                    status = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                }
            })
            .unwrap();
        status
    }
}

fn request(method: &str, path: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    hpack::field(&mut b, ":method", method.as_bytes());
    hpack::field(&mut b, ":scheme", b"http");
    hpack::field(&mut b, ":path", path.as_bytes());
    hpack::field(&mut b, ":authority", b"kg");
    for (n, v) in fields {
        hpack::field(&mut b, n, v.as_bytes());
    }
    b
}

fn window_increments(frames: &[In], stream: u32) -> i64 {
    frames
        .iter()
        .filter(|f| f.kind == frame::WINDOW_UPDATE && f.stream == stream)
        .map(|f| i64::from(u32::from_be_bytes(f.payload[..4].try_into().unwrap())))
        .sum()
}

/// Many streams send large bodies without END_STREAM to a pipeline that does not read them:
/// the connection takes exactly its receive window (`CONN_RECV_WINDOW`) and gives none of it
/// back until the bodies are released, then all of it.
#[tokio::test]
async fn request_bodies_held_per_connection_never_pass_the_window() {
    let release = CancellationToken::new();
    let bodies = Arc::new(AtomicUsize::new(0));
    let (r, b) = (release.clone(), bodies.clone());
    let mut c = Client::start(opts(), move |req: Request<RequestBody>, _| {
        let (r, b) = (r.clone(), b.clone());
        async move {
            b.fetch_add(1, Ordering::SeqCst);
            r.cancelled().await;
            drop(req);
            ok()
        }
    })
    .await;
    let first = c.sync().await;
    let mut conn_window = frame::DEFAULT_WINDOW + window_increments(&first, 0);
    assert_eq!(conn_window, CONN_RECV_WINDOW);
    let streams: Vec<u32> = (0..16).map(|i| 1 + 2 * i).collect();
    for &id in &streams {
        c.headers(id, false, &request("POST", "/x", &[])).await;
    }
    // 16 streams x 1 MiB of stream window: twice what the connection may hold.
    let chunk = vec![7u8; frame::DEFAULT_MAX_FRAME];
    let mut stream_sent = vec![0i64; streams.len()];
    let mut sent = 0i64;
    'fill: loop {
        let mut progressed = false;
        for (i, &id) in streams.iter().enumerate() {
            let n = (chunk.len() as i64)
                .min(conn_window)
                .min(STREAM_RECV_WINDOW - stream_sent[i]);
            if n <= 0 {
                continue;
            }
            c.frame(frame::DATA, 0, id, &chunk[..n as usize]).await;
            conn_window -= n;
            stream_sent[i] += n;
            sent += n;
            progressed = true;
            if conn_window == 0 {
                break 'fill;
            }
        }
        assert!(progressed);
    }
    let after = c.sync().await;
    assert_eq!(sent, CONN_RECV_WINDOW);
    assert_eq!(
        window_increments(&after, 0),
        0,
        "no window back while the bodies are held"
    );
    assert!(
        after
            .iter()
            .all(|f| f.kind != frame::RST_STREAM && f.kind != frame::GOAWAY)
    );
    assert_eq!(bodies.load(Ordering::SeqCst), streams.len());
    // The bodies are dropped: the whole window comes back.
    release.cancel();
    let mut back = 0;
    while back < sent {
        let f = c.next().await.expect("window updates");
        if f.kind == frame::WINDOW_UPDATE && f.stream == 0 {
            back += window_increments(std::slice::from_ref(&f), 0);
        }
    }
    assert_eq!(back, sent);
}

/// A DATA frame past the connection's window is FLOW_CONTROL_ERROR (RFC 9113 §6.9.1).
#[tokio::test]
async fn data_past_the_connection_window_is_a_flow_control_error() {
    let mut c = Client::start(opts(), |req: Request<RequestBody>, _| async move {
        std::future::pending::<()>().await;
        drop(req);
        ok()
    })
    .await;
    c.sync().await;
    let chunk = vec![0u8; frame::DEFAULT_MAX_FRAME];
    let mut left = CONN_RECV_WINDOW + 1;
    let mut id = 1;
    while left > 0 {
        c.headers(id, false, &request("POST", "/x", &[])).await;
        let mut on_stream = 0;
        while left > 0 && on_stream + (chunk.len() as i64) <= STREAM_RECV_WINDOW {
            let n = (chunk.len() as i64).min(left) as usize;
            c.frame(frame::DATA, 0, id, &chunk[..n]).await;
            left -= n as i64;
            on_stream += n as i64;
        }
        id += 2;
    }
    assert_eq!(goaway_code(&mut c).await, Some(frame::FLOW_CONTROL_ERROR));
}

/// A declared body past `MAX_REQUEST_BODY` is answered 413 before the pipeline sees it; one
/// without a declared length is reset (CANCEL) once it passes: its pipeline is dropped, never
/// having seen the body complete.
#[tokio::test]
async fn bodies_past_the_per_request_cap() {
    let seen = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let (s, fl) = (seen.clone(), completed.clone());
    let mut c = Client::start(opts(), move |req: Request<RequestBody>, _| {
        let (s, fl) = (s.clone(), fl.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            use http_body_util::BodyExt;
            if req.into_body().collect().await.is_ok() {
                fl.fetch_add(1, Ordering::SeqCst);
            }
            ok()
        }
    })
    .await;
    c.sync().await;
    let big = (MAX_REQUEST_BODY + 1).to_string();
    c.headers(
        1,
        false,
        &request("POST", "/x", &[("content-length", &big)]),
    )
    .await;
    let got = c.sync().await;
    let head = got
        .iter()
        .find(|f| f.kind == frame::HEADERS && f.stream == 1)
        .expect("an answer");
    assert_eq!(c.status(head), Some(413));
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    // Then the client is told to stop sending (RST_STREAM(NO_ERROR), RFC 9113 §8.1).
    let rst = got
        .iter()
        .find(|f| f.kind == frame::RST_STREAM && f.stream == 1)
        .expect("RST_STREAM");
    assert_eq!(rst_code(rst), frame::NO_ERROR);

    // Undeclared: stream 3 sends more than the cap (windows come back as the body is read).
    c.headers(3, false, &request("POST", "/x", &[])).await;
    let chunk = vec![1u8; frame::DEFAULT_MAX_FRAME];
    let mut sent = 0u64;
    let mut reset = None;
    while sent <= MAX_REQUEST_BODY {
        c.frame(frame::DATA, 0, 3, &chunk).await;
        sent += chunk.len() as u64;
        if sent.is_multiple_of(512 * 1024) {
            for f in c.sync().await {
                if f.kind == frame::RST_STREAM && f.stream == 3 {
                    reset = Some(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
                }
            }
        }
    }
    for f in c.sync().await {
        if f.kind == frame::RST_STREAM && f.stream == 3 {
            reset = Some(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
        }
    }
    assert_eq!(reset, Some(frame::CANCEL));
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(completed.load(Ordering::SeqCst), 0, "no body seen complete");
}

/// On shutdown (SIGTERM) the client gets GOAWAY(NO_ERROR) naming the last stream taken; a
/// request in flight is still answered, a stream opened after it is not served, and the
/// connection closes once nothing is left.
#[tokio::test]
async fn shutdown_is_goaway_then_in_flight_streams_finish() {
    let shutdown = CancellationToken::new();
    let (go, served) = (CancellationToken::new(), Arc::new(AtomicUsize::new(0)));
    let (g, n) = (go.clone(), served.clone());
    let mut c = Client::start_with(
        opts(),
        move |_req: Request<RequestBody>, _| {
            let (g, n) = (g.clone(), n.clone());
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                g.cancelled().await;
                ok()
            }
        },
        shutdown.clone(),
    )
    .await;
    c.headers(1, true, &request("GET", "/x", &[])).await;
    c.sync().await;
    assert_eq!(served.load(Ordering::SeqCst), 1);
    shutdown.cancel();
    let goaway = c.until(frame::GOAWAY, 0).await;
    assert_eq!(
        u32::from_be_bytes(goaway.payload[..4].try_into().unwrap()),
        1,
        "last stream id"
    );
    assert_eq!(
        u32::from_be_bytes(goaway.payload[4..8].try_into().unwrap()),
        frame::NO_ERROR
    );
    // A stream opened after the GOAWAY is not served.
    c.headers(3, true, &request("GET", "/x", &[])).await;
    c.sync().await;
    go.cancel();
    let head = c.until(frame::HEADERS, 1).await;
    assert_eq!(c.status(&head), Some(200));
    while let Some(f) = c.next().await {
        assert!(f.stream != 3 || f.kind == frame::RST_STREAM, "{f:?}");
    }
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

async fn goaway_code(c: &mut Client) -> Option<u32> {
    let mut goaway = None;
    while let Some(f) = c.next().await {
        if f.kind == frame::GOAWAY {
            goaway = Some(u32::from_be_bytes(f.payload[4..8].try_into().unwrap()));
        }
    }
    goaway
}

/// A header block spread over more CONTINUATION frames than `MAX_CONTINUATIONS`, empty ones
/// included, is GOAWAY(ENHANCE_YOUR_CALM); one spread over a few is served.
#[tokio::test]
async fn a_continuation_flood_is_cut_off() {
    let mut c = Client::start(opts(), |_req: Request<RequestBody>, _| async { ok() }).await;
    c.sync().await;
    let block = request("GET", "/x", &[]);
    let (a, b) = block.split_at(block.len() / 2);
    c.frame(frame::HEADERS, frame::END_STREAM, 1, a).await;
    c.frame(frame::CONTINUATION, 0, 1, &[]).await;
    c.frame(frame::CONTINUATION, frame::END_HEADERS, 1, b).await;
    let head = c.until(frame::HEADERS, 1).await;
    assert_eq!(c.status(&head), Some(200));

    c.frame(frame::HEADERS, frame::END_STREAM, 3, a).await;
    for _ in 0..=MAX_CONTINUATIONS {
        c.frame(frame::CONTINUATION, 0, 3, &[]).await;
    }
    assert_eq!(goaway_code(&mut c).await, Some(frame::ENHANCE_YOUR_CALM));
}

fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        hpack::field(&mut b, n, v.as_bytes());
    }
    b
}

fn rst_code(f: &In) -> u32 {
    u32::from_be_bytes(f.payload[..4].try_into().unwrap())
}

/// RFC 9113 §8.1.1, §8.2, §8.3: malformed requests are reset (PROTOCOL_ERROR) and never reach
/// the pipeline; a body that disagrees with its content-length never completes there (so it
/// is never passed upstream whole: the upstream request is aborted).
#[tokio::test]
async fn malformed_requests_are_reset_before_the_pipeline() {
    let started = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let (s, d) = (started.clone(), completed.clone());
    let mut c = Client::start(opts(), move |req: Request<RequestBody>, _| {
        let (s, d) = (s.clone(), d.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            use http_body_util::BodyExt;
            if req.into_body().collect().await.is_ok() {
                d.fetch_add(1, Ordering::SeqCst);
            }
            ok()
        }
    })
    .await;
    c.sync().await;
    let get = [(":method", "GET"), (":scheme", "http"), (":path", "/x")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut f = get.to_vec();
        f.extend_from_slice(extra);
        f
    };
    let table: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("upper-case name", with(&[("X-Upper", "a")])),
        ("connection", with(&[("connection", "keep-alive")])),
        ("keep-alive", with(&[("keep-alive", "5")])),
        ("proxy-connection", with(&[("proxy-connection", "x")])),
        (
            "transfer-encoding",
            with(&[("transfer-encoding", "chunked")]),
        ),
        ("upgrade", with(&[("upgrade", "websocket")])),
        ("te gzip", with(&[("te", "gzip")])),
        ("no :method", vec![(":scheme", "http"), (":path", "/x")]),
        ("no :scheme", vec![(":method", "GET"), (":path", "/x")]),
        ("no :path", vec![(":method", "GET"), (":scheme", "http")]),
        (
            "empty :path",
            vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
        ),
        ("two :path", with(&[(":path", "/y")])),
        (
            "two :method",
            vec![
                (":method", "GET"),
                (":method", "DELETE"),
                (":scheme", "http"),
                (":path", "/x"),
            ],
        ),
        ("unknown pseudo", with(&[(":protocol", "websocket")])),
        (
            "pseudo after a field",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                ("x-a", "1"),
                (":path", "/x"),
            ],
        ),
        (
            "pseudo after a cookie",
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                ("cookie", "a=1"),
                (":path", "/x"),
            ],
        ),
        (
            "CONNECT",
            vec![(":method", "CONNECT"), (":authority", "kg:443")],
        ),
        ("CR in a value", with(&[("x-a", "a\rb")])),
        ("LF in a value", with(&[("x-a", "a\nb")])),
        ("NUL in a value", with(&[("x-a", "a\0b")])),
        (
            "CRLF in :authority",
            with(&[(":authority", "kg\r\nx-a: b")]),
        ),
        ("leading space in a value", with(&[("x-a", " a")])),
        (
            "two content-lengths",
            with(&[("content-length", "0"), ("content-length", "0")]),
        ),
        (
            "content-length without DATA",
            with(&[("content-length", "3")]),
        ),
    ];
    for (i, (what, fields)) in table.iter().enumerate() {
        let id = 1 + 2 * i as u32;
        c.headers(id, true, &block(fields)).await;
        let f = c.until(frame::RST_STREAM, id).await;
        assert_eq!(rst_code(&f), frame::PROTOCOL_ERROR, "{what}");
    }
    assert_eq!(started.load(Ordering::SeqCst), 0);

    // Bodies shorter and longer than their content-length.
    let mut id = 1 + 2 * table.len() as u32;
    for (declared, sent) in [("10", 5usize), ("5", 10)] {
        let post = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/x"),
            ("content-length", declared),
        ];
        c.headers(id, false, &block(&post)).await;
        c.frame(frame::DATA, frame::END_STREAM, id, &vec![b'a'; sent])
            .await;
        let f = c.until(frame::RST_STREAM, id).await;
        assert_eq!(rst_code(&f), frame::PROTOCOL_ERROR, "{declared} vs {sent}");
        id += 2;
    }
    // Trailers on a stream already reset by kubeguard are ignored (RFC 9113 §5.1), not a
    // connection error.
    c.headers(id - 2, true, &block(&[("x-trailer", "1")])).await;
    assert!(c.sync().await.iter().all(|f| f.kind != frame::GOAWAY));
    // A well-formed one goes through whole, its trailers ending it.
    let post = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/x"),
        ("content-length", "5"),
        ("te", "trailers"),
    ];
    c.headers(id, false, &block(&post)).await;
    c.frame(frame::DATA, 0, id, b"hello").await;
    c.headers(id, true, &block(&[("x-trailer", "1")])).await;
    let head = c.until(frame::HEADERS, id).await;
    assert_eq!(c.status(&head), Some(200));
    assert_eq!(completed.load(Ordering::SeqCst), 1);
}

/// MadeYouReset (CVE-2025-8671): streams kubeguard resets because the client broke the
/// protocol (a zero WINDOW_UPDATE, a malformed head) are counted; one past
/// `max_local_resets` is GOAWAY(ENHANCE_YOUR_CALM).
#[tokio::test]
async fn streams_reset_for_protocol_errors_are_counted() {
    let o = H2Options {
        max_local_resets: 5,
        ..opts()
    };
    let mut c = Client::start(o, |req: Request<RequestBody>, _| async move {
        std::future::pending::<()>().await;
        drop(req);
        ok()
    })
    .await;
    c.sync().await;
    let get = request("GET", "/x", &[]);
    for i in 0..5u32 {
        let id = 1 + 2 * i;
        if i % 2 == 0 {
            c.headers(id, true, &get).await;
            c.frame(frame::WINDOW_UPDATE, 0, id, &0u32.to_be_bytes())
                .await;
        } else {
            c.headers(id, true, &request("GET", "/x", &[("connection", "close")]))
                .await;
        }
        let f = c.until(frame::RST_STREAM, id).await;
        assert_eq!(rst_code(&f), frame::PROTOCOL_ERROR);
    }
    // A cancel by the client is not counted here (rapid reset has its own credit); the sixth
    // local reset is.
    c.headers(11, true, &get).await;
    c.frame(frame::RST_STREAM, 0, 11, &frame::CANCEL.to_be_bytes())
        .await;
    assert!(c.sync().await.iter().all(|f| f.kind != frame::GOAWAY));
    c.headers(13, true, &get).await;
    c.frame(frame::WINDOW_UPDATE, 0, 13, &0u32.to_be_bytes())
        .await;
    assert_eq!(goaway_code(&mut c).await, Some(frame::ENHANCE_YOUR_CALM));
}

/// Keep-alive (paused clock): a PING every 30 s; answered, the connection stays; unanswered
/// and nothing else heard for 20 s, it is closed.
#[tokio::test(start_paused = true)]
async fn keep_alive_pings_and_closes_a_silent_peer() {
    let mut c = Client::start(opts(), |_req: Request<RequestBody>, _| async { ok() }).await;
    c.sync().await;
    let start = tokio::time::Instant::now();
    let ping = c.until(frame::PING, 0).await;
    assert_eq!(ping.flags & frame::ACK, 0);
    assert_eq!(start.elapsed(), KEEPALIVE_INTERVAL);
    c.frame(frame::PING, frame::ACK, 0, &ping.payload).await;
    let again = c.until(frame::PING, 0).await;
    assert_eq!(start.elapsed(), KEEPALIVE_INTERVAL * 2);
    // Not answered, but the peer sends something else: it is there, given another
    // KEEPALIVE_TIMEOUT; then, silent, closed.
    drop(again);
    c.frame(frame::PING, 0, 0, b"mineping").await;
    while c.next().await.is_some() {}
    assert_eq!(
        start.elapsed(),
        KEEPALIVE_INTERVAL * 2 + KEEPALIVE_TIMEOUT * 2
    );
}

/// The tests' splitmix64 generator: deterministic, so a failure names its case.
use crate::sim::seed::TestRng as Rng;

/// The payload of the PING the random-frame cases end with.
const SYNC: &[u8; 8] = b"fz-sync!";

/// What a random client sent: the bytes, and the largest frame the server may send it.
struct Script {
    bytes: Vec<u8>,
    limits: PeerLimits,
}

/// A client's byte stream for one case: the preface and SETTINGS, then 100 to 400 frames,
/// well-formed ones (requests, bodies, window updates, resets, PING, SETTINGS, PRIORITY,
/// CONTINUATION, GOAWAY, unknown types) and, at a rate drawn per case (none in some cases),
/// mutated ones: bad lengths, wrong stream ids, random payload or HPACK bytes, flipped flags,
/// truncated frames.
fn random_script(rng: &mut Rng) -> Script {
    let mut out = PREFACE.to_vec();
    frame::settings(&mut out, &[]);
    let mutate_one_in = [0, 4, 16, 64][rng.below(4) as usize];
    let frames = 100 + rng.below(301);
    let mut next_id = 1u32;
    let mut open: Vec<u32> = Vec::new();
    for _ in 0..frames {
        // A well-formed frame, or a header block over several frames.
        let mut parts: Vec<(u8, u8, u32, Vec<u8>)> = Vec::new();
        let some_stream = |rng: &mut Rng, open: &[u32], next_id: u32| match open.len() {
            0 => next_id.saturating_sub(2).max(1),
            n => open[rng.below(n as u64) as usize],
        };
        // The first frame opens a stream: DATA or RST_STREAM on an idle one is a connection
        // error, which would end most cases at once.
        let pick = if next_id == 1 { 0 } else { rng.below(14) };
        match pick {
            0..=3 => {
                let id = next_id;
                next_id += 2;
                let (method, path, end) = match rng.below(4) {
                    0 => ("GET", "/x", true),
                    1 => ("GET", "/big", true),
                    2 => ("POST", "/read", false),
                    _ => ("PUT", "/x", false),
                };
                let declared = rng.below(100).to_string();
                let mut fields = vec![];
                if rng.one_in(3) {
                    fields.push(("content-length", declared.as_str()));
                }
                let mut block = request(method, path, &fields);
                if !end {
                    open.push(id);
                }
                let mut flags = if end { frame::END_STREAM } else { 0 };
                if rng.one_in(4) {
                    flags |= frame::PRIORITY_FLAG;
                    block.splice(0..0, [0, 0, 0, 0, 16]);
                }
                if rng.one_in(3) {
                    // Spread over one to three CONTINUATION frames.
                    let from = if flags & frame::PRIORITY_FLAG != 0 {
                        5
                    } else {
                        0
                    };
                    let at = from + rng.below((block.len() - from) as u64) as usize;
                    let rest = block.split_off(at);
                    parts.push((frame::HEADERS, flags, id, block));
                    let n = 1 + rng.below(3) as usize;
                    let step = rest.len().div_ceil(n).max(1);
                    let mut chunks: Vec<Vec<u8>> = rest.chunks(step).map(<[u8]>::to_vec).collect();
                    if chunks.is_empty() {
                        chunks.push(Vec::new());
                    }
                    let last = chunks.len() - 1;
                    for (i, c) in chunks.into_iter().enumerate() {
                        let f = if i == last { frame::END_HEADERS } else { 0 };
                        parts.push((frame::CONTINUATION, f, id, c));
                    }
                } else {
                    if rng.one_in(4) {
                        flags |= frame::PADDED;
                        let pad = rng.below(20) as u8;
                        block.insert(0, pad);
                        block.extend(std::iter::repeat_n(0, usize::from(pad)));
                    }
                    parts.push((frame::HEADERS, flags | frame::END_HEADERS, id, block));
                }
            }
            4..=6 => {
                let id = some_stream(rng, &open, next_id);
                let n = rng.below(3000) as usize;
                let end = rng.one_in(3);
                if end {
                    open.retain(|&o| o != id);
                }
                let mut flags = if end { frame::END_STREAM } else { 0 };
                let mut payload = vec![b'd'; n];
                if rng.one_in(5) {
                    flags |= frame::PADDED;
                    let pad = rng.below(30) as u8;
                    payload.insert(0, pad);
                    payload.extend(std::iter::repeat_n(0, usize::from(pad)));
                }
                parts.push((frame::DATA, flags, id, payload));
            }
            7 => {
                let id = if rng.one_in(2) {
                    0
                } else {
                    some_stream(rng, &open, next_id)
                };
                let inc = 1 + rng.below(1 << 20) as u32;
                parts.push((frame::WINDOW_UPDATE, 0, id, inc.to_be_bytes().to_vec()));
            }
            8 => {
                let id = some_stream(rng, &open, next_id);
                open.retain(|&o| o != id);
                let code =
                    [frame::CANCEL, frame::NO_ERROR, frame::PROTOCOL_ERROR][rng.below(3) as usize];
                parts.push((frame::RST_STREAM, 0, id, code.to_be_bytes().to_vec()));
            }
            9 => {
                let flags = if rng.one_in(4) { frame::ACK } else { 0 };
                parts.push((frame::PING, flags, 0, rng.bytes(8)));
            }
            10 => {
                if rng.one_in(3) {
                    parts.push((frame::SETTINGS, frame::ACK, 0, Vec::new()));
                } else {
                    let mut p = Vec::new();
                    for _ in 0..rng.below(4) {
                        let (id, value) = match rng.below(4) {
                            0 => (
                                frame::SETTINGS_INITIAL_WINDOW_SIZE,
                                rng.below(1 << 17) as u32,
                            ),
                            1 => (
                                frame::SETTINGS_MAX_FRAME_SIZE,
                                16_384 + rng.below(40_000) as u32,
                            ),
                            2 => (0x1, rng.below(8192) as u32),
                            _ => (0x99, rng.next() as u32),
                        };
                        p.extend_from_slice(&id.to_be_bytes());
                        p.extend_from_slice(&value.to_be_bytes());
                    }
                    parts.push((frame::SETTINGS, 0, 0, p));
                }
            }
            11 => {
                let ahead = next_id + 2 * rng.below(3) as u32;
                let id = some_stream(rng, &open, ahead);
                parts.push((frame::PRIORITY, 0, id, vec![0, 0, 0, 1, 16]));
            }
            12 => {
                // Rare: after it no new stream is served.
                if rng.one_in(40) {
                    let mut p = (next_id.saturating_sub(2)).to_be_bytes().to_vec();
                    p.extend_from_slice(&0u32.to_be_bytes());
                    parts.push((frame::GOAWAY, 0, 0, p));
                }
            }
            _ => {
                let kind = 0x0a + rng.below(0xf0) as u8;
                let n = rng.below(64) as usize;
                parts.push((kind, rng.next() as u8, rng.below(8) as u32, rng.bytes(n)));
            }
        }
        for (kind, mut flags, mut stream, mut payload) in parts {
            let mut len = payload.len();
            let mut cut = None;
            if mutate_one_in != 0 && rng.one_in(mutate_one_in) {
                match rng.below(6) {
                    0 => {
                        len = match rng.below(3) {
                            0 => len.saturating_add(1 + rng.below(16) as usize),
                            1 => len.saturating_sub(1 + rng.below(16) as usize),
                            _ => rng.below(20_000) as usize,
                        }
                    }
                    1 => {
                        stream = match rng.below(3) {
                            0 => 0,
                            1 => stream + 1,
                            _ => rng.next() as u32,
                        }
                    }
                    2 => {
                        let n = rng.below(40) as usize;
                        payload = rng.bytes(n);
                        len = n;
                    }
                    3 => {
                        // Random HPACK: a byte or two changed in the block, or all of it.
                        if rng.one_in(2) && !payload.is_empty() {
                            for _ in 0..1 + rng.below(2) {
                                let i = rng.below(payload.len() as u64) as usize;
                                payload[i] = rng.next() as u8;
                            }
                        } else {
                            let n = rng.below(60) as usize;
                            payload = rng.bytes(n);
                            len = payload.len();
                        }
                    }
                    4 => flags ^= 1 << rng.below(8),
                    _ => cut = Some(rng.below(len as u64 + 1) as usize),
                }
            }
            frame::head(&mut out, len.min(0xff_ffff), kind, flags, stream);
            let body = &payload[..cut.unwrap_or(payload.len()).min(payload.len())];
            out.extend_from_slice(body);
        }
    }
    Script {
        limits: peer_limits(&out),
        bytes: out,
    }
}

/// What the server may send a client, from all the client's bytes (framed as the server frames
/// them): upper bounds, as the server may have stopped reading before the end.
#[derive(Default)]
struct PeerLimits {
    /// The largest SETTINGS_MAX_FRAME_SIZE.
    max_frame: usize,
    /// The connection's send window and every WINDOW_UPDATE for it.
    conn_window: i64,
    /// The largest SETTINGS_INITIAL_WINDOW_SIZE.
    initial_window: i64,
    /// Each stream's WINDOW_UPDATEs.
    stream_updates: std::collections::HashMap<u32, i64>,
}

fn peer_limits(bytes: &[u8]) -> PeerLimits {
    let mut l = PeerLimits {
        max_frame: frame::DEFAULT_MAX_FRAME,
        conn_window: frame::DEFAULT_WINDOW,
        initial_window: frame::DEFAULT_WINDOW,
        ..PeerLimits::default()
    };
    let mut rest = &bytes[PREFACE.len()..];
    while rest.len() >= frame::HEADER_LEN {
        let head = frame::Head::parse(&rest[..frame::HEADER_LEN].try_into().unwrap());
        if head.len > frame::DEFAULT_MAX_FRAME || rest.len() < frame::HEADER_LEN + head.len {
            break;
        }
        let payload = &rest[frame::HEADER_LEN..frame::HEADER_LEN + head.len];
        if head.kind == frame::SETTINGS && head.flags & frame::ACK == 0 {
            for p in payload.chunks_exact(6) {
                let v = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
                match u16::from_be_bytes([p[0], p[1]]) {
                    frame::SETTINGS_MAX_FRAME_SIZE => {
                        l.max_frame = l.max_frame.max(v.min(16_777_215) as usize)
                    }
                    frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                        l.initial_window = l.initial_window.max(i64::from(v))
                    }
                    _ => {}
                }
            }
        }
        if head.kind == frame::WINDOW_UPDATE && head.len == 4 {
            let inc = i64::from(u32::from_be_bytes(payload.try_into().unwrap()) & 0x7fff_ffff);
            match head.stream {
                0 => l.conn_window += inc,
                id => *l.stream_updates.entry(id).or_default() += inc,
            }
        }
        rest = &rest[frame::HEADER_LEN + head.len..];
    }
    l
}

/// What one random case showed.
#[derive(Debug, Default)]
struct Outcome {
    /// The server ended the connection.
    closed: bool,
    /// A GOAWAY with an error code was sent.
    error_goaway: Option<u32>,
    /// It answered the final PING (still serving).
    answered: bool,
    /// A pending partial frame had to be completed with zero bytes.
    filled: bool,
}

/// Checks every frame the server wrote (all of `out`, whole frames only): known types,
/// no larger than the peer allows, DATA within the peer's flow-control windows, stream 0
/// exactly for connection frames, fixed-size frames of their size, header blocks that decode,
/// at most one GOAWAY with an error and nothing after it. Returns the frames, in order.
fn check_server_frames(case: u64, mut out: &[u8], limits: &PeerLimits) -> Vec<In> {
    let max_frame = limits.max_frame;
    let mut conn_sent = 0i64;
    let mut stream_sent: std::collections::HashMap<u32, i64> = Default::default();
    let mut decoder = hdecode::Decoder::default();
    let mut block: Option<Vec<u8>> = None;
    let mut after_error = false;
    let mut frames = Vec::new();
    while out.len() >= frame::HEADER_LEN {
        let head = frame::Head::parse(&out[..frame::HEADER_LEN].try_into().unwrap());
        if out.len() < frame::HEADER_LEN + head.len {
            break;
        }
        assert!(!after_error, "case {case}: {head:?} after an error GOAWAY");
        assert!(
            head.len <= max_frame,
            "case {case}: {head:?} over {max_frame}"
        );
        assert_eq!(out[5] & 0x80, 0, "case {case}: reserved bit");
        let payload = Bytes::copy_from_slice(&out[frame::HEADER_LEN..frame::HEADER_LEN + head.len]);
        out = &out[frame::HEADER_LEN + head.len..];
        let conn_frame = matches!(head.kind, frame::SETTINGS | frame::PING | frame::GOAWAY);
        if block.is_some() {
            assert_eq!(
                head.kind,
                frame::CONTINUATION,
                "case {case}: in a header block"
            );
        }
        match head.kind {
            frame::DATA | frame::HEADERS | frame::RST_STREAM | frame::CONTINUATION => {
                assert!(head.stream % 2 == 1, "case {case}: {head:?}")
            }
            frame::SETTINGS | frame::PING | frame::GOAWAY | frame::WINDOW_UPDATE => {}
            _ => panic!("case {case}: the server wrote {head:?}"),
        }
        assert!(
            !conn_frame || head.stream == 0,
            "case {case}: {head:?} on a stream"
        );
        match head.kind {
            frame::RST_STREAM | frame::WINDOW_UPDATE => assert_eq!(head.len, 4, "case {case}"),
            frame::PING => assert_eq!(head.len, 8, "case {case}"),
            frame::GOAWAY => assert_eq!(head.len, 8, "case {case}"),
            frame::SETTINGS => assert!(head.len.is_multiple_of(6), "case {case}"),
            _ => {}
        }
        if head.kind == frame::WINDOW_UPDATE {
            let inc = u32::from_be_bytes(payload[..4].try_into().unwrap());
            assert!(inc > 0 && inc < 1 << 31, "case {case}: increment {inc}");
        }
        if head.kind == frame::DATA {
            // RFC 9113 §6.9: the whole frame counts against both windows.
            conn_sent += head.len as i64;
            let sent = stream_sent.entry(head.stream).or_default();
            *sent += head.len as i64;
            let stream_window = limits.initial_window
                + limits
                    .stream_updates
                    .get(&head.stream)
                    .copied()
                    .unwrap_or(0);
            assert!(
                conn_sent <= limits.conn_window && *sent <= stream_window,
                "case {case}: DATA past the windows: {conn_sent} of {}, {sent} of {stream_window} on {}",
                limits.conn_window,
                head.stream
            );
        }
        if head.kind == frame::GOAWAY {
            after_error = u32::from_be_bytes(payload[4..8].try_into().unwrap()) != 0;
        }
        if matches!(head.kind, frame::HEADERS | frame::CONTINUATION) {
            let b = block.get_or_insert_with(Vec::new);
            b.extend_from_slice(&payload);
            if head.flags & frame::END_HEADERS != 0 {
                let b = block.take().unwrap();
                let mut status = None;
                decoder
                    .decode(&b, |n, v| {
                        if n == b":status" {
                            status = Some(v.to_vec());
                        }
                    })
                    .unwrap_or_else(|_| panic!("case {case}: a response head that decodes"));
                assert!(status.is_some(), "case {case}: no :status");
            }
        }
        frames.push(In {
            kind: head.kind,
            flags: head.flags,
            stream: head.stream,
            payload,
        });
    }
    assert!(out.is_empty(), "case {case}: a cut frame at the end");
    frames
}

/// Runs one case against `serve` with `handler`: the script is written, then PING(SYNC). The
/// server must answer it or close within 5 s (paused clock); when it does neither, a pending
/// partial frame is the client's fault (a truncated or mis-sized frame swallowed what came
/// after it), so a frame's worth of zero bytes completes it, and after them the server must
/// close (zero bytes are DATA on stream 0, a connection error) or answer within 5 s more.
async fn run_case<H, F>(case: u64, script: &Script, o: H2Options, handler: H) -> Outcome
where
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Send + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let (client, server) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve(server, handler, info(), o, CancellationToken::new()));
    let (mut rd, mut wr) = tokio::io::split(client);
    let filler = Arc::new(tokio::sync::Notify::new());
    let mut bytes = script.bytes.clone();
    frame::head(&mut bytes, 8, frame::PING, 0, 0);
    bytes.extend_from_slice(SYNC);
    let f = filler.clone();
    let writer = tokio::spawn(async move {
        // Write errors: the server closed, which the reader sees.
        let _ = wr.write_all(&bytes).await;
        f.notified().await;
        let mut zeros = vec![0u8; frame::HEADER_LEN + frame::DEFAULT_MAX_FRAME];
        frame::head(&mut zeros, 8, frame::PING, 0, 0);
        zeros.extend_from_slice(SYNC);
        let _ = wr.write_all(&zeros).await;
        wr
    });
    let mut out = Vec::new();
    let mut outcome = Outcome::default();
    let mut scanned = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rd.read_buf(&mut out)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                outcome.closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // A PING ACK with SYNC: still serving.
                while out.len() >= scanned + frame::HEADER_LEN {
                    let head = frame::Head::parse(&out[scanned..scanned + 9].try_into().unwrap());
                    let end = scanned + frame::HEADER_LEN + head.len;
                    if out.len() < end {
                        break;
                    }
                    if head.kind == frame::PING
                        && head.flags & frame::ACK != 0
                        && &out[end - head.len..end] == SYNC
                    {
                        outcome.answered = true;
                    }
                    scanned = end;
                }
                if outcome.answered {
                    break;
                }
            }
            Err(_) if !outcome.filled => {
                outcome.filled = true;
                filler.notify_one();
            }
            Err(_) => panic!("case {case}: neither answered nor closed (a hang)"),
        }
    }
    // Closed: all it wrote is whole frames; still serving: up to the PING's ACK.
    let whole = if outcome.closed {
        &out[..]
    } else {
        &out[..scanned]
    };
    let frames = check_server_frames(case, whole, &script.limits);
    outcome.error_goaway = frames
        .iter()
        .filter(|f| f.kind == frame::GOAWAY)
        .map(|f| u32::from_be_bytes(f.payload[4..8].try_into().unwrap()))
        .find(|&c| c != 0);
    // The server ends once the client is gone, and never panicked.
    writer.abort();
    drop(rd);
    let _ = writer.await;
    let ended = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap_or_else(|_| panic!("case {case}: serve did not return after the client left"));
    if let Err(e) = ended {
        panic!("case {case}: serve failed: {e}");
    }
    outcome
}

/// ~200 random clients (a few hundred frames each, well-formed and mutated) against `serve`,
/// on a paused clock: the server never panics nor hangs (it answers a PING or closes within a
/// bound), writes only valid frames and nothing after a GOAWAY with an error, and after every
/// case without a connection error a fresh request on a new connection is answered 200.
#[tokio::test(start_paused = true)]
async fn random_frames_never_break_the_server() {
    let served = Arc::new(AtomicUsize::new(0));
    let s = served.clone();
    let handler = move |req: Request<RequestBody>, _: Arc<ConnInfo>| {
        let s = s.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            match req.uri().path() {
                "/read" => {
                    use http_body_util::BodyExt;
                    let _ = req.into_body().collect().await;
                }
                // Past the default windows and frame size: split, parked, resumed.
                "/big" => return Response::new(ProxyBody::from(Bytes::from(vec![b'b'; 100_000]))),
                _ => {}
            }
            ok()
        }
    };
    let (mut closed, mut errors, mut answered) = (0, 0, 0);
    for case in 0..200u64 {
        let mut rng = Rng(case.wrapping_mul(0x5851_f42d_4c95_7f2d) ^ 0x1234);
        // One case in four with tight limits: refused streams, oversized heads, the reset
        // limits reached.
        let o = if rng.one_in(4) {
            H2Options {
                max_concurrent_streams: 3,
                max_header_list_size: 200,
                max_early_resets: 2,
                max_local_resets: 5,
            }
        } else {
            opts()
        };
        let script = random_script(&mut rng);
        let outcome = run_case(case, &script, o, handler.clone()).await;
        closed += usize::from(outcome.closed);
        answered += usize::from(outcome.answered);
        if outcome.error_goaway.is_some() {
            errors += 1;
            continue;
        }
        let mut c = Client::start(opts(), handler.clone()).await;
        c.headers(1, true, &request("GET", "/x", &[])).await;
        let head = c.until(frame::HEADERS, 1).await;
        assert_eq!(
            c.status(&head),
            Some(200),
            "case {case}: a fresh connection"
        );
    }
    // The cases reached both ends: some kept serving, some were connection errors.
    assert!(
        answered > 20 && errors > 20,
        "answered {answered}, errors {errors}, closed {closed}"
    );
    assert!(served.load(Ordering::SeqCst) > 200);
}

/// A client that sends PINGs (each asking for a reply) and never reads: the server stops
/// reading once its output is stuck, so what it takes in is bounded (its output buffer's high
/// mark, one burst of reads, the pipe), and keep-alive closes the connection, the peer having
/// taken nothing for KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT (paused clock).
#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_cannot_grow_the_servers_buffers() {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let handler = |_req: Request<RequestBody>, _: Arc<ConnInfo>| async { ok() };
    let server = tokio::spawn(serve(
        server,
        handler,
        info(),
        opts(),
        CancellationToken::new(),
    ));
    let mut hello = PREFACE.to_vec();
    frame::settings(&mut hello, &[]);
    client.write_all(&hello).await.unwrap();
    let mut pings = Vec::new();
    for _ in 0..1000 {
        frame::head(&mut pings, 8, frame::PING, 0, 0);
        pings.extend_from_slice(b"pingpong");
    }
    let mut taken = 0usize;
    while let Ok(written) =
        tokio::time::timeout(Duration::from_secs(1), client.write_all(&pings)).await
    {
        written.unwrap();
        taken += pings.len();
        assert!(taken < 1 << 20, "the server took {taken} bytes unread");
    }
    // Output past WBUF_HIGH stops reading: at most that, plus a burst of reads (whose
    // replies are as large), plus the pipe: 323k bytes here, against 1 MiB above.
    assert!(taken > WBUF_HIGH, "{taken}");
    let start = tokio::time::Instant::now();
    tokio::time::timeout(KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT * 2, server)
        .await
        .expect("closed by keep-alive")
        .unwrap();
    assert!(start.elapsed() <= KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT);
}

/// Regression (found by `random_frames_never_break_the_server`): after a connection error's
/// GOAWAY nothing follows it. A request body received whole and never read is released when
/// the client resets its stream; when the GOAWAY could not be written at once (the client was
/// not reading), that release used to go out as a WINDOW_UPDATE after the GOAWAY.
#[tokio::test]
async fn nothing_follows_a_connection_error_goaway() {
    let mut c = Client::start(opts(), |req: Request<RequestBody>, _| async move {
        std::future::pending::<()>().await;
        drop(req);
        ok()
    })
    .await;
    // The client does not read: 85 kB of PING ACKs fill the pipe back to it.
    let mut pings = Vec::new();
    for _ in 0..5000 {
        frame::head(&mut pings, 8, frame::PING, 0, 0);
        pings.extend_from_slice(b"pingpong");
    }
    c.send(&pings).await;
    let mut batch = Vec::new();
    let head = request("POST", "/x", &[]);
    frame::head(
        &mut batch,
        head.len(),
        frame::HEADERS,
        frame::END_HEADERS,
        1,
    );
    batch.extend_from_slice(&head);
    frame::head(&mut batch, 5, frame::DATA, frame::END_STREAM, 1);
    batch.extend_from_slice(b"hello");
    frame::rst_stream(&mut batch, 1, frame::CANCEL);
    // PING on a stream: a connection error (RFC 9113 §6.7).
    frame::head(&mut batch, 8, frame::PING, 0, 1);
    batch.extend_from_slice(b"badbadba");
    c.send(&batch).await;
    let mut goaway = None;
    while let Some(f) = c.next().await {
        assert!(goaway.is_none(), "{f:?} after the GOAWAY");
        if f.kind == frame::GOAWAY {
            goaway = Some(u32::from_be_bytes(f.payload[4..8].try_into().unwrap()));
        }
    }
    assert_eq!(goaway, Some(frame::PROTOCOL_ERROR));
}
