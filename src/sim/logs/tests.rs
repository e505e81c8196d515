use super::*;
use serde_json::json;

fn pod() -> Value {
    json!({
        "metadata": {"name": "web-1", "namespace": "prod"},
        "spec": {
            "containers": [{"name": "app"}, {"name": "sidecar"}],
            "initContainers": [{"name": "init"}]
        },
        "status": {"containerStatuses": [
            {"name": "app", "restartCount": 0},
            {"name": "sidecar", "restartCount": 2}
        ]}
    })
}

fn opts(query: &str) -> LogOptions {
    LogOptions::from_query(query).unwrap()
}

/// Reads frames until the body ends, or at most `max` frames.
async fn frames(body: &mut SimBody, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < max {
        match body.frame().await {
            Some(frame) => {
                let data = frame.unwrap().into_data().unwrap();
                out.push(String::from_utf8(data.to_vec()).unwrap());
            }
            None => break,
        }
    }
    out
}

/// Fails the test instead of hanging when a stream stalls.
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("stream stalled")
}

async fn all_lines(query: &str) -> Vec<String> {
    let mut b = body(
        &pod(),
        opts(query),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    )
    .unwrap();
    frames(&mut b, 1000).await
}

#[test]
fn query_is_parsed_like_pod_log_options() {
    let o = opts(
        "container=app&follow=true&tailLines=5&timestamps=1&limitBytes=100&previous=false&sinceSeconds=30&x=y",
    );
    assert_eq!(o.container, "app");
    assert!(o.follow && o.timestamps && !o.previous);
    assert_eq!(o.tail_lines, Some(5));
    assert_eq!(o.limit_bytes, Some(100));
    assert_eq!(o.since_seconds, Some(30));
    let t = opts("sinceTime=2026-01-02T03:04:05Z").since_time.unwrap();
    assert_eq!(t.as_second(), 1_767_323_045);
}

#[test]
fn unparsable_values_are_bad_requests() {
    let err = LogOptions::from_query("tailLines=ten").unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.message.contains("tailLines"), "{}", err.message);
    assert_eq!(
        LogOptions::from_query("follow=maybe").unwrap_err().code,
        400
    );
    assert_eq!(
        LogOptions::from_query("sinceTime=yesterday")
            .unwrap_err()
            .code,
        400
    );
}

#[tokio::test]
async fn history_is_twenty_deterministic_lines_one_chunk_each() {
    let lines = all_lines("container=app").await;
    assert_eq!(lines.len(), HISTORY_LINES as usize);
    for (n, line) in lines.iter().enumerate() {
        assert!(
            line.ends_with(&format!(" INFO app=app pod=web-1 request served n={n}\n")),
            "{line}"
        );
    }
}

#[tokio::test]
async fn tail_lines_keeps_the_last_lines() {
    let lines = all_lines("container=app&tailLines=3").await;
    assert_eq!(lines.len(), 3);
    assert!(lines[0].ends_with("n=17\n") && lines[2].ends_with("n=19\n"));
    assert!(all_lines("container=app&tailLines=0").await.is_empty());
}

#[tokio::test]
async fn limit_bytes_cuts_the_stream() {
    let text: String = all_lines("container=app&limitBytes=100").await.concat();
    assert_eq!(text.len(), 100);
    // The two bodies are made at different moments, so their lines' times differ: compare
    // what follows the time.
    let full: String = all_lines("container=app").await.concat();
    assert!(
        without_times(&full).starts_with(&without_times(&text)),
        "{text:?} is not the start of {full:?}"
    );
}

/// The lines with their leading application time ("2026-11-22T01:29:55.123Z") blanked.
fn without_times(text: &str) -> String {
    const TIME: usize = "2026-11-22T01:29:55.123Z".len();
    text.split_inclusive('\n')
        .map(|line| {
            let cut = line.len().min(TIME);
            format!("{}{}", "_".repeat(cut), &line[cut..])
        })
        .collect()
}

#[tokio::test]
async fn timestamps_prefix_each_line_with_nanoseconds() {
    let lines = all_lines("container=app&timestamps=true&tailLines=2").await;
    assert_eq!(lines.len(), 2);
    for line in lines {
        let (ts, rest) = line.split_once(' ').unwrap();
        assert_eq!(ts.len(), "2026-11-22T01:29:55.123456789Z".len(), "{ts}");
        assert!(ts.parse::<Timestamp>().is_ok(), "{ts}");
        assert!(rest.contains(" INFO app=app "), "{rest}");
    }
}

#[tokio::test]
async fn since_seconds_keeps_only_recent_history() {
    // Lines are one interval (1 s) apart and the last is "now": 5 s back holds 6 of them.
    let lines = all_lines("container=app&sinceSeconds=5").await;
    assert_eq!(lines.len(), 6);
    assert!(lines[0].ends_with("n=14\n"));
}

#[tokio::test]
async fn unknown_or_missing_container_is_rejected_like_the_apiserver() {
    let err = body(
        &pod(),
        opts("container=nope"),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    )
    .err()
    .unwrap();
    assert_eq!(err.code, 400);
    assert_eq!(err.message, "container nope is not valid for pod web-1");
    let err = body(&pod(), opts(""), DEFAULT_INTERVAL, CancellationToken::new())
        .err()
        .unwrap();
    assert_eq!(
        err.message,
        "a container name must be specified for pod web-1, choose one of: [app sidecar] or one of the init containers: [init]"
    );
    // The init container's log is valid too.
    assert!(
        body(
            &pod(),
            opts("container=init"),
            DEFAULT_INTERVAL,
            CancellationToken::new()
        )
        .is_ok()
    );
}

#[tokio::test]
async fn only_container_is_the_default() {
    let single = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "only"}]}});
    let mut b = body(
        &single,
        opts("tailLines=1"),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    )
    .unwrap();
    let lines = frames(&mut b, 10).await;
    assert!(lines[0].contains("app=only pod=p "), "{}", lines[0]);
}

#[test]
fn invalid_options_are_422_naming_the_pod() {
    let err = body(
        &pod(),
        opts("container=app&tailLines=-1"),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    )
    .err()
    .unwrap();
    assert_eq!(err.code, 422);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.message,
        "PodLogOptions \"web-1\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
    );
    let err = body(
        &pod(),
        opts("container=app&limitBytes=0"),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    )
    .err()
    .unwrap();
    assert_eq!(err.details.unwrap().causes[0].field, "limitBytes");
}

#[tokio::test]
async fn previous_needs_a_restart() {
    let err = body(
        &pod(),
        opts("container=app&previous=true"),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    )
    .err()
    .unwrap();
    assert_eq!(err.code, 400);
    assert_eq!(
        err.message,
        "previous terminated container \"app\" in pod \"web-1\" not found"
    );
    // A restarted container has a previous log; following it ends after its history.
    let lines = all_lines("container=sidecar&previous=true&follow=true&tailLines=1").await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ends_with("n=19 restart=1\n"), "{}", lines[0]);
}

// tokio's `test-util` feature (paused time) is not enabled in Cargo.toml: these use a short real
// interval and check only lower bounds on time, and every read is bounded by a timeout.
// Paused time: "the history comes at once" and "one line per interval" are read on the runtime's
// clock, which a busy machine cannot stretch.
#[tokio::test(start_paused = true)]
async fn follow_streams_a_line_per_interval_until_the_pod_is_gone() {
    let gone = CancellationToken::new();
    let interval = Duration::from_millis(20);
    let mut b = body(
        &pod(),
        opts("container=app&follow=true&tailLines=1"),
        interval,
        gone.clone(),
    )
    .unwrap();
    let start = tokio::time::Instant::now();
    let first = frames(&mut b, 1).await;
    assert!(first[0].ends_with("n=19\n"));
    assert!(start.elapsed() < interval, "history comes at once");
    let next = bounded(frames(&mut b, 3)).await;
    assert_eq!(next.len(), 3);
    for (i, line) in next.iter().enumerate() {
        assert!(line.ends_with(&format!("n={}\n", 20 + i)), "{line}");
    }
    assert!(start.elapsed() >= 3 * interval);
    gone.cancel();
    assert!(
        bounded(b.frame()).await.is_none(),
        "the stream ends when the pod is deleted"
    );
}

#[tokio::test]
async fn follow_respects_limit_bytes() {
    let mut b = body(
        &pod(),
        opts("container=app&follow=true&tailLines=0&limitBytes=70"),
        Duration::from_millis(5),
        CancellationToken::new(),
    )
    .unwrap();
    let text = bounded(frames(&mut b, 100)).await.concat();
    assert_eq!(text.len(), 70);
}

#[tokio::test]
async fn response_is_text_plain_or_a_status() {
    let ok = response(
        &pod(),
        opts("container=app"),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    );
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()[header::CONTENT_TYPE], "text/plain");
    let bad = response(
        &pod(),
        opts("container=x"),
        DEFAULT_INTERVAL,
        CancellationToken::new(),
    );
    assert_eq!(bad.status(), 400);
    let bytes = bad.into_body().collect().await.unwrap().to_bytes();
    let status: Status = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status.reason, "BadRequest");
}

#[tokio::test]
async fn a_client_that_goes_away_stops_the_writer() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let b = body(
        &pod(),
        opts("container=app&follow=true"),
        Duration::from_secs(3600),
        CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(metrics.num_alive_tasks(), baseline + 1);
    drop(b);
    let ended = async {
        while metrics.num_alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    bounded(ended).await;
}
