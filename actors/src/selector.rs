//! The StrategySelector actor: holds the active strategy and answers, for one request,
//! the ordered list of accounts to try.
//!
//! The common rules live here: only available accounts are offered; the best
//! priority class (lowest `priority`) comes first and is ordered by the strategy;
//! lower classes follow as fallbacks, least loaded first.

use crate::clock::now_ms;
use crate::domain::Account;
use crate::registry::{AccountRegistry, SessionStarted};
use crate::strategies::{self, LoadTracker, SelectContext, Strategy, StrategySettings};
use actix::prelude::*;
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Why an account was not offered, as the 503 `pool_exhausted` answer lists it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub name: String,
    pub reason: String,
    /// When it comes back by itself (unix ms).
    pub available_at: Option<i64>,
}

/// The answer to [`SelectHandle::select`].
#[derive(Debug, Default)]
pub struct Selection {
    /// Accounts to try, in order.
    pub candidates: Vec<Arc<Account>>,
    /// How many accounts exist at all (0: forward unauthenticated).
    pub configured: usize,
    /// The accounts left out.
    pub unavailable: Vec<Arc<Account>>,
    /// The time the selection was made at.
    pub at_ms: i64,
}

impl Selection {
    /// Why each left-out account was left out (built only when it is needed: for the
    /// answer when no account could serve).
    pub fn skipped(&self) -> Vec<Skipped> {
        self.unavailable
            .iter()
            .filter_map(|a| {
                let (why, at) = a.unavailable(self.at_ms)?;
                Some(Skipped {
                    name: a.name.clone(),
                    reason: why.as_str().to_string(),
                    available_at: at,
                })
            })
            .collect()
    }
}

/// The selector; see the module docs.
///
/// Its state sits behind a mutex that it shares with [`SelectHandle`]s: the proxy's
/// workers order the pool for each request under that lock on their own thread,
/// instead of a message round trip to the actor's thread and back (two cross-thread
/// wake-ups per request; see docs/performance.md). Every change of the state (a new
/// pool, a served request, a strategy switch) still arrives here as a message.
pub struct StrategySelector {
    core: Arc<Mutex<SelectorCore>>,
    registry: Option<Addr<AccountRegistry>>,
}

/// What the selector knows: the pool, the strategy and the recent load.
struct SelectorCore {
    pool: Arc<Vec<Arc<Account>>>,
    strategy: Box<dyn Strategy>,
    settings: StrategySettings,
    load: LoadTracker,
}

/// Orders the pool for one request from any thread; see [`StrategySelector`].
#[derive(Clone)]
pub struct SelectHandle(Arc<Mutex<SelectorCore>>);

impl SelectHandle {
    /// The accounts to try for one request, in order.
    pub fn select(&self, session_key: Option<&str>, now: i64) -> Selection {
        lock(&self.0).select(session_key, now)
    }
}

/// The state, even if a strategy panicked while holding it: its bookkeeping is only
/// an ordering hint, never worth stopping the proxy for.
fn lock(core: &Mutex<SelectorCore>) -> MutexGuard<'_, SelectorCore> {
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StrategySelector {
    pub fn new(
        strategy: Box<dyn Strategy>,
        settings: StrategySettings,
        pool: Vec<Arc<Account>>,
    ) -> Self {
        let mut load = LoadTracker::new(settings.session_duration_ms);
        for a in &pool {
            load.seed_last_used(&a.id, a.last_used);
        }
        let core = SelectorCore {
            pool: Arc::new(pool),
            strategy,
            settings,
            load,
        };
        Self {
            core: Arc::new(Mutex::new(core)),
            registry: None,
        }
    }

    /// Where new sessions are reported for storage.
    pub fn with_registry(mut self, registry: Addr<AccountRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// A handle the proxy's workers select with.
    pub fn handle(&self) -> SelectHandle {
        SelectHandle(self.core.clone())
    }

    /// Orders the pool for one request (what [`SelectHandle::select`] does; callable
    /// directly in tests and benchmarks).
    pub fn select(&mut self, session_key: Option<&str>, now: i64) -> Selection {
        lock(&self.core).select(session_key, now)
    }

    /// Notes that an account served a request; `Some(at)` when that started a new
    /// global session on it.
    pub fn note_served(
        &mut self,
        account_id: &str,
        session_key: Option<&str>,
        now: i64,
    ) -> Option<i64> {
        lock(&self.core).note_served(account_id, session_key, now)
    }

    /// Switches to the named strategy; `false` for an unknown name.
    pub fn switch(&mut self, name: &str, now: i64) -> bool {
        lock(&self.core).switch(name, now)
    }

    pub fn strategy_name(&self) -> &'static str {
        lock(&self.core).strategy.name()
    }

    /// Edits the pool in place, without telling the strategy (tests only).
    #[cfg(test)]
    fn edit_pool(&mut self, edit: impl FnOnce(&mut Vec<Arc<Account>>)) {
        let mut core = lock(&self.core);
        let mut pool: Vec<Arc<Account>> = core.pool.iter().cloned().collect();
        edit(&mut pool);
        core.pool = Arc::new(pool);
    }
}

impl SelectorCore {
    fn select(&mut self, session_key: Option<&str>, now: i64) -> Selection {
        let mut candidates = Vec::with_capacity(self.pool.len());
        let mut unavailable = Vec::new();
        for a in self.pool.iter() {
            if a.is_available(now) {
                candidates.push(a.clone());
            } else {
                unavailable.push(a.clone());
            }
        }
        if !candidates.is_empty() {
            // The pool is oldest first; a stable sort keeps that within each class.
            candidates.sort_by_key(|a| a.priority);
            let best = candidates[0].priority;
            let top_len = candidates.iter().take_while(|a| a.priority == best).count();
            let ctx = SelectContext {
                now_ms: now,
                load: &self.load,
                session_key,
            };
            let (top, rest) = candidates.split_at_mut(top_len);
            self.strategy.order(top, &ctx);
            ctx.by_load(rest);
            rest.sort_by_key(|a| a.priority);
        }
        Selection {
            candidates,
            configured: self.pool.len(),
            unavailable,
            at_ms: now,
        }
    }

    fn note_served(
        &mut self,
        account_id: &str,
        session_key: Option<&str>,
        now: i64,
    ) -> Option<i64> {
        self.load.record(account_id, now);
        let account = self.pool.iter().find(|a| a.id == account_id)?.clone();
        let ctx = SelectContext {
            now_ms: now,
            load: &self.load,
            session_key,
        };
        self.strategy.served(&account, &self.pool, &ctx)
    }

    fn switch(&mut self, name: &str, now: i64) -> bool {
        if self.strategy.name() == name {
            return true;
        }
        match strategies::build(name, self.settings, &self.pool, now) {
            Some(s) => {
                tracing::info!(from = self.strategy.name(), to = name, "strategy switched");
                self.strategy = s;
                true
            }
            None => false,
        }
    }

    fn pool_updated(&mut self, pool: Arc<Vec<Arc<Account>>>) {
        self.load.retain(|id| pool.iter().any(|a| a.id == id));
        self.pool = pool;
        self.strategy.pool_changed(&self.pool, now_ms());
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
        lock(&self.core).pool_updated(msg.0);
    }
}

/// An account served a request (forwarded by the registry, after any marks).
#[derive(Debug)]
pub struct AccountServed {
    pub account_id: String,
    pub session_key: Option<String>,
    pub at_ms: i64,
}

/// The requests served since the last of these, oldest first, passed on by the
/// registry from one `RecordUses` (one message and one lock per batch).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AccountsServed(pub Vec<AccountServed>);

impl Handler<AccountsServed> for StrategySelector {
    type Result = ();

    fn handle(&mut self, msg: AccountsServed, _: &mut Self::Context) {
        let started: Vec<(String, i64)> = {
            let mut core = lock(&self.core);
            msg.0
                .into_iter()
                .filter_map(|s| {
                    let at = core.note_served(&s.account_id, s.session_key.as_deref(), s.at_ms)?;
                    Some((s.account_id, at))
                })
                .collect()
        };
        if let Some(registry) = &self.registry {
            for (account_id, at_ms) in started {
                registry.do_send(SessionStarted { account_id, at_ms });
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
        self.strategy_name().to_string()
    }
}

/// Switches the strategy live; `Err` with the valid names for an unknown one.
#[derive(Message)]
#[rtype(result = "Result<(), Vec<&'static str>>")]
pub struct SetStrategy {
    pub name: String,
}

impl Handler<SetStrategy> for StrategySelector {
    type Result = Result<(), Vec<&'static str>>;

    fn handle(&mut self, msg: SetStrategy, _: &mut Self::Context) -> Self::Result {
        if self.switch(&msg.name, now_ms()) {
            Ok(())
        } else {
            Err(strategies::names())
        }
    }
}

#[cfg(test)]
mod tests;
