//! Wall-clock helpers. Every timestamp the engine stores is unix milliseconds (an `i64`),
//! which reads the same in SQLite and PostgreSQL and sorts as a number.

use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats unix milliseconds as RFC 3339 (ISO 8601) in UTC, for the API.
pub fn iso(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses an RFC 3339 time into unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips() {
        let ms = 1_764_165_600_123;
        assert_eq!(iso(ms), "2025-11-26T14:00:00.123Z");
        assert_eq!(parse_rfc3339_ms(&iso(ms)), Some(ms));
    }
}

/// Lets a repeated failure be logged once per interval instead of once per
/// attempt (a database or disk can stay away for a long time while every write,
/// connection and retry fails again).
#[derive(Debug)]
pub struct LogThrottle {
    every: std::time::Duration,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl LogThrottle {
    /// At most once a minute.
    pub const fn per_minute() -> Self {
        Self {
            every: std::time::Duration::from_secs(60),
            last: std::sync::Mutex::new(None),
        }
    }

    /// Whether to log now; `true` starts a new interval.
    pub fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= self.every);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }
}

#[cfg(test)]
mod throttle_tests {
    #[test]
    fn a_throttle_lets_the_first_through_and_holds_the_rest() {
        let t = super::LogThrottle::per_minute();
        assert!(t.due());
        assert!(!t.due());
        assert!(!t.due());
    }
}
