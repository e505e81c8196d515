//! Malformed and hostile input at kubeguard's front door: each gets a clean error or a closed
//! connection, and a well-behaved client keeps being served meanwhile.
//!
//! Raw bytes go over plain TCP or TLS sockets; h2 frame-level abuse uses the `h2` crate (rapid
//! reset) or hand-written frames (SETTINGS/PING floods) on the plain loopback listener, which
//! speaks h2 with prior knowledge as well as HTTP/1.1.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use kubeguard::serve::RunningServe;
use kubeguard::sim::{RequestHook, RunningSim, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A 1 s header-read timeout so the slowloris test is short.
const KG_YAML: &str = "  headerReadTimeout: 1s\n";
/// A 1 s TLS handshake timeout for the TLS slowloris test (kept out of the other tests: on a
/// loaded machine a normal handshake must not race it).
const TLS_HANDSHAKE_YAML: &str = "  tlsHandshakeTimeout: 1s\n";
/// A lowered rapid-reset limit.
const LOW_RESETS_YAML: &str = "  h2MaxPendingAcceptResets: 2\n";
/// hyper's h2 server (`server.h2Server: hyper`) instead of kubeguard's own, the default.
const HYPER_H2_YAML: &str = "  h2Server: hyper\n";

struct Env {
    sim: RunningSim,
    kg: RunningServe,
    /// Pod requests the emulator has received.
    upstream_requests: Arc<AtomicUsize>,
}

async fn env() -> Env {
    env_with("").await
}

/// The test environment with `server:` keys added to the config.
async fn env_with(server_yaml: &str) -> Env {
    let upstream_requests = Arc::new(AtomicUsize::new(0));
    let counter = upstream_requests.clone();
    let sim = kubeguard::sim::start(SimOptions {
        nodes: 1,
        namespaces: 1,
        pods: 5,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        // Pod requests only: kubeguard's own probes (/version, discovery) run at start.
        on_request: Some(RequestHook(Arc::new(move |r| {
            if r.uri.contains("/pods") {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }))),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = start_kubeguard(&sim.url, &format!("{KG_YAML}{server_yaml}")).await;
    Env {
        sim,
        kg,
        upstream_requests,
    }
}

impl Env {
    fn plain_addr(&self) -> SocketAddr {
        self.kg.listeners.iter().find(|l| !l.tls).unwrap().addr
    }

    fn tls_addr(&self) -> SocketAddr {
        self.kg.listeners.iter().find(|l| l.tls).unwrap().addr
    }

    /// A normal client (HTTP/1.1 and h2 over TLS) lists pods within a second.
    async fn assert_served(&self) {
        for h2 in [false, true] {
            let started = Instant::now();
            let resp = client(&self.kg, h2)
                .request(
                    Request::get(format!("{}/api/v1/pods", tls_url(&self.kg)))
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "h2={h2}");
            let body = body_bytes(resp.into_body()).await;
            let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(list["items"].as_array().unwrap().len(), 5);
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "a normal request took {:?}",
                started.elapsed()
            );
        }
    }

    async fn shutdown(self) {
        self.kg.shutdown().await;
        self.sim.shutdown().await;
    }
}

/// Writes `request`, then reads until the server closes (at most `limit`): the status code of
/// the first response (if any), everything read, and whether the server closed.
async fn raw_exchange(
    addr: SocketAddr,
    request: &[u8],
    limit: Duration,
) -> (Option<u16>, String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may close before reading it all (a head too large): that is an answer too.
    let _ = s.write_all(request).await;
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    (code, text, closed)
}

fn status_body(text: &str) -> serde_json::Value {
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn bad_percent_encoding_is_a_400_status() {
    let env = env().await;
    let before = env.upstream_requests.load(Ordering::Relaxed);
    for path in [
        "/api/v1/namespaces/%zz/pods",
        "/api/v1/namespaces/default/pods/%",
        "/api/v1/namespaces/%C3%28/pods",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: kg\r\nConnection: close\r\n\r\n");
        let (code, text, _) =
            raw_exchange(env.plain_addr(), req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(code, Some(400), "{path}: {text}");
        let status = status_body(&text);
        assert_eq!(status["kind"], "Status", "{path}: {text}");
        assert_eq!(status["code"], 400);
    }
    assert_eq!(
        env.upstream_requests.load(Ordering::Relaxed),
        before,
        "nothing malformed reaches the apiserver"
    );
    env.assert_served().await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_megabyte_header_is_refused_and_the_connection_closed() {
    let env = env().await;
    let big = "a".repeat(1 << 20);
    let req = format!("GET /api/v1/pods HTTP/1.1\r\nHost: kg\r\nX-Big: {big}\r\n\r\n");
    let (code, text, closed) =
        raw_exchange(env.plain_addr(), req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        matches!(code, Some(431) | Some(400)),
        "{:?}",
        text.get(..200)
    );
    assert!(closed, "the connection is closed after a refused head");
    env.assert_served().await;
    env.shutdown().await;
}

/// Headers trickled a byte at a time (slowloris): closed after the header-read timeout (1 s
/// in this config) however long the client keeps trickling.
#[tokio::test]
async fn slowloris_is_closed_after_the_header_read_timeout() {
    let env = env().await;
    let mut slow = Vec::new();
    for addr in [env.plain_addr(), env.plain_addr(), env.plain_addr()] {
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let started = Instant::now();
            let head = b"GET /api/v1/pods HTTP/1.1\r\nHost: kg\r\nX-Slow: ";
            for b in head.iter().chain(std::iter::repeat(&b'a')) {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                // A closed connection shows as EOF on read before writes start failing.
                let mut one = [0u8; 1];
                if let Ok(Ok(0)) =
                    tokio::time::timeout(Duration::from_millis(100), s.read(&mut one)).await
                {
                    break;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    break;
                }
            }
            started.elapsed()
        }));
    }
    // Served meanwhile.
    env.assert_served().await;
    for t in slow {
        let lasted = t.await.unwrap();
        assert!(
            lasted >= Duration::from_millis(900) && lasted < Duration::from_secs(4),
            "a slowloris connection lasted {lasted:?}; the header-read timeout is 1 s"
        );
    }
    env.assert_served().await;
    env.shutdown().await;
}

#[tokio::test]
async fn garbage_instead_of_a_tls_client_hello_is_closed() {
    let env = env().await;
    let handshake_failures = || env.kg.metrics.tls_handshake_failures.get();
    let before = handshake_failures();
    let mut garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for probe in [
        garbage.clone(),
        b"GET /api/v1/pods HTTP/1.1\r\nHost: kg\r\n\r\n".to_vec(),
        // A TLS record header announcing a handshake, then nonsense.
        {
            garbage[..5].copy_from_slice(&[0x16, 0x03, 0x01, 0x02, 0x00]);
            garbage.clone()
        },
    ] {
        let (_, _, closed) = raw_exchange(env.tls_addr(), &probe, Duration::from_secs(3)).await;
        assert!(closed, "garbage left a connection open");
        env.assert_served().await;
    }
    assert!(
        handshake_failures() >= before + 3,
        "failed handshakes are counted"
    );
    env.shutdown().await;
}

/// A real ClientHello, as a TLS client's first flight.
fn client_hello() -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(kubeguard::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// How long until the server closes a connection that sends `bytes` one every 100 ms (nothing
/// at all when empty), at most 10 s.
async fn lasts(addr: SocketAddr, bytes: Vec<u8>) -> Duration {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut next = bytes.into_iter();
    while started.elapsed() < Duration::from_secs(10) {
        if let Some(b) = next.next()
            && s.write_all(&[b]).await.is_err()
        {
            break;
        }
        // A closed connection shows as EOF (or a reset) on read before writes start failing.
        let mut one = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut one)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            _ => {}
        }
    }
    started.elapsed()
}

/// TLS slowloris: a ClientHello trickled a byte at a time, or nothing at all after the TCP
/// handshake. Each is closed after `server.tlsHandshakeTimeout` (1 s here) and counted as a
/// failed handshake, while HTTP/1.1 and h2 clients are served meanwhile.
#[tokio::test]
async fn tls_slowloris_is_closed_after_the_handshake_timeout() {
    let env = env_with(TLS_HANDSHAKE_YAML).await;
    let failures = || env.kg.metrics.tls_handshake_failures.get();
    let before = failures();
    let hello = client_hello();
    assert!(
        hello.len() > 20,
        "a ClientHello takes longer than the timeout to trickle"
    );
    let mut slow = Vec::new();
    for bytes in [hello.clone(), hello, Vec::new(), Vec::new()] {
        slow.push(tokio::spawn(lasts(env.tls_addr(), bytes)));
    }
    env.assert_served().await;
    for t in slow {
        let lasted = t.await.unwrap();
        assert!(
            lasted >= Duration::from_millis(900) && lasted < Duration::from_secs(4),
            "a TLS slowloris connection lasted {lasted:?}; the handshake timeout is 1 s"
        );
    }
    // Counted once each (the served clients' handshakes succeed).
    let deadline = Instant::now() + Duration::from_secs(5);
    while failures() < before + 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(failures(), before + 4, "timed-out handshakes are counted");
    env.assert_served().await;
    env.shutdown().await;
}

/// CVE-2023-44487: open a stream and cancel it at once, thousands of times on one connection.
/// kubeguard answers with GOAWAY before the flood turns into upstream requests.
#[tokio::test]
async fn h2_rapid_reset_is_cut_off() {
    rapid_reset_is_cut_off(env().await, STREAMS / 10).await;
}

/// The same flood with `server.h2MaxPendingAcceptResets` lowered to 2 is cut off too.
#[tokio::test]
async fn h2_rapid_reset_is_cut_off_with_a_lowered_limit() {
    rapid_reset_is_cut_off(env_with(LOW_RESETS_YAML).await, STREAMS / 10).await;
}

/// The same floods against hyper's h2 server.
#[tokio::test]
async fn h2_rapid_reset_is_cut_off_by_hypers_h2_server() {
    rapid_reset_is_cut_off(env_with(HYPER_H2_YAML).await, STREAMS / 10).await;
    let low = format!("{HYPER_H2_YAML}{LOW_RESETS_YAML}");
    rapid_reset_is_cut_off(env_with(&low).await, STREAMS / 10).await;
}

/// `server.h2MaxPendingAcceptResets` takes effect on hyper's h2 server too.
#[tokio::test]
async fn h2_pending_accept_resets_limit_is_configurable_on_hypers_h2_server() {
    let env = env_with(HYPER_H2_YAML).await;
    assert!(reset_burst_is_cut_off(&env).await.is_none());
    env.shutdown().await;
    let env = env_with(&format!("{HYPER_H2_YAML}{LOW_RESETS_YAML}")).await;
    let cut = reset_burst_is_cut_off(&env).await;
    assert_eq!(cut, Some(h2::Reason::ENHANCE_YOUR_CALM));
    env.assert_served().await;
    env.shutdown().await;
}

/// `server.h2MaxPendingAcceptResets` takes effect: a burst of 15 cancelled streams (one write,
/// read by the server before it accepts any) is within the default 20 and the connection goes
/// on serving; lowered to 2, the same burst gets GOAWAY(ENHANCE_YOUR_CALM).
#[tokio::test]
async fn h2_pending_accept_resets_limit_is_configurable() {
    let env = env().await;
    assert!(reset_burst_is_cut_off(&env).await.is_none());
    env.shutdown().await;
    let env = env_with(LOW_RESETS_YAML).await;
    let cut = reset_burst_is_cut_off(&env).await;
    assert_eq!(cut, Some(h2::Reason::ENHANCE_YOUR_CALM));
    env.assert_served().await;
    env.shutdown().await;
}

/// Opens and cancels 15 streams in one write on a new h2 connection (each HEADERS followed by
/// its RST_STREAM(CANCEL), so the server reads all of them before it could answer any), then
/// asks for pods on stream 31: `None` when that is answered, the GOAWAY reason when the
/// connection was cut off. Written frame by frame: a client library decides itself when its
/// frames go out, and a reset that reaches the server after the answer is no rapid reset.
async fn reset_burst_is_cut_off(env: &Env) -> Option<h2::Reason> {
    // :method GET, :scheme http (static table), :path and :authority as literals.
    let mut get_pods = vec![0x82, 0x86, 0x04, 12];
    get_pods.extend_from_slice(b"/api/v1/pods");
    get_pods.extend_from_slice(&[0x01, 2]);
    get_pods.extend_from_slice(b"kg");
    let mut burst = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    burst.extend(frame(0x4, 0, &[]));
    for id in (1..30).step_by(2) {
        // HEADERS with END_STREAM | END_HEADERS, then RST_STREAM(CANCEL).
        burst.extend(stream_frame(0x1, 0x5, id, &get_pods));
        burst.extend(stream_frame(0x3, 0, id, &0x8u32.to_be_bytes()));
    }
    burst.extend(stream_frame(0x1, 0x5, 31, &get_pods));
    let mut s = TcpStream::connect(env.plain_addr()).await.unwrap();
    s.write_all(&burst).await.unwrap();
    let answer = async {
        let mut buf = Vec::new();
        loop {
            while buf.len() >= 9 {
                let len =
                    usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let kind = buf[3];
                let id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                let payload: Vec<u8> = buf.drain(..9 + len).skip(9).collect();
                match kind {
                    // GOAWAY: last stream id, then the error code.
                    0x7 => {
                        let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                        return Some(h2::Reason::from(code));
                    }
                    0x1 if id == 31 => return None,
                    _ => {}
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the connection closed with neither an answer nor GOAWAY"
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("neither answered nor cut off within 10 s")
}

const STREAMS: usize = 5_000;

/// Floods one h2 connection with opened-and-cancelled streams: it must end in GOAWAY (or a
/// closed socket) with fewer than `max_forwarded` of them forwarded upstream.
async fn rapid_reset_is_cut_off(env: Env, max_forwarded: usize) {
    let before = env.upstream_requests.load(Ordering::Relaxed);
    let tcp = TcpStream::connect(env.plain_addr()).await.unwrap();
    let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut sent = 0;
    let flood = tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..STREAMS {
            let Ok(ready) = send.clone().ready().await else {
                break;
            };
            send = ready;
            let req = http::Request::get("http://kg/api/v1/pods")
                .body(())
                .unwrap();
            let Ok((_resp, mut stream)) = send.send_request(req, true) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            sent += 1;
        }
    })
    .await;
    assert!(flood.is_ok(), "the flood neither ended nor was cut off");
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    let forwarded = env.upstream_requests.load(Ordering::Relaxed) - before;
    eprintln!("rapid reset: {sent} streams sent, {forwarded} forwarded, conn end {ended:?}");
    // kubeguard sends GOAWAY(ENHANCE_YOUR_CALM) and closes; a client still writing its flood
    // may see the closed socket (broken pipe) before it reads the GOAWAY.
    match ended {
        Ok(Ok(Err(e))) => assert!(
            e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || e.is_io(),
            "connection ended by {e:?}"
        ),
        other => panic!("connection not cut off: {other:?} after {sent} streams"),
    }
    assert!(
        forwarded < max_forwarded,
        "{forwarded} of {sent} cancelled streams reached the apiserver"
    );
    env.assert_served().await;
    env.shutdown().await;
}

/// An h2 frame on stream 0.
fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    stream_frame(kind, flags, 0, payload)
}

/// An h2 frame: 24-bit length, type, flags, stream id, payload.
fn stream_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// SETTINGS and PING floods (CVE-2019-9512, -9515) from a client that never reads the acks:
/// kubeguard's memory for them is bounded by backpressure, and others are served meanwhile.
#[tokio::test]
async fn h2_settings_and_ping_floods_do_not_touch_other_clients() {
    settings_and_ping_floods_do_not_touch_other_clients(env().await).await;
}

#[tokio::test]
async fn h2_settings_and_ping_floods_do_not_touch_other_clients_of_hypers_h2_server() {
    settings_and_ping_floods_do_not_touch_other_clients(env_with(HYPER_H2_YAML).await).await;
}

async fn settings_and_ping_floods_do_not_touch_other_clients(env: Env) {
    let mut flood = Vec::new();
    flood.extend_from_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    flood.extend(frame(0x4, 0, &[]));
    let mut batch = Vec::new();
    for i in 0..2_000u32 {
        // SETTINGS_MAX_CONCURRENT_STREAMS = i, then a PING.
        let mut setting = vec![0, 3];
        setting.extend_from_slice(&i.to_be_bytes());
        batch.extend(frame(0x4, 0, &setting));
        batch.extend(frame(0x6, 0, &u64::from(i).to_be_bytes()));
    }
    let mut floods = Vec::new();
    for _ in 0..4 {
        let addr = env.plain_addr();
        let (flood, batch) = (flood.clone(), batch.clone());
        floods.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut written = 0usize;
            if s.write_all(&flood).await.is_ok() {
                // Never read: the acks pile up on kubeguard's side until it stops reading.
                let _ = tokio::time::timeout(Duration::from_secs(3), async {
                    while s.write_all(&batch).await.is_ok() {
                        written += batch.len();
                    }
                })
                .await;
            }
            written
        }));
    }
    // Served while the floods run.
    for _ in 0..3 {
        env.assert_served().await;
    }
    let mut total = 0;
    for f in floods {
        let written = f.await.unwrap();
        // Socket buffers hold a few MB; a server that kept reading (and queueing acks) would
        // take gigabytes from a loopback writer in 3 s.
        assert!(
            written < 64 << 20,
            "{written} bytes taken from one flooding client"
        );
        total += written;
    }
    eprintln!("SETTINGS/PING flood: {total} bytes written by 4 clients in 3 s");
    env.assert_served().await;
    env.shutdown().await;
}
