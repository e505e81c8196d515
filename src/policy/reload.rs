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

#[cfg(test)]
mod tests {
    use super::*;

    /// Files a broken deploy or a fuzzer writes: none may touch the running policy.
    #[test]
    fn garbage_files_keep_the_running_policy() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("kubeguard.yaml");
        let write = |bytes: &[u8]| std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
        write(b"policy:\n  mode: enforce\n");
        let store = PolicyStore::new(load_policy(&path).unwrap_or_else(|e| panic!("{e}")));
        let metrics = Metrics::new();
        let running = store.load();

        // An alias bomb: nine to the ninth strings if aliases were expanded without a limit.
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
        for (prev, name) in ('a'..='h').zip('b'..='i') {
            bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        let bomb = format!("server:\n  tlsSans: *i\n{bomb}");
        let deep = "[".repeat(100_000);
        let garbage: [&[u8]; 9] = [
            b"\xff\xfe\x00\x01 not text",
            b"{{{{",
            b"policy: [",
            b"- a\n- b\n",
            b"policy:\n  mode: *nowhere\n",
            b"policy:\n  rules:\n    - match: {verbs: [list]}\n      guards: {nope: {}}\n",
            b"policy:\n  mode: enforce\n  mode: shadow\n",
            deep.as_bytes(),
            bomb.as_bytes(),
        ];
        for (i, bytes) in garbage.iter().enumerate() {
            write(bytes);
            assert!(
                !reload_now(&path, &store, &metrics),
                "garbage #{i} was accepted"
            );
            assert!(
                Arc::ptr_eq(&running, &store.load()),
                "garbage #{i} touched the policy"
            );
        }
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !reload_now(&path, &store, &metrics),
            "a missing file was accepted"
        );
        assert!(Arc::ptr_eq(&running, &store.load()));
        let text = metrics.encode();
        assert!(
            text.contains(r#"kubeguard_policy_reloads_total{result="error"} 10"#),
            "{text}"
        );
        // And a good file still replaces it.
        write(b"policy:\n  mode: shadow\n");
        assert!(reload_now(&path, &store, &metrics));
        assert!(!Arc::ptr_eq(&running, &store.load()));
    }
}
