//! Large LISTs through the HTTP/1.1 front end take the process's one large read buffer once and
//! reuse it: however many pass, one after another or on new connections, kubeguard takes no
//! more than one 2 MiB buffer from the allocator (`src/front/readsize.rs`). A front end that
//! dropped the buffer at the end of each body instead of handing it back would take a new one
//! per LIST, and the allocator keeps a freed block a while: the peak RSS `loadtests/list_rss.sh`
//! measures would grow by one buffer per LIST in that while.
//!
//! The counters are the process's, so this file holds one test: it runs alone in its process.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use kubeguard::front::readsize::{LARGE_READS, large_reads};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A PodList of `items` small pods, 37 bytes each.
fn pod_list(items: usize) -> Vec<u8> {
    let mut body =
        br#"{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":["#
            .to_vec();
    for i in 0..items {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(format!(r#"{{"metadata":{{"name":"pod-{i:08}"}}}}"#).as_bytes());
    }
    body.extend_from_slice(b"]}");
    body
}

/// An upstream answering every request on a connection with `body` (Content-Length, keep-alive).
async fn start_upstream(body: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while read_head(&mut s, &mut buf).await.is_some() {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(body).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Reads up to the end of one head, leaving what follows in `buf`; the head's text.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut b = [0u8; 16 * 1024];
        let n = s.read(&mut b).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&b[..n]);
    }
}

/// One LIST on `s`: the answer's status line and body.
async fn list(s: &mut TcpStream) -> (String, Vec<u8>) {
    s.write_all(
        b"GET /api/v1/pods HTTP/1.1\r\nhost: kubeguard\r\naccept: application/json\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let head = read_head(s, &mut buf).await.expect("an answer head");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("content-length")
        .parse()
        .unwrap();
    let mut body = buf;
    body.reserve(len - body.len());
    while body.len() < len {
        let n = s.read_buf(&mut body).await.unwrap();
        assert!(
            n > 0,
            "connection ended after {} of {len} bytes",
            body.len()
        );
    }
    (head.lines().next().unwrap_or("").to_owned(), body)
}

/// Waits (at most 10 s) until no body holds a large read.
async fn large_read_given_back() {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while large_reads().now != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a large read still held 10 s after its body ended"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_lists_take_one_large_buffer_and_reuse_it() {
    // About 17 MiB: each LIST reads through 64, 128 and 256 KiB into large reads many times over.
    let body: &'static [u8] = Box::leak(pod_list(480_000).into_boxed_slice());
    assert!(body.len() > 16 * 1024 * 1024);
    let upstream = start_upstream(body).await;
    let kg = start_kubeguard(&format!("http://{upstream}"), "").await;
    let addr = plain_url(&kg).trim_start_matches("http://").to_owned();

    let before = large_reads();
    // Three LISTs on one connection, then one on each of two new connections.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(TcpStream::connect(&addr).await.unwrap());
    }
    for i in [0, 0, 0, 1, 2] {
        let (status, got) = list(&mut conns[i]).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(got == body, "the LIST's body arrives unchanged");
    }
    // A client that leaves in the middle of a LIST: its upstream connection goes, and its
    // large buffer goes back all the same.
    let mut leaving = TcpStream::connect(&addr).await.unwrap();
    leaving
        .write_all(b"GET /api/v1/pods HTTP/1.1\r\nhost: kubeguard\r\n\r\n")
        .await
        .unwrap();
    let mut part = vec![0u8; 4 * 1024 * 1024];
    leaving.read_exact(&mut part).await.unwrap();
    drop(leaving);
    large_read_given_back().await;
    let (status, got) = list(&mut conns[2]).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(got == body);

    let after = large_reads();
    let granted = after.granted - before.granted;
    assert!(
        granted >= 3,
        "large LISTs get large reads (granted {granted} in 7 LISTs)"
    );
    assert!(
        after.allocated - before.allocated <= LARGE_READS,
        "{} large buffers taken for {granted} large reads: each body's buffer must be handed back",
        after.allocated - before.allocated,
    );
    kg.shutdown().await;
}
