//! The StatsAggregator actor: live counters over every finished request (seeded from
//! the stored history at start), the Prometheus counters, and the publisher that
//! live streams subscribe to.

use crate::metrics::Metrics;
use crate::store::{GroupRow, HistoryTotals, RequestRecord};
use actix::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it is cut off (it is
/// never allowed to slow the proxy down).
const EVENT_BUFFER: usize = 1024;
const RECENT_ERRORS: usize = 20;
const TOP_MODELS: usize = 10;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenTotals {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_creation: i64,
}

impl TokenTotals {
    fn add(&mut self, r: &RequestRecord) {
        self.input += r.input_tokens.unwrap_or(0);
        self.output += r.output_tokens.unwrap_or(0);
        self.cache_read += r.cache_read_input_tokens.unwrap_or(0);
        self.cache_creation += r.cache_creation_input_tokens.unwrap_or(0);
    }

    fn from_group(g: &GroupRow) -> Self {
        TokenTotals {
            input: g.input_tokens,
            output: g.output_tokens,
            cache_read: g.cache_read_input_tokens,
            cache_creation: g.cache_creation_input_tokens,
        }
    }

    pub fn total(&self) -> i64 {
        self.input + self.output + self.cache_read + self.cache_creation
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecentError {
    pub id: String,
    pub timestamp: i64,
    pub account_name: String,
    pub status_code: Option<i32>,
    pub message: Option<String>,
}

/// Counters of one group (an account, a model, or everything).
#[derive(Clone, Debug, Default, PartialEq)]
struct Tally {
    requests: i64,
    successes: i64,
    response_time_ms: i64,
    tokens: TokenTotals,
    cost_usd: f64,
    tps_sum: f64,
    tps_count: i64,
}

impl Tally {
    fn add(&mut self, r: &RequestRecord) {
        self.requests += 1;
        if r.success {
            self.successes += 1;
        }
        self.response_time_ms += r.response_time_ms;
        self.tokens.add(r);
        self.cost_usd += r.cost_usd.unwrap_or(0.0);
        if let Some(tps) = r.output_tokens_per_second {
            self.tps_sum += tps;
            self.tps_count += 1;
        }
    }

    fn from_group(g: &GroupRow) -> Self {
        Tally {
            requests: g.requests,
            successes: g.successes,
            response_time_ms: (g.avg_response_time_ms * g.requests as f64) as i64,
            tokens: TokenTotals::from_group(g),
            cost_usd: g.cost_usd,
            tps_sum: g.avg_output_tokens_per_second.unwrap_or(0.0),
            tps_count: i64::from(g.avg_output_tokens_per_second.is_some()),
        }
    }

    fn success_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            100.0 * self.successes as f64 / self.requests as f64
        }
    }

    fn avg_response_time(&self) -> f64 {
        self.response_time_ms as f64 / self.requests.max(1) as f64
    }

    fn avg_tps(&self) -> Option<f64> {
        (self.tps_count > 0).then(|| self.tps_sum / self.tps_count as f64)
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelCount {
    pub model: String,
    pub count: i64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountStats {
    pub name: String,
    pub requests: i64,
    /// Percent, 0–100.
    pub success_rate: f64,
    pub avg_response_time: f64,
    pub total_tokens: i64,
    pub total_cost_usd: f64,
}

/// The counters as `/api/stats` shows them.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub total_requests: i64,
    pub successful_requests: i64,
    /// Percent, 0–100.
    pub success_rate: f64,
    /// Milliseconds.
    pub avg_response_time: f64,
    pub total_tokens: i64,
    pub tokens_by_kind: TokenTotals,
    pub total_cost_usd: f64,
    pub avg_tokens_per_second: Option<f64>,
    pub top_models: Vec<ModelCount>,
    pub accounts: Vec<AccountStats>,
    /// Per access key (when access control is on), since the daemon started.
    pub keys: Vec<AccountStats>,
    pub recent_errors: Vec<RecentError>,
    /// Which daemon answers (several can share one PostgreSQL history).
    pub instance_id: String,
}

/// A live event for subscribers of the request stream.
#[derive(Clone, Debug)]
pub enum RequestEvent {
    /// A request arrived (before an account is chosen).
    Started(Arc<RequestStart>),
    Finished(Arc<RequestRecord>),
}

/// What is known of a request when it arrives.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStart {
    pub id: String,
    pub timestamp: String,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub stream: bool,
}

/// The live request feed, shared with the proxy: a request's start goes to
/// subscribers straight from the worker (no actor message, and nothing is built
/// when nobody listens); finished requests come from the aggregator after it
/// counted them.
#[derive(Clone, Debug)]
pub struct LiveFeed(broadcast::Sender<RequestEvent>);

impl Default for LiveFeed {
    fn default() -> Self {
        Self(broadcast::channel(EVENT_BUFFER).0)
    }
}

impl LiveFeed {
    pub fn has_subscribers(&self) -> bool {
        self.0.receiver_count() > 0
    }

    /// A request arrived (nothing is counted).
    pub fn started(&self, start: RequestStart) {
        if self.has_subscribers() {
            let _ = self.0.send(RequestEvent::Started(Arc::new(start)));
        }
    }
}

/// The aggregator; see the module docs.
pub struct StatsAggregator {
    all: Tally,
    by_model: HashMap<String, Tally>,
    by_account: HashMap<String, Tally>,
    by_key: HashMap<String, Tally>,
    recent_errors: VecDeque<RecentError>,
    events: broadcast::Sender<RequestEvent>,
    metrics: Arc<Metrics>,
    instance_id: String,
}

/// What the store knows at start: totals, and sums per model and per account.
#[derive(Clone, Debug, Default)]
pub struct HistorySeed {
    pub totals: HistoryTotals,
    pub by_model: Vec<GroupRow>,
    pub by_account: Vec<GroupRow>,
}

/// Counts a record in its group's tally; the name is copied only for a new group
/// (`entry` would copy it for every request).
fn add_to(groups: &mut HashMap<String, Tally>, name: &str, r: &RequestRecord) {
    if let Some(t) = groups.get_mut(name) {
        t.add(r);
        return;
    }
    groups.entry(name.to_string()).or_default().add(r);
}

impl StatsAggregator {
    pub fn new(seed: HistorySeed, metrics: Arc<Metrics>, feed: LiveFeed) -> Self {
        let events = feed.0;
        let h = &seed.totals;
        let mut agg = Self {
            all: Tally {
                requests: h.requests,
                successes: h.successes,
                response_time_ms: h.response_time_ms,
                tokens: TokenTotals {
                    input: h.input_tokens,
                    output: h.output_tokens,
                    cache_read: h.cache_read_input_tokens,
                    cache_creation: h.cache_creation_input_tokens,
                },
                cost_usd: h.cost_usd,
                ..Tally::default()
            },
            by_model: HashMap::new(),
            by_account: HashMap::new(),
            by_key: HashMap::new(),
            recent_errors: VecDeque::with_capacity(RECENT_ERRORS),
            events,
            metrics,
            instance_id: String::new(),
        };
        for g in &seed.by_model {
            if let Some(k) = &g.key {
                agg.by_model.insert(k.clone(), Tally::from_group(g));
            }
        }
        for g in &seed.by_account {
            if let Some(k) = &g.key {
                agg.by_account.insert(k.clone(), Tally::from_group(g));
            }
        }
        agg
    }

    /// The daemon's name, shown with its stats.
    pub fn with_instance(mut self, instance_id: &str) -> Self {
        self.instance_id = instance_id.to_string();
        self
    }

    fn add(&mut self, r: &RequestRecord) {
        self.all.add(r);
        if let Some(model) = &r.model {
            add_to(&mut self.by_model, model, r);
        }
        add_to(&mut self.by_account, &r.account_name, r);
        if let Some(key) = &r.api_key_name {
            add_to(&mut self.by_key, key, r);
        }
        if !r.success {
            if self.recent_errors.len() == RECENT_ERRORS {
                self.recent_errors.pop_back();
            }
            self.recent_errors.push_front(RecentError {
                id: r.id.clone(),
                timestamp: r.timestamp,
                account_name: r.account_name.clone(),
                status_code: r.status_code,
                message: r.error_message.clone(),
            });
        }
        self.metrics.observe(r);
    }

    fn snapshot(&self) -> StatsSnapshot {
        let mut top_models: Vec<ModelCount> = self
            .by_model
            .iter()
            .map(|(m, t)| ModelCount {
                model: m.clone(),
                count: t.requests,
            })
            .collect();
        top_models.sort_by(|a, b| b.count.cmp(&a.count).then(a.model.cmp(&b.model)));
        top_models.truncate(TOP_MODELS);
        let rows = |groups: &HashMap<String, Tally>| {
            let mut rows: Vec<AccountStats> = groups
                .iter()
                .map(|(name, t)| AccountStats {
                    name: name.clone(),
                    requests: t.requests,
                    success_rate: t.success_rate(),
                    avg_response_time: t.avg_response_time(),
                    total_tokens: t.tokens.total(),
                    total_cost_usd: t.cost_usd,
                })
                .collect();
            rows.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.name.cmp(&b.name)));
            rows
        };
        let accounts = rows(&self.by_account);
        let keys = rows(&self.by_key);
        let tps = {
            let (sum, n) = self
                .by_model
                .values()
                .fold((0.0, 0), |(s, n), t| (s + t.tps_sum, n + t.tps_count));
            (n > 0).then(|| sum / n as f64)
        };
        StatsSnapshot {
            total_requests: self.all.requests,
            successful_requests: self.all.successes,
            success_rate: self.all.success_rate(),
            avg_response_time: self.all.avg_response_time(),
            total_tokens: self.all.tokens.total(),
            tokens_by_kind: self.all.tokens.clone(),
            total_cost_usd: self.all.cost_usd,
            avg_tokens_per_second: self.all.avg_tps().or(tps),
            top_models,
            accounts,
            keys,
            recent_errors: self.recent_errors.iter().cloned().collect(),
            instance_id: self.instance_id.clone(),
        }
    }
}

impl Actor for StatsAggregator {
    type Context = Context<Self>;
}

/// Requests finished, oldest first (passed on by the logger, one message for each
/// batch of records it received).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestsFinished(pub Vec<Arc<RequestRecord>>);

impl Handler<RequestsFinished> for StatsAggregator {
    type Result = ();

    fn handle(&mut self, msg: RequestsFinished, _: &mut Self::Context) {
        for record in msg.0 {
            self.add(&record);
            // No subscriber is fine.
            let _ = self.events.send(RequestEvent::Finished(record));
        }
    }
}

#[derive(Message)]
#[rtype(result = "StatsSnapshot")]
pub struct GetStats;

impl Handler<GetStats> for StatsAggregator {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

/// Zeroes every counter (the history was cleared).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResetStats;

impl Handler<ResetStats> for StatsAggregator {
    type Result = ();

    fn handle(&mut self, _: ResetStats, _: &mut Self::Context) {
        self.all = Tally::default();
        self.by_model.clear();
        self.by_account.clear();
        self.by_key.clear();
        self.recent_errors.clear();
    }
}

/// A live feed of request events. A subscriber that falls more than a buffer behind
/// sees `Lagged` and is expected to give up, instead of holding the proxy up.
#[derive(Message)]
#[rtype(result = "broadcast::Receiver<RequestEvent>")]
pub struct SubscribeRequests;

impl Handler<SubscribeRequests> for StatsAggregator {
    type Result = MessageResult<SubscribeRequests>;

    fn handle(&mut self, _: SubscribeRequests, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.events.subscribe())
    }
}
