//! The StatsAggregator actor: live counters over every finished request (seeded from
//! the stored history at start), and the publisher live streams subscribe to.

use crate::store::{HistoryTotals, RequestRecord};
use actix::prelude::*;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many finished-request events a slow subscriber may fall behind before it
/// misses some (it is never allowed to slow the proxy down).
const EVENT_BUFFER: usize = 1024;
const RECENT_ERRORS: usize = 20;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TokenTotals {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_creation: i64,
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

/// The counters as `/api/stats` shows them.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub total_requests: i64,
    pub successful_requests: i64,
    pub success_rate: f64,
    pub avg_response_time_ms: f64,
    pub total_tokens: i64,
    pub tokens_by_kind: TokenTotals,
    pub total_cost_usd: f64,
    /// Requests per model since the daemon started.
    pub models: HashMap<String, i64>,
    pub recent_errors: Vec<RecentError>,
}

/// The aggregator; see the module docs.
pub struct StatsAggregator {
    requests: i64,
    successes: i64,
    response_time_ms: i64,
    tokens: TokenTotals,
    cost_usd: f64,
    models: HashMap<String, i64>,
    recent_errors: VecDeque<RecentError>,
    events: broadcast::Sender<Arc<RequestRecord>>,
}

impl StatsAggregator {
    pub fn new(history: HistoryTotals) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Self {
            requests: history.requests,
            successes: history.successes,
            response_time_ms: history.response_time_ms,
            tokens: TokenTotals {
                input: history.input_tokens,
                output: history.output_tokens,
                cache_read: history.cache_read_input_tokens,
                cache_creation: history.cache_creation_input_tokens,
            },
            cost_usd: history.cost_usd,
            models: HashMap::new(),
            recent_errors: VecDeque::with_capacity(RECENT_ERRORS),
            events,
        }
    }

    fn add(&mut self, r: &RequestRecord) {
        self.requests += 1;
        if r.success {
            self.successes += 1;
        } else {
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
        self.response_time_ms += r.response_time_ms;
        self.tokens.input += r.input_tokens.unwrap_or(0);
        self.tokens.output += r.output_tokens.unwrap_or(0);
        self.tokens.cache_read += r.cache_read_input_tokens.unwrap_or(0);
        self.tokens.cache_creation += r.cache_creation_input_tokens.unwrap_or(0);
        self.cost_usd += r.cost_usd.unwrap_or(0.0);
        if let Some(model) = &r.model {
            *self.models.entry(model.clone()).or_insert(0) += 1;
        }
    }

    fn snapshot(&self) -> StatsSnapshot {
        let n = self.requests.max(1) as f64;
        StatsSnapshot {
            total_requests: self.requests,
            successful_requests: self.successes,
            success_rate: if self.requests == 0 {
                0.0
            } else {
                self.successes as f64 / n
            },
            avg_response_time_ms: self.response_time_ms as f64 / n,
            total_tokens: self.tokens.input
                + self.tokens.output
                + self.tokens.cache_read
                + self.tokens.cache_creation,
            tokens_by_kind: self.tokens.clone(),
            total_cost_usd: self.cost_usd,
            models: self.models.clone(),
            recent_errors: self.recent_errors.iter().cloned().collect(),
        }
    }
}

impl Actor for StatsAggregator {
    type Context = Context<Self>;
}

/// A request finished (sent by the proxy alongside the record to the logger).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestFinished(pub Arc<RequestRecord>);

impl Handler<RequestFinished> for StatsAggregator {
    type Result = ();

    fn handle(&mut self, msg: RequestFinished, _: &mut Self::Context) {
        self.add(&msg.0);
        // No subscriber is fine.
        let _ = self.events.send(msg.0);
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

/// A live feed of finished requests. A subscriber that falls more than a buffer behind
/// misses events (it sees `Lagged`) instead of holding the proxy up.
#[derive(Message)]
#[rtype(result = "broadcast::Receiver<Arc<RequestRecord>>")]
pub struct SubscribeRequests;

impl Handler<SubscribeRequests> for StatsAggregator {
    type Result = MessageResult<SubscribeRequests>;

    fn handle(&mut self, _: SubscribeRequests, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.events.subscribe())
    }
}
