//! Session affinity: one account per client session.

use super::{SelectContext, Strategy};
use crate::domain::Account;
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

/// Sticks per client session rather than globally, so that parallel Claude Code
/// sessions keep their own prompt caches. Requests with no session key share one
/// global session. New sessions go to the account with the fewest live sessions,
/// then the least load. The map is an LRU of bounded size whose entries expire
/// after the session duration.
pub struct SessionAffinityStrategy {
    duration_ms: i64,
    sessions: LruCache<String, (String, i64)>,
    /// Live sessions per account, kept in step with `sessions`.
    per_account: HashMap<String, usize>,
}

impl SessionAffinityStrategy {
    pub fn new(duration_ms: i64, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            duration_ms,
            sessions: LruCache::new(capacity),
            per_account: HashMap::new(),
        }
    }

    fn key<'k>(ctx: &SelectContext<'k>) -> &'k str {
        ctx.session_key.unwrap_or("")
    }

    fn bound(&self, key: &str, now: i64) -> Option<&str> {
        self.sessions
            .peek(key)
            .filter(|(_, seen)| now - seen < self.duration_ms)
            .map(|(id, _)| id.as_str())
    }

    fn forget(&mut self, account_id: &str) {
        if let Some(n) = self.per_account.get_mut(account_id) {
            *n = n.saturating_sub(1);
        }
    }

    fn bind(&mut self, key: &str, account_id: &str, now: i64) {
        let previous = self
            .sessions
            .push(key.to_string(), (account_id.to_string(), now));
        if let Some((_, (old_id, _))) = previous {
            self.forget(&old_id);
        }
        *self.per_account.entry(account_id.to_string()).or_insert(0) += 1;
    }

    /// Live sessions an account holds.
    pub fn sessions_on(&self, account_id: &str) -> usize {
        self.per_account.get(account_id).copied().unwrap_or(0)
    }
}

impl Strategy for SessionAffinityStrategy {
    fn name(&self) -> &'static str {
        "session-affinity"
    }

    fn order(&mut self, top: &mut [Arc<Account>], ctx: &SelectContext<'_>) {
        let key = Self::key(ctx);
        if let Some(id) = self.bound(key, ctx.now_ms) {
            if let Some(pos) = top.iter().position(|a| a.id == id) {
                top[..=pos].rotate_right(1);
                return;
            }
        }
        top.sort_by_cached_key(|a| (self.sessions_on(&a.id), ctx.load_key(a)));
        // Bind a new session at once, so that sessions starting together spread out
        // even before their first answers come back; `served` corrects it on failover.
        if self.bound(key, ctx.now_ms).is_none() {
            let id = top[0].id.clone();
            self.bind(key, &id, ctx.now_ms);
        }
    }

    fn served(
        &mut self,
        account: &Account,
        pool: &[Arc<Account>],
        ctx: &SelectContext<'_>,
    ) -> Option<i64> {
        let key = Self::key(ctx);
        let now = ctx.now_ms;
        let keep = match self.bound(key, now) {
            Some(id) if id == account.id => true,
            Some(id) => pool
                .iter()
                .find(|a| a.id == id && a.is_available(now))
                .is_some_and(|current| current.priority <= account.priority),
            None => false,
        };
        if keep {
            // Refresh the entry (and its place in the LRU) without rebinding.
            if let Some(entry) = self.sessions.get_mut(key) {
                if entry.0 == account.id {
                    entry.1 = now;
                }
            }
        } else {
            self.bind(key, &account.id, now);
        }
        None
    }
}
