//! The StrategySelector actor: holds the active strategy and answers, for one request,
//! the ordered list of accounts to try.
//!
//! The common rules live here (only available accounts, lower `priority` first); a
//! [`Strategy`] only orders the available accounts and keeps its own bookkeeping.

use crate::clock::now_ms;
use crate::domain::Account;
use crate::registry::{AccountRegistry, SessionStarted};
use actix::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What a strategy may look at when it orders accounts.
pub struct SelectContext<'a> {
    pub now_ms: i64,
    /// Requests each account served since the daemon started (plus its stored count).
    pub served: &'a HashMap<String, i64>,
    /// The client's session key (`x-claude-code-session-id` or `metadata.user_id`).
    pub session_key: Option<&'a str>,
}

impl SelectContext<'_> {
    /// Requests per tier slot: the load measure shared by the strategies.
    pub fn tier_load(&self, a: &Account) -> f64 {
        let served = self.served.get(&a.id).copied().unwrap_or(a.request_count);
        served as f64 / f64::from(a.tier.max(1))
    }
}

/// A load-balancing strategy. Implementations order the available accounts for one
/// request; the selector filters and applies priority around them.
pub trait Strategy: Send + 'static {
    fn name(&self) -> &'static str;

    /// Puts `available` (never empty) in the order the proxy should try them.
    fn order(&mut self, available: &mut Vec<Arc<Account>>, ctx: &SelectContext<'_>);

    /// An account served a request. Returns `Some(at)` when that starts a new stored
    /// session on it.
    fn served(
        &mut self,
        _account: &Account,
        _pool: &[Arc<Account>],
        _ctx: &SelectContext<'_>,
    ) -> Option<i64> {
        None
    }
}

/// The default strategy: all traffic sticks to one account for the session duration,
/// which keeps prompt caches warm and looks like one person's use of one subscription.
pub struct SessionStrategy {
    duration_ms: i64,
    active: Option<(String, i64)>,
}

impl SessionStrategy {
    /// Resumes the stored session, if one is still running.
    pub fn new(duration_ms: i64, pool: &[Arc<Account>], now: i64) -> Self {
        let active = pool
            .iter()
            .filter_map(|a| a.session_start.map(|s| (a.id.clone(), s)))
            .filter(|(_, s)| now - s < duration_ms)
            .max_by_key(|(_, s)| *s);
        Self {
            duration_ms,
            active,
        }
    }

    fn live_session<'p>(&self, pool: &'p [Arc<Account>], now: i64) -> Option<&'p Arc<Account>> {
        let (id, start) = self.active.as_ref()?;
        if now - start >= self.duration_ms {
            return None;
        }
        pool.iter().find(|a| &a.id == id && a.is_available(now))
    }
}

impl Strategy for SessionStrategy {
    fn name(&self) -> &'static str {
        "session"
    }

    fn order(&mut self, available: &mut Vec<Arc<Account>>, ctx: &SelectContext<'_>) {
        available.sort_by(|a, b| {
            ctx.tier_load(a)
                .total_cmp(&ctx.tier_load(b))
                .then(a.created_at.cmp(&b.created_at))
        });
        if let Some((id, start)) = &self.active {
            if ctx.now_ms - start < self.duration_ms {
                if let Some(pos) = available.iter().position(|a| &a.id == id) {
                    let current = available.remove(pos);
                    available.insert(0, current);
                }
            }
        }
    }

    fn served(
        &mut self,
        account: &Account,
        pool: &[Arc<Account>],
        ctx: &SelectContext<'_>,
    ) -> Option<i64> {
        let keep = match self.live_session(pool, ctx.now_ms) {
            Some(current) if current.id == account.id => true,
            // A request that was already on its way to another account finished, or
            // a transient failover: the session stays unless the new account ranks higher.
            Some(current) => current.priority <= account.priority,
            None => false,
        };
        if keep {
            return None;
        }
        self.active = Some((account.id.clone(), ctx.now_ms));
        Some(ctx.now_ms)
    }
}

/// Why an account was not offered, as the 503 `pool_exhausted` answer lists it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub name: String,
    pub reason: String,
    /// When it comes back by itself (unix ms).
    pub available_at: Option<i64>,
}

/// The answer to [`SelectCandidates`].
#[derive(Debug, Default)]
pub struct Selection {
    /// Accounts to try, in order.
    pub candidates: Vec<Arc<Account>>,
    /// How many accounts exist at all (0: forward unauthenticated).
    pub configured: usize,
    /// The accounts left out and why.
    pub skipped: Vec<Skipped>,
}

/// The selector; see the module docs.
pub struct StrategySelector {
    pool: Arc<Vec<Arc<Account>>>,
    strategy: Box<dyn Strategy>,
    served: HashMap<String, i64>,
    registry: Option<Addr<AccountRegistry>>,
}

impl StrategySelector {
    pub fn new(strategy: Box<dyn Strategy>, pool: Vec<Arc<Account>>) -> Self {
        let served = pool
            .iter()
            .map(|a| (a.id.clone(), a.request_count))
            .collect();
        Self {
            pool: Arc::new(pool),
            strategy,
            served,
            registry: None,
        }
    }

    /// Where new sessions are reported for storage.
    pub fn with_registry(mut self, registry: Addr<AccountRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Orders the pool for one request (the actor's `SelectCandidates` handler, callable
    /// directly in tests and benchmarks).
    pub fn select(&mut self, session_key: Option<&str>, now: i64) -> Selection {
        let mut candidates = Vec::with_capacity(self.pool.len());
        let mut skipped = Vec::new();
        for a in self.pool.iter() {
            match a.unavailable(now) {
                None => candidates.push(a.clone()),
                Some((why, at)) => skipped.push(Skipped {
                    name: a.name.clone(),
                    reason: why.as_str().to_string(),
                    available_at: at,
                }),
            }
        }
        if !candidates.is_empty() {
            let ctx = SelectContext {
                now_ms: now,
                served: &self.served,
                session_key,
            };
            self.strategy.order(&mut candidates, &ctx);
            // Stable: keeps the strategy's order within each priority class.
            candidates.sort_by_key(|a| a.priority);
        }
        Selection {
            candidates,
            configured: self.pool.len(),
            skipped,
        }
    }

    /// Notes that an account served a request.
    pub fn note_served(&mut self, account_id: &str, now: i64) -> Option<i64> {
        *self.served.entry(account_id.to_string()).or_insert(0) += 1;
        let account = self.pool.iter().find(|a| a.id == account_id)?.clone();
        let ctx = SelectContext {
            now_ms: now,
            served: &self.served,
            session_key: None,
        };
        self.strategy.served(&account, &self.pool, &ctx)
    }
}

impl Actor for StrategySelector {
    type Context = Context<Self>;
}

/// The registry's new snapshot of the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PoolUpdated(pub Arc<Vec<Arc<Account>>>);

impl Handler<PoolUpdated> for StrategySelector {
    type Result = ();

    fn handle(&mut self, msg: PoolUpdated, _: &mut Self::Context) {
        self.served
            .retain(|id, _| msg.0.iter().any(|a| &a.id == id));
        for a in msg.0.iter() {
            self.served.entry(a.id.clone()).or_insert(a.request_count);
        }
        self.pool = msg.0;
    }
}

/// The ordered accounts to try for one request.
#[derive(Message)]
#[rtype(result = "Selection")]
pub struct SelectCandidates {
    pub session_key: Option<String>,
}

impl Handler<SelectCandidates> for StrategySelector {
    type Result = MessageResult<SelectCandidates>;

    fn handle(&mut self, msg: SelectCandidates, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.select(msg.session_key.as_deref(), now_ms()))
    }
}

/// An account served a request (forwarded by the registry, after any marks).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AccountServed {
    pub account_id: String,
    pub at_ms: i64,
}

impl Handler<AccountServed> for StrategySelector {
    type Result = ();

    fn handle(&mut self, msg: AccountServed, _: &mut Self::Context) {
        if let Some(at_ms) = self.note_served(&msg.account_id, msg.at_ms) {
            if let Some(registry) = &self.registry {
                registry.do_send(SessionStarted {
                    account_id: msg.account_id,
                    at_ms,
                });
            }
        }
    }
}

/// The active strategy's name.
#[derive(Message)]
#[rtype(result = "String")]
pub struct CurrentStrategy;

impl Handler<CurrentStrategy> for StrategySelector {
    type Result = String;

    fn handle(&mut self, _: CurrentStrategy, _: &mut Self::Context) -> String {
        self.strategy.name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::account;
    use proptest::prelude::*;

    const NOW: i64 = 1_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn selector(pool: Vec<Account>) -> StrategySelector {
        let pool: Vec<Arc<Account>> = pool.into_iter().map(Arc::new).collect();
        let strategy = SessionStrategy::new(5 * HOUR, &pool, NOW);
        StrategySelector::new(Box::new(strategy), pool)
    }

    fn names(s: &Selection) -> Vec<&str> {
        s.candidates.iter().map(|a| a.name.as_str()).collect()
    }

    #[test]
    fn session_sticks_then_moves_when_benched() {
        let mut s = selector(vec![account("a", 1), account("b", 2), account("c", 3)]);
        let first = s.select(None, NOW);
        assert_eq!(names(&first), ["a", "b", "c"]);
        assert_eq!(s.note_served("id-a", NOW), Some(NOW));
        for i in 0..5 {
            s.note_served("id-a", NOW + i);
            assert_eq!(names(&s.select(None, NOW + i))[0], "a");
        }
        // a is benched: the next request fails over to b, which starts the session.
        let mut pool: Vec<Arc<Account>> = s.pool.iter().cloned().collect();
        Arc::make_mut(&mut pool[0]).rate_limited_until = Some(NOW + HOUR);
        s.pool = Arc::new(pool);
        let sel = s.select(None, NOW + 10);
        assert_eq!(names(&sel), ["b", "c"]);
        assert_eq!(sel.skipped[0].reason, "rate_limited");
        assert_eq!(s.note_served("id-b", NOW + 10), Some(NOW + 10));
        // b keeps the session even when a comes back.
        assert_eq!(names(&s.select(None, NOW + 2 * HOUR))[0], "b");
        // After the session duration the least-loaded account starts the next one.
        let later = NOW + 10 + 5 * HOUR;
        assert_eq!(names(&s.select(None, later))[0], "c");
    }

    #[test]
    fn stored_session_is_resumed() {
        let mut b = account("b", 2);
        b.session_start = Some(NOW - HOUR);
        let mut s = selector(vec![account("a", 1), b]);
        assert_eq!(names(&s.select(None, NOW))[0], "b");
    }

    #[test]
    fn in_flight_request_on_old_account_does_not_steal_the_session() {
        let mut s = selector(vec![account("a", 1), account("b", 2)]);
        s.note_served("id-a", NOW);
        assert_eq!(s.note_served("id-b", NOW + 1), None);
        assert_eq!(names(&s.select(None, NOW + 2))[0], "a");
    }

    proptest! {
        #[test]
        fn candidates_are_exactly_the_available_accounts_in_priority_order(
            specs in proptest::collection::vec((any::<bool>(), any::<bool>(), 0i32..3, 0i64..20), 0..12),
            served in proptest::collection::vec(0usize..12, 0..30),
        ) {
            let pool: Vec<Account> = specs.iter().enumerate().map(|(i, (paused, limited, prio, count))| {
                let mut a = account(&format!("n{i}"), i as i64);
                a.paused = *paused;
                a.rate_limited_until = limited.then_some(NOW + 1000);
                a.priority = *prio;
                a.request_count = *count;
                a
            }).collect();
            let mut s = selector(pool.clone());
            for i in served {
                if i < pool.len() {
                    s.note_served(&pool[i].id, NOW);
                }
            }
            let sel = s.select(None, NOW);
            let mut got: Vec<&str> = sel.candidates.iter().map(|a| a.id.as_str()).collect();
            prop_assert!(sel.candidates.windows(2).all(|w| w[0].priority <= w[1].priority));
            prop_assert!(sel.candidates.iter().all(|a| a.is_available(NOW)));
            got.sort_unstable();
            let mut want: Vec<&str> = pool.iter().filter(|a| a.is_available(NOW)).map(|a| a.id.as_str()).collect();
            want.sort_unstable();
            prop_assert_eq!(got, want);
            prop_assert_eq!(sel.skipped.len() + sel.candidates.len(), pool.len());
        }
    }
}
