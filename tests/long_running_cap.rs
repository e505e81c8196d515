//! Long-running requests and the whole-process caps, with the kube crate through kubeguard in
//! front of the emulator: watches and `logs -f` do not draw from `limits.maxInflight` (as in
//! kube-apiserver's max-in-flight filter, k8s-facts §2) but from `limits.maxLongRunning`, which
//! answers 429 + integer `Retry-After` + a `TooManyRequests` Status when full, and frees a slot
//! when a stream ends.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use futures_util::{AsyncBufReadExt, StreamExt, TryStreamExt, future::join_all};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kubeguard::serve::RunningServe;
use kubeguard::sim::{RunningSim, SimOptions};

type Watch = futures_util::stream::BoxStream<'static, kube::Result<WatchEvent<Pod>>>;

async fn start(limits_yaml: &str) -> (RunningSim, RunningServe, kube::Client) {
    let sim = kubeguard::sim::start(SimOptions {
        nodes: 1,
        namespaces: 1,
        pods: 5,
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let kg = common::start_kubeguard(&sim.url, limits_yaml).await;
    let config = kube::Config::from_custom_kubeconfig(kg.client_kubeconfig(), &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    (sim, kg, client)
}

/// The resourceVersion to watch from, and the name of a seeded pod in `default`.
async fn list(client: &kube::Client) -> (String, String) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods.list(&ListParams::default()).await.unwrap();
    let name = list.items[0].metadata.name.clone().unwrap();
    (list.metadata.resource_version.unwrap(), name)
}

async fn watch(client: &kube::Client, rv: &str) -> kube::Result<Watch> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    Ok(pods
        .watch(&WatchParams::default().timeout(290), rv)
        .await?
        .boxed())
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap()
}

/// Waits (at most 10 s) until `kubeguard_long_running_requests` is `want`.
async fn wait_open_streams(kg: &RunningServe, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while kg.accounting.inflight.long_running() != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kg.accounting.inflight.long_running(), want);
}

/// What the admin `/metrics` says about a series.
async fn metric(kg: &RunningServe, name: &str) -> Option<u64> {
    let client = common::client(kg, false);
    let resp = client
        .get(format!("http://{}/metrics", kg.admin_addr).parse().unwrap())
        .await
        .unwrap();
    let text = common::body_bytes(resp.into_body()).await;
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn two_hundred_watches_establish_under_a_max_inflight_of_16_and_gets_still_work() {
    let (sim, kg, client) = start("limits:\n  maxInflight: 16\n").await;
    let (rv, name) = list(&client).await;

    // All at once: before long-running requests had their own cap, 8 of maxInflight 16 (the
    // expensive share) were all watches could take while being established.
    let opened = join_all((0..200).map(|_| watch(&client, &rv))).await;
    let mut watches: Vec<Watch> = opened
        .into_iter()
        .enumerate()
        .map(|(i, w)| w.unwrap_or_else(|e| panic!("watch {i} refused: {e:?}")))
        .collect();
    wait_open_streams(&kg, 200).await;
    assert_eq!(
        metric(&kg, "kubeguard_long_running_requests").await,
        Some(200)
    );

    // GETs by name are served while 200 streams are open, 16 at once: the whole cap is theirs.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let gets = join_all((0..16).map(|_| pods.get(&name))).await;
    for g in gets {
        assert_eq!(g.unwrap().metadata.name.as_deref(), Some(name.as_str()));
    }

    pods.create(&PostParams::default(), &pod("seen-by-all"))
        .await
        .unwrap();
    let events = join_all(watches.iter_mut().map(|w| async move {
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(ev) = w.try_next().await? {
                if let WatchEvent::Added(p) = ev
                    && p.metadata.name.as_deref() == Some("seen-by-all")
                {
                    return Ok(true);
                }
            }
            Ok::<_, kube::Error>(false)
        })
        .await
    }))
    .await;
    let seen = events.iter().filter(|e| matches!(e, Ok(Ok(true)))).count();
    assert_eq!(seen, 200, "watches that saw the new pod");
    assert_eq!(kg.accounting.inflight.shed_total(), 0, "nothing was shed");

    drop(watches);
    wait_open_streams(&kg, 0).await;
    kg.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn past_max_long_running_a_stream_gets_429_until_one_closes() {
    let (sim, kg, client) = start("limits:\n  maxLongRunning: 50\n  maxInflight: 4\n").await;
    let (rv, name) = list(&client).await;
    let mut watches = Vec::new();
    for i in 0..50 {
        watches.push(
            watch(&client, &rv)
                .await
                .unwrap_or_else(|e| panic!("watch {i} refused: {e:?}")),
        );
    }
    wait_open_streams(&kg, 50).await;

    // The 51st, raw, to see the answer itself: 429, an integer Retry-After and a Status body.
    let resp = common::client(&kg, true)
        .get(
            format!(
                "{}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}",
                common::tls_url(&kg)
            )
            .parse()
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after = resp.headers()["retry-after"].to_str().unwrap().to_owned();
    let secs: u32 = retry_after.parse().unwrap();
    assert!(secs >= 1, "Retry-After: {retry_after}");
    let status: serde_json::Value =
        serde_json::from_slice(&common::body_bytes(resp.into_body()).await).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], secs);

    // Through kube without its retry layer: the Status, for a watch and for a `logs -f`.
    let mut config =
        kube::Config::from_custom_kubeconfig(kg.client_kubeconfig(), &Default::default())
            .await
            .unwrap();
    config.default_retry = false;
    let no_retry = kube::Client::try_from(config).unwrap();
    match watch(&no_retry, &rv).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(
                (s.code, s.reason.as_str()),
                (429, "TooManyRequests"),
                "{s:?}"
            );
        }
        Ok(_) => panic!("the 51st watch was admitted"),
        Err(other) => panic!("expected a Status, got {other:?}"),
    }
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let logs: Api<Pod> = Api::namespaced(no_retry.clone(), "default");
    match logs.log_stream(&name, &follow).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 429, "{s:?}"),
        Ok(_) => panic!("logs -f was admitted past maxLongRunning"),
        Err(other) => panic!("expected a Status, got {other:?}"),
    }
    assert_eq!(
        metric(&kg, "kubeguard_long_running_shed_total").await,
        Some(3)
    );
    assert_eq!(
        metric(&kg, "kubeguard_long_running_requests").await,
        Some(50)
    );
    // Short requests are not refused by a full long-running cap.
    Api::<Pod>::namespaced(client.clone(), "default")
        .get(&name)
        .await
        .unwrap();

    // kube's default client honours Retry-After: a watch started now waits, and gets in once a
    // stream closes and frees its slot.
    let waiting = {
        let (client, rv) = (client.clone(), rv.clone());
        tokio::spawn(async move { watch(&client, &rv).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while kg.accounting.inflight.long_running_shed_total() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        kg.accounting.inflight.long_running_shed_total(),
        4,
        "the waiting watch was refused once"
    );
    assert!(!waiting.is_finished());
    watches.truncate(48);
    let mut again = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting watch got in after its Retry-After")
        .unwrap()
        .unwrap();
    // The other freed slot takes a `logs -f`, which streams.
    let logs: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut lines = Box::pin(logs.log_stream(&name, &follow).await.unwrap());
    wait_open_streams(&kg, 50).await;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), lines.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert!(!line.is_empty(), "the followed log streams");
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pod("after-a-slot-freed"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), again.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ev, Some(WatchEvent::Added(_))), "{ev:?}");

    drop((watches, again, lines));
    wait_open_streams(&kg, 0).await;
    kg.shutdown().await;
    sim.shutdown().await;
}

/// An exec session holds its `maxLongRunning` slot from the 101 until its bridged connection
/// closes, not just until its response headers.
#[tokio::test]
async fn an_exec_session_holds_its_slot_until_it_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (sim, kg, client) = start("limits:\n  maxLongRunning: 1\n").await;
    let (rv, _) = list(&client).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let name = pod.metadata.name.clone().unwrap();
    let container = pod.spec.unwrap().containers[0].name.clone();
    let mut attached = pods
        .exec(
            &name,
            ["sh"],
            &kube::api::AttachParams::default()
                .container(container)
                .stdin(true)
                .stderr(false),
        )
        .await
        .unwrap();
    let mut stdin = attached.stdin().unwrap();
    let mut stdout = attached.stdout().unwrap();
    stdin.write_all(b"echo ping\n").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), stdout.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping\n");
    wait_open_streams(&kg, 1).await;

    // The one slot is the session's: a watch is refused meanwhile.
    let mut config =
        kube::Config::from_custom_kubeconfig(kg.client_kubeconfig(), &Default::default())
            .await
            .unwrap();
    config.default_retry = false;
    let no_retry = kube::Client::try_from(config).unwrap();
    match watch(&no_retry, &rv).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 429, "{s:?}"),
        Ok(_) => panic!("a watch was admitted while the exec session holds the only slot"),
        Err(other) => panic!("expected a Status, got {other:?}"),
    }

    // `exit` ends the shell, the session closes, and the slot is free again.
    stdin.write_all(b"exit 0\n").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let status = attached.take_status().unwrap().await.unwrap();
    assert_eq!(status.status.as_deref(), Some("Success"));
    drop((stdin, attached));
    wait_open_streams(&kg, 0).await;
    let w = watch(&no_retry, &rv).await.unwrap();
    wait_open_streams(&kg, 1).await;
    drop(w);
    wait_open_streams(&kg, 0).await;
    kg.shutdown().await;
    sim.shutdown().await;
}
