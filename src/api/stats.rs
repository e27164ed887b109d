//! `/api/stats` (live counters from the StatsAggregator) and its reset.

use crate::error::ApiError;
use actix_web::{get, post, web, HttpResponse};
use claudeflare_actors::logger::DrainIntake;
use claudeflare_actors::registry::ResetCounters;
use claudeflare_actors::stats::{GetStats, ResetStats};
use claudeflare_actors::store::blocking;
use claudeflare_actors::Engine;
use serde::Deserialize;
use serde_json::json;

/// `GET /api/stats`.
#[utoipa::path(get, path = "/stats", summary = "Live counters", responses((status = 200, description = "Stats", body = Object)))]
#[get("/stats")]
pub async fn get(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    // Records the workers queued reach the stats ahead of this question.
    engine.logger.send(DrainIntake).await?;
    Ok(HttpResponse::Ok().json(engine.stats.send(GetStats).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Confirm {
    confirm: bool,
}

/// `POST /api/stats/reset {"confirm":true}`: clears the counters and the request
/// history (payloads included). Asks for the confirmation because it cannot be undone.
#[utoipa::path(post, path = "/stats/reset", summary = "Clear counters and request history", request_body = Confirm, responses((status = 200, description = "reset, deletedRequests", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody)))]
#[post("/stats/reset")]
pub async fn reset(
    engine: web::Data<Engine>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: Confirm = super::from_body(body.into_inner())?;
    if !body.confirm {
        return Err(ApiError::BadRequest(
            "confirm: must be true to delete the request history".into(),
        ));
    }
    let store = engine.store.clone();
    let deleted = blocking(move || store.clear_history()).await?;
    engine.stats.send(ResetStats).await?;
    engine.registry.send(ResetCounters).await?;
    tracing::info!(deleted, "statistics and request history reset");
    Ok(HttpResponse::Ok().json(json!({ "reset": true, "deletedRequests": deleted })))
}
