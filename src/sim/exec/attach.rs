//! `GET /api/v1/namespaces/<ns>/pods/<p>/attach`: `kubectl attach`, and `kubectl debug -it`
//! (which attaches to the container it added), over WebSocket in exec's sessions: the same
//! protocols, channels, terminal, status and close as exec (exec.rs).
//!
//! Attach joins the container's main process, which the emulator plays as follows:
//! - A container whose `command` (then `args`) starts one of exec's built-in commands runs it
//!   in exec's sandbox: `kubectl run -it --image=busybox -- sh` or `kubectl debug -it POD
//!   --image=busybox -- sh` give exec's small shell. So does an ephemeral container without a
//!   command, as the usual debug images (busybox, alpine, netshoot) start a shell. A shell
//!   attached without `-i` gets no input and waits, as one whose stdin nobody writes to.
//! - Any other container is a server: stdout carries its log from the moment of attaching, one
//!   line per log interval, in `kubectl logs -f`'s format (logs.rs; earlier output is not
//!   replayed, as a real attach does not), and lines sent with `-i` are echoed to stdout, as a
//!   process that copies its input to its output. On a terminal Ctrl-C is echoed and ignored.
//!
//! The session ends when the pod is deleted, the client leaves, or the main process ends, with
//! a `Success` status on channel 3 (the kubelet reports no exit code for attach).
//!
//! Validation is exec's: the container as `AttachLocation` (none with several containers is
//! 400 `a container name must be specified…`, one the pod does not have is 400 `container X is
//! not valid for pod Y`), at least one of stdin, stdout, stderr, and a WebSocket handshake
//! (SPDY/3.1 is refused with a 400 saying it is not emulated).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::commands::{Io, Sandbox, is_builtin, run_argv};
use super::{ExecOptions, upgrade};
use crate::sim::SimBody;
use crate::sim::logs::{self, LogOptions, resolve_container, status_response};
use crate::status::Status;

/// What the main process of the attached container is.
#[derive(Debug, PartialEq, Eq)]
enum MainProcess {
    /// One of exec's built-in commands, with its arguments.
    Command(Vec<String>),
    /// Anything else: a server writing its log.
    Server,
}

impl MainProcess {
    fn of(pod: &Value, container: &str) -> MainProcess {
        let found = ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .find_map(|key| {
                let spec = pod["spec"][key]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"].as_str() == Some(container))?;
                Some((*key, spec))
            });
        let Some((key, spec)) = found else {
            return MainProcess::Server;
        };
        let argv: Vec<String> = ["command", "args"]
            .iter()
            .filter_map(|k| spec[k].as_array())
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        match argv.first() {
            Some(program) if is_builtin(program) => MainProcess::Command(argv),
            None if key == "ephemeralContainers" => MainProcess::Command(vec!["sh".into()]),
            _ => MainProcess::Server,
        }
    }
}

/// Answers an attach request for `pod`: a Status when it is refused, else `101 Switching
/// Protocols` and a session with the container's main process. `gone` fires when the pod is
/// deleted; `interval` is the time between two log lines.
pub fn serve<B>(
    req: Request<B>,
    pod: &Value,
    gone: CancellationToken,
    interval: Duration,
) -> Response<SimBody> {
    let query = req.uri().query().unwrap_or_default().to_string();
    let opts = ExecOptions::from_query(&query);
    let prepared = resolve_container(pod, &opts.container).and_then(|container| {
        let sandbox = Sandbox::for_pod(pod, &container)?;
        let main = MainProcess::of(pod, &container);
        let log = match main {
            MainProcess::Server => Some(log_from_now(pod, &container, interval, gone.clone())?),
            MainProcess::Command(_) => None,
        };
        Ok((sandbox, main, log))
    });
    let (sandbox, main, log) = match prepared {
        Ok(prepared) => prepared,
        Err(status) => return status_response(status),
    };
    let stdin = opts.stdin;
    upgrade(req, opts, move |mut io, _interrupt| async move {
        tokio::select! {
            _ = gone.cancelled() => {}
            _ = async {
                match (main, log) {
                    (MainProcess::Command(argv), _) if stdin => {
                        run_argv(argv, &sandbox, &mut io).await;
                    }
                    // Nobody writes to its stdin: it waits.
                    (MainProcess::Command(_), _) => std::future::pending().await,
                    (MainProcess::Server, Some(log)) => server(&mut io, log).await,
                    (MainProcess::Server, None) => {}
                }
            } => {}
        }
        Bytes::from(json!({"metadata": {}, "status": "Success"}).to_string())
    })
}

/// The container's log lines from now on, as `logs -f --tail=0` would stream them.
fn log_from_now(
    pod: &Value,
    container: &str,
    interval: Duration,
    gone: CancellationToken,
) -> Result<mpsc::Receiver<Bytes>, Status> {
    let opts = LogOptions {
        container: container.to_string(),
        follow: true,
        tail_lines: Some(0),
        ..LogOptions::default()
    };
    logs::lines(pod, opts, interval, gone)
}

/// A server's main process: its log to stdout, its stdin echoed, until the log ends.
async fn server(io: &mut Io, mut log: mpsc::Receiver<Bytes>) {
    enum Event {
        Log(Option<Bytes>),
        Input(Option<String>),
    }
    let mut reading = true;
    loop {
        let event = tokio::select! {
            line = log.recv() => Event::Log(line),
            input = io.line(), if reading => Event::Input(input),
        };
        match event {
            Event::Log(Some(line)) => io.stdout(line).await,
            Event::Log(None) => return,
            Event::Input(Some(text)) => io.stdout(format!("{text}\n")).await,
            Event::Input(None) => reading = false,
        }
    }
}

#[cfg(test)]
mod tests;
