//! The cost model of the LIST-storm incident: "etcd" serves a bounded number of reads at once and
//! an unversioned LIST scans the whole resource range; the "watch cache" serves without queueing.
//!
//! What is charged, and why:
//! - an etcd-served LIST (unversioned on ≤1.30, exact RV, continue pages): every object in the
//!   scanned key range (the namespace, or the whole resource for a cluster-wide list), on every
//!   page, even with `limit` and even when selectors drop most objects. etcd filters nothing
//!   itself and the apiserver keeps reading until a filtered page is full, so the full range scan
//!   is the faithful price of the incident's `kubectl get pods -A` storms;
//! - a cache-served LIST: `cache_cost_per_object` per returned object, no etcd permit;
//! - a GET by name: one etcd read (a cache read with `resourceVersion=0`);
//! - the ≥1.31 "etcd revision check" before a consistent read from cache: an etcd read of zero
//!   objects (it queues for a permit, but costs no scan).
//!
//! Cost is spent by sleeping while holding the etcd permit: the point is queueing, not CPU burn.
//! Costs below [`SPIN_BELOW`] are spun instead: tokio's timer has millisecond granularity, so
//! sleeping 2 µs for a GET would take a whole millisecond and cap the emulator at a few
//! thousand GETs/s. Busy time is the modelled cost; queue wait is measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

tokio::task_local! {
    /// What the request being served has cost so far (set by `server::handle` around each
    /// request): the per-request ground truth the `on_request` hook reports.
    static REQUEST_COST: RequestCost;
}

/// Objects one request read from "etcd" and served from the "watch cache".
#[derive(Debug, Default)]
pub struct RequestCost {
    etcd: std::cell::Cell<u64>,
    cache: std::cell::Cell<u64>,
}

impl RequestCost {
    /// Runs `f` (one request) with its own cost counters; returns its output and what it cost
    /// as `(etcd objects, cache objects)`.
    pub async fn scope<F: std::future::Future>(f: F) -> (F::Output, (u64, u64)) {
        REQUEST_COST
            .scope(RequestCost::default(), async move {
                let out = f.await;
                let cost = REQUEST_COST
                    .try_with(|c| (c.etcd.get(), c.cache.get()))
                    .unwrap_or_default();
                (out, cost)
            })
            .await
    }

    fn add(etcd: u64, cache: u64) {
        // Outside a request scope (the emulator's own work, unit tests) nothing is attributed.
        let _ = REQUEST_COST.try_with(|c| {
            c.etcd.set(c.etcd.get().saturating_add(etcd));
            c.cache.set(c.cache.get().saturating_add(cache));
        });
    }
}

/// A snapshot of the cost counters (also exported on the admin `/metrics`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    /// Objects read from "etcd" (every object of a scanned range, plus one per GET).
    pub etcd_objects_read: u64,
    /// Objects returned by cache-served LISTs.
    pub cache_objects_served: u64,
    /// Modelled time "etcd" spent serving reads.
    pub etcd_busy_seconds: f64,
    /// Measured time reads waited for an etcd permit.
    pub etcd_queue_wait_seconds: f64,
    pub lists_from_etcd: u64,
    pub lists_from_cache: u64,
    pub requests_total: u64,
    /// TokenReviews received (0 without auth).
    pub token_reviews: u64,
    /// Requests being served now (until their response head; watches and log streams count
    /// only until their head too).
    pub inflight: u64,
    /// The most requests ever served at once (until their response heads): what an apiserver's
    /// max-requests-inflight would see.
    pub inflight_peak: u64,
}

/// One request in flight; see [`Cost::request_started`].
pub struct InflightGuard<'a>(&'a AtomicU64);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Cost {
    etcd: Semaphore,
    etcd_per_object: Duration,
    cache_per_object: Duration,
    etcd_objects_read: AtomicU64,
    cache_objects_served: AtomicU64,
    etcd_busy_nanos: AtomicU64,
    etcd_wait_nanos: AtomicU64,
    lists_from_etcd: AtomicU64,
    lists_from_cache: AtomicU64,
    requests_total: AtomicU64,
    pub token_reviews: AtomicU64,
    inflight: AtomicU64,
    inflight_peak: AtomicU64,
    /// `(verb, code)` → count; a handful of keys, so a mutex is cheap enough.
    /// `sim_requests_total` by (verb, code): one counter per [`VERBS`] × 100..=599, so
    /// counting a request takes no lock.
    requests: Box<[AtomicU64]>,
}

/// The verbs `sim_requests_total` distinguishes; anything else counts as `other`.
const VERBS: [&str; 12] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "log",
    "exec",
    "attach",
    "other",
];
const CODES: std::ops::Range<u16> = 100..600;

/// Costs shorter than this are spent spinning, longer ones sleeping (see the module doc).
const SPIN_BELOW: Duration = Duration::from_micros(50);

/// Spends `d` of modelled time.
async fn spend(d: Duration) {
    if d.is_zero() {
        return;
    }
    if d < SPIN_BELOW {
        let until = std::time::Instant::now() + d;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    } else {
        tokio::time::sleep(d).await;
    }
}

fn request_slot(verb: &str, code: u16) -> usize {
    let v = VERBS
        .iter()
        .position(|x| *x == verb)
        .unwrap_or(VERBS.len() - 1);
    let c = if CODES.contains(&code) { code } else { 599 };
    v * CODES.len() + usize::from(c - CODES.start)
}

impl Cost {
    pub fn new(
        etcd_concurrency: usize,
        etcd_per_object: Duration,
        cache_per_object: Duration,
    ) -> Self {
        Cost {
            etcd: Semaphore::new(etcd_concurrency.max(1)),
            etcd_per_object,
            cache_per_object,
            etcd_objects_read: AtomicU64::new(0),
            cache_objects_served: AtomicU64::new(0),
            etcd_busy_nanos: AtomicU64::new(0),
            etcd_wait_nanos: AtomicU64::new(0),
            lists_from_etcd: AtomicU64::new(0),
            lists_from_cache: AtomicU64::new(0),
            requests_total: AtomicU64::new(0),
            token_reviews: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            inflight_peak: AtomicU64::new(0),
            requests: (0..VERBS.len() * CODES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// An "etcd" read of `objects` objects: waits for a permit, then holds it for the cost.
    pub async fn etcd_read(&self, objects: u64) {
        let queued = tokio::time::Instant::now();
        // The semaphore is never closed, so acquire cannot fail; without a permit we still charge.
        let permit = self.etcd.acquire().await.ok();
        add_duration(&self.etcd_wait_nanos, queued.elapsed());
        let busy = self.etcd_per_object.saturating_mul(clamp_u32(objects));
        spend(busy).await;
        drop(permit);
        add_duration(&self.etcd_busy_nanos, busy);
        self.etcd_objects_read.fetch_add(objects, Ordering::Relaxed);
        RequestCost::add(objects, 0);
    }

    /// Serving `objects` objects from the watch cache (no etcd permit).
    pub async fn cache_serve(&self, objects: u64) {
        spend(self.cache_per_object.saturating_mul(clamp_u32(objects))).await;
        self.cache_objects_served
            .fetch_add(objects, Ordering::Relaxed);
        RequestCost::add(0, objects);
    }

    pub fn list_served(&self, from_etcd: bool) {
        let c = if from_etcd {
            &self.lists_from_etcd
        } else {
            &self.lists_from_cache
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request in flight until the guard is dropped (also when the client goes away
    /// before the answer).
    pub fn request_started(&self) -> InflightGuard<'_> {
        let now = self.inflight.fetch_add(1, Ordering::Relaxed) + 1;
        self.inflight_peak.fetch_max(now, Ordering::Relaxed);
        InflightGuard(&self.inflight)
    }

    pub fn request_done(&self, verb: &'static str, code: u16) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.requests.get(request_slot(verb, code)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> SimStats {
        let secs = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
        SimStats {
            etcd_objects_read: self.etcd_objects_read.load(Ordering::Relaxed),
            cache_objects_served: self.cache_objects_served.load(Ordering::Relaxed),
            etcd_busy_seconds: secs(&self.etcd_busy_nanos),
            etcd_queue_wait_seconds: secs(&self.etcd_wait_nanos),
            lists_from_etcd: self.lists_from_etcd.load(Ordering::Relaxed),
            lists_from_cache: self.lists_from_cache.load(Ordering::Relaxed),
            requests_total: self.requests_total.load(Ordering::Relaxed),
            token_reviews: self.token_reviews.load(Ordering::Relaxed),
            inflight: self.inflight.load(Ordering::Relaxed),
            inflight_peak: self.inflight_peak.load(Ordering::Relaxed),
        }
    }

    /// The Prometheus text exposition of the counters.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let s = self.stats();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "sim_etcd_objects_read_total",
            "Objects read from the emulated etcd.",
            s.etcd_objects_read.to_string(),
        );
        counter(
            "sim_cache_objects_served_total",
            "Objects served from the emulated watch cache.",
            s.cache_objects_served.to_string(),
        );
        counter(
            "sim_etcd_busy_seconds_total",
            "Modelled time the emulated etcd spent serving reads.",
            s.etcd_busy_seconds.to_string(),
        );
        counter(
            "sim_etcd_queue_wait_seconds_total",
            "Time reads waited for an emulated etcd slot.",
            s.etcd_queue_wait_seconds.to_string(),
        );
        counter(
            "sim_token_reviews_total",
            "TokenReviews received.",
            s.token_reviews.to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP sim_lists_total LISTs served, by source.\n# TYPE sim_lists_total counter\n\
             sim_lists_total{{source=\"etcd\"}} {}\nsim_lists_total{{source=\"cache\"}} {}",
            s.lists_from_etcd, s.lists_from_cache
        );
        let _ = writeln!(
            out,
            "# HELP sim_requests_total Requests served, by verb and HTTP code.\n# TYPE sim_requests_total counter"
        );
        for (i, n) in self.requests.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let verb = VERBS[i / CODES.len()];
            let code = CODES.start + (i % CODES.len()) as u16;
            let _ = writeln!(
                out,
                "sim_requests_total{{verb=\"{verb}\",code=\"{code}\"}} {n}"
            );
        }
        out
    }
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn add_duration(a: &AtomicU64, d: Duration) {
    a.fetch_add(
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn etcd_reads_queue_behind_the_concurrency_limit() {
        let cost = std::sync::Arc::new(Cost::new(1, Duration::from_micros(100), Duration::ZERO));
        let (a, b) = (cost.clone(), cost.clone());
        let t0 = tokio::time::Instant::now();
        tokio::join!(a.etcd_read(200), b.etcd_read(200));
        // One permit: the second read waits for the first (20 ms each).
        assert!(
            t0.elapsed() >= Duration::from_millis(40),
            "{:?}",
            t0.elapsed()
        );
        let s = cost.stats();
        assert_eq!(s.etcd_objects_read, 400);
        assert!((s.etcd_busy_seconds - 0.04).abs() < 1e-9);
        assert!(s.etcd_queue_wait_seconds >= 0.019, "{s:?}");
    }

    #[tokio::test]
    async fn small_costs_are_not_rounded_up_to_the_timer_tick() {
        // 2 µs per GET: sleeping would take a whole timer tick (1 ms) each, 200 ms for 200.
        let cost = Cost::new(1, Duration::from_micros(2), Duration::ZERO);
        let t0 = std::time::Instant::now();
        for _ in 0..200 {
            cost.etcd_read(1).await;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(100),
            "{:?}",
            t0.elapsed()
        );
        assert!((cost.stats().etcd_busy_seconds - 0.0004).abs() < 1e-9);
    }

    #[tokio::test]
    async fn each_request_scope_counts_only_its_own_objects() {
        let cost = Cost::new(2, Duration::ZERO, Duration::ZERO);
        cost.etcd_read(7).await; // outside any request: attributed to none
        let (a, b) = tokio::join!(
            RequestCost::scope(async {
                cost.etcd_read(100).await;
                cost.etcd_read(1).await;
            }),
            RequestCost::scope(cost.cache_serve(40)),
        );
        assert_eq!((a.1, b.1), ((101, 0), (0, 40)));
        assert_eq!(cost.stats().etcd_objects_read, 108);
    }

    #[tokio::test]
    async fn cache_serves_do_not_touch_etcd() {
        let cost = Cost::new(1, Duration::from_millis(1), Duration::from_micros(1));
        cost.cache_serve(1000).await;
        cost.list_served(false);
        cost.request_done("list", 200);
        let s = cost.stats();
        assert_eq!((s.etcd_objects_read, s.cache_objects_served), (0, 1000));
        let text = cost.metrics_text();
        assert!(
            text.contains("sim_lists_total{source=\"cache\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sim_requests_total{verb=\"list\",code=\"200\"} 1"),
            "{text}"
        );
    }
}
