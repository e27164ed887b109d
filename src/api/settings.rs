//! Settings the API shows and changes: the effective config (without secrets),
//! retention, and maintenance (cleanup now, compact).

use crate::config::{save_settings, Config};
use crate::error::ApiError;
use actix_web::{get, post, web, HttpResponse};
use claudeflare_actors::clock::now_ms;
use claudeflare_actors::selector::CurrentStrategy;
use claudeflare_actors::store::{blocking, Store};
use claudeflare_actors::Engine;
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const DAY_MS: i64 = 24 * 3600 * 1000;
/// Rows deleted per transaction by the retention job, so writers never wait long.
const RETENTION_BATCH: i64 = 1000;

/// How long history is kept; changed live through the API.
pub struct Retention {
    payload_days: AtomicU32,
    request_days: AtomicU32,
}

impl Retention {
    pub fn new(payload_days: u32, request_days: u32) -> Arc<Self> {
        Arc::new(Self {
            payload_days: AtomicU32::new(payload_days),
            request_days: AtomicU32::new(request_days),
        })
    }

    pub fn days(&self) -> (u32, u32) {
        (
            self.payload_days.load(Ordering::Relaxed),
            self.request_days.load(Ordering::Relaxed),
        )
    }
}

/// Deletes what is past retention (in small batches). Returns (payloads, requests).
pub async fn run_retention(
    store: Store,
    retention: &Retention,
) -> Result<(usize, usize), ApiError> {
    let (payload_days, request_days) = retention.days();
    let now = now_ms();
    let payload_cut = now - i64::from(payload_days) * DAY_MS;
    let request_cut = now - i64::from(request_days) * DAY_MS;
    Ok(
        blocking(move || store.delete_older_than(payload_cut, request_cut, RETENTION_BATCH))
            .await?,
    )
}

/// `GET /api/config`: the settings in force, secrets left out.
#[utoipa::path(get, path = "/config", summary = "The settings in force (no secrets)", responses((status = 200, description = "Settings", body = Object)))]
#[get("/config")]
pub async fn get(
    engine: web::Data<Engine>,
    config: web::Data<Config>,
    retention: web::Data<Arc<Retention>>,
) -> Result<HttpResponse, ApiError> {
    let strategy = engine.selector.send(CurrentStrategy).await?;
    let (payload_days, request_days) = retention.days();
    let c = config.get_ref();
    Ok(HttpResponse::Ok().json(json!({
        "host": c.host,
        "port": c.port,
        "dataDir": c.data_dir,
        "configFile": c.config_file_path(),
        "upstreamUrl": c.upstream_url,
        "strategy": strategy,
        "sessionDurationMs": c.session_duration_ms,
        "connectTimeoutMs": c.connect_timeout_ms,
        "upstreamHeaderTimeoutMs": c.upstream_header_timeout_ms,
        "streamIdleTimeoutMs": c.stream_idle_timeout_ms,
        "maxBodyBytes": c.max_body_bytes,
        "maxHeaderBytes": c.max_header_bytes,
        "retryAttempts": c.retry_attempts,
        "retryDelayMs": c.retry_delay_ms,
        "retryBackoff": c.retry_backoff,
        "overloadCooldownMs": c.overload_cooldown_ms,
        "storePayloads": c.store_payloads,
        "payloadMaxBytes": c.payload_max_bytes,
        "shutdownTimeoutMs": c.shutdown_timeout_ms,
        "refreshWindowMs": c.refresh_window_ms,
        "database": match c.postgres_url() {
            Some(url) => json!({"kind": "postgres", "url": claudeflare_actors::store::redact_url(url)}),
            None => json!({"kind": "sqlite", "path": c.database_path()}),
        },
        "instanceId": c.instance_name(),
        "clusterSyncMs": c.cluster_sync_ms,
        "retention": {"payloadDays": payload_days, "requestDays": request_days},
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

/// `GET /api/config/retention`.
#[utoipa::path(get, path = "/config/retention", summary = "How long history is kept", responses((status = 200, description = "payloadDays, requestDays", body = Object)))]
#[get("/config/retention")]
pub async fn get_retention(retention: web::Data<Arc<Retention>>) -> HttpResponse {
    let (payload_days, request_days) = retention.days();
    HttpResponse::Ok().json(json!({"payloadDays": payload_days, "requestDays": request_days}))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionBody {
    payload_days: Option<u32>,
    request_days: Option<u32>,
}

/// `POST /api/config/retention {"payloadDays","requestDays"}` (each optional, 1 to
/// 3650 days); saved to the config file.
#[utoipa::path(post, path = "/config/retention", summary = "Change retention (saved to the config file)", request_body = RetentionBody, responses((status = 200, description = "payloadDays, requestDays", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody)))]
#[post("/config/retention")]
pub async fn set_retention(
    retention: web::Data<Arc<Retention>>,
    config: web::Data<Config>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: RetentionBody = super::from_body(body.into_inner())?;
    let check = |field: &str, v: Option<u32>| match v {
        Some(d) if !(1..=3650).contains(&d) => Err(ApiError::BadRequest(format!(
            "{field}: must be between 1 and 3650 days"
        ))),
        _ => Ok(v),
    };
    let payload = check("payloadDays", body.payload_days)?;
    let request = check("requestDays", body.request_days)?;
    let (old_payload, old_request) = retention.days();
    let (payload, request) = (
        payload.unwrap_or(old_payload),
        request.unwrap_or(old_request),
    );
    if payload > request {
        return Err(ApiError::BadRequest(
            "payloadDays: must not exceed requestDays (a payload needs its request)".into(),
        ));
    }
    retention.payload_days.store(payload, Ordering::Relaxed);
    retention.request_days.store(request, Ordering::Relaxed);
    let path = config.config_file_path();
    let values = [
        (
            "retention_payload_days",
            toml_edit::value(i64::from(payload)),
        ),
        (
            "retention_request_days",
            toml_edit::value(i64::from(request)),
        ),
    ];
    web::block(move || save_settings(&path, &values))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("retention changed, but saving it failed: {e}")))?;
    Ok(HttpResponse::Ok().json(json!({"payloadDays": payload, "requestDays": request})))
}

/// `POST /api/maintenance/cleanup`: applies retention now.
#[utoipa::path(post, path = "/maintenance/cleanup", summary = "Apply retention now", responses((status = 200, description = "deletedPayloads, deletedRequests", body = Object)))]
#[post("/maintenance/cleanup")]
pub async fn cleanup(
    engine: web::Data<Engine>,
    retention: web::Data<Arc<Retention>>,
) -> Result<HttpResponse, ApiError> {
    let (payloads, requests) = run_retention(engine.store.clone(), &retention).await?;
    Ok(HttpResponse::Ok().json(json!({"deletedPayloads": payloads, "deletedRequests": requests})))
}

/// `POST /api/maintenance/compact`: reclaims free space in the database file.
#[utoipa::path(post, path = "/maintenance/compact", summary = "Reclaim free space in the database", responses((status = 200, description = "compacted", body = Object)))]
#[post("/maintenance/compact")]
pub async fn compact(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let store = engine.store.clone();
    blocking(move || store.compact()).await?;
    Ok(HttpResponse::Ok().json(json!({"compacted": true})))
}
