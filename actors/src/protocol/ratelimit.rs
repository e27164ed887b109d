//! Rate-limit headers and the failover decision they drive.

use crate::clock::parse_rfc3339_ms;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a rate-limit mark may bench an account.
pub const MAX_BENCH_MS: i64 = 24 * 3600 * 1000;
/// Bench time when a rate-limited answer names no reset.
pub const DEFAULT_BENCH_MS: i64 = 60 * 1000;

/// Unified statuses that mean "this account cannot serve until the reset".
const HARD_STATUSES: [&str; 5] = [
    "rate_limited",
    "rejected",
    "blocked",
    "queueing_hard",
    "payment_required",
];

/// What one upstream response says about its account's limits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimitInfo {
    /// `anthropic-ratelimit-unified-status` (subscriptions).
    pub status: Option<String>,
    /// When the binding window resets (unix ms).
    pub reset_ms: Option<i64>,
    /// Requests left in the window (API-key accounts).
    pub remaining: Option<i64>,
    pub utilization_5h: Option<f64>,
    pub utilization_7d: Option<f64>,
    /// `retry-after` as an absolute time (unix ms).
    pub retry_after_ms: Option<i64>,
    pub overage_disabled_reason: Option<String>,
    /// Any rate-limit header at all was present (a 429 without one is "windowless").
    pub has_limit_headers: bool,
}

impl RateLimitInfo {
    /// Whether the unified status is one of the hard states.
    pub fn is_hard(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|s| HARD_STATUSES.contains(&s))
    }

    /// The time the account may be used again, from the most specific header present.
    pub fn bench_until(&self, now_ms: i64) -> i64 {
        let until = self
            .reset_ms
            .or(self.retry_after_ms)
            .filter(|t| *t > now_ms)
            .unwrap_or(now_ms + DEFAULT_BENCH_MS);
        until.min(now_ms + MAX_BENCH_MS)
    }
}

/// Whether [`parse`] may ask for a header of this (lower-case) name. A caller can
/// keep just these from a response and answer `parse`'s ~20 lookups from that short
/// list instead of hashing every name against the whole header map.
pub fn is_limit_header(name: &str) -> bool {
    name.starts_with("anthropic-ratelimit-")
        || name.starts_with("x-ratelimit-")
        || name == "retry-after"
}

/// Reads the rate-limit headers of a response. `get` looks a header up by its
/// lower-case name. Unparseable values are ignored, never an error.
pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>, now_ms: i64) -> RateLimitInfo {
    let text = |name: &str| get(name).map(str::trim).filter(|v| !v.is_empty());
    let number = |name: &str| text(name).and_then(|v| v.parse::<f64>().ok());
    let unix_secs = |name: &str| {
        text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e11)
            .map(|v| (v * 1000.0) as i64)
    };

    let mut info = RateLimitInfo {
        status: text("anthropic-ratelimit-unified-status").map(str::to_string),
        utilization_5h: number("anthropic-ratelimit-unified-5h-utilization")
            .filter(|v| v.is_finite()),
        utilization_7d: number("anthropic-ratelimit-unified-7d-utilization")
            .filter(|v| v.is_finite()),
        overage_disabled_reason: text("anthropic-ratelimit-unified-overage-disabled-reason")
            .map(str::to_string),
        retry_after_ms: text("retry-after").and_then(|v| retry_after(v, now_ms)),
        ..RateLimitInfo::default()
    };

    info.reset_ms = unix_secs("anthropic-ratelimit-unified-reset")
        .or_else(|| text("x-ratelimit-reset").and_then(|v| flexible_reset(v, now_ms)))
        .or_else(|| api_key_reset(&text));

    info.remaining = text("anthropic-ratelimit-requests-remaining")
        .or_else(|| text("x-ratelimit-remaining-requests"))
        .or_else(|| text("x-ratelimit-remaining"))
        .and_then(|v| v.parse::<i64>().ok());

    info.has_limit_headers = info.status.is_some()
        || info.reset_ms.is_some()
        || info.retry_after_ms.is_some()
        || info.utilization_5h.is_some()
        || info.utilization_7d.is_some()
        || info.remaining.is_some();
    info
}

/// The reset of an API-key account's binding limit: among the request and token
/// windows, the latest of those that are exhausted, else the earliest.
fn api_key_reset<'a>(text: &impl Fn(&str) -> Option<&'a str>) -> Option<i64> {
    // (reset, remaining) per window: requests, tokens, input tokens, output tokens.
    const WINDOWS: [(&str, &str); 4] = [
        (
            "anthropic-ratelimit-requests-reset",
            "anthropic-ratelimit-requests-remaining",
        ),
        (
            "anthropic-ratelimit-tokens-reset",
            "anthropic-ratelimit-tokens-remaining",
        ),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "anthropic-ratelimit-input-tokens-remaining",
        ),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "anthropic-ratelimit-output-tokens-remaining",
        ),
    ];
    let mut exhausted: Option<i64> = None;
    let mut earliest: Option<i64> = None;
    for (reset_name, remaining_name) in WINDOWS {
        let reset = text(reset_name).and_then(parse_rfc3339_ms);
        let Some(reset) = reset else { continue };
        let remaining = text(remaining_name).and_then(|v| v.parse::<i64>().ok());
        if remaining == Some(0) {
            exhausted = Some(exhausted.map_or(reset, |e| e.max(reset)));
        }
        earliest = Some(earliest.map_or(reset, |e| e.min(reset)));
    }
    exhausted.or(earliest)
}

/// `retry-after`: delay seconds or an HTTP date.
fn retry_after(value: &str, now_ms: i64) -> Option<i64> {
    if let Ok(secs) = value.parse::<f64>() {
        return (0.0..1e9)
            .contains(&secs)
            .then(|| now_ms + (secs * 1000.0) as i64);
    }
    let at: SystemTime = httpdate::parse_http_date(value).ok()?;
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    i64::try_from(ms).ok()
}

/// `x-ratelimit-reset` means different things to different services: unix seconds,
/// delay seconds, or an RFC 3339 time. Large numbers are taken as unix seconds.
fn flexible_reset(value: &str, now_ms: i64) -> Option<i64> {
    if let Ok(n) = value.parse::<f64>() {
        if !(0.0..1e11).contains(&n) {
            return None;
        }
        return Some(if n > 1e9 {
            (n * 1000.0) as i64
        } else {
            now_ms + (n * 1000.0) as i64
        });
    }
    parse_rfc3339_ms(value)
}

/// What the proxy does with one upstream answer, decided before a byte reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to the client as it is.
    Deliver,
    /// The account's window is exhausted: bench it until then, try the next account.
    RateLimited { until_ms: i64 },
    /// A 429 that is not about the account: try the next account, bench nothing.
    Windowless,
    /// 529: a short cooldown, then the next account.
    Overloaded,
    /// 502/503/504 or a connection failure: the next account, or a retry on the last.
    Transient,
    /// 401/403: the credential is bad.
    AuthFailed,
}

/// Decides what a response with this status and these limits means for failover.
pub fn classify(status: u16, info: &RateLimitInfo, now_ms: i64) -> Verdict {
    match status {
        429 => {
            let out_of_credits = info.overage_disabled_reason.as_deref() == Some("out_of_credits");
            if out_of_credits || !info.has_limit_headers {
                Verdict::Windowless
            } else {
                Verdict::RateLimited {
                    until_ms: info.bench_until(now_ms),
                }
            }
        }
        529 => Verdict::Overloaded,
        502..=504 => Verdict::Transient,
        401 | 403 => Verdict::AuthFailed,
        _ => Verdict::Deliver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_764_000_000_000;

    #[test]
    fn every_header_parse_reads_passes_the_limit_header_filter() {
        let asked = std::cell::RefCell::new(Vec::new());
        // Unparseable everywhere: no branch stops early. Then a time everywhere but
        // the resets read first, so the API-key windows ask for their remaining too.
        let answers: [fn(&str) -> Option<&'static str>; 2] = [
            |_| Some("x"),
            |name| {
                (!matches!(
                    name,
                    "anthropic-ratelimit-unified-reset" | "x-ratelimit-reset"
                ))
                .then_some("2026-01-01T00:00:00Z")
            },
        ];
        for answer in answers {
            let _ = parse(
                |name| {
                    asked.borrow_mut().push(name.to_string());
                    answer(name)
                },
                NOW,
            );
        }
        let asked = asked.into_inner();
        assert!(
            asked
                .iter()
                .any(|n| n == "anthropic-ratelimit-output-tokens-remaining"),
            "asked only {asked:?}"
        );
        for name in asked {
            assert!(is_limit_header(&name), "{name} is read but filtered out");
        }
        assert!(!is_limit_header("content-type"));
        assert!(!is_limit_header("request-id"));
    }

    fn info(headers: &[(&str, &str)]) -> RateLimitInfo {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(|n| map.get(n).map(String::as_str), NOW)
    }

    #[test]
    fn unified_rejection_benches_until_the_reset() {
        let i = info(&[
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-reset", "1764003600"),
            ("anthropic-ratelimit-unified-5h-utilization", "1.01"),
            ("anthropic-ratelimit-unified-7d-utilization", "0.42"),
            ("retry-after", "7835"),
            ("x-should-retry", "true"),
        ]);
        assert!(i.is_hard());
        assert_eq!(i.utilization_5h, Some(1.01));
        assert_eq!(i.utilization_7d, Some(0.42));
        assert_eq!(
            classify(429, &i, NOW),
            Verdict::RateLimited {
                until_ms: 1_764_003_600_000
            }
        );
    }

    #[test]
    fn windowless_and_out_of_credits_do_not_bench() {
        assert_eq!(
            classify(429, &info(&[("x-should-retry", "true")]), NOW),
            Verdict::Windowless
        );
        let credits = info(&[
            ("anthropic-ratelimit-unified-status", "rejected"),
            (
                "anthropic-ratelimit-unified-overage-disabled-reason",
                "out_of_credits",
            ),
        ]);
        assert_eq!(classify(429, &credits, NOW), Verdict::Windowless);
    }

    #[test]
    fn retry_after_forms_and_clamps() {
        let secs = info(&[("retry-after", "30")]);
        assert_eq!(secs.bench_until(NOW), NOW + 30_000);
        let date = info(&[("retry-after", "Wed, 21 Oct 2099 07:28:00 GMT")]);
        assert_eq!(date.bench_until(NOW), NOW + MAX_BENCH_MS);
        let none = info(&[("anthropic-ratelimit-unified-status", "rate_limited")]);
        assert_eq!(none.bench_until(NOW), NOW + DEFAULT_BENCH_MS);
        let past = info(&[("anthropic-ratelimit-unified-reset", "1000")]);
        assert_eq!(past.bench_until(NOW), NOW + DEFAULT_BENCH_MS);
    }

    #[test]
    fn api_key_headers_pick_the_exhausted_window() {
        let i = info(&[
            ("anthropic-ratelimit-requests-remaining", "10"),
            ("anthropic-ratelimit-requests-reset", "2025-11-24T16:00:10Z"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2025-11-24T16:01:00Z"),
        ]);
        assert_eq!(i.remaining, Some(10));
        assert_eq!(
            i.reset_ms,
            crate::clock::parse_rfc3339_ms("2025-11-24T16:01:00Z")
        );
    }

    #[test]
    fn statuses_map_to_verdicts() {
        let none = RateLimitInfo::default();
        assert_eq!(classify(529, &none, NOW), Verdict::Overloaded);
        for s in [502, 503, 504] {
            assert_eq!(classify(s, &none, NOW), Verdict::Transient);
        }
        for s in [401, 403] {
            assert_eq!(classify(s, &none, NOW), Verdict::AuthFailed);
        }
        for s in [200, 400, 404, 413, 500] {
            assert_eq!(classify(s, &none, NOW), Verdict::Deliver);
        }
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_values_never_panics_and_bench_is_bounded(
            values in proptest::collection::vec(".{0,40}", 8)
        ) {
            let names = [
                "anthropic-ratelimit-unified-status",
                "anthropic-ratelimit-unified-reset",
                "anthropic-ratelimit-unified-5h-utilization",
                "retry-after",
                "x-ratelimit-reset",
                "anthropic-ratelimit-requests-reset",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-unified-overage-disabled-reason",
            ];
            let pairs: Vec<(&str, &str)> =
                names.iter().copied().zip(values.iter().map(String::as_str)).collect();
            let i = info(&pairs);
            let until = i.bench_until(NOW);
            prop_assert!(until > NOW && until <= NOW + MAX_BENCH_MS);
            if let Verdict::RateLimited { until_ms } = classify(429, &i, NOW) {
                prop_assert!(until_ms > NOW && until_ms <= NOW + MAX_BENCH_MS);
            }
        }

        #[test]
        fn numeric_resets_are_honoured_within_bounds(delay in 1i64..200_000) {
            let reset = (NOW / 1000 + delay).to_string();
            let i = info(&[
                ("anthropic-ratelimit-unified-status", "rejected"),
                ("anthropic-ratelimit-unified-reset", &reset),
            ]);
            let expected = ((NOW / 1000 + delay) * 1000).min(NOW + MAX_BENCH_MS);
            prop_assert_eq!(classify(429, &i, NOW), Verdict::RateLimited { until_ms: expected });
        }
    }
}
