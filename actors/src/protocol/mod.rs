//! What the proxy must know about the Anthropic Messages API: which headers to pass,
//! how rate limits are announced, where usage hides in JSON and SSE answers, and what
//! tokens cost. Pure functions and small state machines, no I/O.

pub mod headers;
pub mod pricing;
pub mod ratelimit;
pub mod request_meta;
pub mod sse;
pub mod usage;

pub use pricing::{Price, PriceTable};
pub use ratelimit::{classify, RateLimitInfo, Verdict};
pub use request_meta::RequestMeta;
pub use sse::SseUsageParser;
pub use usage::{ResponseUsage, Usage};
