//! Helpers for the emulator's end-to-end tests: start a sim on ephemeral ports, build a
//! `kube::Client` against it, poll with a bound.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kubeguard::sim::{self, RunningSim, SimOptions};

/// Starts an emulator with the given options (ports are always ephemeral).
pub async fn start(opts: SimOptions) -> RunningSim {
    sim::start(opts).await.expect("sim starts")
}

/// Default options with fast namespace cleanup and no per-object cost.
pub fn fast_opts() -> SimOptions {
    SimOptions {
        namespace_cleanup_delay: Duration::from_millis(20),
        etcd_cost_per_object: Duration::ZERO,
        cache_cost_per_object: Duration::ZERO,
        ..Default::default()
    }
}

/// A sim plus a kubeconfig for it in a temp dir, which is also kubectl's HOME: its discovery
/// cache stays the test's own.
pub struct Env {
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

/// Starts a sim and writes its kubeconfig.
pub async fn env(opts: SimOptions) -> Env {
    let sim = start(opts).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig_yaml(None)).expect("kubeconfig written");
    Env {
        sim,
        dir,
        kubeconfig,
    }
}

pub fn client(sim: &RunningSim) -> kube::Client {
    let mut cfg = kube::Config::new(sim.url.parse().expect("url"));
    cfg.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(cfg).expect("client")
}

/// Polls `f` every 20 ms until it returns Some, for at most `limit`.
pub async fn poll<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
