//! exec/attach/port-forward: the request is answered 101 at once, but what it costs is how long
//! the bridged connection stays open. Its ledger record waits for the bridge to close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{CostRecord, Ledger};

/// Told how long the bridged connection of an upgrade stayed open, when it closes. Travels in
/// the 101 response's extensions from the bridge to the record step.
#[derive(Clone, Debug)]
pub struct UpgradeEnded(watch::Receiver<Option<Duration>>);

/// The bridge's end of [`UpgradeEnded`]: `closed` when the connection ends (dropping it
/// unsent counts as ended too, e.g. when the upgrade is abandoned).
#[derive(Debug)]
pub struct UpgradeBridge {
    tx: watch::Sender<Option<Duration>>,
    // tokio's clock: tests control it.
    started: tokio::time::Instant,
}

/// A pair for one upgrade: the bridge task keeps the first, the response carries the second.
pub fn upgrade_channel() -> (UpgradeBridge, UpgradeEnded) {
    let (tx, rx) = watch::channel(None);
    (
        UpgradeBridge {
            tx,
            started: tokio::time::Instant::now(),
        },
        UpgradeEnded(rx),
    )
}

impl UpgradeBridge {
    /// The bridged connection closed now.
    pub fn closed(self) {
        let _ = self.tx.send(Some(self.started.elapsed()));
    }
}

impl UpgradeEnded {
    /// Keeps `permit` (the upgrade's `maxLongRunning` slot) until the bridge closes.
    pub fn hold_until_closed(mut self, permit: super::InflightPermit) {
        tokio::spawn(async move {
            // Ended, or the bridge dropped unsent (an abandoned upgrade): either frees the slot.
            let _ = self.0.wait_for(Option::is_some).await;
            drop(permit);
        });
    }

    /// Writes `record` when the bridge closes, with the stream's duration as its
    /// `long_running_seconds` (the ledger's exec-seconds).
    pub fn record_when_closed(
        mut self,
        mut record: CostRecord,
        ledger: Arc<Ledger>,
        start: Instant,
    ) {
        tokio::spawn(async move {
            // A dropped bridge (abandoned upgrade) ends the wait with what has passed.
            let open = match self.0.wait_for(Option::is_some).await {
                Ok(d) => d.unwrap_or_default(),
                Err(_) => Duration::ZERO,
            };
            record.duration = start.elapsed();
            record.long_running_seconds = open.as_secs_f64();
            ledger.record(&record);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Verb;

    #[tokio::test(start_paused = true)]
    async fn the_record_waits_for_the_bridge_and_carries_its_duration() {
        let ledger = Arc::new(Ledger::new(10, 4));
        let (bridge, ended) = upgrade_channel();
        ended.record_when_closed(
            CostRecord::new("alice", Verb::Exec, "pods/exec"),
            ledger.clone(),
            Instant::now(),
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            ledger.snapshot(None).total().requests,
            0,
            "not before it closes"
        );
        bridge.closed();
        let mut totals = ledger.snapshot(None).total();
        for _ in 0..100 {
            if totals.requests > 0 {
                break;
            }
            tokio::task::yield_now().await;
            totals = ledger.snapshot(None).total();
        }
        assert_eq!(totals.requests, 1);
        assert!((totals.exec_seconds - 3.0).abs() < 0.1, "{totals:?}");
    }
}
