//! What the proxy's worker threads hand to the engine for every request (the finished
//! record, the account's use), queued here instead of sent as a message each.
//!
//! A message to an actor on the engine's thread wakes that thread when it sleeps: a
//! syscall on the worker, a context switch and an `epoll_wait` on the engine's side.
//! At c=1 that was once per request, and it cost the client ~11 µs of latency at the
//! median (docs/performance.md, ninth round). So the workers only push into this
//! queue; the RequestLogger polls it every [`POLL_INTERVAL`] while requests come, and
//! stops polling after [`IDLE_POLLS`] empty polls. A push into an intake nobody
//! polls returns `true`, and the pusher wakes the logger once (`IntakeWaiting`).
//! Readers that must see the newest state (a pending record by id, the API's account
//! list, shutdown) drain the intake first, and so does a failover's account use.

use crate::registry::RecordUse;
use crate::store::LogEntry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How often a busy intake is drained: a record or use reaches its actor at most this
/// much later than a message would have.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Empty polls after which the logger stops polling (100 ms without a request).
pub const IDLE_POLLS: u32 = 20;

/// The queue; see the module docs.
#[derive(Debug, Default)]
pub struct Intake {
    queue: Mutex<Queued>,
    /// Someone polls the queue: a push need not wake anyone.
    polling: AtomicBool,
}

/// What was queued since the last drain, oldest first.
#[derive(Debug, Default)]
pub struct Queued {
    pub records: Vec<LogEntry>,
    pub uses: Vec<RecordUse>,
}

impl Queued {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.uses.is_empty()
    }
}

impl Intake {
    /// Queues a finished request; `true` when nobody polls and the logger must be woken.
    #[must_use = "a `true` means the logger must be woken"]
    pub fn record(&self, entry: LogEntry) -> bool {
        self.lock().records.push(entry);
        self.claim_polling()
    }

    /// Queues an account's use; `true` when nobody polls and the logger must be woken.
    #[must_use = "a `true` means the logger must be woken"]
    pub fn used(&self, used: RecordUse) -> bool {
        self.lock().uses.push(used);
        self.claim_polling()
    }

    /// Everything queued.
    pub fn take(&self) -> Queued {
        std::mem::take(&mut *self.lock())
    }

    /// The poller stops, unless something was queued meanwhile: `true` if it stopped.
    /// (A push after this sees nobody polling and wakes the poller again.)
    pub fn try_stop_polling(&self) -> bool {
        self.polling.store(false, Ordering::SeqCst);
        if self.lock().is_empty() {
            return true;
        }
        // A push came between the store and the check: keep polling. Its pusher may
        // wake the poller too; a wake of a poller that polls is harmless.
        self.polling.store(true, Ordering::SeqCst);
        false
    }

    /// Marks the intake polled; `true` if it was not (the caller must wake the poller).
    fn claim_polling(&self) -> bool {
        !self.polling.swap(true, Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Queued> {
        // The queue holds plain data; a panic elsewhere leaves it consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::request_record;
    use std::sync::Arc;

    fn entry(id: &str) -> LogEntry {
        LogEntry {
            record: Arc::new(request_record(id, 1000, true)),
            payload: None,
        }
    }

    #[test]
    fn only_the_first_push_into_an_unpolled_intake_asks_for_a_wake() {
        let intake = Intake::default();
        assert!(intake.record(entry("a")), "nobody polls: wake");
        assert!(!intake.record(entry("b")), "woken already");
        let q = intake.take();
        assert_eq!(q.records.len(), 2);
        assert!(intake.take().is_empty());

        assert!(intake.try_stop_polling(), "empty: the poller stops");
        assert!(intake.record(entry("c")), "stopped: wake again");
    }

    #[test]
    fn the_poller_keeps_going_when_a_push_slips_in_before_it_stops() {
        let intake = Intake::default();
        assert!(intake.record(entry("a")));
        // The push landed before the poller looked: it must not stop, or "a" would
        // wait for the next request's wake.
        assert!(!intake.try_stop_polling());
        assert!(!intake.record(entry("b")), "still polled: no wake");
        assert_eq!(intake.take().records.len(), 2);
        assert!(intake.try_stop_polling());
    }
}
