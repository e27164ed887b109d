//! `/api/logs`: the daemon's own log, as history and as a live stream.

use super::requests::{parse_limit, sse_response};
use crate::error::ApiError;
use crate::telemetry::{hub, LOG_HISTORY};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<String>,
}

/// `GET /api/logs/history?limit`: the last N events (default and most 1 000),
/// oldest first.
pub async fn history(query: web::Query<HistoryQuery>) -> Result<HttpResponse, ApiError> {
    let max = LOG_HISTORY as i64;
    let limit = parse_limit(query.limit.as_deref(), max, max)?;
    Ok(HttpResponse::Ok().json(hub().history(limit as usize)))
}

/// `GET /api/logs/stream`: an SSE event `log` per log event.
pub async fn stream() -> HttpResponse {
    sse_response(hub().subscribe(), |event| {
        serde_json::to_value(event)
            .ok()
            .map(|v| ("log".to_string(), v))
    })
}
