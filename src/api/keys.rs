//! `/api/keys`: keys the daemon issues to its clients, and `/api/audit`.

use crate::auth::Access;
use crate::error::ApiError;
use actix_web::{delete, get, post, web, HttpResponse};
use claudeflare_actors::clock::iso;
use claudeflare_actors::keys::{KeyError, KeyRecord, Role};
use claudeflare_actors::store::blocking;
use claudeflare_actors::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn key_json(k: &KeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "createdAt": iso(k.created_at),
        "lastUsed": k.last_used.map(iso),
        "requestCount": k.request_count,
        "enabled": k.enabled,
        "requestsPerMinute": k.requests_per_minute,
        "maxConcurrent": k.max_concurrent,
    })
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::DuplicateName(n) => {
                ApiError::Conflict(format!("a key named {n:?} already exists"))
            }
            KeyError::NotFound(id) => ApiError::NotFound(format!("no key {id:?}")),
            KeyError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewKey {
    name: String,
    /// `proxy` (default: may use /v1/*) or `admin` (everything).
    role: Option<String>,
    /// Optional: requests per minute (429 past it).
    requests_per_minute: Option<u32>,
    /// Optional: requests (streams included) in flight at once (429 past it).
    max_concurrent: Option<u32>,
}

/// Reloads the in-memory key ring after a change.
async fn reload(access: &Arc<Access>, engine: &Engine) -> Result<(), ApiError> {
    let ring = access.ring.clone();
    let store = engine.store.clone();
    blocking(move || ring.reload(&store)).await?;
    Ok(())
}

#[utoipa::path(post, path = "/keys", summary = "Issue a key (shown in this answer only)", request_body = NewKey, responses((status = 201, description = "id, name, role, key", body = Object), (status = 400, description = "Invalid name or role", body = crate::error::ErrorBody), (status = 409, description = "Name taken", body = crate::error::ErrorBody)))]
#[post("/keys")]
pub async fn create(
    engine: web::Data<Engine>,
    access: web::Data<Arc<Access>>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body: NewKey = super::from_body(body.into_inner())?;
    let name = super::accounts::validate_name(&body.name)?;
    let role = match body.role.as_deref() {
        None => Role::Proxy,
        Some(r) => Role::parse(r).ok_or_else(|| {
            ApiError::BadRequest(format!("role: must be proxy or admin, not {r:?}"))
        })?,
    };
    let limits = claudeflare_actors::keys::KeyLimits {
        requests_per_minute: body.requests_per_minute.filter(|n| *n > 0),
        max_concurrent: body.max_concurrent.filter(|n| *n > 0),
    };
    let store = engine.store.clone();
    let issued = blocking(move || Ok(store.create_key_limited(&name, role, limits))).await??;
    reload(&access, &engine).await?;
    tracing::info!(key = %issued.record.name, role = role.as_str(), "key issued");
    Ok(HttpResponse::Created().json(json!({
        "id": issued.record.id,
        "name": issued.record.name,
        "role": role.as_str(),
        "key": issued.key,
    })))
}

#[utoipa::path(get, path = "/keys", summary = "List keys (never the keys themselves)", responses((status = 200, description = "Keys", body = Object)))]
#[get("/keys")]
pub async fn list(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let store = engine.store.clone();
    let keys = blocking(move || store.list_keys()).await?;
    Ok(HttpResponse::Ok().json(keys.iter().map(key_json).collect::<Vec<_>>()))
}

async fn set_enabled(
    engine: &Engine,
    access: &Arc<Access>,
    id: String,
    enabled: bool,
) -> Result<HttpResponse, ApiError> {
    let store = engine.store.clone();
    let key = blocking(move || Ok(store.set_key_enabled(&id, enabled))).await??;
    reload(access, engine).await?;
    Ok(HttpResponse::Ok().json(key_json(&key)))
}

#[utoipa::path(post, path = "/keys/{id}/disable", summary = "Disable a key (401 from then on)", params(("id" = String, Path, description = "Key id or name")), responses((status = 200, description = "The key", body = Object), (status = 404, description = "No such key", body = crate::error::ErrorBody)))]
#[post("/keys/{id}/disable")]
pub async fn disable(
    engine: web::Data<Engine>,
    access: web::Data<Arc<Access>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&engine, &access, id.into_inner(), false).await
}

#[utoipa::path(post, path = "/keys/{id}/enable", summary = "Enable a key again", params(("id" = String, Path, description = "Key id or name")), responses((status = 200, description = "The key", body = Object), (status = 404, description = "No such key", body = crate::error::ErrorBody)))]
#[post("/keys/{id}/enable")]
pub async fn enable(
    engine: web::Data<Engine>,
    access: web::Data<Arc<Access>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_enabled(&engine, &access, id.into_inner(), true).await
}

#[utoipa::path(delete, path = "/keys/{id}", summary = "Delete a key", params(("id" = String, Path, description = "Key id or name")), responses((status = 200, description = "Deleted", body = Object), (status = 404, description = "No such key", body = crate::error::ErrorBody)))]
#[delete("/keys/{id}")]
pub async fn remove(
    engine: web::Data<Engine>,
    access: web::Data<Arc<Access>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let store = engine.store.clone();
    let key = id.clone();
    blocking(move || Ok(store.delete_key(&key))).await??;
    reload(&access, &engine).await?;
    Ok(HttpResponse::Ok().json(json!({"deleted": true, "id": id})))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<String>,
}

#[utoipa::path(get, path = "/audit", summary = "Management actions, newest first", params(("limit" = Option<i64>, Query, description = "1-1000, default 100")), responses((status = 200, description = "Entries", body = Object), (status = 400, description = "Bad limit", body = crate::error::ErrorBody)))]
#[get("/audit")]
pub async fn audit(
    engine: web::Data<Engine>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::requests::parse_limit(query.limit.as_deref(), 100, 1000)?;
    let store = engine.store.clone();
    let entries = blocking(move || store.audit_entries(limit)).await?;
    let out: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "time": iso(e.timestamp),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "statusCode": e.status_code,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
