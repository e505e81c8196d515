//! How much a response body read asks for. A body starts with small reads; every read that
//! fills its buffer doubles the next, so only a body the apiserver sends faster than kubeguard
//! drains it (a large LIST) grows a large buffer, and an idle or slow stream never does.
//!
//! Up to `FREE_MAX` a connection grows on its own. Past it, reads ask for up to `LARGE_MAX`,
//! but only while the process-wide allowance `LARGE_BUDGET` has room for the growth: a single
//! large LIST then moves in a few MiB per system call on each side, while a thousand concurrent
//! ones hold at most `FREE_MAX` each plus the allowance (one large read: a few MiB of RSS).
//!
//! Fewer, larger reads and writes mean fewer rounds of waking the apiserver and the client per
//! byte: the bytes copied stay the same, yet kubeguard's system time per GB fell by about a
//! third (0.48 → 0.34 s/GB, 256 KiB against 2 MiB reads, alternating runs). With reads of at most
//! 512 KiB a 49 MB LIST over HTTP/1.1 ran at 0.95x haproxy's speed for 1.25x its CPU per GB;
//! with this, 1.06x for 1.08x (`loadtests/perf.sh` S3, each against haproxy in the same run;
//! loadtests/README.md).
//!
//! A size is given back when its `ReadSize` is reset or dropped, which is when its buffer is.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads that fill their buffer double up to this without asking anyone.
pub const FREE_MAX: usize = 256 * 1024;
/// The largest read.
pub const LARGE_MAX: usize = 2 * 1024 * 1024;
/// What all reads together may ask for beyond `FREE_MAX` each: one `LARGE_MAX` read.
pub const LARGE_BUDGET: usize = LARGE_MAX - FREE_MAX;

/// Bytes of `LARGE_BUDGET` held now.
static LARGE_HELD: AtomicUsize = AtomicUsize::new(0);

/// The next read's size for one body, and what it holds of the process-wide allowance.
#[derive(Debug)]
pub struct ReadSize {
    first: usize,
    size: usize,
    /// Bytes of `LARGE_HELD` this size holds (`size - FREE_MAX` when past it).
    held: usize,
    budget: &'static AtomicUsize,
}

impl ReadSize {
    /// A body whose first read asks for `first` bytes (at most `FREE_MAX`).
    pub const fn new(first: usize) -> Self {
        Self::with_budget(first, &LARGE_HELD)
    }

    const fn with_budget(first: usize, budget: &'static AtomicUsize) -> Self {
        let first = if first < FREE_MAX { first } else { FREE_MAX };
        ReadSize {
            first,
            size: first,
            held: 0,
            budget,
        }
    }

    /// What the next read asks for.
    pub fn get(&self) -> usize {
        self.size
    }

    /// The last read filled its buffer: the next asks for twice as much, within the limits.
    pub fn filled(&mut self) {
        let want = (self.size * 2).min(LARGE_MAX);
        if want <= FREE_MAX {
            self.size = want;
            return;
        }
        let more = want - FREE_MAX - self.held;
        if more == 0 {
            return;
        }
        let granted = self
            .budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let room = LARGE_BUDGET.saturating_sub(held);
                (room > 0).then(|| held + more.min(room))
            })
            .map_or(0, |before| more.min(LARGE_BUDGET - before));
        self.held += granted;
        self.size = self.size.max(FREE_MAX + self.held);
    }

    /// Back to the first size (the body ended and its buffer was let go), giving back what it held.
    pub fn reset(&mut self) {
        if self.held > 0 {
            self.budget.fetch_sub(self.held, Ordering::AcqRel);
            self.held = 0;
        }
        self.size = self.first;
    }
}

impl Drop for ReadSize {
    fn drop(&mut self) {
        self.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grow(r: &mut ReadSize, times: usize) {
        for _ in 0..times {
            r.filled();
        }
    }

    #[test]
    fn doubles_freely_up_to_the_free_max() {
        static HELD: AtomicUsize = AtomicUsize::new(0);
        let mut r = ReadSize::with_budget(64 * 1024, &HELD);
        assert_eq!(r.get(), 64 * 1024);
        r.filled();
        assert_eq!(r.get(), 128 * 1024);
        r.filled();
        assert_eq!(r.get(), FREE_MAX);
        assert_eq!(HELD.load(Ordering::Acquire), 0);
        r.filled();
        assert_eq!(r.get(), 2 * FREE_MAX);
        assert_eq!(HELD.load(Ordering::Acquire), FREE_MAX);
        grow(&mut r, 10);
        assert_eq!(r.get(), LARGE_MAX);
        assert_eq!(HELD.load(Ordering::Acquire), LARGE_BUDGET);
        r.reset();
        assert_eq!(r.get(), 64 * 1024);
        assert_eq!(HELD.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_allowance_bounds_all_reads_together_and_comes_back() {
        static HELD: AtomicUsize = AtomicUsize::new(0);
        let mut reads: Vec<ReadSize> = (0..8)
            .map(|_| ReadSize::with_budget(16 * 1024, &HELD))
            .collect();
        for r in &mut reads {
            grow(r, 20);
        }
        let total: usize = reads.iter().map(ReadSize::get).sum();
        // The first took the whole allowance; the others stopped at the free max.
        assert_eq!(reads[0].get(), LARGE_MAX);
        assert!(reads[1..].iter().all(|r| r.get() == FREE_MAX));
        assert_eq!(total, 8 * FREE_MAX + LARGE_BUDGET);
        assert_eq!(HELD.load(Ordering::Acquire), LARGE_BUDGET);
        // The allowance passes on when the large one ends.
        drop(reads.remove(0));
        assert_eq!(HELD.load(Ordering::Acquire), 0);
        grow(&mut reads[0], 20);
        assert_eq!(reads[0].get(), LARGE_MAX);
        drop(reads);
        assert_eq!(HELD.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_partial_grant_is_used_and_topped_up_later() {
        static HELD: AtomicUsize = AtomicUsize::new(0);
        // Another body holds all but 100 KiB of the allowance.
        HELD.store(LARGE_BUDGET - 100 * 1024, Ordering::Release);
        let mut r = ReadSize::with_budget(FREE_MAX, &HELD);
        r.filled();
        assert_eq!(r.get(), FREE_MAX + 100 * 1024);
        assert_eq!(HELD.load(Ordering::Acquire), LARGE_BUDGET);
        // The other ends: the next filled read takes what it wants.
        HELD.fetch_sub(LARGE_BUDGET - 100 * 1024, Ordering::AcqRel);
        r.filled();
        assert_eq!(r.get(), 2 * (FREE_MAX + 100 * 1024));
        r.reset();
        assert_eq!(HELD.load(Ordering::Acquire), 0);
    }
}
