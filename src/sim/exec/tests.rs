use std::convert::Infallible;
use std::net::SocketAddr;

use super::*;
use http_body_util::Empty;
use hyper::service::service_fn;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn pod() -> Value {
    json!({
        "metadata": {
            "name": "web-1",
            "namespace": "prod",
            "annotations": {"team": "payments"}
        },
        "spec": {"containers": [
            {"name": "app", "env": [
                {"name": "FOO", "value": "bar"},
                {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ]},
            {"name": "sidecar"}
        ]}
    })
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0 that routes every request to `serve`.
async fn server(gone: CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Each test makes at most a few connections.
        for _ in 0..4 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let gone = gone.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let gone = gone.clone();
                    async move { Ok::<_, Infallible>(serve(req, &pod(), gone)) }
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

#[derive(Debug, Default)]
struct Outcome {
    protocol: String,
    stdout: String,
    stderr: String,
    status: Value,
    closed_normally: bool,
}

async fn connect(
    addr: SocketAddr,
    query: &str,
    protocols: &str,
) -> (WebSocketStream<TcpStream>, String) {
    let url = format!("ws://{addr}/api/v1/namespaces/prod/pods/web-1/exec?{query}");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert(header::SEC_WEBSOCKET_PROTOCOL, protocols.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    let protocol = resp.headers()[header::SEC_WEBSOCKET_PROTOCOL]
        .to_str()
        .unwrap()
        .to_string();
    (ws, protocol)
}

/// Reads the session to its end, bounded in time.
async fn finish(mut ws: WebSocketStream<TcpStream>, protocol: String) -> Outcome {
    let mut out = Outcome {
        protocol,
        ..Default::default()
    };
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg.unwrap() {
                Message::Binary(b) => {
                    let text = String::from_utf8(b[1..].to_vec()).unwrap();
                    match b[0] {
                        STDOUT => out.stdout.push_str(&text),
                        STDERR => out.stderr.push_str(&text),
                        ERROR => out.status = serde_json::from_str(&text).unwrap(),
                        other => panic!("unexpected channel {other}"),
                    }
                }
                Message::Close(frame) => {
                    out.closed_normally = frame.is_some_and(|f| f.code == CloseCode::Normal);
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("session did not end");
    out
}

async fn exec(query: &str) -> Outcome {
    let addr = server(CancellationToken::new()).await;
    let (ws, protocol) = connect(addr, query, "v5.channel.k8s.io, v4.channel.k8s.io").await;
    finish(ws, protocol).await
}

fn exit_code(status: &Value) -> &str {
    status["details"]["causes"][0]["message"].as_str().unwrap()
}

#[tokio::test]
async fn echo_runs_and_ends_with_success_and_a_normal_close() {
    let out =
        exec("command=echo&command=hello&command=world&container=app&stdout=true&stderr=true")
            .await;
    assert_eq!(out.protocol, "v5.channel.k8s.io");
    assert_eq!(out.stdout, "hello world\n");
    assert_eq!(out.stderr, "");
    assert_eq!(out.status, json!({"metadata": {}, "status": "Success"}));
    assert!(out.closed_normally);
}

#[tokio::test]
async fn non_zero_exit_is_a_failure_status_with_the_exit_code_cause() {
    let out =
        exec("command=sh&command=-c&command=exit%203&container=app&stdout=true&stderr=true").await;
    assert_eq!(out.status["status"], "Failure");
    assert_eq!(out.status["reason"], "NonZeroExitCode");
    assert_eq!(out.status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(exit_code(&out.status), "3");
    assert_eq!(
        out.status["message"],
        "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
    );
    let out = exec("command=false&container=app&stdout=true").await;
    assert_eq!(exit_code(&out.status), "1");
    let out = exec("command=true&container=app&stdout=true").await;
    assert_eq!(out.status["status"], "Success");
}

#[tokio::test]
async fn env_shows_the_container_env_and_hostname() {
    let out = exec("command=env&container=app&stdout=true").await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"HOSTNAME=web-1"), "{lines:?}");
    assert!(lines.contains(&"FOO=bar"), "{lines:?}");
    assert!(lines.contains(&"MY_POD=web-1"), "{lines:?}");
    // The sidecar has no env of its own.
    let out = exec("command=env&container=sidecar&stdout=true").await;
    assert!(!out.stdout.contains("FOO="));
}

#[tokio::test]
async fn cat_reads_hostname_and_annotations() {
    let out = exec("command=cat&command=/etc/hostname&container=app&stdout=true").await;
    assert_eq!(out.stdout, "web-1\n");
    let out = exec("command=/bin/cat&command=/annotations/team&container=app&stdout=true").await;
    assert_eq!(out.stdout, "payments");
    let out =
        exec("command=cat&command=/annotations/nope&container=app&stdout=true&stderr=true").await;
    assert_eq!(
        out.stderr,
        "cat: /annotations/nope: No such file or directory\n"
    );
    assert_eq!(exit_code(&out.status), "1");
}

#[tokio::test]
async fn cat_echoes_stdin_until_the_v5_close_signal() {
    let addr = server(CancellationToken::new()).await;
    let query = "command=cat&container=app&stdin=true&stdout=true&stderr=true";
    let (mut ws, protocol) = connect(addr, query, "v5.channel.k8s.io").await;
    ws.send(frame(STDIN, b"abc")).await.unwrap();
    ws.send(frame(STDIN, b"def\n")).await.unwrap();
    ws.send(frame(4, br#"{"Width":80,"Height":24}"#))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[CLOSE, STDIN])))
        .await
        .unwrap();
    let out = finish(ws, protocol).await;
    assert_eq!(out.stdout, "abcdef\n");
    assert_eq!(out.status["status"], "Success");
}

#[tokio::test]
async fn sh_runs_stdin_lines_until_exit() {
    let addr = server(CancellationToken::new()).await;
    let query = "command=sh&container=app&stdin=true&stdout=true&stderr=true";
    let (mut ws, protocol) = connect(addr, query, "v5.channel.k8s.io").await;
    ws.send(frame(STDIN, b"echo hi; nosuch\nexit 4\n"))
        .await
        .unwrap();
    let out = finish(ws, protocol).await;
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.stderr, "sh: 1: nosuch: not found\n");
    assert_eq!(exit_code(&out.status), "4");
}

#[tokio::test]
async fn v4_is_served_to_older_clients() {
    let addr = server(CancellationToken::new()).await;
    let (ws, protocol) = connect(
        addr,
        "command=echo&command=x&container=app&stdout=true",
        "v4.channel.k8s.io",
    )
    .await;
    let out = finish(ws, protocol).await;
    assert_eq!(out.protocol, "v4.channel.k8s.io");
    assert_eq!(out.stdout, "x\n");
    assert_eq!(out.status["status"], "Success");
}

#[tokio::test]
async fn unknown_command_fails_like_the_runtime() {
    let out = exec("command=nosuch&container=app&stdout=true&stderr=true").await;
    assert!(
        out.stdout
            .contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{}",
        out.stdout
    );
    assert_eq!(exit_code(&out.status), "126");
}

#[tokio::test]
async fn tar_says_kubectl_cp_is_not_emulated() {
    let out =
        exec("command=tar&command=cf&command=-&command=/etc&container=app&stdout=true&stderr=true")
            .await;
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "tar: not emulated by kubeguard sim: kubectl cp needs a real container\n"
    );
    assert_eq!(exit_code(&out.status), "126");
}

#[tokio::test]
async fn tty_merges_stderr_into_stdout_and_unrequested_streams_are_dropped() {
    let out = exec("command=cat&command=/missing&container=app&stdout=true&tty=true").await;
    assert_eq!(out.stdout, "cat: /missing: No such file or directory\r\n");
    let out = exec("command=cat&command=/missing&container=app&stdout=true").await;
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn sleep_is_killed_when_the_pod_goes_away() {
    let gone = CancellationToken::new();
    let addr = server(gone.clone()).await;
    let (ws, protocol) = connect(
        addr,
        "command=sleep&command=3600&container=app&stdout=true",
        "v5.channel.k8s.io",
    )
    .await;
    gone.cancel();
    let out = finish(ws, protocol).await;
    assert_eq!(exit_code(&out.status), "137");
}

#[tokio::test]
async fn short_sleep_completes() {
    let start = std::time::Instant::now();
    let out = exec("command=sleep&command=0.05&container=app&stdout=true").await;
    assert_eq!(out.status["status"], "Success");
    assert!(start.elapsed() >= Duration::from_millis(50));
}

fn ws_request(query: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("/api/v1/namespaces/prod/pods/web-1/exec?{query}"))
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
        .header(header::SEC_WEBSOCKET_PROTOCOL, "v5.channel.k8s.io")
        .body(Empty::new())
        .unwrap()
}

async fn refusal(req: Request<Empty<Bytes>>) -> (StatusCode, Status) {
    let resp = serve(req, &pod(), CancellationToken::new());
    let code = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn requests_are_validated_before_the_upgrade() {
    let (code, s) = refusal(ws_request("container=app&stdout=true")).await;
    assert_eq!(
        (code.as_u16(), s.message.as_str()),
        (400, "you must specify at least 1 command")
    );

    let (code, s) = refusal(ws_request("command=ls&container=db&stdout=true")).await;
    assert_eq!(
        (code.as_u16(), s.message.as_str()),
        (400, "container db is not valid for pod web-1")
    );

    let (_, s) = refusal(ws_request("command=ls&stdout=true")).await;
    assert!(
        s.message
            .starts_with("a container name must be specified for pod web-1"),
        "{}",
        s.message
    );

    let (code, s) = refusal(ws_request("command=ls&container=app")).await;
    assert_eq!(
        (code.as_u16(), s.message.as_str()),
        (400, "you must specify at least 1 of stdin, stdout, stderr")
    );
}

#[tokio::test]
async fn non_websocket_requests_are_refused() {
    let plain = Request::get("/x?command=ls&container=app&stdout=true")
        .body(Empty::new())
        .unwrap();
    let (code, s) = refusal(plain).await;
    assert_eq!(
        (code.as_u16(), s.message.as_str()),
        (400, "Upgrade request required")
    );

    let spdy = Request::post("/x?command=ls&container=app&stdout=true")
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .body(Empty::new())
        .unwrap();
    let (code, s) = refusal(spdy).await;
    assert_eq!(code, 400);
    assert!(
        s.message.contains("SPDY/3.1 is not emulated"),
        "{}",
        s.message
    );

    let mut old = ws_request("command=ls&container=app&stdout=true");
    old.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "channel.k8s.io".parse().unwrap(),
    );
    let (code, s) = refusal(old).await;
    assert_eq!(code, 400);
    assert!(
        s.message
            .starts_with("requested protocol(s) are not supported"),
        "{}",
        s.message
    );
}

#[test]
fn handshake_answers_the_rfc_6455_accept_key() {
    let req = ws_request("command=ls&container=app&stdout=true");
    let hs = handshake(req.method(), req.headers()).unwrap();
    // The example key and answer of RFC 6455 §1.3.
    assert_eq!(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let resp = switching_protocols(&hs);
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        resp.headers()[header::SEC_WEBSOCKET_PROTOCOL],
        "v5.channel.k8s.io"
    );
}

#[test]
fn terminal_edits_lines_and_knows_control_keys() {
    let mut t = Terminal::default();
    let input = t.input(b"ecg\x7fho hi\r");
    assert_eq!(input.deliver, b"echo hi\n");
    assert_eq!(input.echo, b"ecg\x08 \x08ho hi\n");
    assert!(!input.eof && !input.interrupt);
    // A partial line stays until Enter; Ctrl-D after it hands it over without ending input.
    assert!(t.input(b"ab").deliver.is_empty());
    let input = t.input(b"\x04");
    assert_eq!((input.deliver.as_slice(), input.eof), (&b"ab"[..], false));
    assert!(t.input(b"\x04").eof);
    let input = t.input(b"sleep 9\x03");
    assert!(input.interrupt && input.deliver.is_empty());
    assert_eq!(input.echo, b"sleep 9^C\n");
}

#[tokio::test]
async fn tty_shell_prompts_echoes_and_ends_on_ctrl_d() {
    let addr = server(CancellationToken::new()).await;
    let query = "command=sh&container=app&stdin=true&stdout=true&tty=true";
    let (mut ws, protocol) = connect(addr, query, "v5.channel.k8s.io").await;
    ws.send(frame(STDIN, b"echo hi\r")).await.unwrap();
    ws.send(frame(STDIN, b"\x04")).await.unwrap();
    let out = finish(ws, protocol).await;
    assert_eq!(out.stdout, "/ # echo hi\r\nhi\r\n/ # ");
    assert_eq!(out.status["status"], "Success");
}

#[tokio::test]
async fn ctrl_c_interrupts_a_tty_command() {
    let addr = server(CancellationToken::new()).await;
    let query = "command=sleep&command=3600&container=app&stdin=true&stdout=true&tty=true";
    let (mut ws, protocol) = connect(addr, query, "v5.channel.k8s.io").await;
    ws.send(frame(STDIN, b"\x03")).await.unwrap();
    let out = finish(ws, protocol).await;
    assert_eq!(out.stdout, "^C\r\n");
    assert_eq!(exit_code(&out.status), "130");
}

#[tokio::test]
async fn a_client_that_leaves_ends_the_session() {
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let addr = server(CancellationToken::new()).await;
    let (ws, _) = connect(
        addr,
        "command=sleep&command=3600&container=app&stdout=true",
        "v5.channel.k8s.io",
    )
    .await;
    // The accept loop, the connection and the session.
    let running = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(running > baseline + 1, "{running} tasks");
    drop(ws);
    let ended = async {
        while tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            > baseline + 1
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("session outlived its client");
}

#[tokio::test]
async fn heartbeat_pings_are_answered_while_a_command_runs() {
    // client-go pings every 5 s and gives up after 12 missed pongs.
    let gone = CancellationToken::new();
    let addr = server(gone.clone()).await;
    let query = "command=sleep&command=3600&container=app&stdout=true";
    let (mut ws, protocol) = connect(addr, query, "v5.channel.k8s.io").await;
    ws.send(Message::Ping(Bytes::from_static(b"hb")))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("no pong")
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(Bytes::from_static(b"hb")));
    gone.cancel();
    assert_eq!(exit_code(&finish(ws, protocol).await.status), "137");
}
