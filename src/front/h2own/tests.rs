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
