//! The `claudeflare` daemon: configuration, the actix-web server (proxy and
//! management API) and the command line. The engine lives in `claudeflare-actors`.
// `deny`, not `forbid`: the exceptions are FFI calls (`memory::release_free_memory`,
// `memory::purge_freed_pages`, `sched::lower_current_thread_priority`).
#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod header_limit;
pub mod memory;
pub mod proxy;
pub mod sched;
pub mod startup;
pub mod telemetry;
pub mod tui;

pub use config::Config;
pub use startup::Application;
