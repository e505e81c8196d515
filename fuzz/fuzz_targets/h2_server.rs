//! Fuzz kubeguard's own HTTP/2 server (`front::h2own::serve`) with what a client sends.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run h2_server -- -max_total_time=180` from the repository
//! root (seed corpus in `fuzz/corpus/h2_server/`: real client byte streams, the preface,
//! SETTINGS and requests, written by `fuzz/corpus/h2_server.py`).
//!
//! The input is the client's side of one connection, written at once and then left open; the
//! handler answers every request 200 with a small body (100 kB for a path ending in `/big`). On a paused clock (so keep-alive's
//! 30 s + 20 s pass at once) it checks that the server never panics, that it closes the
//! connection within 300 s (a silent peer is closed by keep-alive within 50 s: no hang), and
//! that everything it wrote parses as frames: whole, known types, no larger than the peer's
//! SETTINGS_MAX_FRAME_SIZE, DATA within the peer's flow-control windows, stream 0 exactly
//! for connection frames, fixed-size frames of their size, header blocks that decode, and
//! nothing after a GOAWAY with an error code.

#![no_main]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use kubeguard::front::h2own::{H2Options, HpackDecoder, PREFACE, serve};
use kubeguard::proxy::{ConnInfo, ProxyBody};
use kubeguard::status::Status;
use kubeguard::upstream::RequestBody;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const DEFAULT_MAX_FRAME: usize = 16_384;
const DEFAULT_WINDOW: i64 = 65_535;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let out = rt.block_on(exchange(data));
    check_output(&out, &peer_limits(data));
});

/// Writes `data` as the client and returns all the server wrote until it closed.
async fn exchange(data: &[u8]) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let info = Arc::new(ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        loopback_listener: true,
        tls: false,
        peer_cert: None,
    });
    let opts = H2Options {
        max_concurrent_streams: 100,
        max_header_list_size: 16 * 1024,
        max_early_resets: 20,
        max_local_resets: 100,
    };
    // A small body; 100 kB for a path ending in "/big" (past the default windows and frame
    // size: split, parked, resumed by WINDOW_UPDATE).
    let handler = |req: Request<RequestBody>, _: Arc<ConnInfo>| async move {
        let big = req.uri().path().ends_with("/big");
        drop(req);
        if big {
            return Response::new(ProxyBody::from(Bytes::from(vec![b'b'; 100_000])));
        }
        Status::failure(StatusCode::OK, "", "fuzz").into_response::<ProxyBody>()
    };
    let server = tokio::spawn(serve(server, handler, info, opts, CancellationToken::new()));
    let (mut rd, mut wr) = tokio::io::split(client);
    let input = data.to_vec();
    // The write half is returned, not dropped: the connection stays open after the input.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&input).await;
        wr
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(300), async {
        while let Ok(n) = rd.read_buf(&mut out).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close within 300 s");
    if let Err(e) = server.await
        && e.is_panic()
    {
        std::panic::resume_unwind(e.into_panic());
    }
    drop(writer.await);
    out
}

/// What the server may send: from all the client's frames (framed as the server frames them),
/// the largest SETTINGS_MAX_FRAME_SIZE and SETTINGS_INITIAL_WINDOW_SIZE and every
/// WINDOW_UPDATE (upper bounds: the server may have stopped reading before the end).
struct Limits {
    max_frame: usize,
    conn_window: i64,
    initial_window: i64,
    stream_updates: HashMap<u32, i64>,
}

fn peer_limits(data: &[u8]) -> Limits {
    let mut l = Limits {
        max_frame: DEFAULT_MAX_FRAME,
        conn_window: DEFAULT_WINDOW,
        initial_window: DEFAULT_WINDOW,
        stream_updates: HashMap::new(),
    };
    let Some(mut rest) = data.strip_prefix(&PREFACE[..]) else {
        return l;
    };
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        if len > DEFAULT_MAX_FRAME || rest.len() < 9 + len {
            break;
        }
        let payload = &rest[9..9 + len];
        if kind == 0x4 && flags & 0x1 == 0 {
            for p in payload.chunks_exact(6) {
                let value = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
                match u16::from_be_bytes([p[0], p[1]]) {
                    0x4 => l.initial_window = l.initial_window.max(i64::from(value)),
                    0x5 => l.max_frame = l.max_frame.max(value.min(16_777_215) as usize),
                    _ => {}
                }
            }
        }
        if kind == 0x8 && len == 4 {
            let inc = i64::from(
                u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff,
            );
            match stream {
                0 => l.conn_window += inc,
                id => *l.stream_updates.entry(id).or_default() += inc,
            }
        }
        rest = &rest[9 + len..];
    }
    l
}

fn check_output(mut out: &[u8], limits: &Limits) {
    let max_frame = limits.max_frame;
    let mut conn_sent = 0i64;
    let mut stream_sent: HashMap<u32, i64> = HashMap::new();
    let mut decoder = HpackDecoder::default();
    let mut block: Option<Vec<u8>> = None;
    let mut error_goaway = false;
    while !out.is_empty() {
        assert!(!error_goaway, "a frame after GOAWAY with an error");
        assert!(out.len() >= 9, "a cut frame header at the end");
        let len = usize::from(out[0]) << 16 | usize::from(out[1]) << 8 | usize::from(out[2]);
        let (kind, flags) = (out[3], out[4]);
        let stream = u32::from_be_bytes([out[5], out[6], out[7], out[8]]);
        assert!(
            len <= max_frame,
            "frame of {len} bytes, peer allows {max_frame}"
        );
        assert!(out.len() >= 9 + len, "a cut frame at the end");
        let payload = &out[9..9 + len];
        out = &out[9 + len..];
        assert_eq!(stream & 0x8000_0000, 0, "reserved bit set");
        if block.is_some() {
            assert_eq!(kind, 0x9, "a frame inside a header block");
        }
        match kind {
            // DATA: a client stream, within the flow-control windows (RFC 9113 §6.9).
            0x0 => {
                assert!(stream % 2 == 1, "DATA on stream {stream}");
                conn_sent += len as i64;
                let sent = stream_sent.entry(stream).or_default();
                *sent += len as i64;
                let window = limits.initial_window
                    + limits.stream_updates.get(&stream).copied().unwrap_or(0);
                assert!(
                    conn_sent <= limits.conn_window,
                    "DATA past the connection window"
                );
                assert!(*sent <= window, "DATA past stream {stream}'s window");
            }
            // RST_STREAM: a client stream.
            0x3 => assert!(
                stream % 2 == 1 && len == 4,
                "RST_STREAM on {stream}, {len} bytes"
            ),
            // HEADERS, CONTINUATION: a response head, which decodes.
            0x1 | 0x9 => {
                assert!(stream % 2 == 1, "kind {kind} on stream {stream}");
                let b = block.get_or_insert_with(Vec::new);
                if kind == 0x1 {
                    assert!(b.is_empty(), "HEADERS inside a header block");
                }
                b.extend_from_slice(payload);
                if flags & 0x4 != 0 {
                    let b = block.take().unwrap_or_default();
                    let mut status = false;
                    decoder
                        .decode(&b, |n, _| status |= n == b":status")
                        .expect("a response head that decodes");
                    assert!(status, "a response head without :status");
                }
            }
            // SETTINGS
            0x4 => {
                assert_eq!(stream, 0);
                assert!(len.is_multiple_of(6));
                if flags & 0x1 != 0 {
                    assert_eq!(len, 0);
                }
            }
            // PING
            0x6 => assert!(stream == 0 && len == 8),
            // GOAWAY
            0x7 => {
                assert!(stream == 0 && len >= 8);
                error_goaway =
                    u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]) != 0;
            }
            // WINDOW_UPDATE
            0x8 => {
                assert_eq!(len, 4);
                let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                assert!(inc > 0 && inc < 1 << 31, "window increment {inc}");
            }
            _ => panic!("the server wrote a frame of kind {kind}"),
        }
    }
}
