//! The whole-process in-flight cap (`limits.maxInflight`) counts a short request until its
//! response body has been sent, not only until its headers: a client that asks for a large
//! LIST and does not read it keeps its slot, so a surge of such clients cannot grow kubeguard's
//! memory past the cap. Once the body is read (or the client goes away) the slot is free again.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use kubeguard::sim::SimOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pods in the emulator: an unversioned LIST of all of them is ~10 MB of JSON, far more than the
/// non-reading client's receive buffer (8 KiB, fixed) plus kubeguard's send buffer (≤ 4 MiB,
/// `net.ipv4.tcp_wmem`) can hold, so kubeguard cannot finish sending it.
const PODS: usize = 3000;

/// Connects with a small, fixed receive buffer (no autotuning), sends a LIST of every pod and
/// reads only the response head. Returns the connection, unread body and all.
async fn list_without_reading(addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /api/v1/pods HTTP/1.1\r\nhost: kubeguard\r\naccept: application/json\r\n\
              authorization: Bearer slow-reader\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "connection closed"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

/// Reads the rest of a chunked response (until the last chunk's `0\r\n\r\n`); its length.
async fn read_to_end(stream: &mut TcpStream) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let mut tail = Vec::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("the body within 60 s")
            .unwrap();
        assert!(n > 0, "closed before the end of the body");
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.ends_with(b"\r\n0\r\n\r\n") {
            return total;
        }
        let keep = tail.len().saturating_sub(8);
        tail.drain(..keep);
    }
}

async fn get(client: &common::TestClient, url: &str) -> (StatusCode, Option<String>) {
    let req = Request::get(url)
        .header("authorization", "Bearer quick")
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let status = resp.status();
    common::body_bytes(resp.into_body()).await;
    (status, retry_after)
}

/// Polls a GET by name (bounded) until it is served.
async fn until_served(client: &common::TestClient, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = get(client, url).await;
        if status == StatusCode::OK {
            return;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_body_keeps_its_inflight_slot_until_it_is_sent() {
    let sim = kubeguard::sim::start(SimOptions {
        pods: PODS,
        nodes: 1,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(
        &sim.url,
        "limits:\n  mode: off\n  maxInflight: 2\n  expensiveInflightPercent: 100\n",
    )
    .await;
    let plain = common::plain_url(&kg);
    let addr = kg.listeners.iter().find(|l| !l.tls).unwrap().addr;
    let client = common::client(&kg, false);
    let pod = format!("{plain}/api/v1/namespaces/default/pods/{}", {
        let list: serde_json::Value = serde_json::from_slice(
            &common::body_bytes(
                client
                    .request(
                        Request::get(format!(
                            "{}/api/v1/namespaces/default/pods?limit=1",
                            sim.url
                        ))
                        .body(Full::default())
                        .unwrap(),
                    )
                    .await
                    .unwrap()
                    .into_body(),
            )
            .await,
        )
        .unwrap();
        list["items"][0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    });
    // Nothing in flight: a GET by name is served.
    assert_eq!(get(&client, &pod).await.0, StatusCode::OK);

    // Two clients whose LISTs have sent their headers but not their bodies hold both slots.
    let mut first = list_without_reading(addr).await;
    let second = list_without_reading(addr).await;
    let (status, retry_after) = get(&client, &pod).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry_after
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(secs >= 1, "{secs}");
    // Still held a while later: nothing but the body's end gives a slot back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(&client, &pod).await.0, StatusCode::TOO_MANY_REQUESTS);

    // The first client reads its body to the end: its slot is free again.
    let read = read_to_end(&mut first).await;
    assert!(read > 5_000_000, "the LIST was {read} bytes");
    until_served(&client, &pod).await;
    // One slot is free and one still held: a further non-reading LIST takes the free one.
    let third = list_without_reading(addr).await;
    assert_eq!(get(&client, &pod).await.0, StatusCode::TOO_MANY_REQUESTS);

    // A client that goes away mid-body gives its slot back too.
    drop(second);
    until_served(&client, &pod).await;
    drop(third);
    drop(first);
    kg.shutdown().await;
    sim.shutdown().await;
}
