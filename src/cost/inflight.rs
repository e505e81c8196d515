//! The whole-process admission caps, decided in one place ([`InflightCap::admit`]) for every
//! front end:
//!
//! - `limits.maxInflight`: short and collection requests in flight. Past it requests are shed
//!   with 429 before any work is done for them, so a surge costs a bounded amount of memory;
//!   collection requests may take only `expensiveInflightPercent` of it, so cheap ones always
//!   find room.
//! - `limits.maxLongRunning`: open long-running streams (watches, `logs -f`, exec, attach,
//!   port-forward, proxy). They do not draw from `maxInflight`: kube-apiserver's max-in-flight
//!   filter does not count long-running requests either (k8s-facts §2), and a stream holds its
//!   slot for minutes, so sharing one pool would let a fleet of informers starve every GET. Their
//!   own cap bounds the memory they hold (about 32 KiB each, `loadtests/README.md`).
//!
//! Every refusal is 429 + integer `Retry-After` + `Status` reason `TooManyRequests`
//! (k8s-facts §2: clients retry only on an integer).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::limit::Throttle;
use crate::request::{ApiRequest, Verb};

/// Seconds a shed short or collection request is told to wait: slots free within milliseconds.
const SHORT_RETRY_AFTER_SECS: u32 = 1;
/// Seconds a refused long-running request is told to wait. A slot frees only when some stream
/// ends, which for watches is minutes away (the apiserver ends them after 5–10 min, k8s-facts
/// §5); client-go retries a 429 with `Retry-After` up to 10 times, so 5 s spreads a reconnecting
/// fleet over most of a minute instead of spinning every second.
const LONG_RUNNING_RETRY_AFTER_SECS: u32 = 5;

/// What a request is to the admission caps, decided from its classification alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestClass {
    /// A GET by name, a write, discovery, or a request that could not be classified.
    Short,
    /// A collection request (LIST, DELETECOLLECTION): within `maxInflight`'s expensive share.
    Expensive,
    /// A watch, `logs -f`, exec/attach/port-forward or proxy: within `maxLongRunning` only.
    LongRunning,
}

impl RequestClass {
    /// The class of a classified request (`None`: it could not be classified, and will be
    /// answered 400 at once).
    pub fn of(api: Option<&ApiRequest>) -> Self {
        match api {
            Some(a) if a.is_long_running() => RequestClass::LongRunning,
            Some(a) if matches!(a.verb, Verb::List | Verb::DeleteCollection) => {
                RequestClass::Expensive
            }
            _ => RequestClass::Short,
        }
    }
}

/// The whole-process caps: `maxInflight` (with its expensive share) and `maxLongRunning`.
/// Lock-free: one or two atomic compare-and-swaps per request.
#[derive(Debug)]
pub struct InflightCap {
    max: usize,
    /// What expensive requests may take of `max` together.
    max_expensive: usize,
    max_long_running: usize,
    current: AtomicUsize,
    expensive: AtomicUsize,
    long_running: AtomicUsize,
    shed: AtomicU64,
    long_running_shed: AtomicU64,
}

/// One admitted request; its slot is freed when dropped. A short request's permit travels with
/// its response body; a long-running one's with its stream (the body, or an upgrade's bridge).
#[derive(Debug)]
pub struct InflightPermit {
    cap: Arc<InflightCap>,
    class: RequestClass,
}

impl InflightPermit {
    pub fn class(&self) -> RequestClass {
        self.class
    }
}

impl Drop for InflightPermit {
    fn drop(&mut self) {
        let cap = &self.cap;
        match self.class {
            RequestClass::Short => {
                cap.current.fetch_sub(1, Ordering::AcqRel);
            }
            RequestClass::Expensive => {
                cap.current.fetch_sub(1, Ordering::AcqRel);
                cap.expensive.fetch_sub(1, Ordering::AcqRel);
            }
            RequestClass::LongRunning => {
                cap.long_running.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Takes one slot of `counter` if fewer than `max` are taken.
fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

fn to_usize(n: NonZeroU32) -> usize {
    usize::try_from(n.get()).unwrap_or(usize::MAX)
}

impl InflightCap {
    /// `max` short and collection requests in flight, of which collection requests may take
    /// `expensive_percent`; and `max_long_running` open long-running streams.
    pub fn new(max: NonZeroU32, expensive_percent: u8, max_long_running: NonZeroU32) -> Arc<Self> {
        let max = to_usize(max);
        let percent = usize::from(expensive_percent.min(100));
        Arc::new(InflightCap {
            max,
            max_expensive: (max.saturating_mul(percent) / 100).max(1),
            max_long_running: to_usize(max_long_running),
            current: AtomicUsize::new(0),
            expensive: AtomicUsize::new(0),
            long_running: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
            long_running_shed: AtomicU64::new(0),
        })
    }

    /// The admission decision for one request: a slot, or the 429 to answer with.
    pub fn admit(self: &Arc<Self>, class: RequestClass) -> Result<InflightPermit, Throttle> {
        match class {
            RequestClass::LongRunning => {
                if !take(&self.long_running, self.max_long_running) {
                    self.long_running_shed.fetch_add(1, Ordering::Relaxed);
                    return Err(Throttle {
                        retry_after_secs: LONG_RUNNING_RETRY_AFTER_SECS,
                        limit: "longRunning",
                        detail: format!(
                            "overloaded: {} watches, log streams and exec sessions are open, the \
                             limit; retry shortly",
                            self.max_long_running
                        )
                        .into(),
                    });
                }
            }
            RequestClass::Expensive => {
                if !take(&self.expensive, self.max_expensive) {
                    return Err(self.shed(format!(
                        "overloaded: {} collection requests are in flight, their share of the \
                         limit; retry shortly",
                        self.max_expensive
                    )));
                }
                if !take(&self.current, self.max) {
                    self.expensive.fetch_sub(1, Ordering::AcqRel);
                    return Err(self.full());
                }
            }
            RequestClass::Short => {
                if !take(&self.current, self.max) {
                    return Err(self.full());
                }
            }
        }
        Ok(InflightPermit {
            cap: self.clone(),
            class,
        })
    }

    fn full(&self) -> Throttle {
        self.shed(format!(
            "overloaded: {} requests are in flight, the limit; retry shortly",
            self.max
        ))
    }

    fn shed(&self, detail: String) -> Throttle {
        self.shed.fetch_add(1, Ordering::Relaxed);
        Throttle {
            retry_after_secs: SHORT_RETRY_AFTER_SECS,
            limit: "inflight",
            detail: detail.into(),
        }
    }

    /// Short and collection requests admitted now (`maxInflight`).
    pub fn in_flight(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// Long-running streams open now (`maxLongRunning`).
    pub fn long_running(&self) -> usize {
        self.long_running.load(Ordering::Acquire)
    }

    /// Short and collection requests shed since start.
    pub fn shed_total(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// Long-running requests refused since start.
    pub fn long_running_shed_total(&self) -> u64 {
        self.long_running_shed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::classify;
    use http::Method;

    fn cap(max: u32, percent: u8, long_running: u32) -> Arc<InflightCap> {
        let nz = |n| NonZeroU32::new(n).unwrap();
        InflightCap::new(nz(max), percent, nz(long_running))
    }

    fn class(path: &str, query: Option<&str>) -> RequestClass {
        let api = classify(&Method::GET, path, query).ok();
        RequestClass::of(api.as_ref())
    }

    #[test]
    fn requests_are_classed_by_what_they_hold() {
        assert_eq!(
            class("/api/v1/namespaces/a/pods/p", None),
            RequestClass::Short
        );
        assert_eq!(class("/api/v1/pods", None), RequestClass::Expensive);
        assert_eq!(
            class("/api/v1/pods", Some("watch=true")),
            RequestClass::LongRunning
        );
        assert_eq!(
            class("/api/v1/namespaces/a/pods/p/log", Some("follow=true")),
            RequestClass::LongRunning
        );
        assert_eq!(
            class("/api/v1/namespaces/a/pods/p/log", None),
            RequestClass::Short
        );
        assert_eq!(RequestClass::of(None), RequestClass::Short);
    }

    #[test]
    fn the_inflight_cap_sheds_past_its_maximum() {
        let cap = cap(2, 100, 1);
        let a = cap.admit(RequestClass::Short).unwrap();
        let _b = cap.admit(RequestClass::Expensive).unwrap();
        let t = cap.admit(RequestClass::Short).unwrap_err();
        assert_eq!((t.limit, t.retry_after_secs), ("inflight", 1));
        assert_eq!((cap.in_flight(), cap.shed_total()), (2, 1));
        drop(a);
        assert!(cap.admit(RequestClass::Short).is_ok());
    }

    #[test]
    fn expensive_requests_leave_room_for_cheap_ones() {
        let cap = cap(4, 50, 1);
        let lists: Vec<_> = (0..2)
            .map(|_| cap.admit(RequestClass::Expensive).unwrap())
            .collect();
        let shed = cap.admit(RequestClass::Expensive).unwrap_err();
        assert!(shed.detail.contains("share"), "{}", shed.detail);
        // The two slots kept for cheap requests are still free, and a refused expensive request
        // gave back what it took.
        let gets: Vec<_> = (0..2)
            .map(|_| cap.admit(RequestClass::Short).unwrap())
            .collect();
        assert!(cap.admit(RequestClass::Short).is_err());
        assert_eq!((cap.in_flight(), cap.shed_total()), (4, 2));
        drop(gets);
        // With the cheap slots free again, still no third expensive request.
        assert!(cap.admit(RequestClass::Expensive).is_err());
        drop(lists);
        assert!(cap.admit(RequestClass::Expensive).is_ok());
        assert_eq!(cap.in_flight(), 0);
    }

    #[test]
    fn long_running_streams_have_their_own_cap() {
        let cap = cap(1, 50, 3);
        let watches: Vec<_> = (0..3)
            .map(|_| cap.admit(RequestClass::LongRunning).unwrap())
            .collect();
        // maxInflight is untouched by them: a short request still gets in.
        let get = cap.admit(RequestClass::Short).unwrap();
        assert_eq!((cap.in_flight(), cap.long_running()), (1, 3));
        let refused = cap.admit(RequestClass::LongRunning).unwrap_err();
        assert_eq!(
            (refused.limit, refused.retry_after_secs),
            ("longRunning", LONG_RUNNING_RETRY_AFTER_SECS)
        );
        assert_eq!((cap.long_running_shed_total(), cap.shed_total()), (1, 0));
        // A full maxInflight does not refuse a stream either.
        assert!(cap.admit(RequestClass::Short).is_err());
        drop(watches);
        let w = cap.admit(RequestClass::LongRunning).unwrap();
        assert_eq!(w.class(), RequestClass::LongRunning);
        assert_eq!(cap.long_running(), 1);
        drop((w, get));
        assert_eq!((cap.in_flight(), cap.long_running()), (0, 0));
    }
}
