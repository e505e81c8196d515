//! kubeguard's own h2 server (`src/front/h2own`, `server.h2Server: kubeguard`, the default) in
//! front of the emulator, driven by the `h2` crate (h2 with prior knowledge on the plain loopback
//! listener) and by hyper's and the kube crate's h2 clients over TLS.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use futures_util::future::join_all;
use http::{Request, StatusCode};
use kubeguard::serve::RunningServe;
use kubeguard::sim::{RunningSim, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn env(pods: usize, kg_yaml: &str) -> (RunningSim, RunningServe) {
    let sim = kubeguard::sim::start(SimOptions {
        nodes: 1,
        namespaces: 1,
        pods,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    // Continues start_kubeguard's `server:` section: named although it is the default, so these
    // tests keep testing it whatever the default becomes.
    let kg = start_kubeguard(&sim.url, &format!("  h2Server: kubeguard\n{kg_yaml}")).await;
    (sim, kg)
}

fn plain_addr(kg: &RunningServe) -> String {
    plain_url(kg).trim_start_matches("http://").to_string()
}

async fn h2c(kg: &RunningServe, builder: h2::client::Builder) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(plain_addr(kg)).await.unwrap();
    let (send, conn) = builder.handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// Starts a GET on `send`; the response head and its body stream.
async fn start_get(
    send: &h2::client::SendRequest<Bytes>,
    path: &str,
) -> http::Response<h2::RecvStream> {
    let mut send = send.clone().ready().await.unwrap();
    let req = Request::get(format!("http://kg{path}")).body(()).unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    resp.await.unwrap()
}

async fn read_all(mut body: h2::RecvStream) -> Bytes {
    let mut out = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        out.extend_from_slice(&chunk);
    }
    out.freeze()
}

async fn get(send: &h2::client::SendRequest<Bytes>, path: &str) -> (StatusCode, Bytes) {
    let resp = start_get(send, path).await;
    let status = resp.status();
    (status, read_all(resp.into_body()).await)
}

fn items(body: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn gets_over_h2c_and_over_tls() {
    let (_sim, kg) = env(5, "").await;
    let send = h2c(&kg, h2::client::Builder::new()).await;
    let (status, body) = get(&send, "/api/v1/pods").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items(&body), 5);
    // A 404 from the upstream and kubeguard's own answers go through too.
    let (status, _) = get(&send, "/api/v1/namespaces/nope/pods/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let client = client(&kg, true);
    let resp = client
        .get(format!("{}/api/v1/pods", tls_url(&kg)).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(items(&body_bytes(resp.into_body()).await), 5);
}

#[tokio::test]
async fn a_hundred_concurrent_streams_on_one_connection() {
    let (_sim, kg) = env(5, "").await;
    let send = h2c(&kg, h2::client::Builder::new()).await;
    let answers = join_all((0..100).map(|_| get(&send, "/api/v1/pods"))).await;
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(items(&body), 5);
    }
}

#[tokio::test]
async fn a_large_list_through_a_small_client_window() {
    let (_sim, kg) = env(4000, "").await;
    let send = h2c(
        &kg,
        h2::client::Builder::new()
            .initial_window_size(8 * 1024)
            .initial_connection_window_size(16 * 1024)
            .clone(),
    )
    .await;
    let (status, body) = get(&send, "/api/v1/pods").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.len() > 1 << 20, "a LIST of {} bytes", body.len());
    assert_eq!(items(&body), 4000);
    // Two at once on the same small connection window.
    let (a, b) = tokio::join!(get(&send, "/api/v1/pods"), get(&send, "/api/v1/pods"));
    assert_eq!((items(&a.1), items(&b.1)), (4000, 4000));
}

async fn first_namespace(send: &h2::client::SendRequest<Bytes>) -> (String, String) {
    let (status, body) = get(send, "/api/v1/namespaces").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ns = v["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, pods) = get(send, "/api/v1/pods").await;
    let v: serde_json::Value = serde_json::from_slice(&pods).unwrap();
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    (ns, rv)
}

/// Reads the watch until `needle` arrives (bounded); what was read.
async fn watch_until(body: &mut h2::RecvStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            seen.extend_from_slice(&chunk);
            if String::from_utf8_lossy(&seen).contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "watch ended or timed out; saw {}",
        String::from_utf8_lossy(&seen)
    );
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_watch_receives_an_event_and_a_create_with_a_body_goes_through() {
    let (_sim, kg) = env(5, "").await;
    let send = h2c(&kg, h2::client::Builder::new()).await;
    let (ns, rv) = first_namespace(&send).await;
    let resp = start_get(
        &send,
        &format!("/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut watch = resp.into_body();

    // A create with a body, on the same connection.
    let mut post = send.clone().ready().await.unwrap();
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "h2own-cm"},
        "data": {"k": "v"},
    })
    .to_string();
    let req = Request::post(format!("http://kg/api/v1/namespaces/{ns}/configmaps"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (resp, mut stream) = post.send_request(req, false).unwrap();
    stream.send_data(Bytes::from(body), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    read_all(resp.into_body()).await;

    let event = watch_until(&mut watch, "h2own-cm").await;
    assert!(event.contains("\"ADDED\""), "{event}");
}

/// A client RST_STREAM drops the stream's pipeline future and body: with one long-running slot,
/// a second watch is admitted once the first one was reset.
#[tokio::test]
async fn a_client_reset_mid_response_drops_the_stream() {
    let (_sim, kg) = env(5, "limits:\n  maxLongRunning: 1\n").await;
    let send = h2c(&kg, h2::client::Builder::new()).await;
    let (ns, rv) = first_namespace(&send).await;
    let path = format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}");
    let first = start_get(&send, &path).await;
    assert_eq!(first.status(), StatusCode::OK);
    let busy = start_get(&send, &path).await;
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(busy);
    // Dropping the response body and its stream handle resets the stream (CANCEL).
    drop(first);
    let admitted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let resp = start_get(&send, &path).await;
            if resp.status() == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(admitted.is_ok(), "the reset watch kept its slot");
    // The connection goes on serving.
    let (status, _) = get(&send, "/api/v1/pods").await;
    assert_eq!(status, StatusCode::OK);
}

/// The connection preface's first frame must be SETTINGS (RFC 9113 §3.4): anything else is
/// answered GOAWAY(PROTOCOL_ERROR).
#[tokio::test]
async fn a_bad_preface_is_answered_goaway() {
    let (_sim, kg) = env(1, "").await;
    let mut tcp = TcpStream::connect(plain_addr(&kg)).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // A PING instead of SETTINGS.
    out.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0; 8]);
    tcp.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    // Frames: SETTINGS, then GOAWAY.
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= got.len() {
        let len = (usize::from(got[at]) << 16)
            | (usize::from(got[at + 1]) << 8)
            | usize::from(got[at + 2]);
        if got[at + 3] == 7 {
            let p = &got[at + 9..at + 9 + len];
            goaway = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        at += 9 + len;
    }
    assert_eq!(
        goaway,
        Some(1),
        "GOAWAY(PROTOCOL_ERROR) expected in {got:?}"
    );
}
