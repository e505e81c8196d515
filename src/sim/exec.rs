//! `GET /api/v1/namespaces/<ns>/pods/<p>/exec`: `kubectl exec` over WebSocket (k8s-facts §5).
//!
//! kubectl ≥ 1.30 opens a WebSocket (a GET with `Upgrade: websocket`) offering the subprotocol
//! `v5.channel.k8s.io`; older clients offer `v4.channel.k8s.io`. Both are served. Every message
//! is binary and starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (one v1 `Status`
//! JSON when the command ends: `Success`, or `Failure` with reason `NonZeroExitCode` and a cause
//! `ExitCode` holding the code, as the kubelet writes it), 4 resize (ignored here). v5 adds
//! channel 255: `[255, n]` closes stream `n`; the client sends `[255, 0]` when its stdin ends.
//! The server ends a session by writing the status on channel 3 and then a normal (1000) close
//! frame; client-go turns that close into EOF on every stream.
//!
//! SPDY/3.1 (kubectl's fallback, and the only protocol of kubectl < 1.30) is **not** emulated: such
//! a request gets a 400 Status saying so.
//!
//! No process runs: a handful of built-in commands behave like their coreutils namesakes
//! (a path such as `/bin/echo` works too): `echo [-n] ARGS…`, `env` (PATH, HOSTNAME, the
//! container's `env` from the pod spec, HOME), `cat` (stdin until EOF), `cat /etc/hostname`,
//! `cat /annotations/<key>` (a pod annotation, like a downward-API volume), `hostname`, `pwd`,
//! `sleep N`, `date`, `true`, `false`, and `sh -c 'SCRIPT'` / `sh` reading lines from stdin, where a
//! script is `;`-separated simple commands split on white space, `exit N` included. An unknown
//! command gets the container runtime's `executable file not found` message and exit code 126; an
//! unknown command inside `sh` gets `sh: 1: X: not found` and 127. When the pod is deleted (`gone`)
//! a running command is killed: exit code 137. A `--tty` session is served like a plain one,
//! except that stderr goes to the stdout channel as on a terminal.
//!
//! Validation follows `ExecLocation` (`pkg/registry/core/pod/strategy.go`): a container the pod
//! does not have is `400 container X is not valid for pod Y` (the apiserver's answer, not a 404),
//! no container with several is 400 `a container name must be specified…`.

// `Status` is the error every caller turns straight into a response (see logs.rs).
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_util::sync::CancellationToken;

use super::SimBody;
use super::logs::{resolve_container, status_response};
use crate::status::Status;

/// The remote-command subprotocol versions served, most preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, V4];
const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
/// v5: `[CLOSE, stream]` half-closes `stream`.
const CLOSE: u8 = 255;

/// How long the server waits for the client's answer to its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The query of an exec request (`PodExecOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub container: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Parses the query string (without `?`); `command` repeats, one argument each.
    pub fn from_query(query: &str) -> ExecOptions {
        let mut opts = ExecOptions::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let flag = matches!(value.as_ref(), "true" | "1" | "True" | "TRUE" | "t" | "T");
            match key.as_ref() {
                "command" => opts.command.push(value.into_owned()),
                "container" => opts.container = value.into_owned(),
                "stdin" => opts.stdin = flag,
                "stdout" => opts.stdout = flag,
                "stderr" => opts.stderr = flag,
                "tty" => opts.tty = flag,
                _ => {}
            }
        }
        opts
    }
}

/// Answers an exec request for `pod`: a Status when it is refused, else `101 Switching
/// Protocols`, after which a spawned task runs the command on the upgraded connection. The
/// connection must be served with upgrades enabled (`serve_connection_with_upgrades`). `gone`
/// fires when the pod is deleted, killing the command.
pub fn serve<B>(mut req: Request<B>, pod: &Value, gone: CancellationToken) -> Response<SimBody> {
    let query = req.uri().query().unwrap_or_default().to_string();
    let opts = ExecOptions::from_query(&query);
    let prepared = Sandbox::for_pod(pod, &opts.container).and_then(|sandbox| {
        check_streams(&opts)?;
        let handshake = handshake(req.method(), req.headers())?;
        Ok((sandbox, handshake))
    });
    let (sandbox, handshake) = match prepared {
        Ok(ok) => ok,
        Err(status) => return status_response(status),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let protocol = handshake.protocol;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                session(ws, protocol, opts, sandbox, gone).await;
            }
            Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
        }
    });
    switching_protocols(&handshake)
}

fn check_streams(opts: &ExecOptions) -> Result<(), Status> {
    if opts.command.is_empty() {
        return Err(Status::bad_request("you must specify at least 1 command"));
    }
    if !(opts.stdin || opts.stdout || opts.stderr) {
        return Err(Status::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    Ok(())
}

/// What the WebSocket handshake agreed on.
struct Handshake {
    accept: String,
    protocol: &'static str,
}

/// Checks that the request is a WebSocket upgrade offering a protocol we serve.
fn handshake(method: &Method, headers: &HeaderMap) -> Result<Handshake, Status> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    if has_token(header::UPGRADE, "SPDY/3.1") {
        return Err(Status::bad_request(
            "kubeguard sim serves exec only over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io); SPDY/3.1 is not emulated",
        ));
    }
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(Status::bad_request("Upgrade request required"));
    }
    if method != Method::GET && method != Method::POST {
        return Err(Status::failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource: {method}"),
        ));
    }
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| version_ok);
    let Some(key) = key else {
        return Err(Status::bad_request(
            "websocket handshake: missing Sec-WebSocket-Key or Sec-WebSocket-Version 13",
        ));
    };
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or_default().split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let Some(protocol) = PROTOCOLS
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p))
    else {
        return Err(Status::bad_request(format!(
            "requested protocol(s) are not supported: [{}]; supports [{}]",
            offered.join(" "),
            PROTOCOLS.join(" ")
        )));
    };
    Ok(Handshake {
        accept: derive_accept_key(key.as_bytes()),
        protocol,
    })
}

fn switching_protocols(hs: &Handshake) -> Response<SimBody> {
    let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&hs.accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(hs.protocol),
    );
    resp
}

/// What a command can see of its container.
#[derive(Clone, Debug, Default)]
struct Sandbox {
    hostname: String,
    env: Vec<(String, String)>,
    annotations: serde_json::Map<String, Value>,
}

impl Sandbox {
    fn for_pod(pod: &Value, container: &str) -> Result<Sandbox, Status> {
        let container = resolve_container(pod, container)?;
        let spec = ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .filter_map(|key| pod["spec"][key].as_array())
            .flatten()
            .find(|c| c["name"].as_str() == Some(container.as_str()));
        let env = spec
            .and_then(|c| c["env"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?.to_string(), env_value(pod, e)?)))
            .collect();
        let hostname = pod["spec"]["hostname"]
            .as_str()
            .or_else(|| pod["metadata"]["name"].as_str())
            .unwrap_or_default()
            .to_string();
        let annotations = pod["metadata"]["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        Ok(Sandbox {
            hostname,
            env,
            annotations,
        })
    }
}

/// An env entry's value: a literal, or a simple `fieldRef` (`metadata.name`, `status.podIP`…).
fn env_value(pod: &Value, entry: &Value) -> Option<String> {
    if let Some(v) = entry["value"].as_str() {
        return Some(v.to_string());
    }
    let path = entry["valueFrom"]["fieldRef"]["fieldPath"].as_str()?;
    let pointer = format!("/{}", path.replace('.', "/"));
    pod.pointer(&pointer)?.as_str().map(str::to_string)
}

/// Runs one exec session on an open WebSocket until the command ends or the client leaves.
async fn session<S>(
    ws: WebSocketStream<S>,
    protocol: &'static str,
    opts: ExecOptions,
    sandbox: Sandbox,
    gone: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut incoming) = ws.split();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Bytes)>(16);
    let mut stdin_tx = opts.stdin.then_some(stdin_tx);
    let io = Io {
        stdin: stdin_rx,
        stdin_buf: BytesMut::new(),
        out: out_tx,
    };
    let argv = opts.command.clone();
    let run = async move {
        let mut io = io;
        tokio::select! {
            code = run_argv(argv, &sandbox, &mut io) => code,
            _ = gone.cancelled() => 137,
        }
    };
    tokio::pin!(run);
    // Stdin read from the socket but not yet taken by the command: while it waits, the socket is
    // not read, so a client that writes faster than the command reads is slowed down.
    let mut pending: Option<Bytes> = None;
    let exit = loop {
        tokio::select! {
            biased;
            code = &mut run => break code,
            Some((channel, data)) = out_rx.recv() => {
                if let Some(channel) = delivered_on(&opts, channel)
                    && sink.send(frame(channel, &data)).await.is_err()
                {
                    return;
                }
            }
            permit = reserve(stdin_tx.clone()), if pending.is_some() => {
                match (permit, pending.take()) {
                    (Some(permit), Some(data)) => {
                        permit.send(data);
                    }
                    _ => stdin_tx = None,
                }
            }
            msg = incoming.next(), if pending.is_none() => match msg {
                Some(Ok(Message::Binary(data))) => match data.first().copied() {
                    Some(STDIN) if stdin_tx.is_some() => pending = Some(data.slice(1..)),
                    Some(CLOSE) if protocol == V5 && data.get(1) == Some(&STDIN) => stdin_tx = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    };
    // The command has ended; what it wrote is still queued.
    while let Some((channel, data)) = out_rx.recv().await {
        if let Some(channel) = delivered_on(&opts, channel)
            && sink.send(frame(channel, &data)).await.is_err()
        {
            return;
        }
    }
    let status = exit_status(exit, &opts.command);
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
    if sink.send(frame(ERROR, &status)).await.is_err() || sink.send(close).await.is_err() {
        return;
    }
    // Wait (bounded) for the client's close so the connection ends cleanly on both sides.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = incoming.next().await {}
    })
    .await;
}

/// The channel a command's output goes out on, or `None` when the client did not ask for it.
/// On a terminal stderr is merged into stdout.
fn delivered_on(opts: &ExecOptions, channel: u8) -> Option<u8> {
    match channel {
        STDERR if opts.tty => opts.stdout.then_some(STDOUT),
        STDOUT => opts.stdout.then_some(STDOUT),
        STDERR => opts.stderr.then_some(STDERR),
        _ => None,
    }
}

/// Room for one stdin chunk; `None` once the command no longer reads stdin.
async fn reserve(tx: Option<mpsc::Sender<Bytes>>) -> Option<mpsc::OwnedPermit<Bytes>> {
    tx?.reserve_owned().await.ok()
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut buf = BytesMut::with_capacity(1 + data.len());
    buf.put_u8(channel);
    buf.extend_from_slice(data);
    Message::Binary(buf.freeze())
}

/// The kubelet's channel-3 message for an exit code.
fn exit_status(code: i32, command: &[String]) -> Bytes {
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
        })
    };
    Bytes::from(status.to_string())
}

/// A command's standard streams.
struct Io {
    stdin: mpsc::Receiver<Bytes>,
    /// Stdin read but not yet consumed by a line reader.
    stdin_buf: BytesMut,
    out: mpsc::Sender<(u8, Bytes)>,
}

impl Io {
    async fn write(&self, channel: u8, text: impl Into<Bytes>) {
        // A send fails only when the session is over; the command is about to be dropped.
        let _ = self.out.send((channel, text.into())).await;
    }

    async fn stdout(&self, text: impl Into<Bytes>) {
        self.write(STDOUT, text).await
    }

    async fn stderr(&self, text: impl Into<Bytes>) {
        self.write(STDERR, text).await
    }

    /// The next line of stdin without its newline, or `None` at EOF.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.stdin_buf.iter().position(|b| *b == b'\n') {
                let line = self.stdin_buf.split_to(end + 1);
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            match self.stdin.recv().await {
                Some(chunk) => self.stdin_buf.extend_from_slice(&chunk),
                None if self.stdin_buf.is_empty() => return None,
                None => {
                    let rest = self.stdin_buf.split();
                    return Some(String::from_utf8_lossy(&rest).into_owned());
                }
            }
        }
    }
}

type CommandFuture<'a> = Pin<Box<dyn Future<Output = i32> + Send + 'a>>;

/// Runs one built-in command; the result is its exit code.
fn run_argv<'a>(argv: Vec<String>, sb: &'a Sandbox, io: &'a mut Io) -> CommandFuture<'a> {
    Box::pin(async move {
        let Some((program, args)) = argv.split_first() else {
            return 0;
        };
        let name = program.rsplit('/').next().unwrap_or_default();
        match name {
            "echo" => {
                let (newline, words) = match args.split_first() {
                    Some((flag, rest)) if flag == "-n" => (false, rest),
                    _ => (true, args),
                };
                let mut text = words.join(" ");
                if newline {
                    text.push('\n');
                }
                io.stdout(text).await;
                0
            }
            "env" => {
                let mut text = String::from(
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                );
                text.push_str(&format!("HOSTNAME={}\n", sb.hostname));
                for (k, v) in &sb.env {
                    text.push_str(&format!("{k}={v}\n"));
                }
                text.push_str("HOME=/root\n");
                io.stdout(text).await;
                0
            }
            "cat" => cat(args, sb, io).await,
            "hostname" => {
                io.stdout(format!("{}\n", sb.hostname)).await;
                0
            }
            "pwd" => {
                io.stdout("/\n").await;
                0
            }
            "date" => {
                let now = jiff::Timestamp::now();
                io.stdout(format!("{}\n", now.strftime("%a %b %e %H:%M:%S UTC %Y")))
                    .await;
                0
            }
            "true" => 0,
            "false" => 1,
            "sleep" => {
                let arg = args.first().map(String::as_str).unwrap_or_default();
                match arg
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                {
                    Some(d) => {
                        tokio::time::sleep(d).await;
                        0
                    }
                    None => {
                        io.stderr(format!("sleep: invalid time interval '{arg}'\n"))
                            .await;
                        1
                    }
                }
            }
            "sh" | "bash" | "ash" => shell(args, sb, io).await,
            _ => {
                io.stdout(format!(
                    "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH: unknown\n"
                ))
                .await;
                126
            }
        }
    })
}

async fn cat(args: &[String], sb: &Sandbox, io: &mut Io) -> i32 {
    let args: Vec<&str> = if args.is_empty() {
        vec!["-"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    let mut code = 0;
    for path in args {
        let content = match path {
            "-" => {
                while let Some(chunk) = io.stdin.recv().await {
                    io.stdout(chunk).await;
                }
                continue;
            }
            "/etc/hostname" => Some(format!("{}\n", sb.hostname)),
            _ => path
                .strip_prefix("/annotations/")
                .and_then(|key| sb.annotations.get(key))
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        match content {
            Some(text) => io.stdout(text).await,
            None => {
                io.stderr(format!("cat: {path}: No such file or directory\n"))
                    .await;
                code = 1;
            }
        }
    }
    code
}

/// `sh -c SCRIPT`, or `sh` running each line of stdin as a script until EOF or `exit`.
async fn shell(args: &[String], sb: &Sandbox, io: &mut Io) -> i32 {
    if let [flag, script, ..] = args
        && flag == "-c"
    {
        return script_run(script, sb, io).await.unwrap_or_else(|c| c);
    }
    let mut last = 0;
    while let Some(line) = io.line().await {
        match script_run(&line, sb, io).await {
            Ok(code) => last = code,
            Err(code) => return code,
        }
    }
    last
}

/// Runs `;`-separated simple commands: `Ok(last exit code)`, or `Err(code)` after `exit`.
async fn script_run(script: &str, sb: &Sandbox, io: &mut Io) -> Result<i32, i32> {
    let mut last = 0;
    for part in script.split(';') {
        let argv: Vec<String> = part.split_whitespace().map(str::to_string).collect();
        let Some(program) = argv.first() else {
            continue;
        };
        if program == "exit" {
            let code = match argv.get(1) {
                Some(n) => n.parse::<i32>().map(|n| n & 0xff).unwrap_or(2),
                None => last,
            };
            return Err(code);
        }
        if !is_builtin(program) {
            io.stderr(format!("sh: 1: {program}: not found\n")).await;
            last = 127;
            continue;
        }
        last = run_argv(argv, sb, io).await;
    }
    Ok(last)
}

fn is_builtin(program: &str) -> bool {
    let name = program.rsplit('/').next().unwrap_or_default();
    matches!(
        name,
        "echo"
            | "env"
            | "cat"
            | "hostname"
            | "pwd"
            | "date"
            | "true"
            | "false"
            | "sleep"
            | "sh"
            | "bash"
            | "ash"
    )
}

#[cfg(test)]
mod tests;
