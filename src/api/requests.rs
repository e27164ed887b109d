//! `/api/requests`: the request history (filtered, paged), one request with its
//! payload, and a live stream of finished requests.

use crate::error::ApiError;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpResponse};
use claudeflare_actors::clock::iso;
use claudeflare_actors::logger::PendingEntry;
use claudeflare_actors::stats::{RequestEvent, SubscribeRequests};
use claudeflare_actors::store::{
    blocking, RequestFilter, RequestPayload, RequestRecord, StatusFilter,
};
use claudeflare_actors::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;
const MAX_DETAIL_LIMIT: i64 = 100;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    before: Option<String>,
    account: Option<String>,
    model: Option<String>,
    status: Option<String>,
    /// The access key's name.
    key: Option<String>,
}

/// One row of `/api/requests`.
#[derive(Serialize, utoipa::ToSchema)]
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
    /// What the client asked for (differs from `model` when a model map applied).
    requested_model: Option<String>,
    provider: Option<String>,
    /// The access key the request came with.
    api_key_name: Option<String>,
    /// The daemon that answered (instances sharing a PostgreSQL history).
    instance_id: Option<String>,
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
            requested_model: r.requested_model,
            provider: r.provider,
            api_key_name: r.api_key_name,
            instance_id: r.instance_id,
        }
    }
}

pub(crate) fn parse_limit(text: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit: must be a whole number from 1 to {max}, not {text:?}"
                ))
            }),
    }
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `GET /api/requests?limit&before&account&model&status`: newest first. Page with
/// `before=<the last row's id>`.
#[utoipa::path(get, path = "/requests", summary = "The request history, newest first; page with before=<last id>", params(("limit" = Option<i64>, Query, description = "1-1000, default 50"), ("before" = Option<String>, Query, description = "Only requests older than this request id"), ("account" = Option<String>, Query, description = "Account id or name"), ("model" = Option<String>, Query), ("status" = Option<String>, Query, description = "success, error or a status code"), ("key" = Option<String>, Query, description = "The access key's name")), responses((status = 200, description = "Rows", body = [RequestRow]), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody)))]
#[get("/requests")]
pub async fn list(
    engine: web::Data<Engine>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = RequestFilter {
        limit: parse_limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?,
        before: non_empty(&query.before),
        account: non_empty(&query.account),
        model: non_empty(&query.model),
        key: non_empty(&query.key),
        status: StatusFilter::parse(query.status.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(format!("status: {e}")))?,
    };
    let store = engine.store.clone();
    let rows = blocking(move || store.query_requests(&filter)).await?;
    let rows: Vec<RequestRow> = rows.into_iter().map(RequestRow::from).collect();
    Ok(HttpResponse::Ok().json(rows))
}

/// A stored body as the dashboard shows it: JSON when it is JSON, SSE as its list of
/// events, text when it is text, else base64.
fn decode_body(body: Option<&[u8]>, content_type: &str) -> Value {
    let Some(bytes) = body else {
        return Value::Null;
    };
    if bytes.is_empty() {
        return Value::Null;
    }
    if content_type.contains("event-stream") {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return sse_events(text);
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_string()),
        Err(_) => {
            use base64::Engine as _;
            json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) })
        }
    }
}

fn sse_events(text: &str) -> Value {
    let mut events = Vec::new();
    for block in text.replace("\r\n", "\n").split("\n\n") {
        let mut name = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if name.is_none() && data.is_empty() {
            continue;
        }
        let data = data.join("\n");
        let data = serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data));
        events.push(json!({ "event": name, "data": data }));
    }
    Value::Array(events)
}

fn payload_json(p: &RequestPayload) -> Value {
    let headers = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let content_type = |h: &Value| {
        h.get("content-type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let request_headers = headers(&p.request_headers);
    let response_headers = headers(&p.response_headers);
    json!({
        "requestBody": decode_body(p.request_body.as_deref(), &content_type(&request_headers)),
        "responseBody": decode_body(p.response_body.as_deref(), &content_type(&response_headers)),
        "requestHeaders": request_headers,
        "responseHeaders": response_headers,
        "truncated": p.truncated,
    })
}

fn with_payload(record: RequestRecord, payload: Option<&RequestPayload>) -> Value {
    let mut row = serde_json::to_value(RequestRow::from(record)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut row {
        map.insert("payload".into(), payload.map_or(Value::Null, payload_json));
    }
    row
}

/// `GET /api/requests/{id}`: one request with its payload.
#[utoipa::path(get, path = "/requests/{id}", summary = "One request with its payload (bodies decoded)", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "The request", body = Object), (status = 404, description = "No such request", body = crate::error::ErrorBody)))]
#[get("/requests/{id}")]
pub async fn one(
    engine: web::Data<Engine>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let stored = || {
        let store = engine.store.clone();
        let key = id.clone();
        blocking(move || store.request_by_id(&key))
    };
    let mut found = stored().await?;
    if found.is_none() {
        // The live feed announces a request before its batch is written (up to
        // ~100 ms later); the logger still holds it then.
        let held = engine.logger.send(PendingEntry(id.clone())).await;
        found = match held {
            Ok(Some(entry)) => Some((
                Arc::unwrap_or_clone(entry.record),
                entry.payload.map(Arc::unwrap_or_clone),
            )),
            // Written between the two looks.
            _ => stored().await?,
        };
    }
    let (record, payload) =
        found.ok_or_else(|| ApiError::NotFound(format!("no request {id:?}")))?;
    Ok(HttpResponse::Ok().json(with_payload(record, payload.as_ref())))
}

#[derive(Deserialize)]
pub struct DetailQuery {
    limit: Option<String>,
}

/// `GET /api/requests/detail?limit`: the newest requests with their payloads.
#[utoipa::path(get, path = "/requests/detail", summary = "The newest requests with their payloads", params(("limit" = Option<i64>, Query, description = "1-100, default 20")), responses((status = 200, description = "Requests", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody)))]
#[get("/requests/detail")]
pub async fn detail(
    engine: web::Data<Engine>,
    query: web::Query<DetailQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(query.limit.as_deref(), 20, MAX_DETAIL_LIMIT)?;
    let store = engine.store.clone();
    let rows = blocking(move || {
        let records = store.query_requests(&RequestFilter {
            limit,
            ..RequestFilter::default()
        })?;
        records
            .into_iter()
            .map(|r| {
                let p = store.request_payload(&r.id)?;
                Ok((r, p))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|(r, p)| with_payload(r, p.as_ref()))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// How often an idle live stream sends a comment, so proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// An SSE response from a broadcast receiver: one `event:` per item, a comment
/// every 15 s, and the end of the stream when the subscriber fell too far behind.
pub(crate) fn sse_response<T, F>(rx: tokio::sync::broadcast::Receiver<T>, render: F) -> HttpResponse
where
    T: Clone + Send + 'static,
    F: Fn(T) -> Option<(String, Value)> + 'static,
{
    use tokio::sync::broadcast::error::RecvError;
    let stream =
        futures_util::stream::unfold((rx, render, true), |(mut rx, render, first)| async move {
            if first {
                let hello = Bytes::from_static(b": connected\n\n");
                return Some((Ok::<_, std::io::Error>(hello), (rx, render, false)));
            }
            loop {
                match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
                    Err(_) => {
                        return Some((
                            Ok(Bytes::from_static(b": keep-alive\n\n")),
                            (rx, render, false),
                        ))
                    }
                    Ok(Ok(item)) => {
                        if let Some((name, data)) = render(item) {
                            let chunk = format!("event: {name}\ndata: {data}\n\n");
                            return Some((Ok(Bytes::from(chunk)), (rx, render, false)));
                        }
                    }
                    // Too slow: drop this subscriber rather than buffer without end.
                    Ok(Err(RecvError::Lagged(_))) | Ok(Err(RecvError::Closed)) => return None,
                }
            }
        });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream)
}

/// `GET /api/requests/stream`: an SSE event `request_started` when a request
/// arrives (id, time, method, path, model, stream) and `request` with the row when
/// it finishes.
#[utoipa::path(get, path = "/requests/stream", summary = "Finished requests as server-sent events (`request`)", responses((status = 200, description = "text/event-stream")))]
#[get("/requests/stream")]
pub async fn live(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let rx = engine.stats.send(SubscribeRequests).await?;
    Ok(sse_response(rx, |event| match event {
        RequestEvent::Started(start) => serde_json::to_value(&*start)
            .ok()
            .map(|v| ("request_started".to_string(), v)),
        RequestEvent::Finished(record) => {
            let row = serde_json::to_value(RequestRow::from(RequestRecord::clone(&record))).ok()?;
            Some(("request".to_string(), row))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_subscriber_that_falls_behind_is_cut_off_not_waited_for() {
        let (tx, rx) = tokio::sync::broadcast::channel::<u32>(8);
        let response = sse_response(rx, |n| Some(("n".to_string(), serde_json::json!(n))));
        // The publisher never waits: 100 events into a buffer of 8.
        for n in 0..100 {
            let _ = tx.send(n);
        }
        let body = response.into_body();
        let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with(": connected"), "{text}");
        assert!(
            !text.contains("event: n"),
            "a lagging subscriber gets no stale events: {text}"
        );
        // The stream ended on its own (to_bytes returned) although the sender lives on.
        drop(tx);
    }

    #[actix_web::test]
    async fn a_keeping_up_subscriber_gets_every_event() {
        let (tx, rx) = tokio::sync::broadcast::channel::<u32>(8);
        let response = sse_response(rx, |n| Some(("n".to_string(), serde_json::json!(n))));
        for n in 0..3 {
            let _ = tx.send(n);
        }
        drop(tx);
        let bytes = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("event: n").count(), 3, "{text}");
    }
}
