//! A bounded map shared by every request without a global lock: N shards, each an `lru` cache
//! behind its own mutex, held only for a lookup or an update.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::sync::Mutex;

const SHARDS: usize = 16;

/// The hasher of the maps keyed by what clients choose (user names, resource labels): foldhash,
/// a fraction of SipHash's cost, randomly seeded.
pub type RandomState = foldhash::fast::SeedableRandomState;

/// A [`RandomState`] seeded from the OS's randomness (through `rand`): one shared seed per
/// process and one of its own per map. foldhash's own default seeds from address-space layout
/// and the clock only.
pub fn random_state() -> RandomState {
    static SHARED: std::sync::LazyLock<foldhash::SharedSeed> =
        std::sync::LazyLock::new(|| foldhash::SharedSeed::from_u64(rand::random()));
    RandomState::with_seed(rand::random(), &SHARED)
}

pub struct ShardedLru<K, V> {
    shards: Vec<Mutex<lru::LruCache<K, V>>>,
    hasher: RandomState,
}

impl<K: Hash + Eq, V: Clone> ShardedLru<K, V> {
    /// A map holding at most about `capacity` entries (rounded up to a multiple of the shards).
    pub fn new(capacity: usize) -> Self {
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        ShardedLru {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(lru::LruCache::new(per_shard)))
                .collect(),
            hasher: random_state(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<lru::LruCache<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[i]
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.get(key).cloned()
    }

    /// Sets `key` to `f(old value)`.
    pub fn update(&self, key: K, f: impl FnOnce(Option<&V>) -> V) {
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        let new = f(shard.peek(&key));
        shard.put(key, new);
    }

    /// Reads `key` through `f` without cloning the value.
    pub fn with<R>(&self, key: &K, f: impl FnOnce(Option<&V>) -> R) -> R {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        f(shard.get(key))
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_has_its_own_seed() {
        let (a, b) = (random_state(), random_state());
        let key = "system:serviceaccount:default:builder";
        assert_eq!(a.hash_one(key), a.hash_one(key));
        assert_ne!(a.hash_one(key), b.hash_one(key));
    }

    #[test]
    fn stays_bounded() {
        let m = ShardedLru::new(64);
        for i in 0..10_000u32 {
            m.update(i, |_| i);
        }
        assert!(m.len() <= 64, "{}", m.len());
        m.update(7, |old| old.copied().unwrap_or(0) + 1);
        assert_eq!(m.get(&7), Some(1));
    }
}
