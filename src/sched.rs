//! Scheduling hints for the daemon's own threads.

/// The nice value of the request log's background thread where `SCHED_IDLE` is
/// refused: the lowest, so that a request waking up is let in first. Raising one's
/// own nice value needs no privilege.
pub const BACKGROUND_NICE: i32 = 19;

/// Moves the calling thread to `SCHED_IDLE`, or where that is refused lowers it to
/// [`BACKGROUND_NICE`]; the start hook of the engine's background thread
/// (`LoggerSettings::background_start`). Linux only: on Linux the policy and the
/// nice value belong to the thread, elsewhere to the whole process.
///
/// `SCHED_IDLE` rather than nice 19 because a request-path thread that wakes up
/// preempts an idle-policy thread at once, while a nice 19 thread that just got its
/// CPU may keep it for the rest of its slice: wrk's c=1 p99 through the proxy was
/// lower in each of eight alternating pairs, 0.48-1.05 ms against 0.85-1.38 at nice
/// 19 (docs/performance.md, twelfth round). Both get almost nothing of a CPU the
/// request path keeps busy; the logger only sends this thread work that can wait,
/// and a write there that starves gives up and goes to the blocking pool (`Pacing`).
#[allow(unsafe_code)]
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads the one `sched_param` passed by reference
        // for the duration of the call; pid 0 is the calling thread on Linux.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc == 0 {
            return;
        }
        let idle_error = std::io::Error::last_os_error();
        // SAFETY: setpriority takes plain integers and changes only the scheduling
        // of the calling thread (`who` 0 with PRIO_PROCESS is the calling thread on
        // Linux); no memory is shared with the kernel.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
        if rc != 0 {
            tracing::debug!(
                idle_error = %idle_error,
                error = %std::io::Error::last_os_error(),
                "could not lower the background thread's priority"
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn current_policy() -> i32 {
        // SAFETY: sched_getscheduler takes a plain integer and only reads.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = current_policy();
        let lowered = std::thread::spawn(|| {
            lower_current_thread_priority();
            current_policy()
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, libc::SCHED_IDLE);
        assert_eq!(
            current_policy(),
            before,
            "the test's own thread is untouched"
        );
        assert_ne!(before, libc::SCHED_IDLE);
    }
}
