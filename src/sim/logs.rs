//! `GET /api/v1/namespaces/<ns>/pods/<p>/log`: what `kubectl logs [-f]` reads.
//!
//! Every container of every pod "writes" deterministic lines, numbered from 0:
//!
//! ```text
//! 2026-11-22T01:29:55.000Z INFO app=<container> pod=<pod> request served n=<k>
//! ```
//!
//! A request first gets a history of [`HISTORY_LINES`] lines whose timestamps end at the moment of
//! the request, one `interval` apart; with `follow=true` a new line follows every `interval`, each
//! sent (and flushed) as its own chunk, until the client goes away or the pod is deleted (the
//! `gone` token). The query parameters behave as in the apiserver and kubelet:
//! `container`, `tailLines`, `limitBytes` (the body stops after that many bytes, cutting a line if
//! it must), `timestamps` (each line gets an RFC 3339 prefix with nine fraction digits, the kubelet's
//! `RFC3339NanoFixed`), `sinceSeconds` / `sinceTime`, and `previous` (only for a container whose
//! `restartCount` is above 0, otherwise the kubelet's 400).
//!
//! Validation follows `pkg/registry/core/pod/strategy.go` (`LogLocation`) and
//! `ValidatePodLogOptions`: a container the pod does not have is `400 container X is not valid
//! for pod Y`; a negative `tailLines`, or a `limitBytes` / `sinceSeconds` below 1, is a 422
//! `PodLogOptions "<pod>" is invalid`; a value that does not parse is a 400.

// `Status` is the error every caller turns straight into a response (the shape the apiserver
// answers with); boxing it would only add noise on these once-per-request paths.
#![allow(clippy::result_large_err)]

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::SimBody;
use crate::status::{Status, StatusCause, StatusDetails};

/// How many lines a container has written before the request arrives.
pub const HISTORY_LINES: u64 = 20;

/// The default time between two lines of `follow=true`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The query of a log request (`PodLogOptions`), parsed but not yet checked against the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Empty: the pod's only container.
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<Timestamp>,
}

impl LogOptions {
    /// Parses the query string of a `/log` request (without the leading `?`). Unknown
    /// parameters are ignored, as the apiserver does; a value that does not parse is a 400.
    pub fn from_query(query: &str) -> Result<LogOptions, Status> {
        let mut opts = LogOptions::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "container" => opts.container = value.into_owned(),
                "follow" => opts.follow = parse_bool(&key, &value)?,
                "previous" => opts.previous = parse_bool(&key, &value)?,
                "timestamps" => opts.timestamps = parse_bool(&key, &value)?,
                "tailLines" => opts.tail_lines = Some(parse_int(&key, &value)?),
                "limitBytes" => opts.limit_bytes = Some(parse_int(&key, &value)?),
                "sinceSeconds" => opts.since_seconds = Some(parse_int(&key, &value)?),
                "sinceTime" => {
                    let t = value.parse::<Timestamp>().map_err(|e| {
                        Status::bad_request(format!("sinceTime: invalid value {value:?}: {e}"))
                    })?;
                    opts.since_time = Some(t);
                }
                _ => {}
            }
        }
        Ok(opts)
    }

    /// `ValidatePodLogOptions`: the field errors of these options, empty when they are valid.
    fn field_errors(&self) -> Vec<StatusCause> {
        let mut errs = Vec::new();
        let mut check = |field: &str, value: Option<i64>, min: i64, what: &str| {
            if let Some(v) = value.filter(|v| *v < min) {
                errs.push(StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {v}: {what}"),
                    field: field.into(),
                });
            }
        };
        check(
            "tailLines",
            self.tail_lines,
            0,
            "must be greater than or equal to 0",
        );
        check("limitBytes", self.limit_bytes, 1, "must be greater than 0");
        check(
            "sinceSeconds",
            self.since_seconds,
            1,
            "must be greater than 0",
        );
        if self.since_seconds.is_some() && self.since_time.is_some() {
            errs.push(StatusCause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                    .into(),
                field: "".into(),
            });
        }
        errs
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Status> {
    match value {
        "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "" | "false" | "0" | "False" | "FALSE" | "f" | "F" => Ok(false),
        _ => Err(Status::bad_request(format!(
            "{key}: strconv.ParseBool: parsing {value:?}: invalid syntax"
        ))),
    }
}

fn parse_int(key: &str, value: &str) -> Result<i64, Status> {
    value.parse::<i64>().map_err(|_| {
        Status::bad_request(format!(
            "{key}: strconv.ParseInt: parsing {value:?}: invalid syntax"
        ))
    })
}

/// The whole answer to a log request: `200 text/plain` with the streaming body, or the Status
/// the apiserver would give.
pub fn response(
    pod: &Value,
    opts: LogOptions,
    interval: Duration,
    gone: CancellationToken,
) -> Response<SimBody> {
    match body(pod, opts, interval, gone) {
        Ok(body) => {
            let mut resp = Response::new(body);
            *resp.status_mut() = StatusCode::OK;
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
        Err(status) => status_response(status),
    }
}

/// A `Status` as an emulator response.
pub(crate) fn status_response(status: Status) -> Response<SimBody> {
    status
        .into_response::<http_body_util::Full<Bytes>>()
        .map(|full| full.map_err(|never| match never {}).boxed())
}

/// The log stream of one container of `pod`, after checking `opts` against it. Must be called
/// inside a tokio runtime: a task writes the lines, and ends when the body is dropped, when
/// `gone` is cancelled, or (without `follow`) after the history.
pub fn body(
    pod: &Value,
    opts: LogOptions,
    interval: Duration,
    gone: CancellationToken,
) -> Result<SimBody, Status> {
    let rx = lines(pod, opts, interval, gone)?;
    Ok(ChannelBody { rx }.boxed())
}

/// The lines of [`body`], one chunk each, as a channel (what `kubectl attach` shows).
pub(crate) fn lines(
    pod: &Value,
    opts: LogOptions,
    interval: Duration,
    gone: CancellationToken,
) -> Result<mpsc::Receiver<Bytes>, Status> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let errs = opts.field_errors();
    if !errs.is_empty() {
        return Err(invalid(pod_name, errs));
    }
    let container = resolve_container(pod, &opts.container)?;
    let restarts = restart_count(pod, &container);
    if opts.previous && restarts == 0 {
        return Err(Status::bad_request(format!(
            "previous terminated container {container:?} in pod {pod_name:?} not found"
        )));
    }
    let log = ContainerLog {
        pod: pod_name.to_string(),
        container,
        attempt: if opts.previous {
            restarts - 1
        } else {
            restarts
        },
    };
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(write_lines(log, opts, interval, gone, tx));
    Ok(rx)
}

fn invalid(pod_name: &str, causes: Vec<StatusCause>) -> Status {
    let list: Vec<String> = causes
        .iter()
        .map(|c| match c.field.as_str() {
            "" => c.message.clone(),
            f => format!("{f}: {}", c.message),
        })
        .collect();
    let joined = if list.len() == 1 {
        list.join("")
    } else {
        format!("[{}]", list.join(", "))
    };
    Status::failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        format!("PodLogOptions {pod_name:?} is invalid: {joined}"),
    )
    .with_details(StatusDetails {
        name: pod_name.into(),
        kind: "PodLogOptions".into(),
        causes,
        ..Default::default()
    })
}

/// The names of all containers of a pod spec, in the apiserver's order.
pub(crate) fn container_names(pod: &Value, key: &str) -> Vec<String> {
    pod["spec"][key]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `LogLocation` / `ExecLocation`'s container rule: an empty name means the only container;
/// a name must be one of the pod's containers, init containers or ephemeral containers.
pub(crate) fn resolve_container(pod: &Value, requested: &str) -> Result<String, Status> {
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let containers = container_names(pod, "containers");
    if requested.is_empty() {
        return match containers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(Status::bad_request(format!(
                "a container name must be specified for pod {pod_name}"
            ))),
            many => {
                let mut msg = format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    many.join(" ")
                );
                let init = container_names(pod, "initContainers");
                if !init.is_empty() {
                    msg.push_str(&format!(
                        " or one of the init containers: [{}]",
                        init.join(" ")
                    ));
                }
                Err(Status::bad_request(msg))
            }
        };
    }
    let known = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .any(|key| container_names(pod, key).iter().any(|n| n == requested));
    if known {
        Ok(requested.to_string())
    } else {
        Err(Status::bad_request(format!(
            "container {requested} is not valid for pod {pod_name}"
        )))
    }
}

fn restart_count(pod: &Value, container: &str) -> u64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"].as_str() == Some(container))
        .and_then(|s| s["restartCount"].as_u64())
        .unwrap_or(0)
}

/// Which container instance the lines come from.
struct ContainerLog {
    pod: String,
    container: String,
    attempt: u64,
}

impl ContainerLog {
    /// Line `n`, written at `at`, with its newline.
    fn line(&self, n: u64, at: Timestamp, timestamps: bool) -> String {
        let app_time = at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        let mut line = String::new();
        if timestamps {
            line.push_str(&format!(
                "{}.{:09}Z ",
                at.strftime("%Y-%m-%dT%H:%M:%S"),
                at.subsec_nanosecond()
            ));
        }
        line.push_str(&format!(
            "{app_time} INFO app={} pod={} request served n={n}",
            self.container, self.pod
        ));
        if self.attempt > 0 {
            line.push_str(&format!(" restart={}", self.attempt));
        }
        line.push('\n');
        line
    }
}

/// Writes history then (with `follow`) one line per `interval` into `tx`, honouring tail,
/// since and limit. Ends when the receiver is dropped (client gone) or `gone` fires.
async fn write_lines(
    log: ContainerLog,
    opts: LogOptions,
    interval: Duration,
    gone: CancellationToken,
    tx: mpsc::Sender<Bytes>,
) {
    let now = Timestamp::now();
    let step = jiff::SignedDuration::try_from(interval).unwrap_or(jiff::SignedDuration::ZERO);
    let since = opts
        .since_time
        .or_else(|| {
            let secs = jiff::SignedDuration::from_secs(opts.since_seconds?);
            now.checked_sub(secs).ok()
        })
        .unwrap_or(Timestamp::MIN);
    let history: Vec<(u64, Timestamp)> = (0..HISTORY_LINES)
        .filter_map(|n| {
            let back = step.checked_mul(i32::try_from(HISTORY_LINES - 1 - n).ok()?)?;
            Some((n, now.checked_sub(back).ok()?))
        })
        .filter(|(_, at)| *at >= since)
        .collect();
    let skip = match opts.tail_lines {
        Some(tail) => history
            .len()
            .saturating_sub(usize::try_from(tail).unwrap_or(0)),
        None => 0,
    };
    let mut budget = opts
        .limit_bytes
        .and_then(|b| usize::try_from(b).ok())
        .unwrap_or(usize::MAX);
    let mut emit = |line: String| {
        let mut bytes = Bytes::from(line);
        bytes.truncate(budget);
        budget -= bytes.len();
        bytes
    };
    for (n, at) in history.into_iter().skip(skip) {
        let chunk = emit(log.line(n, at, opts.timestamps));
        if chunk.is_empty() || tx.send(chunk).await.is_err() {
            return;
        }
    }
    // A previous instance has terminated: its log is complete even when followed.
    if !opts.follow || opts.previous {
        return;
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    for n in HISTORY_LINES.. {
        tokio::select! {
            _ = gone.cancelled() => return,
            _ = tx.closed() => return,
            _ = ticker.tick() => {}
        }
        let chunk = emit(log.line(n, Timestamp::now(), opts.timestamps));
        if chunk.is_empty() || tx.send(chunk).await.is_err() {
            return;
        }
    }
}

/// A body fed by a channel: one frame per message, the end when every sender is gone.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests;
