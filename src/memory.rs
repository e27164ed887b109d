//! Giving freed heap back to the operating system.
//!
//! glibc's malloc keeps memory freed by one thread in that thread's arena for reuse, and
//! only returns the top of the main arena by itself. Under a burst of large streams
//! (payload captures, SSE buffers) the daemon's resident size therefore steps up and
//! stays there, even though the live heap is back to a few megabytes (measured with
//! heaptrack in the soak test, `docs/testing.md`). `malloc_trim(0)` walks every arena
//! and hands whole free pages back, so the resident size follows the live heap again.
//! The binary's own allocations go to mimalloc (`src/main.rs`), which this does not
//! reach (it purges its own free pages after a delay, and kept ~50 MB after a c=64
//! run in docs/performance.md); SQLite's page cache and statements still come from
//! glibc's heap, and those are what this trims now. On other platforms it is a no-op.

use std::time::Duration;

/// How often the daemon trims. A trim takes well under a millisecond on a heap of
/// this size. Every 10 s left a sawtooth of 2-3 MB in the RSS under steady load (the
/// freed pages malloc touches again between two trims); every second it is about
/// 1 MB, and the page faults of re-touching them do not show in the throughput
/// benchmark (`docs/performance.md`).
pub const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Returns freed heap pages to the operating system (glibc only).
#[allow(unsafe_code)]
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes malloc's own locks and touches no Rust-visible
    // memory; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims every [`TRIM_EVERY`] for as long as the runtime runs, on a blocking thread so
/// that the arbiter running the engine's actors never waits for it.
pub async fn trim_loop() {
    let mut tick = actix_web::rt::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A failed join only means the runtime is shutting down.
        let _ = actix_web::rt::task::spawn_blocking(release_free_memory).await;
    }
}
