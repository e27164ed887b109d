//! Claudeflare's engine: the account pool and the actors that own it, the Anthropic
//! protocol knowledge the proxy needs, and the diesel store.
//!
//! The HTTP layer (the `claudeflare` crate) talks to this crate only through the
//! typed messages of the actors in [`Engine`] and the pure functions of [`protocol`].
#![forbid(unsafe_code)]

pub mod background;
pub mod clock;
pub mod domain;
pub mod engine;
pub mod intake;
pub mod keys;
pub mod logger;
pub mod metrics;
pub mod oauth;
pub mod protocol;
pub mod providers;
pub mod refresher;
pub mod registry;
pub mod secrets;
pub mod selector;
pub mod stats;
pub mod store;
pub mod strategies;

pub use domain::{Account, AccountKind, AccountSummary, Secret};
pub use engine::{Engine, EngineError, EngineSettings};
pub use store::{Store, StoreError};
