//! Two kubeguard replicas in front of one emulator share one per-client budget through one Redis
//! (Debian's redis-server, started here on a free loopback port): a client spending across both
//! is throttled at the shared budget, not twice it; with Redis killed both fall back to
//! budget/replicas and keep serving; with Redis back the budget is shared again.
#![allow(clippy::unwrap_used)] // tests may unwrap (STYLE.md)

#[path = "common/mod.rs"]
mod common;
#[path = "common/sim.rs"]
mod simc;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use kubeguard::serve::RunningServe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const BURST: u32 = 10;

/// Debian's redis-server; the test fails loudly when it is missing.
fn redis_server() -> String {
    let path = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into());
    assert!(
        Path::new(&path).exists(),
        "redis-server not found at {path}: these tests run a real Redis; install it with \
         `apt-get install -y redis-server` (or set REDIS_SERVER=/path/to/redis-server)"
    );
    path
}

/// Whether a Redis answers PING on `port`.
async fn pings(port: u16) -> Option<()> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(b"PING\r\n").await.ok()?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.ok()?;
    (&buf == b"+PONG\r\n").then_some(())
}

async fn start_redis(port: u16) -> Child {
    let child = Command::new(redis_server())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let up = simc::poll(Duration::from_secs(10), || pings(port)).await;
    assert!(up.is_some(), "redis-server did not answer on port {port}");
    child
}

fn limits_yaml(port: u16) -> String {
    // A debug build on a busy machine: a generous Redis timeout, so only a dead Redis falls back.
    format!(
        "limits:\n  mode: enforce\n  requestsPerSecond: 1\n  requestBurst: {BURST}\n  \
         costPerSecond: 100000\n  costBurst: 100000\n  redis:\n    url: redis://127.0.0.1:{port}\n    \
         replicas: 2\n    timeout: 500ms\n    retryInterval: 100ms\n"
    )
}

fn redis_up(kg: &RunningServe) -> bool {
    kg.accounting.limits.shared().unwrap().is_up()
}

async fn wait_shared(kgs: &[&RunningServe], want: bool) {
    let ok = simc::poll(Duration::from_secs(10), || async {
        kgs.iter().all(|kg| redis_up(kg) == want).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "replicas did not see Redis {}",
        if want { "up" } else { "down" }
    );
}

/// What `n` requests of `token`, sent in turn to `kgs`, got: (allowed, throttled). Every
/// throttle is a 429 with an integer Retry-After; nothing else but 200 is accepted.
async fn spend(kgs: &[&RunningServe], token: &str, n: usize) -> (usize, usize) {
    let clients: Vec<_> = kgs.iter().map(|kg| common::client(kg, false)).collect();
    let (mut ok, mut throttled) = (0, 0);
    for i in 0..n {
        let kg = kgs[i % kgs.len()];
        let req = Request::get(format!(
            "{}/api/v1/namespaces/default/configmaps",
            common::plain_url(kg)
        ))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
        let resp = clients[i % kgs.len()].request(req).await.unwrap();
        match resp.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry: u32 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&retry), "Retry-After {retry}");
                throttled += 1;
            }
            other => panic!("request {i} of {token}: {other}"),
        }
        common::body_bytes(resp.into_body()).await;
    }
    eprintln!(
        "{token:>6} x{n} over {} replica(s): {ok} allowed, {throttled} throttled",
        kgs.len()
    );
    (ok, throttled)
}

async fn readyz(kg: &RunningServe) -> String {
    let client = common::client(kg, false);
    let req = Request::get(format!("http://{}/readyz", kg.admin_addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    String::from_utf8(common::body_bytes(resp.into_body()).await.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_and_fall_back_to_half_each() {
    let port = common::unused_port();
    let redis = start_redis(port).await;
    let sim = simc::start(simc::fast_opts()).await;
    let a = common::start_kubeguard(&sim.url, &limits_yaml(port)).await;
    let b = common::start_kubeguard(&sim.url, &limits_yaml(port)).await;
    wait_shared(&[&a, &b], true).await;
    assert!(readyz(&a).await.contains("shared through Redis"));

    // Shared: spending across both replicas stops at one burst, not two. (At 1/s the bucket
    // refills by at most a request or two while the test runs.)
    let (ok, throttled) = spend(&[&a, &b], "alice", 2 * BURST as usize).await;
    assert!(
        (BURST as usize..=BURST as usize + 2).contains(&ok),
        "shared: {ok} allowed"
    );
    assert_eq!(ok + throttled, 2 * BURST as usize);
    // One replica alone gets the whole shared budget too.
    let (ok, _) = spend(&[&a], "bob", 2 * BURST as usize).await;
    assert!(
        (BURST as usize..=BURST as usize + 2).contains(&ok),
        "one replica: {ok} allowed"
    );
    let (ok, _) = spend(&[&b], "bob", BURST as usize).await;
    assert!(
        ok <= 2,
        "bob's budget was spent on the other replica, yet {ok} allowed"
    );

    // Redis dies: the next request on each replica finds out, is still served, and from then
    // on each replica enforces half the budget on its own.
    let mut redis = redis;
    redis.kill().await.unwrap();
    let down = simc::poll(Duration::from_secs(10), || async {
        spend(&[&a, &b], "probe", 2).await;
        (!redis_up(&a) && !redis_up(&b)).then_some(())
    })
    .await;
    assert!(down.is_some(), "replicas did not notice Redis died");
    assert!(readyz(&b).await.contains("Redis unreachable"));
    let half = (BURST / 2) as usize;
    let (ok, _) = spend(&[&a], "carol", 2 * BURST as usize).await;
    assert!(
        (half..=half + 2).contains(&ok),
        "fallback, replica a: {ok} allowed"
    );
    let (ok, _) = spend(&[&b], "carol", 2 * BURST as usize).await;
    assert!(
        (half..=half + 2).contains(&ok),
        "fallback, replica b: {ok} allowed"
    );
    let metrics = a.accounting.prometheus_text();
    assert!(metrics.contains("kubeguard_limits_redis_up 0"), "{metrics}");

    // Redis is back (empty, on the same port): shared again, the script loaded anew.
    let _redis = start_redis(port).await;
    wait_shared(&[&a, &b], true).await;
    let (ok, throttled) = spend(&[&a, &b], "dave", 2 * BURST as usize).await;
    assert!(
        (BURST as usize..=BURST as usize + 2).contains(&ok),
        "shared again: {ok} allowed"
    );
    assert!(throttled >= BURST as usize - 2);
    assert!(
        a.accounting
            .prometheus_text()
            .contains("kubeguard_limits_redis_up 1")
    );

    a.shutdown().await;
    b.shutdown().await;
    sim.shutdown().await;
}

/// A "Redis" that accepts connections and never answers: kubeguard does not wait on it per
/// request (the circuit stays open; only the reconnect task tries, every retryInterval), and
/// enforces half the budget locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_costs_requests_no_latency() {
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = blackhole.accept().await {
            conns.push(c);
        }
    });
    let sim = simc::start(simc::fast_opts()).await;
    let kg = common::start_kubeguard(&sim.url, &limits_yaml(port)).await;
    let start = std::time::Instant::now();
    let (ok, _) = spend(&[&kg], "erin", 2 * BURST as usize).await;
    let per_request = start.elapsed() / (2 * BURST);
    assert!(!redis_up(&kg));
    assert!((5..=7).contains(&ok), "{ok} allowed");
    // The Redis timeout is 500 ms: a request that waited on Redis would take that long.
    assert!(
        per_request < Duration::from_millis(250),
        "{per_request:?} per request"
    );
    eprintln!("silent Redis: {per_request:?} per request");
    kg.shutdown().await;
    sim.shutdown().await;
    held.abort();
}
