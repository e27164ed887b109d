/// mimalloc instead of glibc's malloc: the request path makes ~90 short-lived
/// allocations per request, many freed on another thread than the one that made them,
/// and glibc's arenas spent ~15% of the daemon's CPU on them (`docs/performance.md`).
/// Only the binary: the library and its tests keep the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    claudeflare::cli::run()
}
