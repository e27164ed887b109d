//! The default strategy: one active account for the session duration.

use super::{SelectContext, Strategy};
use crate::domain::Account;
use std::sync::Arc;

/// All traffic sticks to one account for the session duration, which keeps prompt
/// caches warm and looks like one person's use of one subscription.
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

    /// The active session's account, while it runs and the account can serve.
    fn live<'p>(&self, pool: &'p [Arc<Account>], now: i64) -> Option<&'p Arc<Account>> {
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

    fn order(&mut self, top: &mut [Arc<Account>], ctx: &SelectContext<'_>) {
        ctx.by_load(top);
        if let Some((id, start)) = &self.active {
            if ctx.now_ms - start < self.duration_ms {
                if let Some(pos) = top.iter().position(|a| &a.id == id) {
                    top[..=pos].rotate_right(1);
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
        let keep = match self.live(pool, ctx.now_ms) {
            Some(current) if current.id == account.id => true,
            // A request already on its way to another account finished, or a
            // transient failover: the session stays unless the new account ranks higher.
            Some(current) => current.priority <= account.priority,
            None => false,
        };
        if keep {
            return None;
        }
        self.active = Some((account.id.clone(), ctx.now_ms));
        Some(ctx.now_ms)
    }

    /// Instances sharing a database share the session: a newer one started
    /// elsewhere (seen in the stored accounts) becomes this instance's too.
    fn pool_changed(&mut self, pool: &[Arc<Account>], now_ms: i64) {
        let newest = pool
            .iter()
            .filter_map(|a| a.session_start.map(|s| (a.id.clone(), s)))
            .filter(|(_, s)| now_ms - s < self.duration_ms)
            .max_by_key(|(_, s)| *s);
        if let Some((id, start)) = newest {
            if self.active.as_ref().is_none_or(|(_, mine)| start > *mine) {
                self.active = Some((id, start));
            }
        }
    }
}
