//! Rotating strategies: plain and smooth-weighted round-robin.

use super::{SelectContext, Strategy};
use crate::domain::Account;
use std::collections::HashMap;
use std::sync::Arc;

/// One request each, in turn.
#[derive(Default)]
pub struct RoundRobinStrategy {
    next: usize,
}

impl Strategy for RoundRobinStrategy {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn order(&mut self, top: &mut [Arc<Account>], _: &SelectContext<'_>) {
        let n = top.len();
        top.rotate_left(self.next % n);
        self.next = self.next.wrapping_add(1);
    }
}

/// nginx's smooth weighted round-robin: every pick adds each account's weight (its
/// tier) to its running score, takes the highest, and subtracts the total from it.
/// A 20:1 pair then interleaves instead of running twenty in a row.
#[derive(Default)]
pub struct WeightedRoundRobinStrategy {
    current: HashMap<String, i64>,
}

impl Strategy for WeightedRoundRobinStrategy {
    fn name(&self) -> &'static str {
        "weighted-round-robin"
    }

    fn order(&mut self, top: &mut [Arc<Account>], _: &SelectContext<'_>) {
        let total: i64 = top.iter().map(|a| i64::from(a.tier.max(1))).sum();
        for a in top.iter() {
            *self.current.entry(a.id.clone()).or_insert(0) += i64::from(a.tier.max(1));
        }
        let score =
            |current: &HashMap<String, i64>, a: &Account| current.get(&a.id).copied().unwrap_or(0);
        // Highest score first; the sort is stable, so ties keep the oldest first.
        top.sort_by_cached_key(|a| std::cmp::Reverse(score(&self.current, a)));
        if let Some(chosen) = self.current.get_mut(&top[0].id) {
            *chosen -= total;
        }
        if self.current.len() > top.len() * 4 + 64 {
            let live: std::collections::HashSet<&str> = top.iter().map(|a| a.id.as_str()).collect();
            self.current.retain(|id, _| live.contains(id.as_str()));
        }
    }
}
