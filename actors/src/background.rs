//! A thread of the logger's own for work that nobody is waiting on: writing a batch
//! while the logger keeps up, and freeing a written batch.
//!
//! On the blocking pool that work runs at the request path's priority, and at c=1 a
//! request that woke up behind a write waited for it: `perf sched` showed most of the
//! proxy's waits over 0.3 ms behind a blocking thread that had run ~0.75 ms
//! (docs/performance.md, tenth round). The daemon lowers this thread's priority when
//! it starts (the start hook: `SCHED_IDLE` on Linux, see the binary's `sched`
//! module), so a waking request takes its CPU at once. Such a thread gets almost
//! nothing of a CPU the request path keeps busy, so the logger only sends it work
//! that can wait: a logger that falls behind writes on the blocking pool at normal
//! priority again, and a write here that starves gives up and goes there too
//! ([`crate::store::Pacing`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The thread's handle; cheap to clone. The thread ends when every handle is gone.
#[derive(Clone)]
pub struct BackgroundThread {
    jobs: mpsc::Sender<Job>,
}

/// The thread is gone, or a job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the background thread did not finish the job")]
pub struct JobLost;

impl BackgroundThread {
    /// Starts the thread; `on_start` runs on it first (to lower its priority).
    pub fn spawn(name: &str, on_start: Option<fn()>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if let Some(start) = on_start {
                    start();
                }
                for job in queue {
                    // A panicking job drops its result sender, so its caller sees
                    // `JobLost`; the thread goes on with the next job.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Queues `f` behind the thread's earlier jobs; resolves with its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, JobLost>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| JobLost)?;
        rx.await.map_err(|_| JobLost)
    }

    /// Queues `f` without waiting for it.
    pub fn submit(&self, f: impl FnOnce() + Send + 'static) -> Result<(), JobLost> {
        self.jobs.send(Box::new(f)).map_err(|_| JobLost)
    }
}

impl std::fmt::Debug for BackgroundThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackgroundThread")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static STARTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn mark_started() {
        STARTED.with(|s| s.set(true));
    }

    #[test]
    fn jobs_run_in_order_on_the_started_thread_and_a_panic_loses_only_its_job() {
        actix::System::new().block_on(async {
            let thread = BackgroundThread::spawn("bg-test", Some(mark_started)).expect("spawn");
            let seen = thread
                .run(|| {
                    (
                        std::thread::current().name().map(str::to_string),
                        STARTED.with(|s| s.get()),
                    )
                })
                .await
                .expect("job");
            assert_eq!(seen, (Some("bg-test".to_string()), true));

            let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            for i in 0..3 {
                let order = order.clone();
                thread
                    .submit(move || order.lock().expect("lock").push(i))
                    .expect("submit");
            }
            let lost = thread.run(|| -> u32 { panic!("a failing job") }).await;
            assert!(lost.is_err(), "the panicking job's caller hears of it");
            assert_eq!(thread.run(|| 7).await.expect("still running"), 7);
            assert_eq!(*order.lock().expect("lock"), vec![0, 1, 2]);
        });
    }
}
