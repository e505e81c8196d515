//! Upstream faults, driven with the kube crate through kubeguard in front of the emulator: the
//! apiserver restarts (gracefully, or dies) mid-watch, stalls, refuses connections, presents a
//! certificate nobody trusts. Each time clients get a clean end or a clear `Status`, kubeguard
//! recovers once the apiserver does, and no connection or file descriptor is left behind.
//!
//! kubeguard runs in-process, so leaks show in this process's `/proc/self/fd`; the tests take
//! one lock so that they count only their own descriptors.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kubeguard::serve::RunningServe;
use kubeguard::sim::{SimOptions, StallHook};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// One test at a time: descriptor counts are per process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Short upstream timeouts, and idle pooled connections closed quickly so that a descriptor
/// count settles within the test.
const KG_YAML: &str = "upstream:\n  responseHeaderTimeout: 1s\n  poolIdleTimeout: 1s\n";

fn sim_opts(listen: Option<SocketAddr>) -> SimOptions {
    let mut opts = SimOptions {
        nodes: 1,
        namespaces: 1,
        pods: 5,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    };
    if let Some(addr) = listen {
        opts.listen = addr;
    }
    opts
}

async fn kube_client(kg: &RunningServe) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(kg.client_kubeconfig(), &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// What a leak would show as: sockets kubeguard holds (accepted on its listeners, or connected
/// to the upstream port), and descriptors that are not sockets. The emulator's and the test
/// clients' own sockets are not counted: the emulator keeps a stalled or watched connection
/// until it next writes, which says nothing about kubeguard.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fds {
    kubeguard_sockets: usize,
    other: usize,
}

fn fds(kg: &RunningServe, upstream_port: u16) -> Fds {
    let mut inodes = std::collections::HashSet::new();
    let mut other = 0;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        match target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            Some(inode) => {
                inodes.insert(inode.to_string());
            }
            None => other += 1,
        }
    }
    let mut kg_ports: Vec<u16> = kg.listeners.iter().map(|l| l.addr.port()).collect();
    kg_ports.push(kg.admin_addr.port());
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap_or(""), 16).ok();
    let mut kubeguard_sockets = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(inode)) = (cols.get(1), cols.get(2), cols.get(9))
            else {
                continue;
            };
            if !inodes.contains(*inode) {
                continue;
            }
            let mine = port(local).is_some_and(|p| kg_ports.contains(&p))
                || port(remote) == Some(upstream_port);
            if mine {
                kubeguard_sockets += 1;
            }
        }
    }
    Fds {
        kubeguard_sockets,
        other,
    }
}

/// Waits (at most `limit`) for kubeguard's sockets and the other descriptors to come back to
/// `baseline` (idle pooled connections close after `poolIdleTimeout`), then asserts it.
async fn assert_no_leak(kg: &RunningServe, upstream_port: u16, baseline: Fds, limit: Duration) {
    // A few descriptors of the process's own that the first test to need them opens once and
    // keeps (a runtime's timer or signal pipe, lazily opened system files): the tests share one
    // process and run in any order. A leak per connection or request shows above this.
    const SLACK: usize = 4;
    let settled = |n: Fds| {
        n.kubeguard_sockets <= baseline.kubeguard_sockets && n.other <= baseline.other + SLACK
    };
    let deadline = Instant::now() + limit;
    let mut now = fds(kg, upstream_port);
    while !settled(now) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = fds(kg, upstream_port);
    }
    assert!(settled(now), "leak: {baseline:?} before, {now:?} after");
}

fn api_status(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected a Status answer, got {other:?}"),
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

/// Reads a watch until it ends: `Ok(events)` on a clean end, `Err` if the stream failed.
async fn drain_watch(
    mut stream: impl futures_util::Stream<Item = kube::Result<WatchEvent<Pod>>> + Unpin,
) -> Result<usize, kube::Error> {
    let mut n = 0;
    while let Some(ev) = stream.try_next().await? {
        n += 1;
        drop(ev);
    }
    Ok(n)
}

/// After a restart the client does what client-go's reflector does: relist, then watch from
/// the list's resourceVersion; a pod created through kubeguard must arrive on that watch.
async fn relist_and_rewatch(client: kube::Client, name: &str) {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 5, "the new apiserver's seeded pods");
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .unwrap()
        .boxed();
    Api::<Pod>::namespaced(client, "default")
        .create(&PostParams::default(), &pod(name))
        .await
        .unwrap();
    let added = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            if let WatchEvent::Added(p) = ev
                && p.metadata.name.as_deref() == Some(name)
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(added.ok(), Some(true), "the rewatch saw the new pod");
}

/// Opens a watch on all pods and checks it is live (an event for a pod created after it).
async fn live_watch(
    client: kube::Client,
) -> impl futures_util::Stream<Item = kube::Result<WatchEvent<Pod>>> + Unpin {
    let pods: Api<Pod> = Api::all(client.clone());
    let rv = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = pods
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .unwrap()
        .boxed();
    Api::<Pod>::namespaced(client, "default")
        .create(&PostParams::default(), &pod("before-restart"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("watch event")
        .unwrap();
    assert!(matches!(first, Some(WatchEvent::Added(_))), "{first:?}");
    stream
}

#[tokio::test]
async fn apiserver_restart_mid_watch_ends_the_watch_cleanly_and_relist_works() {
    let _serial = SERIAL.lock().await;
    let sim = kubeguard::sim::start(sim_opts(None)).await.unwrap();
    let addr = sim.addr;
    let kg = common::start_kubeguard(&sim.url, KG_YAML).await;
    let client = kube_client(&kg).await;
    let baseline = fds(&kg, addr.port());
    let stream = live_watch(client.clone()).await;

    // A rolling restart: the apiserver ends its watches and stops; a new one takes the port.
    sim.shutdown().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), drain_watch(stream)).await;
    let ended = ended.expect("the watch ended (no hang)");
    assert!(ended.is_ok(), "a clean end, not an error: {ended:?}");

    let sim = kubeguard::sim::start(sim_opts(Some(addr))).await.unwrap();
    relist_and_rewatch(client.clone(), "after-restart").await;

    drop(client);
    assert_no_leak(&kg, addr.port(), baseline, Duration::from_secs(10)).await;
    kg.shutdown().await;
    sim.shutdown().await;
}

/// A TCP relay standing in for the apiserver's address, so the test can kill every connection at
/// once as a crashed apiserver (or a dropped node) would: no final chunk, no GOAWAY.
struct Relay {
    addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn start(listen: SocketAddr, target: SocketAddr) -> Relay {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay { addr, tasks }
    }

    /// Drops the listener and every relayed connection at once.
    async fn kill(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[tokio::test]
async fn apiserver_crash_mid_watch_ends_the_watch_cleanly_and_relist_works() {
    let _serial = SERIAL.lock().await;
    let sim = kubeguard::sim::start(sim_opts(None)).await.unwrap();
    let relay = Relay::start("127.0.0.1:0".parse().unwrap(), sim.addr).await;
    let relay_addr = relay.addr;
    let kg = common::start_kubeguard(&format!("http://{relay_addr}"), KG_YAML).await;
    let client = kube_client(&kg).await;
    let baseline = fds(&kg, relay_addr.port());
    let stream = live_watch(client.clone()).await;
    // kube reads a truncated watch as a resumable end too; raw HTTP/1.1 and h2 watches show
    // what kubeguard itself sends: the final chunk or END_STREAM, not a cut connection or RST.
    let mut raw = Vec::new();
    for h2 in [false, true] {
        let resp = common::client(&kg, h2)
            .request(
                http::Request::get(format!(
                    "{}/api/v1/pods?watch=true&timeoutSeconds=290",
                    common::tls_url(&kg)
                ))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        raw.push((h2, resp.into_body()));
    }

    relay.kill().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), drain_watch(stream)).await;
    let ended = ended.expect("the watch ended (no hang)");
    assert!(
        ended.is_ok(),
        "a clean end, not a truncated body: {ended:?}"
    );
    for (h2, mut body) in raw {
        use http_body_util::BodyExt;
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok::<_, hyper::Error>(())
        })
        .await
        .expect("the raw watch ended (no hang)");
        assert!(
            end.is_ok(),
            "h2={h2}: the watch was cut, not ended: {end:?}"
        );
    }
    sim.shutdown().await;

    let sim = kubeguard::sim::start(sim_opts(None)).await.unwrap();
    let relay = Relay::start(relay_addr, sim.addr).await;
    relist_and_rewatch(client.clone(), "after-crash").await;

    drop(client);
    assert_no_leak(&kg, relay_addr.port(), baseline, Duration::from_secs(10)).await;
    kg.shutdown().await;
    relay.kill().await;
    sim.shutdown().await;
}

/// `kubectl logs -f` when the apiserver dies mid-stream (the relay is killed: no final chunk):
/// the log ends as it does when its container stops, not with a transport error, and nothing is
/// left open.
#[tokio::test]
async fn apiserver_crash_mid_follow_ends_the_log_cleanly() {
    use futures_util::AsyncBufReadExt;
    use http_body_util::BodyExt;
    use kube::api::LogParams;

    let _serial = SERIAL.lock().await;
    let sim = kubeguard::sim::start(sim_opts(None)).await.unwrap();
    let relay = Relay::start("127.0.0.1:0".parse().unwrap(), sim.addr).await;
    let relay_addr = relay.addr;
    let kg = common::start_kubeguard(&format!("http://{relay_addr}"), KG_YAML).await;
    let client = kube_client(&kg).await;
    let baseline = fds(&kg, relay_addr.port());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let name = pods.list(&ListParams::default()).await.unwrap().items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = Box::pin(pods.log_stream(&name, &follow).await.unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), lines.read_line(&mut line))
        .await
        .expect("a first log line")
        .unwrap();
    assert!(!line.is_empty());
    // Raw HTTP/1.1 and h2 follows show what kubeguard itself sends.
    let mut raw = Vec::new();
    for h2 in [false, true] {
        let resp = common::client(&kg, h2)
            .request(
                http::Request::get(format!(
                    "{}/api/v1/namespaces/default/pods/{name}/log?follow=true",
                    common::tls_url(&kg)
                ))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        raw.push((h2, resp.into_body()));
    }

    relay.kill().await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok::<_, std::io::Error>(());
            }
        }
    })
    .await
    .expect("the log ended (no hang)");
    assert!(ended.is_ok(), "a clean end, not an error: {ended:?}");
    for (h2, mut body) in raw {
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(frame) = body.frame().await {
                frame?;
            }
            Ok::<_, hyper::Error>(())
        })
        .await
        .expect("the raw follow ended (no hang)");
        assert!(end.is_ok(), "h2={h2}: the log was cut, not ended: {end:?}");
    }

    drop((lines, pods, client));
    assert_no_leak(&kg, relay_addr.port(), baseline, Duration::from_secs(10)).await;
    assert_eq!(kg.accounting.inflight.long_running(), 0, "slots freed");
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn stalled_upstream_is_a_504_after_the_timeout_and_other_requests_go_on() {
    let _serial = SERIAL.lock().await;
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    let mut opts = sim_opts(None);
    // The apiserver stalls for 10 s on ConfigMaps (an overloaded priority level, a slow
    // admission webhook) while it answers everything else.
    opts.stall = Some(StallHook(Arc::new(move |uri: &http::Uri| {
        (flag.load(Ordering::Relaxed) && uri.path().contains("/configmaps"))
            .then_some(Duration::from_secs(10))
    })));
    let sim = kubeguard::sim::start(opts).await.unwrap();
    let kg = common::start_kubeguard(&sim.url, KG_YAML).await;
    // kube retries a 504 with backoff by default (as client-go does a 429); this test looks at
    // each answer kubeguard gives.
    let mut config =
        kube::Config::from_custom_kubeconfig(kg.client_kubeconfig(), &Default::default())
            .await
            .unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::all(client.clone());
    cms.list(&ListParams::default()).await.unwrap();
    let baseline = fds(&kg, sim.addr.port());

    stalled.store(true, Ordering::Relaxed);
    let mut slow = JoinSet::new();
    for _ in 0..3 {
        let cms = cms.clone();
        slow.spawn(async move {
            let started = Instant::now();
            let r = cms.list(&ListParams::default()).await;
            (started.elapsed(), r)
        });
    }
    // Meanwhile everything else is answered at once.
    for _ in 0..10 {
        let started = Instant::now();
        let list = pods.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 5);
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "a pod list took {:?} during the stall",
            started.elapsed()
        );
    }
    while let Some(r) = slow.join_next().await {
        let (took, r) = r.unwrap();
        let status = api_status(r.unwrap_err());
        assert_eq!(status.code, 504, "{status:?}");
        assert!(
            status.message.contains("did not answer within 1s"),
            "{status:?}"
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "504 after {took:?}; the timeout is 1 s"
        );
    }

    // The apiserver recovers, and so does kubeguard.
    stalled.store(false, Ordering::Relaxed);
    cms.list(&ListParams::default()).await.unwrap();
    drop((cms, pods, client));
    // The stalled handlers hold their side of the connections until their 10 s are up.
    assert_no_leak(&kg, sim.addr.port(), baseline, Duration::from_secs(15)).await;
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_connections_are_a_502_naming_the_upstream_and_recover() {
    let _serial = SERIAL.lock().await;
    let port = common::unused_port();
    let kg = common::start_kubeguard(&format!("http://127.0.0.1:{port}"), KG_YAML).await;
    let client = kube_client(&kg).await;
    let pods: Api<Pod> = Api::all(client.clone());
    let _ = pods.list(&ListParams::default()).await;
    let baseline = fds(&kg, port);
    for _ in 0..20 {
        let status = api_status(pods.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(status.code, 502, "{status:?}");
        assert!(
            status.message.contains(&format!("http://127.0.0.1:{port}")),
            "names the upstream: {}",
            status.message
        );
        assert!(
            status.message.to_lowercase().contains("refused"),
            "{}",
            status.message
        );
    }
    // The apiserver comes up on that address: no restart of kubeguard needed.
    let sim = kubeguard::sim::start(sim_opts(Some(([127, 0, 0, 1], port).into())))
        .await
        .unwrap();
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        5
    );
    drop((pods, client));
    assert_no_leak(&kg, port, baseline, Duration::from_secs(10)).await;
    kg.shutdown().await;
    sim.shutdown().await;
}

/// The message is checked in e2e_upstream.rs; here: many refused handshakes leave nothing open.
#[tokio::test]
async fn untrusted_upstream_certificate_leaks_no_connections() {
    let _serial = SERIAL.lock().await;
    let mut opts = sim_opts(None);
    opts.tls = true;
    let sim = kubeguard::sim::start(opts).await.unwrap();
    let kg = common::start_kubeguard(&sim.url, KG_YAML).await;
    let client = kube_client(&kg).await;
    let pods: Api<Pod> = Api::all(client.clone());
    let _ = pods.list(&ListParams::default()).await;
    let baseline = fds(&kg, sim.addr.port());
    for _ in 0..20 {
        let status = api_status(pods.list(&ListParams::default()).await.unwrap_err());
        assert_eq!(status.code, 502, "{status:?}");
    }
    drop((pods, client));
    assert_no_leak(&kg, sim.addr.port(), baseline, Duration::from_secs(10)).await;
    kg.shutdown().await;
    sim.shutdown().await;
}
