//! Cost per client per time window, in bounded memory: at most [`MAX_WINDOWS`] windows (when a
//! log spans more, neighbours are merged and the width doubles), and once a window is behind
//! the newest ones only its top [`KEPT_CLIENTS`] clients keep their names, the rest add to
//! `other`. The open windows hold at most [`OPEN_CLIENTS`] names each.

use std::collections::HashMap;
use std::time::Duration;

pub const MAX_WINDOWS: usize = 480;
pub const KEPT_CLIENTS: usize = 12;
const OPEN_CLIENTS: usize = 4096;
/// Windows this far behind the newest are trimmed (events arrive a little out of order).
const OPEN_BEHIND: usize = 2;

#[derive(Clone, Debug, Default)]
pub struct Window {
    pub cost: f64,
    pub seconds: f64,
    pub requests: u64,
    pub clients: HashMap<Box<str>, f64>,
    pub other: f64,
    trimmed: bool,
}

impl Window {
    fn trim(&mut self) {
        if self.clients.len() > KEPT_CLIENTS {
            let mut all: Vec<(Box<str>, f64)> = self.clients.drain().collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (_, c) in all.drain(KEPT_CLIENTS..) {
                self.other += c;
            }
            self.clients = all.into_iter().collect();
        }
        self.trimmed = true;
    }

    fn merge(&mut self, o: Window) {
        self.cost += o.cost;
        self.seconds += o.seconds;
        self.requests += o.requests;
        self.other += o.other;
        for (k, v) in o.clients {
            *self.clients.entry(k).or_default() += v;
        }
        if self.trimmed || o.trimmed {
            self.trim();
        }
    }
}

pub struct Windows {
    pub width: Duration,
    /// Start of window 0, µs since the epoch.
    pub start_us: Option<i64>,
    pub slots: Vec<Window>,
}

impl Windows {
    pub fn new(width: Duration) -> Self {
        Windows {
            width: width.max(Duration::from_secs(1)),
            start_us: None,
            slots: Vec::new(),
        }
    }

    fn width_us(&self) -> i64 {
        i64::try_from(self.width.as_micros()).unwrap_or(i64::MAX)
    }

    /// Adds a request of `user` received at `t_us`.
    pub fn add(&mut self, t_us: i64, user: &str, cost: f64, seconds: f64) {
        let start = *self
            .start_us
            .get_or_insert(t_us - t_us.rem_euclid(self.width_us()));
        let mut idx = usize::try_from((t_us - start).max(0) / self.width_us()).unwrap_or(0);
        while idx >= MAX_WINDOWS {
            self.coarsen();
            idx = usize::try_from((t_us - start).max(0) / self.width_us()).unwrap_or(0);
        }
        if idx >= self.slots.len() {
            self.slots.resize_with(idx + 1, Window::default);
            let open_from = idx.saturating_sub(OPEN_BEHIND);
            for w in &mut self.slots[..open_from] {
                if !w.trimmed {
                    w.trim();
                }
            }
        }
        let w = &mut self.slots[idx];
        w.cost += cost;
        w.seconds += seconds;
        w.requests += 1;
        if let Some(c) = w.clients.get_mut(user) {
            *c += cost;
        } else if w.clients.len() < OPEN_CLIENTS && !w.trimmed {
            w.clients.insert(user.into(), cost);
        } else {
            w.other += cost;
        }
    }

    /// Halves the number of windows: neighbours merged, width doubled.
    fn coarsen(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let mut it = old.into_iter();
        while let Some(mut a) = it.next() {
            if let Some(b) = it.next() {
                a.merge(b);
            }
            self.slots.push(a);
        }
        self.width *= 2;
    }

    /// Trims every window (at the end of the log).
    pub fn finish(&mut self) {
        for w in &mut self.slots {
            if !w.trimmed {
                w.trim();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_logs_coarsen_and_old_windows_keep_their_top_clients() {
        let mut w = Windows::new(Duration::from_secs(60));
        let minute = 60_000_000i64;
        for i in 0..(MAX_WINDOWS as i64 * 3) {
            w.add(i * minute, "big", 100.0, 1.0);
            for c in 0..20 {
                w.add(i * minute + 1, &format!("small-{c}"), 1.0, 0.0);
            }
        }
        w.finish();
        assert!(w.slots.len() <= MAX_WINDOWS);
        assert_eq!(w.width, Duration::from_secs(240));
        let total: f64 = w.slots.iter().map(|s| s.cost).sum();
        assert_eq!(total, (MAX_WINDOWS * 3 * 120) as f64);
        for s in &w.slots {
            assert!(s.clients.len() <= KEPT_CLIENTS);
            let named: f64 = s.clients.values().sum();
            assert_eq!(named + s.other, s.cost);
            assert!(s.clients.contains_key("big"));
        }
    }
}
