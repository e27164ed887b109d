//! The RequestLogger actor: collects finished requests and writes them in batches,
//! one transaction per batch, so that nothing on the request path waits for the
//! database. A batch is written when it is full or at a tick (every tick when busy,
//! every second one when quiet: see `tick_action`), and everything pending is
//! written on [`FlushLog`] (shutdown).

use crate::background::BackgroundThread;
use crate::clock::LogThrottle;
use crate::intake::{Intake, IDLE_POLLS, POLL_INTERVAL};
use crate::registry::{AccountRegistry, RecordUses};
use crate::stats::{RequestsFinished, StatsAggregator};
use crate::store::{blocking, Dialect, LogEntry, Pacing, Store, StoreError};
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long to wait before writing again after a failed write.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// From this many records at a tick the logger is busy: it writes at every tick
/// and the write yields the CPU (see [`tick_action`]). Below it a tick waits for
/// the next one, so a quiet logger commits every two ticks (100 ms).
const BUSY_BATCH: usize = 50;

/// The logger's limits.
#[derive(Clone, Copy, Debug)]
pub struct LoggerSettings {
    /// Records per transaction (and the size that triggers an early write).
    pub max_batch: usize,
    /// How often the logger looks at its pending records: a busy logger writes at
    /// every tick, a quiet one at every second (see `tick_action`). A record is
    /// stored at most about two intervals after it arrives.
    pub flush_interval: Duration,
    /// Records held while the database is slow or failing; past it new records are
    /// dropped and counted, never an unbounded queue.
    pub max_pending: usize,
    /// Run first on the logger's background thread ([`crate::background`]): the
    /// daemon lowers the thread's priority there (this crate has no unsafe code).
    pub background_start: Option<fn()>,
    /// A write on the background thread that went this long without the CPU
    /// between two statements gives up and is done again on the blocking pool
    /// ([`Pacing::give_up_after`]). At c=1 the gaps are well under a millisecond; a
    /// lowered thread on a saturated machine waits ~100 ms for each turn, so a batch
    /// it was writing when a c=64 run began would hold its records, and SQLite's
    /// write lock, for seconds (docs/performance.md, tenth round).
    pub background_give_up_after: Duration,
}

impl Default for LoggerSettings {
    fn default() -> Self {
        Self {
            max_batch: 1000,
            // Busy: a record waits for the next tick and a write that yields for at
            // most 3/4 of an interval, ~90 ms (a write on the log thread gives up
            // one interval after its batch was cut). Quiet: two ticks and a short
            // write. Either way under the 100 ms a kill -9 may lose
            // (docs/deployment.md).
            flush_interval: Duration::from_millis(50),
            max_pending: 100_000,
            background_start: None,
            background_give_up_after: Duration::from_millis(20),
        }
    }
}

/// The logger; see the module docs.
pub struct RequestLogger {
    store: Store,
    settings: LoggerSettings,
    pending: Vec<LogEntry>,
    writing: bool,
    /// The batch being written, readable by [`PendingEntry`] until it is stored.
    in_flight: Option<Arc<Vec<LogEntry>>>,
    waiters: Vec<oneshot::Sender<()>>,
    dropped: u64,
    /// Write failures and drops are logged once a minute.
    failure_log: LogThrottle,
    /// After a failed write, the next try waits until then.
    retry_at: Option<Instant>,
    /// A tick came while a write was running: write again as soon as it ends.
    tick_missed: bool,
    /// The last tick found a few records and left them for this one.
    tick_skipped: bool,
    /// Until then every write runs on the blocking pool: the logger was behind
    /// recently (see [`BEHIND_HOLD`]).
    behind_until: Option<Instant>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// Stamped on every record: which daemon answered.
    instance_id: Option<String>,
    /// Where each record goes on to, for the live counters and the request feed.
    stats: Option<Addr<StatsAggregator>>,
    /// What the proxy's workers queued (records, and account uses for the registry).
    intake: Option<Arc<Intake>>,
    registry: Option<Addr<AccountRegistry>>,
    /// Where writes that can wait run, and their batches are freed (see
    /// [`crate::background`]); without it, on the blocking pool.
    background: Option<BackgroundThread>,
    /// The intake is being polled; empty polls in a row.
    polling: bool,
    idle_polls: u32,
}

impl RequestLogger {
    pub fn new(store: Store, settings: LoggerSettings) -> Self {
        Self {
            store,
            settings,
            pending: Vec::with_capacity(settings.max_batch),
            writing: false,
            in_flight: None,
            waiters: Vec::new(),
            dropped: 0,
            failure_log: LogThrottle::per_minute(),
            retry_at: None,
            tick_missed: false,
            tick_skipped: false,
            behind_until: None,
            metrics: None,
            instance_id: None,
            stats: None,
            intake: None,
            registry: None,
            background: None,
            polling: false,
            idle_polls: 0,
        }
    }

    /// Drains `intake` (see [`crate::intake`]): its records are this logger's, its
    /// account uses go on to the registry (see [`Self::with_registry`]).
    pub fn with_intake(mut self, intake: Arc<Intake>) -> Self {
        self.intake = Some(intake);
        self
    }

    /// Where the intake's account uses go, as one `RecordUses` per drain.
    pub fn with_registry(mut self, registry: Addr<AccountRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Writes that keep up (what is left after the batch does not fill another, no
    /// shutdown waiting: see [`keeping_up`]) go to `thread`, at its lower priority;
    /// a logger that is behind, or flushing for shutdown, writes on the blocking
    /// pool.
    ///
    /// Only on SQLite, which does a write's work on the writing thread. PostgreSQL
    /// does it in its own process, and its writes are not paced (nothing there
    /// gives up), so on an idle-policy thread a write caught by a machine that
    /// just became saturated would hold its batch for as long as the load lasts:
    /// there the thread is dropped (and ends), and every write runs on the pool.
    pub fn with_background(mut self, thread: BackgroundThread) -> Self {
        if self.store.dialect() == Dialect::Sqlite {
            self.background = Some(thread);
        }
        self
    }

    /// Takes what the intake holds; `true` if it held anything.
    fn drain_intake(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(queued) = self.intake.as_ref().map(|i| i.take()) else {
            return false;
        };
        if queued.is_empty() {
            return false;
        }
        if let (false, Some(registry)) = (queued.uses.is_empty(), &self.registry) {
            registry.do_send(RecordUses(queued.uses));
        }
        if !queued.records.is_empty() {
            self.accept(queued.records, ctx);
        }
        true
    }

    /// One poll of a busy intake; the next is scheduled until it has been idle a while.
    fn poll_intake(&mut self, ctx: &mut Context<Self>) {
        if self.drain_intake(ctx) {
            self.idle_polls = 0;
        } else {
            self.idle_polls += 1;
            let stopped = self.idle_polls >= IDLE_POLLS
                && self.intake.as_ref().is_none_or(|i| i.try_stop_polling());
            if stopped {
                self.polling = false;
                return;
            }
        }
        ctx.run_later(POLL_INTERVAL, |act, ctx| act.poll_intake(ctx));
    }

    /// Takes finished requests in: on to the stats, then pending within the bound.
    fn accept(&mut self, mut entries: Vec<LogEntry>, ctx: &mut Context<Self>) {
        if self.instance_id.is_some() {
            for entry in entries
                .iter_mut()
                .filter(|e| e.record.instance_id.is_none())
            {
                // The proxy's Arc is this one: no copy.
                Arc::make_mut(&mut entry.record)
                    .instance_id
                    .clone_from(&self.instance_id);
            }
        }
        if let Some(stats) = &self.stats {
            stats.do_send(RequestsFinished(
                entries.iter().map(|e| e.record.clone()).collect(),
            ));
        }
        let room = self.settings.max_pending.saturating_sub(self.pending.len());
        if entries.len() > room {
            self.count_dropped(entries.len() - room);
            entries.truncate(room);
        }
        self.pending.append(&mut entries);
        let waiting = self.retry_at.is_some_and(|t| Instant::now() < t);
        if self.pending.len() >= self.settings.max_batch && !waiting {
            // A full batch before the tick: at c=1 on a fast machine that is every
            // tick's worth, and it may yield like a busy tick's write (unless the
            // last tick was skipped: then its oldest record is two ticks old).
            self.write_batch(ctx, !self.tick_skipped);
        }
    }

    /// The daemon's name in a shared history.
    pub fn with_instance(mut self, instance_id: &str) -> Self {
        self.instance_id = Some(instance_id.to_string());
        self
    }

    /// Hands every record on to the live stats: the proxy sends each finished
    /// request once, here, instead of once to each (one cross-thread message per
    /// request fewer; both actors share the engine's arbiter).
    pub fn with_stats(mut self, stats: Addr<StatsAggregator>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Where dropped records are counted.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count_dropped(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.dropped += n as u64;
        if let Some(m) = &self.metrics {
            m.dropped_records.inc_by(n as u64);
        }
        if self.failure_log.due() {
            tracing::warn!(
                dropped = self.dropped,
                "request log is full; dropping records"
            );
        }
    }

    /// A batch that was not stored goes back in front of the pending records, oldest
    /// first, within the pending bound.
    fn put_back(&mut self, batch: Option<Arc<Vec<LogEntry>>>) {
        // The writing task has dropped its handle on the batch by now, so taking it
        // back out of the Arc copies nothing.
        let batch = batch.map(Arc::unwrap_or_clone).unwrap_or_default();
        self.pending.splice(0..0, batch);
        let excess = self.pending.len().saturating_sub(self.settings.max_pending);
        self.pending.drain(..excess);
        self.count_dropped(excess);
    }

    /// Writes the oldest pending records; `may_yield`: the records are fresh (a
    /// busy logger's tick, see [`tick_action`], or a full batch after a tick that
    /// wrote), so the write may take most of a tick.
    fn write_batch(&mut self, ctx: &mut Context<Self>, may_yield: bool) {
        if self.writing {
            return;
        }
        if self.pending.is_empty() {
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        // Records kept back by a failed write are older than a tick.
        let may_yield = may_yield && self.retry_at.is_none();
        self.writing = true;
        self.tick_missed = false;
        let take = self.pending.len().min(self.settings.max_batch);
        let left_over = self.pending.len() - take;
        let batch: Arc<Vec<LogEntry>> = Arc::new(self.pending.drain(..take).collect());
        self.in_flight = Some(batch.clone());
        let unhurried = keeping_up(left_over, self.settings.max_batch, !self.waiters.is_empty());
        let now = Instant::now();
        if !unhurried {
            self.behind_until = Some(now + BEHIND_HOLD);
        }
        let recently_behind = self.behind_until.is_some_and(|t| now < t);
        // A full batch goes to the log thread only when its records are fresh: one
        // cut after a skipped or missed tick, or after a failure, may hold records
        // two ticks old, and is written at once on the pool, as before.
        let part = take < self.settings.max_batch;
        let lane = self
            .background
            .clone()
            .filter(|_| unhurried && !recently_behind && (part || may_yield));
        let pacing = Pacing {
            // Done before the next tick, so that the tick finds the writer free.
            // A full batch yields on the log thread only. On the pool (the second
            // after the logger was behind: a busy machine; or no log thread) it
            // writes at once, as it always did: a writer that yields at normal
            // priority on a saturated machine gets little of it and falls behind
            // (docs/performance.md, fifth round).
            yield_until: (may_yield && unhurried && (part || lane.is_some()))
                .then(|| now + self.settings.flush_interval * 3 / 4),
            give_up_after: lane
                .is_some()
                .then_some(self.settings.background_give_up_after),
            // Its oldest record came in about one interval ago: done within the
            // next, or written on the pool, it waits ~100 ms at most.
            give_up_at: lane.is_some().then(|| now + self.settings.flush_interval),
        };
        let store = self.store.clone();
        let insert = move || store.insert_requests_paced(&batch, pacing);
        let release_on = lane.clone();
        let write = async move {
            match lane {
                Some(thread) => match thread.run(insert).await {
                    Ok(result) => (result, false),
                    Err(e) => (Err(StoreError::Task(e.to_string())), true),
                },
                None => (
                    blocking(move || Ok(insert())).await.unwrap_or_else(Err),
                    false,
                ),
            }
        };
        ctx.spawn(write.into_actor(self).map(move |(result, lost), act, ctx| {
            act.writing = false;
            if lost {
                // Its thread is gone or the job panicked: later writes go to the
                // blocking pool, where a write that panics fails the same way.
                tracing::warn!("the request log's background thread failed; writing on the blocking pool");
                act.background = None;
            }
            let batch = act.in_flight.take();
            match result {
                Ok(()) => {
                    act.retry_at = None;
                    if let Some(batch) = batch {
                        release(batch, release_on.as_ref());
                    }
                }
                Err(StoreError::Deferred) => {
                    // The background thread did not get enough of a CPU, between
                    // two statements or by the deadline: the machine is busy.
                    // Nothing was stored; write the batch again at once, on the
                    // blocking pool.
                    tracing::debug!(
                        records = batch.as_ref().map_or(0, |b| b.len()),
                        "background write gave up; writing on the blocking pool"
                    );
                    act.put_back(batch);
                    act.behind_until = Some(Instant::now() + BEHIND_HOLD);
                    act.write_batch(ctx, false);
                    return;
                }
                Err(e) => {
                    // Keep the batch for the next try (the disk may come back).
                    if act.failure_log.due() {
                        let pending = act.pending.len() + batch.as_ref().map_or(0, |b| b.len());
                        tracing::error!(error = %e, pending, "writing request records failed; keeping them and retrying");
                    }
                    act.put_back(batch);
                    act.retry_at = Some(Instant::now() + RETRY_AFTER_FAILURE);
                    // Shutdown must not wait for a disk that does not come back.
                    for w in act.waiters.drain(..) {
                        let _ = w.send(());
                    }
                    return;
                }
            }
            let full = act.pending.len() >= act.settings.max_batch;
            let tick_missed = act.tick_missed && !act.pending.is_empty();
            if full || tick_missed || !act.waiters.is_empty() {
                // A full batch came in while this one was written: it may yield
                // like any full batch. A tick missed meanwhile means records that
                // have waited a tick already, and shutdown does not wait.
                act.write_batch(ctx, full && !tick_missed);
            }
        }));
    }
}

/// Frees a written batch off the engine's thread, where it was written (the
/// background thread or the blocking pool), a slice at a time with the CPU given up
/// in between: freeing ~600 records with their payloads in one piece took ~1 ms of
/// the engine's thread at every write, in the way of the request path
/// (docs/performance.md, ninth round).
fn release(batch: Arc<Vec<LogEntry>>, on: Option<&BackgroundThread>) {
    let free = move || {
        let Ok(entries) = Arc::try_unwrap(batch) else {
            return;
        };
        for (i, entry) in entries.into_iter().enumerate() {
            drop(entry);
            if i % 64 == 63 {
                std::thread::yield_now();
            }
        }
    };
    match on {
        // A thread that is gone dropped the job, and the batch with it.
        Some(thread) => {
            let _ = thread.submit(free);
        }
        None => {
            tokio::task::spawn_blocking(free);
        }
    }
}

/// Whether a batch about to be written leaves the logger caught up: what is left
/// pending after it does not fill another batch, and no shutdown is waiting. Only
/// then may the write give way to the request path, for up to 3/4 of a flush
/// interval ([`Store::insert_requests_paced`]), on the log thread; a logger that is
/// behind writes at once, on the blocking pool.
/// (The window must be most of the interval: with a 100 ms interval, yielding for
/// all of it took the c=1 p99 from ~4 ms to ~1.5 ms, for 25 ms only to ~3 ms.)
///
/// A full batch alone is not behind: at c=1 a machine twice as fast as the
/// benchmark's fills one batch (1 000 records) per 50 ms tick, and counting that
/// as behind sent every write to the pool at normal priority, where it costs the
/// c=1 tail (docs/performance.md, seventeenth round). Falling behind shows as a
/// second batch waiting, or as a write on the log thread that gives up.
fn keeping_up(left_over: usize, max_batch: usize, shutting_down: bool) -> bool {
    left_over < max_batch && !shutting_down
}

/// How long after a write that was behind (another full batch waiting, shutdown
/// waiting, or a write on the log thread that gave up) the logger keeps off its
/// background thread. Near its limit a logger alternates full and part batches; a
/// part batch on the lowered thread then waited for a CPU the request path kept
/// busy, the next batches piled up behind it, and c=64 lost ~4% (docs/performance.md,
/// tenth round).
const BEHIND_HOLD: Duration = Duration::from_secs(1);

/// What a tick does with `pending` records.
#[derive(Debug, PartialEq)]
enum TickAction {
    /// Leave a few records for the next tick.
    Skip,
    /// Write; `may_yield` when the logger is busy and no record is older than a
    /// tick, so the yielding write still stores each within ~100 ms.
    Write { may_yield: bool },
}

/// Busy (at least [`BUSY_BATCH`] records): write at every tick, yielding. Quiet:
/// write at every second tick, at once. A write every 50 ms at moderate rates
/// wrote ~46% more to disk than every 100 ms (each commit rewrites the same index
/// and rollup pages; 100 requests/s: 13.5 against 9.2 kB per request), and a
/// quiet logger's batches are too small to hold a core for long.
fn tick_action(pending: usize, tick_skipped: bool) -> TickAction {
    let busy = pending >= BUSY_BATCH;
    if !busy && !tick_skipped {
        TickAction::Skip
    } else {
        TickAction::Write {
            may_yield: busy && !tick_skipped,
        }
    }
}

impl Actor for RequestLogger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.flush_interval, |act, ctx| {
            if act.writing {
                act.tick_missed = true;
                return;
            }
            let waiting = act.retry_at.is_some_and(|t| Instant::now() < t);
            if act.pending.is_empty() || waiting {
                act.tick_skipped = false;
                return;
            }
            match tick_action(act.pending.len(), act.tick_skipped) {
                TickAction::Skip => act.tick_skipped = true,
                TickAction::Write { may_yield } => {
                    act.tick_skipped = false;
                    act.write_batch(ctx, may_yield);
                }
            }
        });
    }
}

/// Something was queued in the intake that should not wait for the next poll (nobody
/// polls it, or it is a failover's account use): drain it now, and poll from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IntakeWaiting;

impl Handler<IntakeWaiting> for RequestLogger {
    type Result = ();

    fn handle(&mut self, _: IntakeWaiting, ctx: &mut Self::Context) {
        if self.polling {
            self.drain_intake(ctx);
        } else {
            self.polling = true;
            self.idle_polls = 0;
            self.poll_intake(ctx);
        }
    }
}

/// Drains the intake now: its account uses reach the registry's mailbox before
/// anything sent to the registry after this resolves (see `Engine::accounts`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DrainIntake;

impl Handler<DrainIntake> for RequestLogger {
    type Result = ();

    fn handle(&mut self, _: DrainIntake, ctx: &mut Self::Context) {
        self.drain_intake(ctx);
    }
}

/// A record the logger still holds (queued, or in the batch being written), by
/// request id: a request announced on the live feed can be read back at once, up
/// up to ~100 ms before its row is stored.
#[derive(Message)]
#[rtype(result = "Option<LogEntry>")]
pub struct PendingEntry(pub String);

impl Handler<PendingEntry> for RequestLogger {
    type Result = Option<LogEntry>;

    fn handle(&mut self, msg: PendingEntry, ctx: &mut Self::Context) -> Option<LogEntry> {
        self.drain_intake(ctx);
        self.in_flight
            .iter()
            .flat_map(|batch| batch.iter())
            .chain(self.pending.iter())
            .find(|e| e.record.id == msg.0)
            .cloned()
    }
}

/// Writes everything pending; resolves once it is stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushLog;

impl Handler<FlushLog> for RequestLogger {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: FlushLog, ctx: &mut Self::Context) -> Self::Result {
        self.drain_intake(ctx);
        if !self.writing && self.pending.is_empty() {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.write_batch(ctx, false);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::{request_record as record, test_store};

    #[test]
    fn a_quiet_logger_writes_every_second_tick_and_a_busy_one_every_tick() {
        assert_eq!(tick_action(3, false), TickAction::Skip);
        assert_eq!(
            tick_action(3, true),
            TickAction::Write { may_yield: false },
            "the second tick writes, at once: its oldest record waited two ticks"
        );
        assert_eq!(
            tick_action(BUSY_BATCH, false),
            TickAction::Write { may_yield: true }
        );
        assert_eq!(
            tick_action(BUSY_BATCH, true),
            TickAction::Write { may_yield: false },
            "busy after a skipped tick: no yielding, the oldest record is two ticks old"
        );
    }

    #[test]
    fn only_a_logger_that_keeps_up_writes_politely() {
        assert!(keeping_up(10, 1000, false));
        assert!(
            keeping_up(0, 1000, false),
            "a full batch with nothing left: caught up"
        );
        assert!(keeping_up(999, 1000, false));
        assert!(
            !keeping_up(1000, 1000, false),
            "another full batch waiting: behind"
        );
        assert!(!keeping_up(10, 1000, true), "shutdown waits for it");
    }

    fn entry(id: &str) -> LogEntry {
        LogEntry {
            record: Arc::new(record(id, 1000, true)),
            payload: None,
        }
    }

    /// A logger that writes only when asked (an hour's tick), draining `intake`.
    fn quiet_logger(
        store: &Store,
        settings: LoggerSettings,
        intake: &Arc<Intake>,
    ) -> RequestLogger {
        let settings = LoggerSettings {
            flush_interval: Duration::from_secs(3600),
            ..settings
        };
        RequestLogger::new(store.clone(), settings).with_intake(intake.clone())
    }

    #[test]
    fn a_batch_past_the_pending_bound_keeps_what_fits_and_counts_the_rest() {
        actix::System::new().block_on(async {
            let (_dir, store) = test_store();
            let settings = LoggerSettings {
                max_batch: 100,
                max_pending: 3,
                ..LoggerSettings::default()
            };
            let metrics = crate::metrics::Metrics::new();
            let intake = Arc::new(Intake::default());
            let logger = quiet_logger(&store, settings, &intake)
                .with_metrics(metrics.clone())
                .start();
            for id in ["a", "b", "c", "d", "e"] {
                let _ = intake.record(entry(id));
            }
            logger.send(FlushLog).await.expect("flush");
            assert_eq!(metrics.dropped_records.get(), 2);
            for (id, kept) in [
                ("a", true),
                ("b", true),
                ("c", true),
                ("d", false),
                ("e", false),
            ] {
                let row = store.request_by_id(id).expect("read");
                assert_eq!(row.is_some(), kept, "{id}: oldest kept, newest dropped");
            }
        });
    }

    #[test]
    fn the_intake_is_polled_while_busy_and_drained_for_flush_and_lookups() {
        actix::System::new().block_on(async {
            let (_dir, store) = test_store();
            let intake = Arc::new(Intake::default());
            let logger = quiet_logger(&store, LoggerSettings::default(), &intake).start();

            // Queued without the wake it asks for: a lookup and a flush still drain.
            assert!(intake.record(entry("r1")));
            let held = logger
                .send(PendingEntry("r1".into()))
                .await
                .expect("logger");
            assert!(held.is_some(), "a lookup drains the intake first");

            // Woken once, the logger polls: later pushes need no wake and are taken.
            assert!(intake.try_stop_polling());
            assert!(intake.record(entry("r2")));
            logger.send(IntakeWaiting).await.expect("logger");
            assert!(!intake.record(entry("r3")), "polled: no wake needed");
            tokio::time::sleep(POLL_INTERVAL * 4).await;
            assert!(intake.take().is_empty(), "the poll took r3");

            logger.send(FlushLog).await.expect("flush");
            for id in ["r1", "r2", "r3"] {
                assert!(store.request_by_id(id).expect("read").is_some(), "{id}");
            }
        });
    }

    /// Counts the rows stored, waiting up to ~3 s for `want` of them.
    async fn stored_rows(store: &Store, want: i64) -> i64 {
        let mut rows = 0;
        for _ in 0..300 {
            rows = store.history_totals().expect("totals").requests;
            if rows >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rows
    }

    /// A logger that writes every 10 ms, with `background` as its background thread.
    fn ticking_logger(
        store: &Store,
        intake: &Arc<Intake>,
        background: BackgroundThread,
        max_batch: usize,
        give_up_after: Duration,
    ) -> RequestLogger {
        let settings = LoggerSettings {
            max_batch,
            flush_interval: Duration::from_millis(10),
            background_give_up_after: give_up_after,
            ..LoggerSettings::default()
        };
        RequestLogger::new(store.clone(), settings)
            .with_intake(intake.clone())
            .with_background(background)
    }

    /// A background thread held by a job until the returned sender is used or dropped.
    fn held_background() -> (BackgroundThread, std::sync::mpsc::Sender<()>) {
        let background = BackgroundThread::spawn("log-test", None).expect("thread");
        let (go, held) = std::sync::mpsc::channel::<()>();
        background
            .submit(move || {
                let _ = held.recv();
            })
            .expect("submit");
        (background, go)
    }

    /// Records `n` entries through a logger that writes batches of 10 with
    /// `background` as its background thread, and counts the rows stored (waiting
    /// up to ~3 s for all of them).
    async fn stored_with(
        store: &Store,
        background: BackgroundThread,
        prefix: &str,
        n: usize,
    ) -> i64 {
        let intake = Arc::new(Intake::default());
        let logger =
            ticking_logger(store, &intake, background, 10, Duration::from_secs(60)).start();
        for i in 0..n {
            let _ = intake.record(entry(&format!("{prefix}{i:02}")));
        }
        logger.send(IntakeWaiting).await.expect("logger");
        stored_rows(store, n as i64).await
    }

    /// [`stored_with`] a background thread held by a job all the while.
    async fn stored_past_a_held_thread(store: &Store, prefix: &str, n: usize) -> i64 {
        let (background, _go) = held_background();
        stored_with(store, background, prefix, n).await
    }

    #[test]
    fn a_logger_that_keeps_up_writes_on_its_background_thread() {
        actix::System::new().block_on(async {
            assert_eq!(
                stored_before_and_after_the_held_thread(5).await,
                (0, 5),
                "a part batch waits for the held background thread"
            );
        });
    }

    /// Queues `n` records into a logger that writes batches of 10 on a held
    /// background thread: the rows stored 100 ms later, and once the thread is let go.
    async fn stored_before_and_after_the_held_thread(n: usize) -> (i64, i64) {
        let (_dir, store) = test_store();
        let intake = Arc::new(Intake::default());
        let (background, go) = held_background();
        let logger =
            ticking_logger(&store, &intake, background, 10, Duration::from_secs(60)).start();
        for i in 0..n {
            let _ = intake.record(entry(&format!("f{i:02}")));
        }
        logger.send(IntakeWaiting).await.expect("logger");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = store.history_totals().expect("totals").requests;
        go.send(()).expect("release the thread");
        (before, stored_rows(&store, n as i64).await)
    }

    #[test]
    fn a_full_batch_with_less_than_a_batch_behind_it_is_written_on_the_background_thread() {
        actix::System::new().block_on(async {
            assert_eq!(
                stored_before_and_after_the_held_thread(10).await,
                (0, 10),
                "one full batch, nothing behind it: it waits for the held background thread"
            );
            assert_eq!(
                stored_before_and_after_the_held_thread(15).await,
                (0, 15),
                "a full batch with 5 behind it: it waits too"
            );
            assert_eq!(
                stored_before_and_after_the_held_thread(20).await,
                (20, 20),
                "a full batch with another full one behind it: behind, on the pool"
            );
        });
    }

    #[test]
    fn a_postgres_logger_keeps_off_its_background_thread() {
        let Some((_db, store)) =
            crate::store::tests_support::test_postgres_store("logger_background")
        else {
            return;
        };
        actix::System::new().block_on(async {
            assert_eq!(
                stored_past_a_held_thread(&store, "p", 5).await,
                5,
                "a part batch does not wait for the held background thread"
            );
        });
    }

    #[test]
    fn a_logger_that_is_behind_writes_on_the_blocking_pool() {
        actix::System::new().block_on(async {
            let (_dir, store) = test_store();
            assert_eq!(
                stored_past_a_held_thread(&store, "b", 30).await,
                30,
                "a full batch with another behind it does not wait for the held background thread"
            );
        });
    }

    fn failing_start() {
        panic!("the background thread fails as it starts");
    }

    #[test]
    fn a_logger_whose_background_thread_is_gone_writes_on_the_pool() {
        actix::System::new().block_on(async {
            let (_dir, store) = test_store();
            let background =
                BackgroundThread::spawn("log-test", Some(failing_start)).expect("thread");
            // The first write is lost with the thread and retried a second later.
            assert_eq!(stored_with(&store, background, "x", 5).await, 5);
        });
    }

    #[test]
    fn a_background_write_that_gives_up_is_written_again_on_the_pool() {
        actix::System::new().block_on(async {
            let (_dir, store) = test_store();
            let intake = Arc::new(Intake::default());
            let background = BackgroundThread::spawn("log-test", None).expect("thread");
            // Every background write of two statements or more gives up.
            let logger = ticking_logger(&store, &intake, background, 1000, Duration::ZERO).start();
            for i in 0..100 {
                let _ = intake.record(entry(&format!("g{i:03}")));
            }
            logger.send(IntakeWaiting).await.expect("logger");
            assert_eq!(
                stored_rows(&store, 100).await,
                100,
                "stored without a flush"
            );
            assert!(store.request_by_id("g000").expect("read").is_some());
            assert!(store.request_by_id("g099").expect("read").is_some());
        });
    }

    #[test]
    fn a_record_can_be_read_back_before_its_batch_is_written() {
        actix::System::new().block_on(async {
            let (_dir, store) = test_store();
            let intake = Arc::new(Intake::default());
            let logger = quiet_logger(&store, LoggerSettings::default(), &intake).start();
            let _ = intake.record(entry("r1"));
            let held = logger
                .send(PendingEntry("r1".into()))
                .await
                .expect("logger");
            assert_eq!(held.map(|e| e.record.id.clone()).as_deref(), Some("r1"));
            assert!(
                store.request_by_id("r1").expect("read").is_none(),
                "not written yet"
            );
            let other = logger
                .send(PendingEntry("r2".into()))
                .await
                .expect("logger");
            assert!(other.is_none());

            logger.send(FlushLog).await.expect("flush");
            let held = logger
                .send(PendingEntry("r1".into()))
                .await
                .expect("logger");
            assert!(held.is_none(), "stored: the logger lets go of it");
            assert!(store.request_by_id("r1").expect("read").is_some());
        });
    }
}
