//! Connection workers: a few threads, each running its own single-threaded tokio runtime. A
//! client connection is served from start to end on one of them (its requests, its upstream
//! connection, its streams), as nginx and haproxy serve a connection on one worker: no wakeups
//! that cross threads, no task moving between cores, no contention on a shared run queue.
//!
//! The accept loops, the admin listener and the background tasks stay on the main runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

thread_local! {
    /// 1 + the index of the worker this thread is, 0 on any other thread.
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Which of `n` per-thread resources (upstream connection pools, say) the current thread uses:
/// each worker its own (modulo `n`), every other thread the last one. `n` must be at least 1.
pub fn slot(n: usize) -> usize {
    match WORKER.get() {
        0 => n - 1,
        w => (w - 1) % n.max(1),
    }
}

/// The number of slots for [`slot`] that gives each worker of a per-core layout its own and
/// the other threads one more.
pub fn slots_per_core() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) + 1
}

/// The worker threads. Dropping the last handle stops them; tasks still on them are dropped.
pub struct Workers {
    workers: Vec<Worker>,
    stop: CancellationToken,
}

struct Worker {
    handle: Handle,
    /// Connections this worker serves now.
    open: Arc<AtomicUsize>,
}

impl Workers {
    /// Starts `n` worker threads (at least one).
    pub fn start(n: usize) -> std::io::Result<Arc<Workers>> {
        let stop = CancellationToken::new();
        let mut workers = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("kubeguard-conn-{i}"))
                // The runtime lives and is dropped on its own thread, never inside another one.
                .spawn(move || {
                    WORKER.set(i + 1);
                    runtime.block_on(stop.cancelled())
                })?;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Arc::new(Workers { workers, stop }))
    }

    /// One worker per core this process may use.
    pub fn per_core() -> std::io::Result<Arc<Workers>> {
        Workers::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// The worker serving the fewest connections, for a new one: the connection's task runs on
    /// `runtime` and holds `open` until it ends. (The caller's task holds the guard itself: a
    /// wrapping future that awaited the task would store it twice.)
    pub fn assign(&self) -> Assignment {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .unwrap_or(&self.workers[0]);
        worker.open.fetch_add(1, Ordering::Relaxed);
        Assignment {
            runtime: worker.handle.clone(),
            open: OpenConnection(worker.open.clone()),
        }
    }

    /// Connections each worker serves now.
    pub fn open_connections(&self) -> Vec<usize> {
        self.workers
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Where a new connection runs.
pub struct Assignment {
    pub runtime: Handle,
    pub open: OpenConnection,
}

/// Counts a connection as open on its worker until its task ends or is dropped.
pub struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::task::TaskTracker;

    /// As the accept loop runs a connection: on its worker, holding the worker's count.
    fn spawn<F>(workers: &Workers, tracker: &TaskTracker, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Assignment { runtime, open } = workers.assign();
        tracker.spawn_on(
            async move {
                let _open = open;
                task.await
            },
            &runtime,
        );
    }

    #[tokio::test]
    async fn connections_go_to_the_least_busy_worker_and_run_there() {
        let workers = Workers::start(2).unwrap();
        let tracker = TaskTracker::new();
        let (hold_tx, hold_rx) = tokio::sync::watch::channel(false);
        let (name_tx, mut name_rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..4 {
            let mut hold = hold_rx.clone();
            let names = name_tx.clone();
            spawn(&workers, &tracker, async move {
                let name = std::thread::current().name().map(str::to_owned);
                names.send(name).unwrap();
                let _ = hold.wait_for(|h| *h).await;
            });
        }
        let mut names = Vec::new();
        for _ in 0..4 {
            names.push(name_rx.recv().await.unwrap().unwrap());
        }
        names.sort();
        assert_eq!(
            names,
            [
                "kubeguard-conn-0",
                "kubeguard-conn-0",
                "kubeguard-conn-1",
                "kubeguard-conn-1"
            ]
        );
        assert_eq!(workers.open_connections(), [2, 2]);
        // Each worker has its own slot; other threads share the last one.
        let (slot_tx, mut slot_rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let slots = slot_tx.clone();
            let mut hold = hold_rx.clone();
            spawn(&workers, &tracker, async move {
                slots.send(slot(3)).unwrap();
                let _ = hold.wait_for(|h| *h).await;
            });
        }
        let mut slots = vec![slot_rx.recv().await.unwrap(), slot_rx.recv().await.unwrap()];
        slots.sort();
        assert_eq!(slots, [0, 1]);
        assert_eq!(slot(3), 2);
        hold_tx.send(true).unwrap();
        tracker.close();
        tracker.wait().await;
        assert_eq!(workers.open_connections(), [0, 0]);
    }

    #[tokio::test]
    async fn dropping_the_workers_drops_their_tasks() {
        let workers = Workers::start(1).unwrap();
        let tracker = TaskTracker::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        spawn(&workers, &tracker, async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        // The task's sender is dropped with its runtime: the receiver sees the end.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), rx).await;
        assert!(matches!(ended, Ok(Err(_))));
    }
}
