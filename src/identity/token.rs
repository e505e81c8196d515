//! The review caches (TokenReview answers, and the SubjectAccessReview answers of `kubectl
//! --as`): bounded (`lru`), keyed by a SHA-256 of what was asked (a token is never kept),
//! sharded so that no lock is shared by every request. A positive answer is remembered for
//! `ttl`, a negative one for the shorter `negativeTtl`; concurrent misses for one key share one
//! review. An unavailable review is not remembered: the next request asks again.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::Identity;
use super::review::ReviewUnavailable;

const SHARDS: usize = 16;

type Key = [u8; 32];
type Shard<V> = Mutex<LruCache<Key, Arc<Slot<V>>>>;

/// An answer a cache keeps: positive ones longer than negative ones.
pub trait Answer: Clone {
    fn positive(&self) -> bool;
}

/// A token's identity; `None`: not a valid token.
impl Answer for Option<Arc<Identity>> {
    fn positive(&self) -> bool {
        self.is_some()
    }
}

/// A SubjectAccessReview's `allowed`.
impl Answer for bool {
    fn positive(&self) -> bool {
        *self
    }
}

/// A review's answer and until when it holds.
#[derive(Clone, Debug)]
struct Verdict<V> {
    answer: V,
    expires: Instant,
}

/// One cached key: answered, or being reviewed (then later callers wait for that review).
struct Slot<V> {
    verdict: OnceCell<Verdict<V>>,
}

impl<V> Slot<V> {
    fn fresh(&self, now: Instant) -> bool {
        self.verdict.get().is_none_or(|v| v.expires > now)
    }
}

/// What a lookup found.
#[derive(Debug)]
pub struct Lookup<V> {
    pub answer: V,
    /// Answered from the cache (no review was sent by this request).
    pub cached: bool,
}

/// TokenReview answers, by token.
pub type TokenCache = ReviewCache<Option<Arc<Identity>>>;

pub struct ReviewCache<V> {
    shards: Box<[Shard<V>]>,
    ttl: Duration,
    negative_ttl: Duration,
}

impl<V: Answer> ReviewCache<V> {
    /// A cache of at most `capacity` tokens.
    pub fn new(capacity: NonZeroUsize, ttl: Duration, negative_ttl: Duration) -> Self {
        let shards = SHARDS.min(capacity.get());
        // The remainder goes to the first shards, so the capacities add up to `capacity`.
        let cap_of = |i: usize| {
            let n = capacity.get() / shards + usize::from(i < capacity.get() % shards);
            NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
        };
        ReviewCache {
            shards: (0..shards)
                .map(|i| Mutex::new(LruCache::new(cap_of(i))))
                .collect(),
            ttl,
            negative_ttl,
        }
    }

    /// The answer for `question` (a token, or a serialized review): from the cache, else from
    /// `review` (shared with concurrent lookups of the same question).
    pub async fn lookup<F, Fut>(
        &self,
        question: &[u8],
        review: F,
    ) -> Result<Lookup<V>, ReviewUnavailable>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, ReviewUnavailable>>,
    {
        self.lookup_digest(Sha256::digest(question).into(), review)
            .await
    }

    /// [`lookup`](Self::lookup) by the question's SHA-256, where the caller has it already.
    pub async fn lookup_digest<F, Fut>(
        &self,
        key: Key,
        review: F,
    ) -> Result<Lookup<V>, ReviewUnavailable>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, ReviewUnavailable>>,
    {
        let now = Instant::now();
        let slot = {
            let mut shard = self.shard(&key);
            match shard.get(&key) {
                Some(slot) if slot.fresh(now) => slot.clone(),
                _ => {
                    let slot = Arc::new(Slot {
                        verdict: OnceCell::new(),
                    });
                    shard.put(key, slot.clone());
                    slot
                }
            }
        };
        if let Some(v) = slot.verdict.get() {
            return Ok(Lookup {
                answer: v.answer.clone(),
                cached: true,
            });
        }
        let mut reviewed = false;
        let verdict = slot
            .verdict
            .get_or_try_init(|| async {
                reviewed = true;
                let answer = review().await?;
                let ttl = if answer.positive() {
                    self.ttl
                } else {
                    self.negative_ttl
                };
                Ok::<_, ReviewUnavailable>(Verdict {
                    answer,
                    expires: Instant::now() + ttl,
                })
            })
            .await?;
        Ok(Lookup {
            answer: verdict.answer.clone(),
            cached: !reviewed,
        })
    }

    /// Tokens remembered now (answered or being reviewed).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| lock(&self.shards[i]).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most tokens this cache holds.
    pub fn capacity(&self) -> usize {
        (0..self.shards.len())
            .map(|i| lock(&self.shards[i]).cap().get())
            .sum()
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, LruCache<Key, Arc<Slot<V>>>> {
        lock(&self.shards[usize::from(key[0]) % self.shards.len()])
    }
}

/// A poisoned shard only means a panic elsewhere mid-update of an LRU order; the map is
/// still consistent, so keep using it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn cache(cap: usize) -> TokenCache {
        TokenCache::new(
            NonZeroUsize::new(cap).unwrap(),
            Duration::from_secs(120),
            Duration::from_secs(30),
        )
    }

    fn alice() -> Option<Arc<Identity>> {
        Some(Arc::new(Identity::unverified("alice")))
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_remembered_for_their_ttl() {
        let c = cache(100);
        let reviews = AtomicUsize::new(0);
        let review = |ok: bool| {
            reviews.fetch_add(1, Ordering::SeqCst);
            async move { Ok(if ok { alice() } else { None }) }
        };
        let first = c.lookup(b"good", || review(true)).await.unwrap();
        assert!(!first.cached);
        assert_eq!(first.answer.unwrap().user, "alice");
        assert!(c.lookup(b"good", || review(true)).await.unwrap().cached);
        assert!(
            c.lookup(b"bad", || review(false))
                .await
                .unwrap()
                .answer
                .is_none()
        );
        assert_eq!(reviews.load(Ordering::SeqCst), 2);

        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(c.lookup(b"good", || review(true)).await.unwrap().cached);
        assert!(!c.lookup(b"bad", || review(false)).await.unwrap().cached);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert!(!c.lookup(b"good", || review(true)).await.unwrap().cached);
        assert_eq!(reviews.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_review() {
        let c = cache(100);
        let reviews = AtomicUsize::new(0);
        let review = || {
            reviews.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(alice())
            }
        };
        let all = futures_util::future::join_all((0..20).map(|_| c.lookup(b"t", review))).await;
        assert!(all.iter().all(|r| r.as_ref().unwrap().answer.is_some()));
        assert_eq!(reviews.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unavailable_reviews_are_not_remembered() {
        let c = cache(100);
        let down = || async { Err(ReviewUnavailable("down".into())) };
        assert!(c.lookup(b"t", down).await.is_err());
        let up = c.lookup(b"t", || async { Ok(alice()) }).await.unwrap();
        assert!(!up.cached);
        assert!(up.answer.is_some());
    }

    #[tokio::test]
    async fn size_stays_at_the_cap() {
        assert_eq!(cache(1000).capacity(), 1000);
        assert_eq!(cache(3).capacity(), 3);
        let c = cache(64);
        assert_eq!(c.capacity(), 64);
        for i in 0..1000 {
            let t = format!("bad-{i}");
            c.lookup(t.as_bytes(), || async { Ok(None) }).await.unwrap();
        }
        assert!(c.len() <= 64, "{}", c.len());
        assert!(c.len() >= 32, "{}", c.len());
    }
}
