//! The proxy's own mechanics against a scripted upstream: header hygiene, streaming without
//! buffering, upgrades only after 101, and Status errors for upstream faults. (The emulated
//! apiserver and real clients are exercised in `e2e_*.rs`.)

#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A scripted upstream. `/echo` answers the request headers it received as JSON; `/stream`
/// sends one chunk per message on `chunks`; `/slow` answers after 3 s; `/upgrade-ok` switches
/// protocols and echoes bytes; `/upgrade-refused` answers 403.
struct Upstream {
    addr: SocketAddr,
}

async fn start_upstream() -> (Upstream, mpsc::Sender<Bytes>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let shared = Arc::new(Mutex::new(Some(rx)));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, shared.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (Upstream { addr }, tx)
}

fn full(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).boxed()
}

async fn handle(
    mut req: Request<Incoming>,
    chunks: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_string();
    let resp = match path.as_str() {
        "/api/v1/echo" => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        serde_json::Value::String(v.to_str().unwrap_or("").to_string()),
                    )
                })
                .collect();
            let body = serde_json::json!({
                "headers": headers,
                "uri": req.uri().to_string(),
                "version": format!("{:?}", req.version()),
            });
            Response::builder()
                .header("content-type", "application/json")
                .header("x-upstream", "yes")
                .body(full(body.to_string()))
                .unwrap()
        }
        "/api/v1/namespaces/default/pods" => {
            // A watch-like stream: one chunk per message, ends when the sender is dropped.
            let rx = chunks.lock().unwrap().take().expect("one stream per test");
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            Response::builder()
                .header("content-type", "application/json")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
        "/api/v1/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::new(full("late"))
        }
        "/api/v1/namespaces/default/pods/p/exec"
        | "/api/v1/namespaces/default/pods/p/attach"
        | "/api/v1/namespaces/default/pods/p/portforward" => {
            if req.uri().query().unwrap_or("").contains("refuse") {
                Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .body(full(r#"{"kind":"Status","code":403}"#))
                    .unwrap()
            } else {
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let upgraded = on_upgrade.await.unwrap();
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 64];
                    loop {
                        let n = io.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        io.write_all(b"echo:").await.unwrap();
                        io.write_all(&buf[..n]).await.unwrap();
                    }
                });
                // The protocol the client asked for (WebSocket, or SPDY/3.1 with its stream
                // protocol version), as the kubelet's answer names it.
                let mut answer = Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "Upgrade");
                for name in [
                    "upgrade",
                    "sec-websocket-protocol",
                    "x-stream-protocol-version",
                ] {
                    if let Some(v) = req.headers().get(name) {
                        answer = answer.header(name, v);
                    }
                }
                answer.body(full("")).unwrap()
            }
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full("no"))
            .unwrap(),
    };
    Ok(resp)
}

async fn echo_headers(
    client: &TestClient,
    url: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::get(format!("{url}/api/v1/echo"))
        .header("X-Remote-User", "root")
        .header("X-Remote-Group", "system:masters")
        .header("Authorization", "Bearer client-token")
        .header("Audit-ID", "11111111-2222-3333-4444-555555555555");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let from_upstream = resp.headers().contains_key("x-upstream");
    let body = serde_json::from_slice(&body_bytes(resp.into_body()).await).unwrap();
    assert_eq!(from_upstream, status == StatusCode::OK, "{status} {body}");
    (status, body)
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream_h1_and_h2() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    for h2 in [false, true] {
        let (code, seen) = echo_headers(&client(&kg, h2), &tls_url(&kg), &[]).await;
        assert_eq!(code, StatusCode::OK);
        let headers = seen["headers"].as_object().unwrap();
        for k in headers.keys() {
            assert!(
                !k.starts_with("impersonate-") && !k.starts_with("x-remote-"),
                "h2={h2}: {k} reached the upstream: {seen}"
            );
        }
        // What belongs to the client passes through untouched.
        assert_eq!(headers["authorization"], "Bearer client-token", "h2={h2}");
        assert_eq!(
            headers["audit-id"], "11111111-2222-3333-4444-555555555555",
            "h2={h2}"
        );
        assert_eq!(seen["uri"], "/api/v1/echo");
    }
    kg.shutdown().await;
}

/// With identity checks off a client's `Impersonate-*` (`kubectl --as`) is refused, in any
/// case and any combination: dropped silently, the request would run as the caller instead of
/// as the user it names.
#[tokio::test]
async fn impersonation_without_identity_checks_is_refused_not_dropped() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let asks: [&[(&str, &str)]; 4] = [
        &[("Impersonate-User", "system:admin")],
        &[
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "system:masters"),
        ],
        &[("impersonate-uid", "42")],
        &[("IMPERSONATE-EXTRA-scopes", "all")],
    ];
    for h2 in [false, true] {
        for ask in asks {
            let (code, status) = echo_headers(&client(&kg, h2), &tls_url(&kg), ask).await;
            assert_eq!(code, StatusCode::FORBIDDEN, "h2={h2} {ask:?}: {status}");
            assert_eq!(status["kind"], "Status");
            assert_eq!(status["reason"], "Forbidden");
            let message = status["message"].as_str().unwrap();
            assert!(
                message.contains("impersonation") && message.contains("identity.sources"),
                "{message}"
            );
        }
    }
    kg.shutdown().await;
}

#[tokio::test]
async fn watch_chunks_are_flushed_one_by_one_h1() {
    watch_chunks_are_flushed(false).await;
}

#[tokio::test]
async fn watch_chunks_are_flushed_one_by_one_h2() {
    watch_chunks_are_flushed(true).await;
}

async fn watch_chunks_are_flushed(h2: bool) {
    let (up, tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let req = Request::get(format!(
        "{}/api/v1/namespaces/default/pods?watch=true",
        tls_url(&kg)
    ))
    .body(Full::new(Bytes::new()))
    .unwrap();
    let resp = client(&kg, h2).request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    for i in 0..3 {
        let event = format!("{{\"type\":\"ADDED\",\"n\":{i}}}\n");
        tx.send(Bytes::from(event.clone())).await.unwrap();
        // The next event is only sent after this one arrived: nothing may wait for more data.
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("event delivered without waiting for the next one")
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), Bytes::from(event));
    }
    drop(tx);
    // When the upstream ends the watch, the client's stream ends cleanly (h2 may carry the end
    // of stream on an empty DATA frame).
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("stream ends")
        .expect("clean end, not an error");
    assert!(rest.to_bytes().is_empty());
    kg.shutdown().await;
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_status() {
    let port = unused_port();
    let kg = start_kubeguard(&format!("http://127.0.0.1:{port}"), "").await;
    let resp = client(&kg, false)
        .request(
            Request::get(format!("{}/api/v1/pods", tls_url(&kg)))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let status: serde_json::Value =
        serde_json::from_slice(&body_bytes(resp.into_body()).await).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 502);
    assert!(
        status["message"].as_str().unwrap().contains("unreachable"),
        "{status}"
    );
    kg.shutdown().await;
}

#[tokio::test]
async fn slow_upstream_is_a_504_status() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(
        &format!("http://{}", up.addr),
        "upstream:\n  responseHeaderTimeout: 300ms\n",
    )
    .await;
    let resp = client(&kg, true)
        .request(
            Request::get(format!("{}/api/v1/slow", tls_url(&kg)))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let status: serde_json::Value =
        serde_json::from_slice(&body_bytes(resp.into_body()).await).unwrap();
    assert_eq!(status["reason"], "Timeout");
    kg.shutdown().await;
}

/// The front end keeps one response-header timer per connection and moves it for each request:
/// a connection idle for longer than the timeout still gets its next answer, and a stalled
/// request later on the same connection still times out.
#[tokio::test]
async fn the_response_header_timeout_holds_for_every_request_of_a_kept_connection() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(
        &format!("http://{}", up.addr),
        "upstream:\n  responseHeaderTimeout: 300ms\n",
    )
    .await;
    // One HTTP/1.1 connection, kept between requests (the front end serves it).
    let c = client(&kg, false);
    let get = |path: &str| {
        c.request(
            Request::get(format!("{}{path}", tls_url(&kg)))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    let first = get("/api/v1/echo").await.unwrap();
    assert_eq!(first.status(), 200);
    body_bytes(first.into_body()).await;
    // Idle past the first request's deadline: the kept timer must not fire on the next one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = get("/api/v1/echo").await.unwrap();
    assert_eq!(second.status(), 200);
    body_bytes(second.into_body()).await;
    let started = std::time::Instant::now();
    let slow = get("/api/v1/slow").await.unwrap();
    assert_eq!(slow.status(), 504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "504 after {took:?}; the timeout is 300 ms"
    );
    kg.shutdown().await;
}

#[tokio::test]
async fn malformed_path_is_a_400_status_and_serving_goes_on() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let c = client(&kg, false);
    let resp = c
        .request(
            Request::get(format!("{}/api/v1/namespaces/%zz/pods", tls_url(&kg)))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let status: serde_json::Value =
        serde_json::from_slice(&body_bytes(resp.into_body()).await).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    // The same connection pool keeps working.
    let (_, seen) = echo_headers(&c, &tls_url(&kg), &[]).await;
    assert_eq!(seen["uri"], "/api/v1/echo");
    kg.shutdown().await;
}

/// Raw HTTP/1.1 upgrade through the plain listener: the upstream's 101 is relayed and bytes
/// flow both ways.
#[tokio::test]
async fn upgrade_is_bridged_after_101() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let addr = plain_url(&kg).trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"GET /api/v1/namespaces/default/pods/p/exec?command=sh HTTP/1.1\r\nHost: x\r\n\
          Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("sec-websocket-protocol: v5.channel.k8s.io"),
        "{head}"
    );
    s.write_all(b"hello").await.unwrap();
    let mut buf = vec![0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo arrives")
        .unwrap();
    assert_eq!(&buf, b"echo:hello");
    kg.shutdown().await;
}

/// kubectl's SPDY/3.1 (its fallback, and the only protocol of kubectl < 1.30): a POST with
/// `Upgrade: SPDY/3.1`, for port-forward and attach as for exec, is bridged the same way.
#[tokio::test]
async fn spdy_port_forward_and_websocket_attach_are_bridged_after_101() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let addr = plain_url(&kg).trim_start_matches("http://").to_string();
    for (request, protocol) in [
        (
            "POST /api/v1/namespaces/default/pods/p/portforward HTTP/1.1\r\nHost: x\r\n\
             Content-Length: 0\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
            "x-stream-protocol-version: portforward.k8s.io",
        ),
        (
            "GET /api/v1/namespaces/default/pods/p/attach?container=c&stdout=true HTTP/1.1\r\n\
             Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n",
            "sec-websocket-protocol: v5.channel.k8s.io",
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let head = read_head(&mut s).await.to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains(protocol), "{head}");
        for round in [&b"ping"[..], b"pong!"] {
            s.write_all(round).await.unwrap();
            let mut buf = vec![0u8; 5 + round.len()];
            tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
                .await
                .expect("echo arrives")
                .unwrap();
            assert_eq!(&buf[..5], b"echo:", "{request}");
            assert_eq!(&buf[5..], round, "{request}");
        }
    }
    kg.shutdown().await;
}

/// A refused upgrade returns the upstream's answer and closes the client connection
/// (CVE-2018-1002105: nothing may be piped over a connection that was not upgraded).
#[tokio::test]
async fn refused_upgrade_returns_the_answer_and_closes() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let addr = plain_url(&kg).trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"GET /api/v1/namespaces/default/pods/p/exec?command=refuse HTTP/1.1\r\nHost: x\r\n\
          Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
        .await
        .expect("kubeguard closes the connection")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains(r#""code":403"#), "{text}");
    kg.shutdown().await;
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let config = kubeguard::config::FileConfig::from_yaml(
        "server:\n  listen: [\"http://0.0.0.0:0\"]\n",
        "test",
    );
    let err = config.unwrap_err().to_string();
    assert!(err.contains("server.listen[0]"), "{err}");
    assert!(err.contains("loopback"), "{err}");
}

#[tokio::test]
async fn admin_endpoints() {
    let (up, _tx) = start_upstream().await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let c = client(&kg, false);
    let _ = echo_headers(&c, &tls_url(&kg), &[]).await;
    let admin = format!("http://{}", kg.admin_addr);
    for (path, code) in [("/healthz", 200), ("/readyz", 200), ("/nope", 404)] {
        let resp = c
            .request(
                Request::get(format!("{admin}{path}"))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), code, "{path}");
    }
    let resp = c
        .request(
            Request::get(format!("{admin}/metrics"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(body_bytes(resp.into_body()).await.to_vec()).unwrap();
    assert!(
        text.contains(r#"kubeguard_requests_total{verb="list",resource="echo",code="200"}"#),
        "{text}"
    );
    assert!(text.contains("kubeguard_response_bytes_total"), "{text}");
    kg.shutdown().await;
}

#[tokio::test]
async fn readyz_fails_when_upstream_is_down() {
    let port = unused_port();
    let kg = start_kubeguard(&format!("http://127.0.0.1:{port}"), "").await;
    let resp = client(&kg, false)
        .request(
            Request::get(format!("http://{}/readyz", kg.admin_addr))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    kg.shutdown().await;
}

async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("head arrives")
            .unwrap();
        assert_eq!(n, 1, "connection closed before the head ended: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}
