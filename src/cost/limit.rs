//! Per-identity limits: a request rate, a cost rate (cost units per second, with burst) and a
//! cap on concurrent expensive requests. The whole-process caps are in `inflight.rs`.
//!
//! Each identity gets its own `governor` limiters, held in sharded LRU maps so the state stays
//! bounded however many identities appear (an identity pushed out starts afresh when it comes
//! back). The check takes one shard's mutex for a map lookup; the limiters themselves are atomic.
//!
//! Over a limit the answer is 429 with an integer `Retry-After` taken from the limiter and a
//! `Status` with reason `TooManyRequests` (client-go retries only on an integer: k8s-facts §2).

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::{HeaderValue, StatusCode};
use lru::LruCache;

use super::estimate::Estimate;
use super::limits_config::{LimitMode, LimitsSection};
use super::redis_limit::{Rate, SharedLimits, SharedVerdict};
use crate::identity::Identity;
use crate::observe::lru::{RandomState, random_state};
use crate::request::{ApiRequest, Verb};
use crate::status::{Status, StatusDetails};

const SHARDS: usize = 32;

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

type ClientMap<C> = LruCache<Box<str>, Arc<ClientLimiter<C>>>;

/// One identity's limiters.
struct ClientLimiter<C: Clock> {
    requests: Direct<C>,
    cost: Direct<C>,
    expensive: Arc<AtomicU32>,
    /// What a client over its request-rate and cost limits is told, written the first time: a
    /// client past a limit hears it on every request (each one, in shadow mode).
    over_request_rate: std::sync::OnceLock<Detail>,
    over_cost: std::sync::OnceLock<Detail>,
}

/// A request past the exemptions and the concurrency cap, before the rate limits.
struct Admitted<C: Clock> {
    client: Arc<ClientLimiter<C>>,
    permit: Permit,
    /// Cost cells it is charged (at most the burst).
    units: NonZeroU32,
}

/// Over a limit: what the client is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Whole seconds until the limit lets the request through, at least 1.
    pub retry_after_secs: u32,
    /// Which limit: `requestRate`, `costRate`, `concurrentExpensive`, `inflight`.
    pub limit: &'static str,
    /// A sentence naming the client and the limit.
    pub detail: Detail,
}

/// A sentence naming the client and the limit it is over, with the `Warning: 299` value a
/// client in shadow mode is told (k8s-facts §3), made once: a client over a limit hears it on
/// every request, and the same sentence is kept per client.
#[derive(Clone, PartialEq, Eq)]
pub struct Detail(Arc<(String, HeaderValue)>);

impl From<String> for Detail {
    fn from(text: String) -> Self {
        const PREFIX: &str = "kubeguard (shadow): would refuse: ";
        let mut shadow = String::with_capacity(PREFIX.len() + text.len());
        shadow.push_str(PREFIX);
        shadow.push_str(&text);
        // Always a valid value: `warning` leaves only printable ASCII.
        let warning = HeaderValue::try_from(crate::policy::engine::warning(&shadow))
            .unwrap_or_else(|_| {
                HeaderValue::from_static("299 - \"kubeguard (shadow): would refuse\"")
            });
        Detail(Arc::new((text, warning)))
    }
}

impl std::ops::Deref for Detail {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0.0
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl std::fmt::Debug for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

/// Why a request may not go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over a rate or concurrency limit: retrying later succeeds.
    Throttle(Throttle),
    /// Refused whatever the timing (an unchunked LIST of a large collection): the client must
    /// change the request.
    Refuse { limit: &'static str, detail: Detail },
}

impl Throttle {
    /// 429 + `Retry-After` + `Status` reason `TooManyRequests`.
    pub fn to_status(&self) -> Status {
        Status::failure(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("kubeguard: {}", self.detail),
        )
        .with_details(StatusDetails {
            retry_after_seconds: Some(self.retry_after_secs),
            ..Default::default()
        })
    }
}

impl Refusal {
    pub fn limit(&self) -> &'static str {
        match self {
            Refusal::Throttle(t) => t.limit,
            Refusal::Refuse { limit, .. } => limit,
        }
    }

    /// The answer in enforce mode.
    pub fn to_status(&self) -> Status {
        match self {
            Refusal::Throttle(t) => t.to_status(),
            Refusal::Refuse { detail, .. } => Status::failure(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("kubeguard: {detail}"),
            ),
        }
    }

    /// The `Warning: 299` header value in shadow mode (k8s-facts §3: kubectl prints it).
    pub fn warning(&self) -> HeaderValue {
        match self {
            Refusal::Throttle(t) => t.detail.0.1.clone(),
            Refusal::Refuse { detail, .. } => detail.0.1.clone(),
        }
    }
}

/// Held while a request runs: frees its expensive-request slot when dropped. Keep it alive
/// until the response body ends (move it into the body wrapper).
#[derive(Debug, Default)]
pub struct Permit {
    slot: Option<Arc<AtomicU32>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The per-identity limits of the `limits:` section.
pub struct Limits<C: Clock = DefaultClock> {
    mode: LimitMode,
    request_quota: Quota,
    cost_quota: Quota,
    cost_burst: NonZeroU32,
    /// The local cost limiter's burst (the whole burst, or this replica's share of it).
    local_cost_burst: NonZeroU32,
    max_expensive: u32,
    expensive_list_objects: u64,
    refuse_unchunked_above: Option<u64>,
    exempt_users: HashSet<String>,
    exempt_groups: HashSet<String>,
    clock: C,
    hasher: RandomState,
    shards: Box<[Mutex<ClientMap<C>>]>,
    /// `limits.redis`: the budgets shared among replicas.
    shared: Option<Arc<SharedLimits>>,
}

impl Limits<DefaultClock> {
    pub fn new(cfg: &LimitsSection) -> Self {
        Self::with_clock(cfg, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limits<C> {
    /// Limits on an explicit clock (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(cfg: &LimitsSection, clock: C) -> Self {
        let per_shard =
            NonZeroUsize::new(cfg.max_clients.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        // With Redis, the local limiters are the fall-back: each replica's share of the budget.
        let replicas = cfg.redis.as_ref().map_or(1, |r| r.replicas.get());
        let share = |n: NonZeroU32| NonZeroU32::new(n.get() / replicas).unwrap_or(NonZeroU32::MIN);
        let shared = cfg.redis.as_ref().and_then(|r| {
            SharedLimits::new(
                r,
                Rate::per_second(cfg.requests_per_second.get(), cfg.request_burst.get()),
                Rate::per_second(cfg.cost_per_second.get(), cfg.cost_burst.get()),
            )
        });
        Limits {
            mode: cfg.mode,
            request_quota: Quota::per_second(share(cfg.requests_per_second))
                .allow_burst(share(cfg.request_burst)),
            cost_quota: Quota::per_second(share(cfg.cost_per_second))
                .allow_burst(share(cfg.cost_burst)),
            cost_burst: cfg.cost_burst,
            local_cost_burst: share(cfg.cost_burst),
            max_expensive: cfg.max_concurrent_expensive.get(),
            expensive_list_objects: cfg.expensive_list_objects,
            refuse_unchunked_above: cfg.refuse_unchunked_lists_above,
            exempt_users: cfg.exempt_users.iter().cloned().collect(),
            exempt_groups: cfg.exempt_groups.iter().cloned().collect(),
            clock,
            hasher: random_state(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            shared,
        }
    }

    /// `enforce`, `shadow` or `off`: what the caller does with a [`Refusal`].
    pub fn mode(&self) -> LimitMode {
        self.mode
    }

    fn exempt(&self, who: &Identity) -> bool {
        self.exempt_users.contains(&who.user)
            || who.groups.iter().any(|g| self.exempt_groups.contains(g))
    }

    fn client(&self, user: &str) -> Arc<ClientLimiter<C>> {
        let i = (self.hasher.hash_one(user) as usize) % self.shards.len();
        let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = shard.get(user) {
            return c.clone();
        }
        let c = Arc::new(ClientLimiter {
            requests: RateLimiter::direct_with_clock(self.request_quota, self.clock.clone()),
            cost: RateLimiter::direct_with_clock(self.cost_quota, self.clock.clone()),
            expensive: Arc::new(AtomicU32::new(0)),
            over_request_rate: std::sync::OnceLock::new(),
            over_cost: std::sync::OnceLock::new(),
        });
        shard.put(user.into(), c.clone());
        c
    }

    /// Checks one request of `who` estimated at `est` against the local limiters, and takes its
    /// expensive-request slot. Ok: the request may go on, holding the [`Permit`]. In shadow mode
    /// the caller forwards it anyway and warns.
    pub fn check(
        &self,
        who: &Identity,
        api: &ApiRequest,
        est: &Estimate,
    ) -> Result<Permit, Refusal> {
        let Some(admitted) = self.admit(who, api, est)? else {
            return Ok(Permit::default());
        };
        self.check_local(who, &admitted)?;
        Ok(admitted.permit)
    }

    /// [`Limits::check`], with the rate budgets shared among replicas through Redis when
    /// `limits.redis` is set; while Redis is down, the local limiters (budget/replicas) decide.
    /// The expensive-request cap stays per replica.
    pub async fn check_shared(
        &self,
        who: &Identity,
        api: &ApiRequest,
        est: &Estimate,
    ) -> Result<Permit, Refusal> {
        let Some(shared) = &self.shared else {
            return self.check(who, api, est);
        };
        let Some(admitted) = self.admit(who, api, est)? else {
            return Ok(Permit::default());
        };
        // Boxed: a Redis round trip's state is large, and every request's future would be as
        // large for it.
        match Box::pin(shared.check(&who.user, admitted.units.get())).await {
            Some(SharedVerdict::Allow) => Ok(admitted.permit),
            Some(SharedVerdict::RequestRate(wait)) => Err(self.throttle(who, "requestRate", wait)),
            Some(SharedVerdict::CostRate(wait)) => Err(self.throttle(who, "costRate", wait)),
            None => {
                self.check_local(who, &admitted)?;
                Ok(admitted.permit)
            }
        }
    }

    /// The shared budgets, when `limits.redis` is set (state, metrics, the reconnect task).
    pub fn shared(&self) -> Option<&Arc<SharedLimits>> {
        self.shared.as_ref()
    }

    /// The checks before the rate limits: exemptions, the unchunked-LIST refusal, the
    /// expensive-request slot. `None`: not limited at all.
    fn admit(
        &self,
        who: &Identity,
        api: &ApiRequest,
        est: &Estimate,
    ) -> Result<Option<Admitted<C>>, Refusal> {
        if self.mode == LimitMode::Off || self.exempt(who) {
            return Ok(None);
        }
        if let Some(refusal) = self.unchunked_list(who, api, est) {
            return Err(refusal);
        }
        let client = self.client(&who.user);
        let permit = if self.is_expensive(api, est) {
            let slot = &client.expensive;
            let taken = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_expensive).then_some(n + 1)
            });
            if taken.is_err() {
                return Err(Refusal::Throttle(Throttle {
                    retry_after_secs: 1,
                    limit: "concurrentExpensive",
                    detail: format!(
                        "user {:?} already has {} expensive requests (large LISTs, watches, \
                         exec and log streams) running, the limit",
                        who.user, self.max_expensive
                    )
                    .into(),
                }));
            }
            Permit {
                slot: Some(slot.clone()),
            }
        } else {
            Permit::default()
        };
        // A request dearer than the whole burst is charged the burst: it can pass once the
        // bucket is full, never more often than the sustained rate allows.
        let units = u32::try_from(est.units())
            .unwrap_or(u32::MAX)
            .min(self.cost_burst.get());
        let units = NonZeroU32::new(units).unwrap_or(NonZeroU32::MIN);
        Ok(Some(Admitted {
            client,
            permit,
            units,
        }))
    }

    /// This replica's request-rate and cost-rate limiters.
    fn check_local(&self, who: &Identity, admitted: &Admitted<C>) -> Result<(), Refusal> {
        let client = &admitted.client;
        if let Err(not_until) = client.requests.check() {
            let wait = not_until.wait_time_from(self.clock.now());
            let detail = client
                .over_request_rate
                .get_or_init(|| over_limit_detail(who, "requestRate"));
            return Err(throttle_with(detail.clone(), "requestRate", wait));
        }
        let units = admitted.units.min(self.local_cost_burst);
        if let Ok(Err(not_until)) = client.cost.check_n(units) {
            let wait = not_until.wait_time_from(self.clock.now());
            let detail = client
                .over_cost
                .get_or_init(|| over_limit_detail(who, "costRate"));
            return Err(throttle_with(detail.clone(), "costRate", wait));
        }
        Ok(())
    }

    fn throttle(&self, who: &Identity, limit: &'static str, wait: Duration) -> Refusal {
        throttle_with(over_limit_detail(who, limit), limit, wait)
    }

    /// LISTs of many objects, watches and open streams hold apiserver resources for long.
    fn is_expensive(&self, api: &ApiRequest, est: &Estimate) -> bool {
        match api.verb {
            Verb::List => est.etcd_objects.max(est.cache_objects) > self.expensive_list_objects,
            Verb::Watch | Verb::Exec | Verb::Attach | Verb::PortForward => true,
            Verb::Log => api.options.follow,
            _ => false,
        }
    }

    /// kubernetes#94477: a LIST without `limit` of a large collection comes back in one piece.
    fn unchunked_list(&self, who: &Identity, api: &ApiRequest, est: &Estimate) -> Option<Refusal> {
        let max = self.refuse_unchunked_above?;
        let unchunked = api.verb == Verb::List
            && api.options.limit.is_none_or(|l| l == 0)
            && api.resource().is_some_and(|r| r.name.is_none());
        let size = est.collection_size?;
        (unchunked && size > max).then(|| Refusal::Refuse {
            limit: "unchunkedList",
            detail: format!(
                "user {:?}: a LIST of {} without limit would return about {size} objects in one \
                 response (more than {max}); page it with limit (kubectl --chunk-size=500)",
                who.user,
                api.resource_label()
            )
            .into(),
        })
    }
}

/// What a client over `limit` (`requestRate` or `costRate`) is told.
fn over_limit_detail(who: &Identity, limit: &'static str) -> Detail {
    let what = match limit {
        "requestRate" => "request rate",
        _ => "cost budget (objects read per second)",
    };
    format!("user {:?} is over its {what} limit", who.user).into()
}

fn throttle_with(detail: Detail, limit: &'static str, wait: Duration) -> Refusal {
    Refusal::Throttle(Throttle {
        retry_after_secs: retry_after(wait),
        limit,
        detail,
    })
}

/// Whole seconds, rounded up, at least 1 (k8s-facts §2: clients retry only on an integer).
pub fn retry_after(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
