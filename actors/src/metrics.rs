//! Prometheus metrics (`/metrics`): counters and histograms updated as requests
//! finish, gauges set when scraped. Labels never carry a credential.

use crate::store::RequestRecord;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub account: String,
    pub model: String,
    /// Written as the empty string when there is none, like the other labels.
    pub status: Option<i32>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    pub account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// One of four fixed names: no allocation per observed request.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub failovers: Counter,
    pub rate_limit_events: Family<AccountLabel, Counter>,
    pub tokens: Family<KindLabel, Counter>,
    pub cost_usd: Counter<f64, AtomicU64>,
    pub response_seconds: Histogram,
    pub overhead_seconds: Histogram,
    pub accounts: Family<StateLabel, Gauge>,
    pub in_flight_streams: Gauge,
    pub dropped_records: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("claudeflare");
        let requests = Family::<RequestLabels, Counter>::default();
        let failovers = Counter::default();
        let rate_limit_events = Family::<AccountLabel, Counter>::default();
        let tokens = Family::<KindLabel, Counter>::default();
        let cost_usd = Counter::<f64, AtomicU64>::default();
        // 5 ms .. ~10 min
        let response_seconds = Histogram::new(exponential_buckets(0.005, 2.5, 14));
        // 10 µs .. ~80 ms
        let overhead_seconds = Histogram::new(exponential_buckets(0.000_01, 2.5, 11));
        let accounts = Family::<StateLabel, Gauge>::default();
        let in_flight_streams = Gauge::default();
        let dropped_records = Counter::default();
        registry.register(
            "requests",
            "Proxied requests by account, model and status",
            requests.clone(),
        );
        registry.register(
            "failovers",
            "Retries and moves to another account",
            failovers.clone(),
        );
        registry.register(
            "rate_limit_events",
            "Accounts benched by a rate limit",
            rate_limit_events.clone(),
        );
        registry.register("tokens", "Tokens by kind", tokens.clone());
        registry.register(
            "cost_usd",
            "Cost of proxied requests in USD",
            cost_usd.clone(),
        );
        registry.register(
            "response_seconds",
            "Time from request to the end of the response",
            response_seconds.clone(),
        );
        registry.register(
            "proxy_overhead_seconds",
            "Time spent in the proxy itself, excluding the upstream wait",
            overhead_seconds.clone(),
        );
        registry.register("accounts", "Accounts by state", accounts.clone());
        registry.register(
            "in_flight_streams",
            "Responses being streamed now",
            in_flight_streams.clone(),
        );
        registry.register(
            "dropped_records",
            "Request records dropped because the log queue was full",
            dropped_records.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            failovers,
            rate_limit_events,
            tokens,
            cost_usd,
            response_seconds,
            overhead_seconds,
            accounts,
            in_flight_streams,
            dropped_records,
        })
    }

    /// Counts a finished request.
    pub fn observe(&self, r: &RequestRecord) {
        self.requests
            .get_or_create(&RequestLabels {
                account: r.account_name.clone(),
                model: r.model.clone().unwrap_or_default(),
                status: r.status_code,
            })
            .inc();
        if r.failover_attempts > 0 {
            self.failovers.inc_by(r.failover_attempts as u64);
        }
        for (kind, n) in [
            ("input", r.input_tokens),
            ("output", r.output_tokens),
            ("cache_read", r.cache_read_input_tokens),
            ("cache_creation", r.cache_creation_input_tokens),
        ] {
            if let Some(n) = n.filter(|n| *n > 0) {
                self.tokens
                    .get_or_create(&KindLabel { kind })
                    .inc_by(n as u64);
            }
        }
        if let Some(c) = r.cost_usd.filter(|c| *c > 0.0) {
            self.cost_usd.inc_by(c);
        }
        self.response_seconds
            .observe(r.response_time_ms as f64 / 1000.0);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
