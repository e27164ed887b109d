//! Scheduling hints for the daemon's own threads.

/// The nice value of the request log's background thread: the lowest, so that a
/// request waking up is let in first. Unlike `SCHED_IDLE` it keeps a share of a busy
/// CPU (15 against 1 024 for a normal thread), and raising one's own nice value needs
/// no privilege (docs/performance.md, tenth round).
pub const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread's priority to [`BACKGROUND_NICE`]; the start hook of the
/// engine's background thread (`LoggerSettings::background_start`). Linux only: on
/// Linux the nice value belongs to the thread, elsewhere to the whole process.
#[allow(unsafe_code)]
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and changes only the scheduling
        // of the calling thread (`who` 0 with PRIO_PROCESS is the calling thread on
        // Linux); no memory is shared with the kernel.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
        if rc != 0 {
            tracing::debug!(
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
    fn current_nice() -> i32 {
        // SAFETY: as above; getpriority only reads. -1 is a valid nice value, so
        // errno is not consulted: the assertions below would fail on an error.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = current_nice();
        let lowered = std::thread::spawn(|| {
            lower_current_thread_priority();
            current_nice()
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, BACKGROUND_NICE);
        assert_eq!(current_nice(), before, "the test's own thread is untouched");
    }
}
