//! The ledger on disk: written every interval and at shutdown, read back at start, so a restart
//! loses at most one interval. Written to a temporary file and renamed, so a crash mid-write
//! leaves the previous file whole.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::ledger::{Ledger, LedgerSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read the cost ledger {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cost ledger {path} is not a ledger file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the cost ledger {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes the whole ledger to `path`.
pub fn save(ledger: &Ledger, path: &Path) -> Result<(), PersistError> {
    let write_err = |source| PersistError::Write {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec(&ledger.snapshot(None))
        .map_err(|e| write_err(std::io::Error::other(e)))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, json).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

/// Reads a ledger file back into `ledger`; a missing file is a first start, not an error.
pub fn load(ledger: &Ledger, path: &Path) -> Result<bool, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(PersistError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let snap: LedgerSnapshot =
        serde_json::from_slice(&bytes).map_err(|source| PersistError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    ledger.restore(&snap);
    Ok(true)
}

/// Writes the ledger every `interval` until `shutdown` turns true, then once more.
pub async fn run(
    ledger: Arc<Ledger>,
    path: PathBuf,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        write_logged(&ledger, &path).await;
    }
    write_logged(&ledger, &path).await;
}

async fn write_logged(ledger: &Arc<Ledger>, path: &Path) {
    let (l, p) = (ledger.clone(), path.to_path_buf());
    let result = tokio::task::spawn_blocking(move || save(&l, &p)).await;
    match result {
        Ok(Ok(())) => tracing::debug!(path = %path.display(), "cost ledger written"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cost ledger not written"),
        Err(e) => tracing::warn!(error = %e, "cost ledger writer failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostRecord;
    use crate::request::Verb;

    #[tokio::test(start_paused = true)]
    async fn the_ledger_survives_a_restart_losing_at_most_one_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let ledger = Arc::new(Ledger::new(100, 8));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            ledger.clone(),
            path.clone(),
            Duration::from_secs(10),
            stopped,
        ));
        let mut r = CostRecord::new("alice", Verb::List, "pods");
        r.etcd_objects_read = 700;
        ledger.record(&r);
        tokio::time::sleep(Duration::from_secs(11)).await;
        // Written by the periodic tick, before any shutdown.
        let mid = Ledger::new(100, 8);
        let mut found = false;
        for _ in 0..100 {
            if load(&mid, &path).unwrap() {
                found = true;
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(found, "written within one interval");
        assert_eq!(mid.snapshot(None).clients[0].totals.etcd_objects_read, 700);

        ledger.record(&CostRecord::new("bob", Verb::Get, "pods"));
        stop.send(true).unwrap();
        task.await.unwrap();
        let back = Ledger::new(100, 8);
        assert!(load(&back, &path).unwrap());
        assert_eq!(back.snapshot(None), ledger.snapshot(None));
        assert!(!load(&back, &dir.path().join("absent.json")).unwrap());
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            load(&back, &path),
            Err(PersistError::Parse { .. })
        ));
    }
}
