//! The load-balancing strategies. Each orders the available accounts of the best
//! priority class for one request and keeps its own bookkeeping; the selector does the
//! filtering, the priority classes and the fallbacks around them.

mod affinity;
mod load;
mod rotation;
mod session;

pub use affinity::SessionAffinityStrategy;
pub use load::{LeastRequestsStrategy, LoadTracker, WeightedStrategy};
pub use rotation::{RoundRobinStrategy, WeightedRoundRobinStrategy};
pub use session::SessionStrategy;

use crate::domain::Account;
use std::sync::Arc;

/// What a strategy may look at when it orders accounts.
pub struct SelectContext<'a> {
    pub now_ms: i64,
    /// Recent requests per account.
    pub load: &'a LoadTracker,
    /// The client's session key (`x-claude-code-session-id`, else `metadata.user_id`).
    pub session_key: Option<&'a str>,
}

impl SelectContext<'_> {
    /// Recent requests per tier slot: the load measure the strategies share.
    pub fn tier_load(&self, a: &Account) -> f64 {
        self.load.recent(&a.id, self.now_ms) as f64 / f64::from(a.tier.max(1))
    }

    /// The order key of [`SelectContext::by_load`]. Loads are never negative, so
    /// their bit patterns sort like the numbers.
    pub fn load_key(&self, a: &Account) -> (u64, i64, i64) {
        (
            self.tier_load(a).to_bits(),
            self.load.last_used(&a.id).unwrap_or(i64::MIN),
            a.created_at,
        )
    }

    /// Least loaded first, then least recently used, then oldest. Each key is
    /// computed once per account, not once per comparison.
    pub fn by_load(&self, accounts: &mut [Arc<Account>]) {
        accounts.sort_by_cached_key(|a| self.load_key(a));
    }
}

/// A load-balancing strategy.
pub trait Strategy: Send + 'static {
    fn name(&self) -> &'static str;

    /// Puts `top` (the available accounts of the best priority class, never empty,
    /// oldest first) in the order the proxy should try them.
    fn order(&mut self, top: &mut [Arc<Account>], ctx: &SelectContext<'_>);

    /// An account served a request. Returns `Some(at)` when that starts a new
    /// global session on it (stored, so it survives a restart).
    fn served(
        &mut self,
        _account: &Account,
        _pool: &[Arc<Account>],
        _ctx: &SelectContext<'_>,
    ) -> Option<i64> {
        None
    }

    /// The registry published a new pool (it may carry a session another
    /// instance started).
    fn pool_changed(&mut self, _pool: &[Arc<Account>], _now_ms: i64) {}
}

/// Every strategy this build offers, with what it is for.
pub const STRATEGIES: [(&str, &str); 6] = [
    (
        "session",
        "Stick to one account for the session duration, then move to the least-loaded one. Looks like one person using one subscription; keeps its prompt cache warm. The default.",
    ),
    (
        "session-affinity",
        "Stick per client session (x-claude-code-session-id, else metadata.user_id): parallel Claude Code sessions each keep their own account and prompt cache.",
    ),
    (
        "round-robin",
        "Rotate evenly over the available accounts, one request each.",
    ),
    (
        "least-requests",
        "Send each request to the account with the fewest requests in the last session duration; a new account takes traffic until it catches up.",
    ),
    (
        "weighted",
        "Fewest requests per tier first: a Max 20x account (tier 20) takes about twenty times the traffic of a Pro account (tier 1).",
    ),
    (
        "weighted-round-robin",
        "Round-robin with one slot per tier, interleaved smoothly (nginx's smooth weighted round-robin).",
    ),
];

/// The names of [`STRATEGIES`].
pub fn names() -> Vec<&'static str> {
    STRATEGIES.iter().map(|(n, _)| *n).collect()
}

/// Settings every strategy may need.
#[derive(Clone, Copy, Debug)]
pub struct StrategySettings {
    pub session_duration_ms: i64,
    /// Most client sessions `session-affinity` remembers.
    pub affinity_capacity: usize,
}

/// Builds a strategy by name; `None` for an unknown name. `pool` lets the session
/// strategy resume a stored session.
pub fn build(
    name: &str,
    settings: StrategySettings,
    pool: &[Arc<Account>],
    now_ms: i64,
) -> Option<Box<dyn Strategy>> {
    let strategy: Box<dyn Strategy> = match name {
        "session" => Box::new(SessionStrategy::new(
            settings.session_duration_ms,
            pool,
            now_ms,
        )),
        "session-affinity" => Box::new(SessionAffinityStrategy::new(
            settings.session_duration_ms,
            settings.affinity_capacity,
        )),
        "round-robin" => Box::new(RoundRobinStrategy::default()),
        "least-requests" => Box::new(LeastRequestsStrategy),
        "weighted" => Box::new(WeightedStrategy),
        "weighted-round-robin" => Box::new(WeightedRoundRobinStrategy::default()),
        _ => return None,
    };
    Some(strategy)
}
