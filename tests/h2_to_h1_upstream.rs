//! Requests hyper serves (HTTP/2 clients) to an upstream that speaks only HTTP/1.1, over the
//! connections kubeguard keeps itself (`src/front/pooled.rs`): kept and reused, bodies both ways
//! in every framing, a connection the upstream closes is not reused, a request on a kept
//! connection the upstream closed while idle is sent again on a new one.

#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type UpBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An HTTP/1.1-only upstream that counts the connections it accepted. `/api/v1/small` answers
/// with a length, `/api/v1/chunked` in three chunks, `/api/v1/close` with `Connection: close`,
/// `/api/v1/echo` the body it got and how it was framed. With `close_idle`, every connection is
/// closed 200 ms after it was opened (an apiserver closing idle connections).
struct H1Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

async fn start_upstream(close_idle: bool) -> H1Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (count, ended) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let ended = ended.clone();
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle));
                if close_idle {
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = tokio::time::sleep(Duration::from_millis(200)) => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                } else {
                    let _ = conn.await;
                }
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    H1Upstream {
        addr,
        accepted,
        closed,
    }
}

fn full(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).boxed()
}

async fn handle(req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    let resp = match req.uri().path() {
        "/api/v1/small" => Response::builder()
            .header("content-type", "application/json")
            .body(full(r#"{"kind":"Small"}"#))
            .unwrap(),
        "/api/v1/chunked" => {
            let parts = ["{\"kind\":", "\"Chunked\",", "\"items\":[]}"];
            let stream = futures_util::stream::iter(
                parts.map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from_static(p.as_bytes())))),
            );
            Response::builder()
                .header("content-type", "application/json")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
        "/api/v1/close" => Response::builder()
            .header("connection", "close")
            .body(full("closing"))
            .unwrap(),
        "/api/v1/echo" => {
            let framing = match (
                req.headers().get("content-length"),
                req.headers().get("transfer-encoding"),
            ) {
                (Some(n), _) => format!("length {}", n.to_str().unwrap()),
                (None, Some(te)) => te.to_str().unwrap().to_string(),
                (None, None) => "none".into(),
            };
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Response::builder()
                .header("x-framing", framing)
                .body(full(body))
                .unwrap()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full("no"))
            .unwrap(),
    };
    Ok(resp)
}

async fn get(client: &TestClient, url: String) -> (StatusCode, Bytes) {
    let resp = client
        .request(Request::get(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    (status, body_bytes(resp.into_body()).await)
}

#[tokio::test]
async fn h2_requests_reuse_kept_http1_connections() {
    let up = start_upstream(false).await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let client = client(&kg, true);
    let url = tls_url(&kg);
    for _ in 0..20 {
        let (status, body) = get(&client, format!("{url}/api/v1/small")).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], br#"{"kind":"Small"}"#);
    }
    // kubeguard's own startup requests (version, discovery) may have used a connection or two.
    let after_sequential = up.accepted.load(Ordering::SeqCst);
    assert!(
        after_sequential <= 3,
        "{after_sequential} connections for 20 sequential GETs"
    );

    // Eight at once need up to eight connections; the next eight find them kept.
    let batch = || {
        futures_util::future::join_all(
            (0..8).map(|_| get(&client, format!("{url}/api/v1/chunked"))),
        )
    };
    for (status, body) in batch().await {
        assert_eq!(status, 200);
        assert_eq!(&body[..], br#"{"kind":"Chunked","items":[]}"#);
    }
    let after_first_batch = up.accepted.load(Ordering::SeqCst);
    for (status, _) in batch().await {
        assert_eq!(status, 200);
    }
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        after_first_batch,
        "a second batch opened new connections"
    );
    kg.shutdown().await;
}

#[tokio::test]
async fn request_bodies_travel_with_a_length_or_chunked() {
    bodies_travel_with_a_length_or_chunked("").await;
}

/// The same through hyper's h2 server (`server.h2Server: hyper`; kubeguard's own, whose request
/// bodies stream as their DATA frames arrive, is the default).
#[tokio::test]
async fn request_bodies_travel_with_a_length_or_chunked_through_hypers_h2_server() {
    bodies_travel_with_a_length_or_chunked("  h2Server: hyper\n").await;
}

async fn bodies_travel_with_a_length_or_chunked(kg_yaml: &str) {
    let up = start_upstream(false).await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), kg_yaml).await;
    let url = tls_url(&kg);

    // A body of known length (the h2 client sends content-length).
    let client = client(&kg, true);
    let resp = client
        .request(
            Request::post(format!("{url}/api/v1/echo"))
                .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-framing"], "length 7");
    assert_eq!(&body_bytes(resp.into_body()).await[..], b"{\"a\":1}");

    // A body streamed without a length goes upstream chunked, whole.
    let streaming = streaming_client(&kg);
    let pieces = ["{\"b\":", "\"", &"x".repeat(100_000), "\"}"].map(str::to_owned);
    let expected: String = pieces.concat();
    let stream = futures_util::stream::iter(
        pieces.map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from(p)))),
    );
    let resp = streaming
        .request(
            Request::post(format!("{url}/api/v1/echo"))
                .body(StreamBody::new(stream).boxed())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-framing"], "chunked");
    assert_eq!(body_bytes(resp.into_body()).await, expected.as_bytes());

    // An empty POST says so.
    let resp = client
        .request(
            Request::post(format!("{url}/api/v1/echo"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-framing"], "length 0");
    kg.shutdown().await;
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_not_reused() {
    let up = start_upstream(false).await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let client = client(&kg, true);
    let url = tls_url(&kg);
    get(&client, format!("{url}/api/v1/small")).await;
    let before = up.accepted.load(Ordering::SeqCst);
    for _ in 0..3 {
        let (status, body) = get(&client, format!("{url}/api/v1/close")).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"closing");
    }
    let (status, _) = get(&client, format!("{url}/api/v1/small")).await;
    assert_eq!(status, 200);
    // The kept connection served the first close; each close cost the next request a new one.
    assert_eq!(up.accepted.load(Ordering::SeqCst), before + 3);
    kg.shutdown().await;
}

#[tokio::test]
async fn a_get_on_a_connection_closed_while_idle_goes_out_again() {
    let up = start_upstream(true).await;
    let kg = start_kubeguard(&format!("http://{}", up.addr), "").await;
    let client = client(&kg, true);
    let url = tls_url(&kg);
    for _ in 0..4 {
        let (status, body) = get(&client, format!("{url}/api/v1/small")).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], br#"{"kind":"Small"}"#);
        // The upstream closes the kept connection before the next GET comes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while up.closed.load(Ordering::SeqCst) < up.accepted.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the upstream never closed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Each GET after the first found its kept connection closed and went out on a new one.
    assert!(up.accepted.load(Ordering::SeqCst) >= 4);
    kg.shutdown().await;
}

type StreamingClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    UpBody,
>;

/// An h2 client whose request bodies may be streams (no declared length).
fn streaming_client(kg: &kubeguard::serve::RunningServe) -> StreamingClient {
    let mut roots = rustls::RootCertStore::empty();
    for c in
        kubeguard::tls::certs_from_pem(kg.cert_pem.as_ref().unwrap().as_bytes(), "test").unwrap()
    {
        roots.add(c).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(kubeguard::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http2()
        .build();
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector)
}
