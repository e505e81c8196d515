//! Hot reload: the config file's modification time is polled every second, and SIGHUP forces a
//! reload. A file that parses and compiles replaces the policy for new requests (in-flight ones
//! and open connections keep going); a bad one leaves the running policy in place, is logged
//! and counted (`kubeguard_policy_reloads_total{result="error"}`).
//!
//! Only the `policy:` section is reloaded; listeners and upstream settings need a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Policy, PolicyStore};
use crate::config::FileConfig;
use crate::metrics::Metrics;

const POLL: Duration = Duration::from_secs(1);

/// Loads `path` and compiles its policy.
pub fn load_policy(path: &Path) -> Result<Policy, String> {
    let config = FileConfig::load(path).map_err(|e| e.to_string())?;
    Policy::compile(&config.policy).map_err(|e| format!("{}: {e}", path.display()))
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads once; returns whether the policy was replaced.
pub fn reload_now(path: &Path, store: &PolicyStore, metrics: &Metrics) -> bool {
    match load_policy(path) {
        Ok(policy) => {
            store.store(policy);
            metrics.policy_reload("ok");
            tracing::info!(path = %path.display(), "policy reloaded");
            true
        }
        Err(e) => {
            metrics.policy_reload("error");
            tracing::error!(path = %path.display(), error = %e, "policy reload failed; keeping the running policy");
            false
        }
    }
}

/// Watches `path` until `shutdown` turns true.
pub async fn run(
    path: PathBuf,
    store: Arc<PolicyStore>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen = mtime(&path);
    let mut hup = sighup();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = recv_hup(&mut hup) => true,
            _ = shutdown.changed() => return,
        };
        let now = mtime(&path);
        if forced || now != seen {
            seen = now;
            reload_now(&path, &store, &metrics);
        }
    }
}

#[cfg(unix)]
type Hup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hup = ();

#[cfg(unix)]
fn sighup() -> Hup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn sighup() -> Hup {}

#[cfg(unix)]
async fn recv_hup(h: &mut Hup) {
    match h {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn recv_hup(_: &mut Hup) {
    std::future::pending().await
}
