//! Shared per-identity budgets across replicas: the request-rate and cost-rate limits as a GCRA
//! evaluated atomically in Redis by one Lua script (EVALSHA, loaded again on NOSCRIPT after a
//! Redis restart), so N replicas behind a Service spend one budget per client, not N.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT, microseconds on Redis's own
//! clock, so the replicas' clocks do not matter); a request of `n` cells is allowed when
//! `max(TAT, now) + n·T − now ≤ burst·T`, and the key expires when the bucket would be full
//! again, so idle clients cost Redis nothing. Both limits are checked before either is charged.
//!
//! Redis unreachable or slower than `limits.redis.timeout`: the request is decided by the local
//! limiters, which every replica keeps at budget/`replicas` (`limit.rs`), and the circuit opens:
//! further requests go straight to the local limiters, paying no Redis latency, while one
//! background task reconnects every `retryInterval`. Each change of state is logged once and shown
//! in `kubeguard_limits_redis_up` and on `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use tokio::sync::Notify;

use super::limits_config::RedisSection;

/// Both GCRAs in one atomic step. KEYS: request key, cost key. ARGV: request interval (µs),
/// request burst, cost interval (µs), cost burst, cost cells of this request.
/// Returns {0, 0} when allowed, else {1 (request rate) or 2 (cost rate), wait in µs}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function gcra(key, interval, burst, n)
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then tat = now end
  local new_tat = tat + n * interval
  local allow_at = new_tat - burst * interval
  if allow_at > now then return allow_at - now, tat end
  return 0, new_tat
end
local wait, req_tat = gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1)
if wait > 0 then return {1, math.ceil(wait)} end
local cwait, cost_tat = gcra(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
if cwait > 0 then return {2, math.ceil(cwait)} end
redis.call('SET', KEYS[1], string.format('%.0f', req_tat), 'PX', math.ceil((req_tat - now) / 1000) + 1)
redis.call('SET', KEYS[2], string.format('%.0f', cost_tat), 'PX', math.ceil((cost_tat - now) / 1000) + 1)
return {0, 0}
";

/// A rate as GCRA sees it: one cell every `interval_us`, at most `burst` cells at once.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub interval_us: f64,
    pub burst: u32,
}

impl Rate {
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Rate {
            interval_us: 1e6 / f64::from(per_second.max(1)),
            burst: burst.max(1),
        }
    }
}

/// What Redis said about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedVerdict {
    Allow,
    /// Over the shared request rate; allowed again after this long.
    RequestRate(Duration),
    /// Over the shared cost rate; allowed again after this long.
    CostRate(Duration),
}

/// The shared budgets of one replica: a multiplexed connection (cloned per request: no lock),
/// and the circuit breaker around it.
pub struct SharedLimits {
    client: redis::Client,
    script: redis::Script,
    conn: ArcSwapOption<MultiplexedConnection>,
    up: AtomicBool,
    /// Wakes the reconnect task when a request found Redis gone.
    down: Notify,
    timeout: Duration,
    retry_interval: Duration,
    prefix: String,
    requests: Rate,
    cost: Rate,
    fallbacks: AtomicU64,
}

impl SharedLimits {
    /// `None` (logged) if the URL does not parse; config validation has already checked it.
    pub fn new(cfg: &RedisSection, requests: Rate, cost: Rate) -> Option<Arc<Self>> {
        let client = match redis::Client::open(cfg.url.as_str()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "limits.redis.url: cannot use it; limits stay local");
                return None;
            }
        };
        Some(Arc::new(SharedLimits {
            client,
            script: redis::Script::new(GCRA),
            conn: ArcSwapOption::empty(),
            up: AtomicBool::new(false),
            down: Notify::new(),
            timeout: cfg.timeout,
            retry_interval: cfg.retry_interval,
            prefix: cfg.key_prefix.clone(),
            requests,
            cost,
            fallbacks: AtomicU64::new(0),
        }))
    }

    /// Whether requests are decided in Redis right now.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Requests decided by the local limiters because Redis was down or slow.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Asks Redis about one request of `user` costing `cells`. `None`: Redis is down (the
    /// circuit is open, or this call failed and opened it): decide locally.
    pub async fn check(&self, user: &str, cells: u32) -> Option<SharedVerdict> {
        let conn = if self.is_up() {
            self.conn.load_full()
        } else {
            None
        };
        let Some(conn) = conn else {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let mut conn = (*conn).clone();
        let mut call = self.script.prepare_invoke();
        call.key(format!("{}req:{user}", self.prefix))
            .key(format!("{}cost:{user}", self.prefix))
            .arg(self.requests.interval_us)
            .arg(self.requests.burst)
            .arg(self.cost.interval_us)
            .arg(self.cost.burst)
            .arg(cells.max(1));
        let answer = tokio::time::timeout(self.timeout, call.invoke_async::<(i64, i64)>(&mut conn));
        match answer.await {
            Ok(Ok((which, wait_us))) => {
                let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
                Some(match which {
                    1 => SharedVerdict::RequestRate(wait),
                    2 => SharedVerdict::CostRate(wait),
                    _ => SharedVerdict::Allow,
                })
            }
            Ok(Err(e)) => {
                self.trip(&format!("error: {e}"));
                None
            }
            Err(_) => {
                self.trip(&format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    /// Opens the circuit (once: the first failing request logs and wakes the reconnect task).
    fn trip(&self, why: &str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                why,
                "limits.redis: Redis unreachable; each replica now enforces budget/replicas locally"
            );
            self.down.notify_one();
        }
    }

    /// Connects, and reconnects after every failure, until `shutdown`. Tries every
    /// `retryInterval` while Redis is down.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut logged_down = false;
        loop {
            if !self.is_up() {
                let attempt = tokio::select! {
                    attempt = self.connect() => attempt,
                    _ = shutdown.changed() => return,
                };
                match attempt {
                    Ok(conn) => {
                        self.conn.store(Some(Arc::new(conn)));
                        self.up.store(true, Ordering::Release);
                        tracing::info!("limits.redis: connected; per-client budgets are shared");
                    }
                    Err(why) => {
                        if !logged_down {
                            tracing::warn!(
                                why,
                                "limits.redis: cannot reach Redis; limits are local (budget/replicas) until it answers"
                            );
                            logged_down = true;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(self.retry_interval) => continue,
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.down.notified() => {
                    logged_down = true; // trip() logged it
                    tokio::select! {
                        _ = tokio::time::sleep(self.retry_interval) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// A fresh connection that answered PING in time.
    async fn connect(&self) -> Result<MultiplexedConnection, String> {
        let attempt = async {
            let mut conn = self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(conn)
        };
        // Connecting may take longer than one request's timeout, but not forever.
        let limit = (self.timeout * 10).max(Duration::from_millis(500));
        tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
    }

    /// The `kubeguard_limits_redis_*` metrics.
    pub fn prometheus_text(&self) -> String {
        format!(
            "# HELP kubeguard_limits_redis_up Whether per-client budgets are shared through Redis (1) or enforced locally at budget/replicas (0).\n\
             # TYPE kubeguard_limits_redis_up gauge\n\
             kubeguard_limits_redis_up {}\n\
             # HELP kubeguard_limits_redis_fallbacks_total Requests decided by the local limiters because Redis was down or slow.\n\
             # TYPE kubeguard_limits_redis_fallbacks_total counter\n\
             kubeguard_limits_redis_fallbacks_total {}\n",
            u8::from(self.is_up()),
            self.fallbacks()
        )
    }
}
