//! Recent-request counting, and the two strategies that order by it.

use super::{SelectContext, Strategy};
use crate::domain::Account;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Buckets a window is cut into: counts are exact to one bucket's width.
const BUCKETS: i64 = 60;

/// Requests each account served within a sliding window (the session duration),
/// in a few buckets per account so memory does not grow with traffic.
#[derive(Debug)]
pub struct LoadTracker {
    window_ms: i64,
    bucket_ms: i64,
    accounts: HashMap<String, AccountLoad>,
}

#[derive(Debug, Default)]
struct AccountLoad {
    buckets: VecDeque<(i64, u64)>,
    last_used: Option<i64>,
}

impl LoadTracker {
    pub fn new(window_ms: i64) -> Self {
        let window_ms = window_ms.max(1);
        Self {
            window_ms,
            bucket_ms: (window_ms / BUCKETS).max(1),
            accounts: HashMap::new(),
        }
    }

    pub fn record(&mut self, account_id: &str, at_ms: i64) {
        let bucket = at_ms - at_ms.rem_euclid(self.bucket_ms);
        let load = self.accounts.entry(account_id.to_string()).or_default();
        match load.buckets.back_mut() {
            Some((start, n)) if *start == bucket => *n += 1,
            _ => load.buckets.push_back((bucket, 1)),
        }
        let oldest = at_ms - self.window_ms;
        while load
            .buckets
            .front()
            .is_some_and(|(s, _)| *s + self.bucket_ms <= oldest)
        {
            load.buckets.pop_front();
        }
        load.last_used = Some(load.last_used.map_or(at_ms, |l| l.max(at_ms)));
    }

    /// Requests within the window ending at `now_ms`.
    pub fn recent(&self, account_id: &str, now_ms: i64) -> u64 {
        let oldest = now_ms - self.window_ms;
        self.accounts.get(account_id).map_or(0, |l| {
            l.buckets
                .iter()
                .filter(|(s, _)| *s + self.bucket_ms > oldest)
                .map(|(_, n)| n)
                .sum()
        })
    }

    pub fn last_used(&self, account_id: &str) -> Option<i64> {
        self.accounts.get(account_id).and_then(|l| l.last_used)
    }

    /// Forgets accounts that left the pool.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.accounts.retain(|id, _| keep(id));
    }

    /// Seeds an account's last use from the store (before any request this run).
    pub fn seed_last_used(&mut self, account_id: &str, at_ms: Option<i64>) {
        if let Some(at) = at_ms {
            let load = self.accounts.entry(account_id.to_string()).or_default();
            if load.last_used.is_none() {
                load.last_used = Some(at);
            }
        }
    }
}

/// Fewest recent requests first, ties by least recently used.
pub struct LeastRequestsStrategy;

impl Strategy for LeastRequestsStrategy {
    fn name(&self) -> &'static str {
        "least-requests"
    }

    fn order(&mut self, top: &mut [Arc<Account>], ctx: &SelectContext<'_>) {
        top.sort_by_cached_key(|a| {
            (
                ctx.load.recent(&a.id, ctx.now_ms),
                ctx.load.last_used(&a.id).unwrap_or(i64::MIN),
                a.created_at,
            )
        });
    }
}

/// Fewest recent requests per tier first.
pub struct WeightedStrategy;

impl Strategy for WeightedStrategy {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn order(&mut self, top: &mut [Arc<Account>], ctx: &SelectContext<'_>) {
        ctx.by_load(top);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_slide_out_of_the_window() {
        let mut t = LoadTracker::new(60_000);
        for i in 0..10 {
            t.record("a", i * 1000);
        }
        assert_eq!(t.recent("a", 10_000), 10);
        assert_eq!(t.recent("a", 65_000), 5);
        assert_eq!(t.recent("a", 200_000), 0);
        assert_eq!(t.recent("b", 0), 0);
        assert_eq!(t.last_used("a"), Some(9000));
    }
}
