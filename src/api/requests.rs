//! `/api/requests`: the request history, newest first.

use crate::error::ApiError;
use actix_web::{web, HttpResponse};
use claudeflare_actors::clock::iso;
use claudeflare_actors::store::{blocking, RequestRecord};
use claudeflare_actors::Engine;
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
}

/// One row of `/api/requests`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRow {
    id: String,
    timestamp: String,
    method: String,
    path: String,
    account_id: Option<String>,
    account_name: String,
    status_code: Option<i32>,
    success: bool,
    error_message: Option<String>,
    response_time_ms: i64,
    time_to_first_token_ms: Option<i64>,
    failover_attempts: i32,
    model: Option<String>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cache_read_input_tokens: Option<i64>,
    cache_creation_input_tokens: Option<i64>,
    cost_usd: Option<f64>,
    output_tokens_per_second: Option<f64>,
    stream: bool,
}

impl From<RequestRecord> for RequestRow {
    fn from(r: RequestRecord) -> Self {
        RequestRow {
            id: r.id,
            timestamp: iso(r.timestamp),
            method: r.method,
            path: r.path,
            account_id: r.account_id,
            account_name: r.account_name,
            status_code: r.status_code,
            success: r.success,
            error_message: r.error_message,
            response_time_ms: r.response_time_ms,
            time_to_first_token_ms: r.time_to_first_token_ms,
            failover_attempts: r.failover_attempts,
            model: r.model,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_read_input_tokens: r.cache_read_input_tokens,
            cache_creation_input_tokens: r.cache_creation_input_tokens,
            cost_usd: r.cost_usd,
            output_tokens_per_second: r.output_tokens_per_second,
            stream: r.stream,
        }
    }
}

pub async fn list(
    engine: web::Data<Engine>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit: must be a whole number from 1 to {MAX_LIMIT}, not {text:?}"
                ))
            })?,
    };
    let store = engine.store.clone();
    let rows = blocking(move || store.recent_requests(limit)).await?;
    let rows: Vec<RequestRow> = rows.into_iter().map(RequestRow::from).collect();
    Ok(HttpResponse::Ok().json(rows))
}
