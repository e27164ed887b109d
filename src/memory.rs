//! Giving freed heap back to the operating system.
//!
//! glibc's malloc keeps memory freed by one thread in that thread's arena for reuse, and
//! only returns the top of the main arena by itself. Under a burst of large streams
//! (payload captures, SSE buffers) the daemon's resident size therefore steps up and
//! stays there, even though the live heap is back to a few megabytes (measured with
//! heaptrack in the soak test, `docs/testing.md`). `malloc_trim(0)` walks every arena
//! and hands whole free pages back, so the resident size follows the live heap again.
//! SQLite's page cache and statements come from glibc's heap; the binary's own
//! allocations go to mimalloc (`src/main.rs`), which `malloc_trim` does not reach.
//! mimalloc gives its freed pages back after a delay, but only when some thread next
//! allocates on a slow path, so an idle daemon kept them; [`purge_freed_pages`] runs
//! those purges. The glibc trim is a no-op on other platforms.

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

/// Runs mimalloc's due purges: hands back the pages freed more than its purge delay
/// (1 s) ago.
///
/// mimalloc has no thread of its own for this. It purges when some thread's allocation
/// takes a slow path, and an idle daemon's threads take none, so after a burst the freed
/// pages stayed resident: 2.4 MB of them 12 s after 10 000 aborted streams, which this
/// call gave back at once (`docs/performance.md`, eighteenth round). The purge is
/// program-wide, but only from a thread that has allocated through mimalloc (on one
/// that has not, the call does nothing); not run on the blocking pool for that reason.
#[allow(unsafe_code)]
pub fn purge_freed_pages() {
    // SAFETY: mi_collect takes no pointers; it walks the calling thread's own heap and
    // mimalloc's arenas under mimalloc's own locks. Without mimalloc as the allocator
    // (the library's tests) it finds an empty heap and returns.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// Trims every [`TRIM_EVERY`] for as long as the runtime runs: mimalloc's purges on this
/// task's thread (quick: only what is due), glibc's trim on a blocking thread so that
/// the arbiter running the engine's actors never waits for it.
pub async fn trim_loop() {
    let mut tick = actix_web::rt::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        purge_freed_pages();
        // A failed join only means the runtime is shutting down.
        let _ = actix_web::rt::task::spawn_blocking(release_free_memory).await;
    }
}
