use std::convert::Infallible;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use http::header;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::*;

const INTERVAL: Duration = Duration::from_millis(20);
const T: Duration = Duration::from_secs(10);

fn pod() -> Value {
    json!({
        "metadata": {"name": "web-1", "namespace": "prod"},
        "spec": {
            "containers": [
                {"name": "app", "image": "nginx"},
                {"name": "shell", "image": "busybox", "command": ["sh"]}
            ],
            "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]
        }
    })
}

/// An HTTP/1.1 server on 127.0.0.1:0 answering every request with [`serve`] for [`pod`].
async fn server(gone: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let gone = gone.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let gone = gone.clone();
                    async move { Ok::<_, Infallible>(serve(req, &pod(), gone, INTERVAL)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

fn url(addr: SocketAddr, query: &str) -> String {
    format!("ws://{addr}/api/v1/namespaces/prod/pods/web-1/attach?{query}")
}

async fn attach(addr: SocketAddr, query: &str) -> WebSocketStream<TcpStream> {
    let mut req = url(addr, query).into_client_request().unwrap();
    req.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp).await.unwrap().0
}

/// The refusal of an attach request that is not upgraded: (code, message).
async fn refused(addr: SocketAddr, query: &str) -> (u16, String) {
    let mut req = url(addr, query).into_client_request().unwrap();
    req.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            (
                resp.status().as_u16(),
                body["message"].as_str().unwrap().to_string(),
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Reads stdout until it contains `wanted` (bounded); returns all of it.
async fn stdout_until(ws: &mut WebSocketStream<TcpStream>, wanted: &str) -> String {
    let mut out = String::new();
    tokio::time::timeout(T, async {
        while !out.contains(wanted) {
            match ws.next().await.unwrap().unwrap() {
                Message::Binary(b) if b[0] == 1 => out.push_str(&String::from_utf8_lossy(&b[1..])),
                Message::Binary(b) => panic!("unexpected channel {}: {b:?}", b[0]),
                other => panic!("unexpected message {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} in {out:?}"));
    out
}

/// Reads to the end of the session: its channel-3 status and whether it closed normally.
async fn end(ws: &mut WebSocketStream<TcpStream>) -> (Value, bool) {
    let mut status = Value::Null;
    let mut normal = false;
    tokio::time::timeout(T, async {
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Binary(b) if b[0] == 3 => {
                    status = serde_json::from_slice(&b[1..]).unwrap()
                }
                Message::Close(frame) => {
                    normal = frame.is_some_and(|f| f.code == CloseCode::Normal)
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the session ends");
    (status, normal)
}

fn stdin(text: &str) -> Message {
    let mut b = vec![0u8];
    b.extend_from_slice(text.as_bytes());
    Message::Binary(b.into())
}

#[test]
fn main_process_is_a_builtin_command_an_ephemeral_shell_or_a_server() {
    let p = pod();
    assert_eq!(MainProcess::of(&p, "app"), MainProcess::Server);
    assert_eq!(
        MainProcess::of(&p, "shell"),
        MainProcess::Command(vec!["sh".into()])
    );
    assert_eq!(
        MainProcess::of(&p, "debugger"),
        MainProcess::Command(vec!["sh".into()])
    );
    let with_args = json!({"spec": {"containers": [
        {"name": "c", "command": ["/bin/sh"], "args": ["-c", "echo hi"]},
        {"name": "n", "command": ["nginx", "-g", "daemon off;"]}
    ]}});
    assert_eq!(
        MainProcess::of(&with_args, "c"),
        MainProcess::Command(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
    );
    assert_eq!(MainProcess::of(&with_args, "n"), MainProcess::Server);
}

#[tokio::test]
async fn a_server_streams_new_log_lines_until_the_pod_is_gone() {
    let gone = CancellationToken::new();
    let addr = server(gone.clone()).await;
    let mut ws = attach(addr, "container=app&stdout=true&stderr=true").await;
    let out = stdout_until(&mut ws, "n=21").await;
    // From the moment of attaching: the log's history (lines 0..20) is not replayed.
    let first = out.lines().next().unwrap();
    assert!(
        first.ends_with("INFO app=app pod=web-1 request served n=20"),
        "{out}"
    );
    gone.cancel();
    let (status, normal) = end(&mut ws).await;
    assert_eq!(status, json!({"metadata": {}, "status": "Success"}));
    assert!(normal);
}

#[tokio::test]
async fn a_server_echoes_what_is_typed_with_stdin() {
    let addr = server(CancellationToken::new()).await;
    let mut ws = attach(addr, "container=app&stdin=true&stdout=true").await;
    ws.send(stdin("hello there\n")).await.unwrap();
    let out = stdout_until(&mut ws, "hello there\n").await;
    assert!(out.lines().any(|l| l == "hello there"), "{out}");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_shell_main_process_runs_what_is_typed_and_ends_with_exit() {
    let addr = server(CancellationToken::new()).await;
    let mut ws = attach(addr, "container=shell&stdin=true&stdout=true&stderr=true").await;
    ws.send(stdin("echo hi from sh\n")).await.unwrap();
    stdout_until(&mut ws, "hi from sh\n").await;
    ws.send(stdin("exit 3\n")).await.unwrap();
    let (status, normal) = end(&mut ws).await;
    assert_eq!(status["status"], "Success");
    assert!(normal);
}

#[tokio::test]
async fn an_ephemeral_container_gets_a_shell_on_a_terminal() {
    let addr = server(CancellationToken::new()).await;
    let mut ws = attach(addr, "container=debugger&stdin=true&stdout=true&tty=true").await;
    stdout_until(&mut ws, "/ # ").await;
    ws.send(stdin("hostname\r")).await.unwrap();
    stdout_until(&mut ws, "web-1\r\n").await;
}

#[tokio::test]
async fn a_shell_without_stdin_waits_until_the_pod_is_gone() {
    let gone = CancellationToken::new();
    let addr = server(gone.clone()).await;
    let mut ws = attach(addr, "container=shell&stdout=true").await;
    let early = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
    assert!(early.is_err(), "the session should wait: {early:?}");
    gone.cancel();
    assert_eq!(end(&mut ws).await.0["status"], "Success");
}

#[tokio::test]
async fn refusals_are_exec_s() {
    let addr = server(CancellationToken::new()).await;
    assert_eq!(
        refused(addr, "stdout=true").await,
        (
            400,
            "a container name must be specified for pod web-1, choose one of: [app shell]".into()
        )
    );
    assert_eq!(
        refused(addr, "container=nope&stdout=true").await,
        (400, "container nope is not valid for pod web-1".into())
    );
    assert_eq!(
        refused(addr, "container=app").await,
        (
            400,
            "you must specify at least 1 of stdin, stdout, stderr".into()
        )
    );
}
