//! Helpers for the emulator's end-to-end tests: start a sim on ephemeral ports, build a
//! `kube::Client` against it, poll with a bound.
#![allow(dead_code)]

use std::future::Future;
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
