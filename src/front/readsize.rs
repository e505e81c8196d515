//! How much a response body read asks for. A body starts with small reads; every read that
//! fills its buffer doubles the next, so only a body the apiserver sends faster than kubeguard
//! drains it (a large LIST) grows a large buffer, and an idle or slow stream never does.
//!
//! Up to `FREE_MAX` a body grows on its own. Past it, a body moves to `LARGE_MAX` reads in one
//! step, and only while fewer than `LARGE_READS` bodies in the whole process have them: a single
//! large LIST then moves in MiBs per system call on each side, while a thousand concurrent ones
//! hold at most `FREE_MAX` each, plus the large reads. One step, not doubling through the sizes
//! between: each size on the way would be one more block for the allocator to keep.
//!
//! Fewer, larger reads and writes mean fewer rounds of waking the apiserver and the client per
//! byte: the bytes copied stay the same, yet kubeguard's system time per GB fell by about a
//! third (0.48 → 0.34 s/GB, 256 KiB against 2 MiB reads, alternating runs). With reads of at most
//! 512 KiB a 49 MB LIST over HTTP/1.1 ran at 0.79–0.95x haproxy's speed for 1.25–1.27x its CPU
//! per GB; with large reads, 1.08–1.18x for 1.02–1.11x, 1.88–2.01 GB/s (`loadtests/perf.sh` S3,
//! two runs each, against haproxy in the same run; loadtests/README.md).
//!
//! A large read is given back when its `ReadSize` is reset or dropped, which is when its buffer
//! is let go (the body ended, or a stream caught up and waits).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads that fill their buffer double up to this without asking anyone.
pub const FREE_MAX: usize = 256 * 1024;
/// The size of a large read.
pub const LARGE_MAX: usize = 2 * 1024 * 1024;
/// How many bodies may have large reads at once.
pub const LARGE_READS: usize = 1;

/// The process's large reads.
static LARGE: Large = Large::new();

/// Who has a large read, and the large buffers between bodies.
#[derive(Debug)]
struct Large {
    /// Bodies with a large read now.
    now: AtomicUsize,
    /// Large buffers let go by bodies read into a `Vec` (`prepare`, `release`), kept for the
    /// next large read: taken once and reused, a large buffer never goes back to the allocator,
    /// which would keep each freed one a while (mimalloc purges after a second) and take a new
    /// one for the next large LIST (S3's peak RSS: idle + 3.8–4.0 MB so, 4.9–6.8 MB without).
    spare: Mutex<Vec<Vec<u8>>>,
    /// Large reads given out so far.
    granted: AtomicUsize,
    /// Large buffers taken from the allocator so far (`prepare` without a spare one).
    allocated: AtomicUsize,
}

impl Large {
    const fn new() -> Self {
        Large {
            now: AtomicUsize::new(0),
            spare: Mutex::new(Vec::new()),
            granted: AtomicUsize::new(0),
            allocated: AtomicUsize::new(0),
        }
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic elsewhere cannot leave the list half-changed.
        self.spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The process's large reads: held now, given out and buffers taken since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargeReads {
    /// Bodies that have a large read now.
    pub now: usize,
    /// Large reads given out.
    pub granted: usize,
    /// Large buffers taken from the allocator for them. With buffers handed back and reused
    /// this stays at `LARGE_READS` however many large LISTs pass (tests/large_list_reads.rs).
    pub allocated: usize,
}

/// The process's large reads now.
pub fn large_reads() -> LargeReads {
    LargeReads {
        now: LARGE.now.load(Ordering::Acquire),
        granted: LARGE.granted.load(Ordering::Relaxed),
        allocated: LARGE.allocated.load(Ordering::Relaxed),
    }
}

/// The next read's size for one body.
#[derive(Debug)]
pub struct ReadSize {
    first: usize,
    size: usize,
    /// This body holds one of the `LARGE_READS`.
    large: bool,
    pool: &'static Large,
}

impl ReadSize {
    /// A body whose first read asks for `first` bytes (at most `FREE_MAX`).
    pub const fn new(first: usize) -> Self {
        Self::within(first, &LARGE)
    }

    const fn within(first: usize, pool: &'static Large) -> Self {
        let first = if first < FREE_MAX { first } else { FREE_MAX };
        ReadSize {
            first,
            size: first,
            large: false,
            pool,
        }
    }

    /// What the next read asks for.
    pub fn get(&self) -> usize {
        self.size
    }

    /// The last read filled its buffer: the next asks for twice as much, or for a large read.
    pub fn filled(&mut self) {
        if self.size < FREE_MAX {
            self.size = (self.size * 2).min(FREE_MAX);
            return;
        }
        if self.large {
            return;
        }
        let took = self
            .pool
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < LARGE_READS).then_some(n + 1)
            })
            .is_ok();
        if took {
            self.pool.granted.fetch_add(1, Ordering::Relaxed);
            self.large = true;
            self.size = LARGE_MAX;
        }
    }

    /// Makes room in `buf` for the next read (at least half of `get()` free), with a spare
    /// large buffer when this body has a large read.
    pub fn prepare(&self, buf: &mut Vec<u8>) {
        if buf.capacity() - buf.len() >= self.size / 2 {
            return;
        }
        if self.large
            && let Some(mut large) = self.pool.spare().pop()
        {
            large.extend_from_slice(buf);
            *buf = large;
            return;
        }
        if self.large {
            self.pool.allocated.fetch_add(1, Ordering::Relaxed);
        }
        if buf.is_empty() {
            // The old block goes before the larger one is taken (a reallocation would hold
            // both, and copy the old one whole).
            *buf = Vec::new();
        }
        buf.reserve_exact(self.size);
    }

    /// The body ended: `buf` is let go (a large one kept for the next large read) and the
    /// size reset.
    pub fn release(&mut self, buf: &mut Vec<u8>) {
        let mut buf = std::mem::take(buf);
        if buf.capacity() >= LARGE_MAX {
            let mut spare = self.pool.spare();
            if spare.len() < LARGE_READS {
                buf.clear();
                spare.push(buf);
            }
        }
        self.reset();
    }

    /// Back to the first size (the body ended, or its buffer was let go while it waits),
    /// giving back a large read.
    pub fn reset(&mut self) {
        if self.large {
            self.pool.now.fetch_sub(1, Ordering::AcqRel);
            self.large = false;
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
    fn doubles_freely_up_to_the_free_max_then_takes_a_large_read() {
        static L: Large = Large::new();
        let mut r = ReadSize::within(64 * 1024, &L);
        assert_eq!(r.get(), 64 * 1024);
        r.filled();
        assert_eq!(r.get(), 128 * 1024);
        r.filled();
        assert_eq!(r.get(), FREE_MAX);
        assert_eq!(L.now.load(Ordering::Acquire), 0);
        r.filled();
        assert_eq!(r.get(), LARGE_MAX);
        assert_eq!(L.now.load(Ordering::Acquire), 1);
        grow(&mut r, 10);
        assert_eq!(r.get(), LARGE_MAX);
        assert_eq!(L.now.load(Ordering::Acquire), 1, "taken once");
        r.reset();
        assert_eq!(r.get(), 64 * 1024);
        assert_eq!(L.now.load(Ordering::Acquire), 0);
        r.reset();
        assert_eq!(L.now.load(Ordering::Acquire), 0, "given back once");
    }

    #[test]
    fn large_reads_are_bounded_in_the_whole_process_and_pass_on() {
        static L: Large = Large::new();
        let mut reads: Vec<ReadSize> = (0..8).map(|_| ReadSize::within(16 * 1024, &L)).collect();
        for r in &mut reads {
            grow(r, 20);
        }
        let large = reads.iter().filter(|r| r.get() == LARGE_MAX).count();
        assert_eq!(large, LARGE_READS);
        assert!(reads[LARGE_READS..].iter().all(|r| r.get() == FREE_MAX));
        assert_eq!(L.now.load(Ordering::Acquire), LARGE_READS);
        // A large read passes on once a body that has one ends.
        drop(reads.remove(0));
        assert_eq!(L.now.load(Ordering::Acquire), LARGE_READS - 1);
        reads[LARGE_READS - 1].filled();
        assert_eq!(reads[LARGE_READS - 1].get(), LARGE_MAX);
        drop(reads);
        assert_eq!(L.now.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_large_buffer_is_taken_once_and_reused() {
        static L: Large = Large::new();
        let mut r = ReadSize::within(FREE_MAX, &L);
        let mut buf = Vec::with_capacity(FREE_MAX);
        buf.extend_from_slice(b"partial chunk line");
        // Room for half a read: nothing changes.
        r.prepare(&mut buf);
        assert_eq!(buf.capacity(), FREE_MAX);
        r.filled();
        assert_eq!(r.get(), LARGE_MAX);
        // A large read: a large buffer, with the bytes not yet used.
        r.prepare(&mut buf);
        assert!(buf.capacity() >= LARGE_MAX);
        assert_eq!(buf, b"partial chunk line");
        let first = buf.as_ptr();
        r.release(&mut buf);
        assert_eq!(buf.capacity(), 0, "the body holds nothing once ended");
        assert_eq!(r.get(), FREE_MAX);
        assert_eq!(L.now.load(Ordering::Acquire), 0);
        assert_eq!(L.spare().len(), 1);
        // The next large read, of another body, takes the same buffer, empty.
        let mut other = ReadSize::within(FREE_MAX, &L);
        other.filled();
        let mut buf2 = Vec::new();
        other.prepare(&mut buf2);
        assert_eq!(buf2.as_ptr(), first);
        assert!(buf2.is_empty());
        assert!(L.spare().is_empty());
        // A small buffer is not kept; nor more large ones than there are large reads.
        let mut small = vec![0u8; 1024];
        ReadSize::within(FREE_MAX, &L).release(&mut small);
        assert!(L.spare().is_empty());
        L.spare().push(Vec::with_capacity(LARGE_MAX));
        other.release(&mut buf2);
        assert_eq!(L.spare().len(), LARGE_READS);
    }
}
