//! `GET /api/analytics`: time series and breakdowns over a range, aggregated in SQL.

use crate::error::ApiError;
use actix_web::{get, web, HttpResponse};
use claudeflare_actors::clock::{iso, now_ms};
use claudeflare_actors::store::{blocking, AnalyticsFilter, GroupRow, StatusFilter};
use claudeflare_actors::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The ranges offered and their bucket sizes.
const RANGES: [(&str, i64, i64); 5] = [
    ("1h", HOUR, MINUTE),
    ("6h", 6 * HOUR, 5 * MINUTE),
    ("24h", DAY, HOUR),
    ("7d", 7 * DAY, HOUR),
    ("30d", 30 * DAY, DAY),
];

/// How many models get their own series with `modelBreakdown=true`.
const BREAKDOWN_MODELS: usize = 8;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsQuery {
    range: Option<String>,
    accounts: Option<String>,
    models: Option<String>,
    status: Option<String>,
    mode: Option<String>,
    model_breakdown: Option<String>,
    /// Access key names, comma-separated.
    keys: Option<String>,
}

fn list(text: &Option<String>) -> Vec<String> {
    text.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The share of prompt tokens read from the cache, in percent.
fn cache_hit_rate(g: &GroupRow) -> f64 {
    ratio(
        g.cache_read_input_tokens,
        g.input_tokens + g.cache_read_input_tokens + g.cache_creation_input_tokens,
    )
}

fn tokens(g: &GroupRow) -> i64 {
    g.input_tokens + g.output_tokens + g.cache_read_input_tokens + g.cache_creation_input_tokens
}

fn point(time: i64, g: &GroupRow) -> Value {
    json!({
        "time": iso(time),
        "requests": g.requests,
        "tokens": tokens(g),
        "costUsd": g.cost_usd,
        "successRate": ratio(g.successes, g.requests),
        "errorRate": ratio(g.requests - g.successes, g.requests),
        "cacheHitRate": cache_hit_rate(g),
        "avgResponseTime": g.avg_response_time_ms,
        "avgTokensPerSecond": g.avg_output_tokens_per_second,
    })
}

/// Every bucket of the range, empty ones included, so charts have a steady x axis.
fn series(
    rows: &[claudeflare_actors::store::BucketRow],
    from: i64,
    to: i64,
    bucket: i64,
    cumulative: bool,
) -> Vec<Value> {
    let first = from - from.rem_euclid(bucket);
    let mut out = Vec::new();
    let mut acc = GroupRow::default();
    let mut rows = rows.iter().peekable();
    let mut t = first;
    while t < to {
        let mut g = GroupRow::default();
        while let Some(r) = rows.peek() {
            if r.bucket < t {
                rows.next();
            } else {
                if r.bucket == t {
                    g = r.sums.clone();
                    rows.next();
                }
                break;
            }
        }
        if cumulative {
            acc.requests += g.requests;
            acc.successes += g.successes;
            acc.input_tokens += g.input_tokens;
            acc.output_tokens += g.output_tokens;
            acc.cache_read_input_tokens += g.cache_read_input_tokens;
            acc.cache_creation_input_tokens += g.cache_creation_input_tokens;
            acc.cost_usd += g.cost_usd;
            acc.avg_response_time_ms = g.avg_response_time_ms;
            acc.avg_output_tokens_per_second = g.avg_output_tokens_per_second;
            out.push(point(t, &acc));
        } else {
            out.push(point(t, &g));
        }
        t += bucket;
    }
    out
}

/// `GET /api/analytics?range=1h|6h|24h|7d|30d&accounts=&models=&status=all|success|error&mode=normal|cumulative&modelBreakdown=true`.
#[utoipa::path(get, path = "/analytics", summary = "Time series and breakdowns over a range, aggregated in SQL", params(("range" = Option<String>, Query, description = "1h, 6h, 24h (default), 7d or 30d"), ("accounts" = Option<String>, Query, description = "Comma-separated account names or ids"), ("models" = Option<String>, Query, description = "Comma-separated model ids"), ("status" = Option<String>, Query, description = "all, success, error or a status code"), ("mode" = Option<String>, Query, description = "normal or cumulative"), ("modelBreakdown" = Option<bool>, Query, description = "Add a series per model"), ("keys" = Option<String>, Query, description = "Comma-separated access key names")), responses((status = 200, description = "The analytics", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody)))]
#[get("/analytics")]
pub async fn get(
    engine: web::Data<Engine>,
    query: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let range = query.range.as_deref().unwrap_or("24h");
    let (_, span, bucket) = RANGES
        .iter()
        .find(|(name, _, _)| *name == range)
        .copied()
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "range: must be one of 1h, 6h, 24h, 7d, 30d, not {range:?}"
            ))
        })?;
    let mode = query.mode.as_deref().unwrap_or("normal");
    if !matches!(mode, "normal" | "cumulative") {
        return Err(ApiError::BadRequest(format!(
            "mode: must be normal or cumulative, not {mode:?}"
        )));
    }
    let breakdown = match query.model_breakdown.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "modelBreakdown: must be true or false, not {other:?}"
            )))
        }
    };
    let status = StatusFilter::parse(query.status.as_deref().unwrap_or("all"))
        .map_err(|e| ApiError::BadRequest(format!("status: {e}")))?;
    let to = now_ms() + 1;
    let from = to - span;
    let filter = AnalyticsFilter {
        from_ms: from,
        to_ms: to,
        accounts: list(&query.accounts),
        models: list(&query.models),
        status,
        keys: list(&query.keys),
    };
    let cumulative = mode == "cumulative";
    let store = engine.store.clone();
    let f = filter.clone();
    let series_models = if breakdown { BREAKDOWN_MODELS } else { 0 };
    let data = blocking(move || store.analytics(&f, bucket, series_models)).await?;
    let (totals, by_model, by_account) = (&data.totals, &data.by_model, &data.by_account);
    let p95 = |model: &Option<String>| {
        data.p95_by_model
            .iter()
            .find(|(m, _)| m == model)
            .map(|(_, v)| *v)
    };
    let name = |k: &Option<String>| k.clone().unwrap_or_else(|| "unknown".into());

    let mut body = json!({
        "meta": {
            "range": range,
            "from": iso(from),
            "to": iso(to),
            "bucketMs": bucket,
            "mode": mode,
            "filters": {
                "accounts": filter.accounts,
                "models": filter.models,
                "status": query.status.as_deref().unwrap_or("all"),
            },
        },
        "totals": {
            "requests": totals.requests,
            "successRate": ratio(totals.successes, totals.requests),
            "errorRate": ratio(totals.requests - totals.successes, totals.requests),
            "totalTokens": tokens(totals),
            "totalCostUsd": totals.cost_usd,
            "avgResponseTime": totals.avg_response_time_ms,
            "avgTokensPerSecond": totals.avg_output_tokens_per_second,
            "cacheHitRate": cache_hit_rate(totals),
        },
        "timeSeries": series(&data.buckets, from, to, bucket, cumulative),
        "tokenBreakdown": {
            "input": totals.input_tokens,
            "output": totals.output_tokens,
            "cacheRead": totals.cache_read_input_tokens,
            "cacheCreation": totals.cache_creation_input_tokens,
        },
        "modelDistribution": by_model.iter().map(|m| json!({"model": name(&m.key), "requests": m.requests})).collect::<Vec<_>>(),
        "accountPerformance": by_account.iter().map(|a| json!({
            "name": name(&a.key),
            "requests": a.requests,
            "successRate": ratio(a.successes, a.requests),
            "avgResponseTime": a.avg_response_time_ms,
            "tokens": tokens(a),
            "costUsd": a.cost_usd,
        })).collect::<Vec<_>>(),
        "costByModel": by_model.iter().map(|m| json!({"model": name(&m.key), "costUsd": m.cost_usd})).collect::<Vec<_>>(),
        "modelPerformance": by_model.iter().map(|m| json!({
            "model": name(&m.key),
            "requests": m.requests,
            "avgResponseTime": m.avg_response_time_ms,
            "p95ResponseTime": p95(&m.key),
            "errorRate": ratio(m.requests - m.successes, m.requests),
            "avgTokensPerSecond": m.avg_output_tokens_per_second,
        })).collect::<Vec<_>>(),
    });
    if breakdown {
        let per_model: serde_json::Map<String, Value> = data
            .series_by_model
            .iter()
            .map(|(m, rows)| {
                (
                    m.clone(),
                    Value::Array(series(rows, from, to, bucket, cumulative)),
                )
            })
            .collect();
        body["timeSeriesByModel"] = Value::Object(per_model);
    }
    Ok(HttpResponse::Ok().json(body))
}
