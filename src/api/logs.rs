//! `/api/logs`: the daemon's own log, as history and as a live stream.

use super::requests::{parse_limit, sse_response};
use crate::error::ApiError;
use crate::telemetry::{hub, LOG_HISTORY};
use actix_web::{get, web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<String>,
}

/// `GET /api/logs/history?limit`: the last N events (default and most 1 000),
/// oldest first.
#[utoipa::path(get, path = "/logs/history", summary = "The daemon's last log events, oldest first", params(("limit" = Option<i64>, Query, description = "1-1000, default 1000")), responses((status = 200, description = "Log events", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody)))]
#[get("/logs/history")]
pub async fn history(query: web::Query<HistoryQuery>) -> Result<HttpResponse, ApiError> {
    let max = LOG_HISTORY as i64;
    let limit = parse_limit(query.limit.as_deref(), max, max)?;
    Ok(HttpResponse::Ok().json(hub().history(limit as usize)))
}

/// `GET /api/logs/stream`: an SSE event `log` per log event.
#[utoipa::path(get, path = "/logs/stream", summary = "The daemon's log as server-sent events (`log`)", responses((status = 200, description = "text/event-stream")))]
#[get("/logs/stream")]
pub async fn live() -> HttpResponse {
    sse_response(hub().subscribe(), |event| {
        serde_json::to_value(event)
            .ok()
            .map(|v| ("log".to_string(), v))
    })
}
