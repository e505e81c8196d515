//! Reading audit logs: `audit.k8s.io/v1` Event JSON lines, plain or gzip (told by the magic
//! bytes, not the name), one line at a time into a reused buffer, so memory stays flat however
//! large the log (k8s-facts §6 lists the fields used).
//!
//! Only `ResponseComplete` events are priced (one per request); `ResponseStarted` marks a
//! long-running request (watch, exec, `logs -f`) whose completion may never be logged;
//! `RequestReceived` and `Panic` are skipped. Events are keyed by `auditID`: a repeated
//! `ResponseComplete` (overlapping rotated files) is counted once, within a bounded window of
//! recent IDs. A line that does not parse is counted with its position, never fatal.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Recent auditIDs remembered to drop duplicates.
const RECENT_IDS: usize = 65_536;
/// Malformed lines whose positions are kept for the report.
const MALFORMED_SHOWN: usize = 5;
const READ_BUFFER: usize = 1 << 20;

/// One audit event, borrowing from the line where it can (`Cow`: Go's encoder escapes `&` in
/// request URIs as `\u0026`, which must be unescaped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    #[serde(rename = "auditID", borrow)]
    pub audit_id: Cow<'a, str>,
    #[serde(borrow)]
    pub stage: Cow<'a, str>,
    #[serde(rename = "requestURI", borrow)]
    pub request_uri: Cow<'a, str>,
    #[serde(borrow)]
    pub verb: Cow<'a, str>,
    #[serde(borrow)]
    pub user: UserInfo<'a>,
    #[serde(default, borrow)]
    pub impersonated_user: Option<UserInfo<'a>>,
    #[serde(default, borrow)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    #[serde(borrow)]
    pub request_received_timestamp: Cow<'a, str>,
    #[serde(borrow)]
    pub stage_timestamp: Cow<'a, str>,
    #[serde(default, borrow)]
    pub annotations: Option<Annotations<'a>>,
    /// Present at level `Request` and above: for deletes, the DeleteOptions (its `dryRun`).
    #[serde(default, borrow)]
    pub request_object: Option<RequestObject<'a>>,
    /// Present at level `RequestResponse`: for lists, the items (only counted).
    #[serde(default)]
    pub response_object: Option<ResponseObject>,
}

#[derive(Debug, Deserialize)]
pub struct UserInfo<'a> {
    #[serde(default, borrow)]
    pub username: Cow<'a, str>,
    #[serde(default, borrow)]
    pub groups: Vec<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: Option<u16>,
}

/// The apiserver's latency annotations (added above 500 ms).
#[derive(Debug, Deserialize)]
pub struct Annotations<'a> {
    #[serde(rename = "apiserver.latency.k8s.io/total", default, borrow)]
    pub total: Option<Cow<'a, str>>,
    #[serde(rename = "apiserver.latency.k8s.io/etcd", default, borrow)]
    pub etcd: Option<Cow<'a, str>>,
    #[serde(rename = "apiserver.latency.k8s.io/apf-queue-wait", default, borrow)]
    pub apf_queue_wait: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestObject<'a> {
    #[serde(default, borrow)]
    pub dry_run: Option<Vec<Cow<'a, str>>>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseObject {
    #[serde(default)]
    pub items: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    pub metadata: Option<ListMeta>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
}

impl Event<'_> {
    /// Who the apiserver ran the request as: the impersonated user when there is one (APF and
    /// authorization see that one, k8s-facts §2).
    pub fn effective_user(&self) -> &UserInfo<'_> {
        self.impersonated_user.as_ref().unwrap_or(&self.user)
    }

    pub fn code(&self) -> u16 {
        self.response_status
            .as_ref()
            .and_then(|s| s.code)
            .unwrap_or(0)
    }

    /// Objects in a complete list response, when the log has response bodies.
    pub fn response_items(&self) -> Option<(u64, bool)> {
        let r = self.response_object.as_ref()?;
        let items = r.items.as_ref()?.len() as u64;
        let complete = r
            .metadata
            .as_ref()
            .and_then(|m| m.continue_token.as_deref())
            .is_none_or(str::is_empty);
        Some((items, complete))
    }

    /// `dryRun: ["All"]` in the logged DeleteOptions.
    pub fn dry_run_body(&self) -> bool {
        self.request_object
            .as_ref()
            .and_then(|o| o.dry_run.as_ref())
            .is_some_and(|d| d.iter().any(|v| v == "All"))
    }
}

/// A Go `time.Duration` string as the apiserver writes annotations: `1.5s`, `600ms`, `350µs`,
/// `1m2.5s`, `2h0m0s`.
pub fn go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.trim();
    let mut total = 0.0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "µs" | "us" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * scale;
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

/// A timestamp in microseconds since the epoch.
pub fn micros(ts: &str) -> Option<i64> {
    let t: jiff::Timestamp = ts.parse().ok()?;
    Some(t.as_microsecond())
}

/// What reading found, besides the events.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadStats {
    pub files: Vec<String>,
    pub bytes: u64,
    pub lines: u64,
    /// `ResponseComplete` events priced.
    pub events: u64,
    /// `ResponseStarted` events (long-running requests).
    pub started: u64,
    /// Other stages (RequestReceived, Panic).
    pub skipped_stages: u64,
    /// Repeated `ResponseComplete` auditIDs.
    pub duplicates: u64,
    pub malformed: u64,
    /// `file:line` of the first malformed lines.
    pub malformed_at: Vec<String>,
}

/// Streams every event of `files` to `on_event`, in order.
pub struct Reader {
    seen: LruCache<Box<str>, ()>,
    pub stats: ReadStats,
    progress: Option<Progress>,
}

impl Reader {
    pub fn new(files: &[PathBuf]) -> Self {
        let total = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        Reader {
            seen: LruCache::new(NonZeroUsize::new(RECENT_IDS).unwrap_or(NonZeroUsize::MIN)),
            stats: ReadStats::default(),
            progress: std::io::stderr()
                .is_terminal()
                .then(|| Progress::new(total)),
        }
    }

    /// Reads one file; `on_event` gets each `ResponseComplete` or `ResponseStarted` event.
    pub fn read(
        &mut self,
        path: &Path,
        mut on_event: impl FnMut(&Event<'_>),
    ) -> Result<(), String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let counted = Arc::new(AtomicU64::new(0));
        let raw = Counting {
            inner: file,
            read: counted.clone(),
        };
        let mut input = open(raw).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.display().to_string();
        self.stats.files.push(name.clone());
        let mut line = Vec::with_capacity(4096);
        let mut number = 0u64;
        let before = self.progress.as_ref().map_or(0, |p| p.done);
        loop {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("{name}: line {}: {e}", number + 1))?;
            if n == 0 {
                break;
            }
            number += 1;
            self.stats.lines += 1;
            let text = trim(&line);
            if text.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Event<'_>>(text) {
                Ok(ev) if valid(&ev) => self.dispatch(&ev, &mut on_event),
                _ => self.malformed(&name, number),
            }
            if number.is_multiple_of(4096)
                && let Some(p) = &mut self.progress
            {
                p.show(before + counted.load(Ordering::Relaxed));
            }
        }
        self.stats.bytes += counted.load(Ordering::Relaxed);
        if let Some(p) = &mut self.progress {
            p.done = before + counted.load(Ordering::Relaxed);
            p.show(p.done);
        }
        Ok(())
    }

    fn dispatch(&mut self, ev: &Event<'_>, on_event: &mut impl FnMut(&Event<'_>)) {
        match ev.stage.as_ref() {
            "ResponseComplete" => {
                if self.seen.put(ev.audit_id.as_ref().into(), ()).is_some() {
                    self.stats.duplicates += 1;
                    return;
                }
                self.stats.events += 1;
                on_event(ev);
            }
            "ResponseStarted" => {
                self.stats.started += 1;
                on_event(ev);
            }
            _ => self.stats.skipped_stages += 1,
        }
    }

    fn malformed(&mut self, file: &str, line: u64) {
        self.stats.malformed += 1;
        if self.stats.malformed_at.len() < MALFORMED_SHOWN {
            self.stats.malformed_at.push(format!("{file}:{line}"));
        }
    }

    /// Ends the progress line.
    pub fn finish(&mut self) {
        if self.progress.take().is_some() {
            eprintln!();
        }
    }
}

fn valid(ev: &Event<'_>) -> bool {
    !ev.audit_id.is_empty() && micros(&ev.request_received_timestamp).is_some()
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &line[..end]
}

/// Plain or gzip (possibly several concatenated members, as `cat a.gz b.gz` makes).
fn open<R: Read + 'static>(raw: R) -> std::io::Result<Box<dyn BufRead>> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, raw);
    let head = buffered.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        let gz = flate2::bufread::MultiGzDecoder::new(buffered);
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, gz)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Counts the bytes read from the file (compressed bytes for gzip), for the progress line.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A one-line progress display on stderr, redrawn at most a few times a second.
struct Progress {
    total: u64,
    done: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        let now = Instant::now();
        Progress {
            total,
            done: 0,
            started: now,
            last: now,
        }
    }

    fn show(&mut self, done: u64) {
        if self.last.elapsed() < Duration::from_millis(250) && done < self.total {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mb = done as f64 / 1e6;
        let pct = if self.total > 0 {
            100.0 * done as f64 / self.total as f64
        } else {
            100.0
        };
        eprint!(
            "\rkubeguard audit-report: {pct:5.1}%  {mb:.0} MB  {:.0} MB/s ",
            mb / secs
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("600ms"), Some(Duration::from_millis(600)));
        assert_eq!(go_duration("1m2.5s"), Some(Duration::from_millis(62_500)));
        assert_eq!(go_duration("350µs"), Some(Duration::from_micros(350)));
        assert_eq!(go_duration("2h0m0s"), Some(Duration::from_secs(7200)));
        assert_eq!(go_duration("fast"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn events_with_escaped_uris_and_response_items_parse() {
        let line = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/pods?limit=500\u0026resourceVersion=0","verb":"list","user":{"username":"u","groups":["g"]},"impersonatedUser":{"username":"bob"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2024-05-01T10:00:00.000000Z","stageTimestamp":"2024-05-01T10:00:00.250000Z","annotations":{"apiserver.latency.k8s.io/etcd":"200ms","other":"x"},"responseObject":{"kind":"PodList","metadata":{"resourceVersion":"5"},"items":[{"a":1},{"b":[2]}]}}"#;
        let ev: Event<'_> = serde_json::from_slice(line).unwrap();
        assert_eq!(ev.request_uri, "/api/v1/pods?limit=500&resourceVersion=0");
        assert_eq!(ev.effective_user().username, "bob");
        assert_eq!(ev.code(), 200);
        assert_eq!(ev.response_items(), Some((2, true)));
        assert_eq!(
            ev.annotations.as_ref().and_then(|a| a.etcd.as_deref()),
            Some("200ms")
        );
        assert_eq!(
            micros(&ev.stage_timestamp).unwrap() - micros(&ev.request_received_timestamp).unwrap(),
            250_000
        );
    }
}
