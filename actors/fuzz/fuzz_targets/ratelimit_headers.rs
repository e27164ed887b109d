//! Rate-limit header parsing and the failover verdict on arbitrary header values:
//! never panics, and a bench is always in the future and at most 24 h away.
#![no_main]
use claudeflare_actors::protocol::ratelimit::{self, Verdict, MAX_BENCH_MS};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 10] = [
    "anthropic-ratelimit-unified-status",
    "anthropic-ratelimit-unified-reset",
    "anthropic-ratelimit-unified-5h-utilization",
    "anthropic-ratelimit-unified-7d-utilization",
    "anthropic-ratelimit-unified-overage-disabled-reason",
    "retry-after",
    "x-ratelimit-reset",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    let get = |name: &str| {
        NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get(i).copied())
    };
    let now = 1_764_000_000_000;
    let info = ratelimit::parse(get, now);
    let until = info.bench_until(now);
    assert!(until > now && until <= now + MAX_BENCH_MS);
    for status in [200u16, 401, 429, 503, 529] {
        if let Verdict::RateLimited { until_ms } = ratelimit::classify(status, &info, now) {
            assert!(until_ms > now && until_ms <= now + MAX_BENCH_MS);
        }
    }
});
