//! The built-in commands an exec session can run, and what they see of their container.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{STDERR, STDOUT};
use crate::sim::logs::resolve_container;
use crate::status::Status;

/// What a command can see of its container.
#[derive(Clone, Debug, Default)]
pub(super) struct Sandbox {
    hostname: String,
    env: Vec<(String, String)>,
    annotations: serde_json::Map<String, Value>,
}

impl Sandbox {
    pub(super) fn for_pod(pod: &Value, container: &str) -> Result<Sandbox, Status> {
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

/// A command's standard streams.
pub(super) struct Io {
    stdin: mpsc::Receiver<Bytes>,
    /// Stdin read but not yet consumed by a line reader.
    stdin_buf: BytesMut,
    out: mpsc::Sender<(u8, Bytes)>,
    /// A terminal session: `sh` prompts.
    tty: bool,
}

impl Io {
    pub(super) fn new(
        stdin: mpsc::Receiver<Bytes>,
        out: mpsc::Sender<(u8, Bytes)>,
        tty: bool,
    ) -> Io {
        Io {
            stdin,
            stdin_buf: BytesMut::new(),
            out,
            tty,
        }
    }

    async fn write(&self, channel: u8, text: impl Into<Bytes>) {
        // A send fails only when the session is over; the command is about to be dropped.
        let _ = self.out.send((channel, text.into())).await;
    }

    pub(super) async fn stdout(&self, text: impl Into<Bytes>) {
        self.write(STDOUT, text).await
    }

    async fn stderr(&self, text: impl Into<Bytes>) {
        self.write(STDERR, text).await
    }

    /// The next line of stdin without its newline, or `None` at EOF.
    pub(super) async fn line(&mut self) -> Option<String> {
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
pub(super) fn run_argv<'a>(
    argv: Vec<String>,
    sb: &'a Sandbox,
    io: &'a mut Io,
) -> CommandFuture<'a> {
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
            // What `kubectl cp` runs: say plainly that it cannot work here (kubectl shows a
            // copy's stderr, not the runtime's message on stdout, which it reads as the archive).
            "tar" => {
                io.stderr(
                    "tar: not emulated by kubeguard sim: kubectl cp needs a real container\n",
                )
                .await;
                126
            }
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
    loop {
        if io.tty {
            io.stdout("/ # ").await;
        }
        let Some(line) = io.line().await else {
            break;
        };
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

pub(super) fn is_builtin(program: &str) -> bool {
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
