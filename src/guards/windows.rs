//! Per-client windows of the LIST rewrite: when a client last got 410 / Expired /
//! ResourceVersionTooLarge for a resource, and when it last wrote to a resource type
//! (k8s-facts §1: both mean "do not rewrite this client's LISTs of it for a while").
//!
//! Keyed by the identity's user; bounded (least recently seen clients are forgotten) and sharded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::observe::lru::ShardedLru;

/// Resources per client remembered at most (a client touching more forgets its oldest marks).
const MAX_RESOURCES_PER_CLIENT: usize = 64;

#[derive(Clone, Debug, Default)]
struct ClientMarks {
    errors: HashMap<String, Instant>,
    writes: HashMap<String, Instant>,
}

pub struct ClientWindows {
    clients: ShardedLru<String, ClientMarks>,
}

fn mark(map: &mut HashMap<String, Instant>, resource: &str, now: Instant) {
    if map.len() >= MAX_RESOURCES_PER_CLIENT
        && !map.contains_key(resource)
        && let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
    map.insert(resource.to_string(), now);
}

fn within(map: &HashMap<String, Instant>, resource: &str, window: Duration, now: Instant) -> bool {
    map.get(resource)
        .is_some_and(|t| now.saturating_duration_since(*t) < window)
}

impl ClientWindows {
    pub fn new(max_clients: usize) -> Self {
        ClientWindows {
            clients: ShardedLru::new(max_clients),
        }
    }

    /// The client got 410 / Expired / ResourceVersionTooLarge for `resource`.
    pub fn mark_error(&self, user: &str, resource: &str, now: Instant) {
        self.clients.update(user.to_string(), |old| {
            let mut m = old.cloned().unwrap_or_default();
            mark(&mut m.errors, resource, now);
            m
        });
    }

    /// The client wrote to `resource`.
    pub fn mark_write(&self, user: &str, resource: &str, now: Instant) {
        self.clients.update(user.to_string(), |old| {
            let mut m = old.cloned().unwrap_or_default();
            mark(&mut m.writes, resource, now);
            m
        });
    }

    pub fn recent_error(&self, user: &str, resource: &str, window: Duration, now: Instant) -> bool {
        self.clients.with(&user.to_string(), |m| {
            m.is_some_and(|m| within(&m.errors, resource, window, now))
        })
    }

    pub fn recent_write(&self, user: &str, resource: &str, window: Duration, now: Instant) -> bool {
        self.clients.with(&user.to_string(), |m| {
            m.is_some_and(|m| within(&m.writes, resource, window, now))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_expire_and_are_per_client_and_resource() {
        let w = ClientWindows::new(100);
        let t0 = Instant::now();
        let win = Duration::from_secs(10);
        w.mark_error("alice", "pods", t0);
        assert!(w.recent_error("alice", "pods", win, t0 + Duration::from_secs(9)));
        assert!(!w.recent_error("alice", "pods", win, t0 + Duration::from_secs(11)));
        assert!(!w.recent_error("bob", "pods", win, t0));
        assert!(!w.recent_error("alice", "nodes", win, t0));
        assert!(!w.recent_write("alice", "pods", win, t0));
        w.mark_write("alice", "pods", t0);
        assert!(w.recent_write("alice", "pods", win, t0));
        assert!(w.recent_error("alice", "pods", win, t0), "marks accumulate");
    }

    #[test]
    fn per_client_marks_are_bounded() {
        let w = ClientWindows::new(4);
        let t0 = Instant::now();
        for i in 0..200 {
            w.mark_write("alice", &format!("r{i}"), t0 + Duration::from_millis(i));
        }
        let win = Duration::from_secs(60);
        let now = t0 + Duration::from_secs(1);
        assert!(w.recent_write("alice", "r199", win, now));
        assert!(!w.recent_write("alice", "r0", win, now));
    }
}
