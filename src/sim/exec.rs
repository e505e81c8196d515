//! `GET /api/v1/namespaces/<ns>/pods/<p>/exec`: `kubectl exec` over WebSocket (k8s-facts §5).
//! `kubectl attach` runs in the same sessions (attach.rs says what it attaches to).
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
//! a request (exec or attach) gets a 400 Status saying so.
//!
//! No process runs: a handful of built-in commands behave like their coreutils namesakes
//! (a path such as `/bin/echo` works too): `echo [-n] ARGS…`, `env` (PATH, HOSTNAME, the
//! container's `env` from the pod spec, HOME), `cat` (stdin until EOF), `cat /etc/hostname`,
//! `cat /annotations/<key>` (a pod annotation, like a downward-API volume), `hostname`, `pwd`,
//! `sleep N`, `date`, `true`, `false`, and `sh -c 'SCRIPT'` / `sh` reading lines from stdin, where a
//! script is `;`-separated simple commands split on white space, `exit N` included. An unknown
//! command gets the container runtime's `executable file not found` message and exit code 126; an
//! unknown command inside `sh` gets `sh: 1: X: not found` and 127. `tar` (what `kubectl cp`
//! runs) says on stderr that it is not emulated, exit code 126: `kubectl cp` does not work. When the pod is deleted (`gone`)
//! a running command is killed: exit code 137. A `--tty` session gets a small terminal: input is
//! echoed and handed over a line at a time (Enter, Backspace, Ctrl-D for end of input, Ctrl-C
//! interrupts with exit code 130), output has `\r\n` line ends, stderr shares the stdout channel,
//! and `sh` prompts with `/ # `. Resize messages (channel 4) are accepted and ignored.
//!
//! Validation follows `ExecLocation` (`pkg/registry/core/pod/strategy.go`): a container the pod
//! does not have is `400 container X is not valid for pod Y` (the apiserver's answer, not a 404),
//! no container with several is 400 `a container name must be specified…`.

// `Status` is the error every caller turns straight into a response (see logs.rs).
#![allow(clippy::result_large_err)]

use std::future::Future;
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
use super::logs::status_response;
use crate::status::Status;
use commands::{Io, Sandbox, run_argv};

mod attach;
mod commands;

pub use attach::serve as serve_attach;

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
pub fn serve<B>(req: Request<B>, pod: &Value, gone: CancellationToken) -> Response<SimBody> {
    let query = req.uri().query().unwrap_or_default().to_string();
    let opts = ExecOptions::from_query(&query);
    let sandbox = match Sandbox::for_pod(pod, &opts.container).and_then(|sandbox| {
        if opts.command.is_empty() {
            return Err(Status::bad_request("you must specify at least 1 command"));
        }
        Ok(sandbox)
    }) {
        Ok(sandbox) => sandbox,
        Err(status) => return status_response(status),
    };
    let argv = opts.command.clone();
    upgrade(req, opts, move |mut io, interrupted| async move {
        let code = tokio::select! {
            code = run_argv(argv.clone(), &sandbox, &mut io) => code,
            _ = gone.cancelled() => 137,
            _ = interrupted.cancelled() => 130,
        };
        exit_status(code, &argv)
    })
}

/// The part of exec and attach after their own checks: checks the streams asked for and the
/// WebSocket handshake, then answers `101` and runs `program` in a session on the upgraded
/// connection. `program` gets the standard streams and the terminal's interrupt (Ctrl-C); what
/// it returns is the channel-3 status the session ends with.
fn upgrade<B, P, F>(mut req: Request<B>, opts: ExecOptions, program: P) -> Response<SimBody>
where
    P: FnOnce(Io, CancellationToken) -> F + Send + 'static,
    F: Future<Output = Bytes> + Send,
{
    let handshake = match check_streams(&opts).and_then(|()| handshake(req.method(), req.headers()))
    {
        Ok(handshake) => handshake,
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
                session(ws, protocol, opts, program).await;
            }
            Err(e) => tracing::debug!(error = %e, "exec/attach upgrade failed"),
        }
    });
    switching_protocols(&handshake)
}

fn check_streams(opts: &ExecOptions) -> Result<(), Status> {
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
            "kubeguard sim serves exec and attach only over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io); SPDY/3.1 is not emulated",
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

/// Runs one session on an open WebSocket until its program ends or the client leaves.
async fn session<S, P, F>(
    ws: WebSocketStream<S>,
    protocol: &'static str,
    opts: ExecOptions,
    program: P,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    P: FnOnce(Io, CancellationToken) -> F,
    F: Future<Output = Bytes>,
{
    let (mut sink, mut incoming) = ws.split();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Bytes)>(16);
    let mut stdin_tx = opts.stdin.then_some(stdin_tx);
    let io = Io::new(stdin_rx, out_tx, opts.tty);
    let interrupt = CancellationToken::new();
    let run = program(io, interrupt.clone());
    tokio::pin!(run);
    let mut terminal = Terminal::default();
    // Stdin read from the socket but not yet taken by the command: while it waits, the socket is
    // not read, so a client that writes faster than the command reads is slowed down.
    let mut pending: Option<Bytes> = None;
    // Stdin ends once `pending` is delivered (Ctrl-D after a partial line on a terminal).
    let mut eof_after_pending = false;
    let status = loop {
        tokio::select! {
            biased;
            status = &mut run => break status,
            Some((channel, data)) = out_rx.recv() => {
                if let Some(msg) = output(&opts, channel, &data)
                    && sink.send(msg).await.is_err()
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
                if eof_after_pending {
                    stdin_tx = None;
                }
            }
            msg = incoming.next(), if pending.is_none() => match msg {
                Some(Ok(Message::Binary(data))) => match data.first().copied() {
                    Some(STDIN) if stdin_tx.is_some() && opts.tty => {
                        let input = terminal.input(&data[1..]);
                        if let Some(msg) = output(&opts, STDOUT, &input.echo)
                            && sink.send(msg).await.is_err()
                        {
                            return;
                        }
                        if input.interrupt {
                            interrupt.cancel();
                        }
                        pending = (!input.deliver.is_empty()).then(|| Bytes::from(input.deliver));
                        match (input.eof, pending.is_some()) {
                            (true, true) => eof_after_pending = true,
                            (true, false) => stdin_tx = None,
                            _ => {}
                        }
                    }
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
        if let Some(msg) = output(&opts, channel, &data)
            && sink.send(msg).await.is_err()
        {
            return;
        }
    }
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

/// The message carrying a command's output, or `None` when the client did not ask for that
/// stream. On a terminal stderr is merged into stdout and `\n` becomes `\r\n` (onlcr).
fn output(opts: &ExecOptions, channel: u8, data: &[u8]) -> Option<Message> {
    if data.is_empty() {
        return None;
    }
    let channel = match channel {
        STDOUT | STDERR if opts.tty => opts.stdout.then_some(STDOUT)?,
        STDOUT => opts.stdout.then_some(STDOUT)?,
        STDERR => opts.stderr.then_some(STDERR)?,
        _ => return None,
    };
    if !opts.tty {
        return Some(frame(channel, data));
    }
    let mut crlf = Vec::with_capacity(data.len() + 8);
    for &b in data {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    Some(frame(channel, &crlf))
}

/// The line discipline of a terminal in canonical mode: input is echoed, edited and handed to
/// the command a line at a time; Enter (`\r`) ends a line, Backspace erases, Ctrl-D at the start
/// of a line is end of input, Ctrl-C interrupts.
#[derive(Debug, Default)]
struct Terminal {
    line: Vec<u8>,
}

/// What one chunk of terminal input amounts to.
#[derive(Debug, Default, PartialEq, Eq)]
struct TerminalInput {
    echo: Vec<u8>,
    deliver: Vec<u8>,
    eof: bool,
    interrupt: bool,
}

impl Terminal {
    fn input(&mut self, data: &[u8]) -> TerminalInput {
        let mut out = TerminalInput::default();
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    self.line.push(b'\n');
                    out.deliver.append(&mut self.line);
                    out.echo.extend_from_slice(b"\n");
                }
                0x7f | 0x08 => {
                    if self.line.pop().is_some() {
                        out.echo.extend_from_slice(b"\x08 \x08");
                    }
                }
                0x04 => {
                    if self.line.is_empty() {
                        out.eof = true;
                        return out;
                    }
                    out.deliver.append(&mut self.line);
                }
                0x03 => {
                    self.line.clear();
                    out.echo.extend_from_slice(b"^C\n");
                    out.interrupt = true;
                    return out;
                }
                _ => {
                    self.line.push(b);
                    out.echo.push(b);
                }
            }
        }
        out
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

#[cfg(test)]
mod tests;
