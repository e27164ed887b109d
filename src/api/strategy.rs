//! Strategies: list them, read and switch the active one live.

use crate::config::save_strategy;
use crate::error::ApiError;
use actix_web::{get, post, web, HttpResponse};
use claudeflare_actors::selector::{CurrentStrategy, SetStrategy};
use claudeflare_actors::strategies::STRATEGIES;
use claudeflare_actors::Engine;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

/// Where live changes are saved (the daemon's config file).
pub struct ConfigFile(pub PathBuf);

/// `GET /api/strategies`.
#[utoipa::path(get, path = "/strategies", summary = "The strategies and what each is for", responses((status = 200, description = "name, description", body = Object)))]
#[get("/strategies")]
pub async fn list() -> HttpResponse {
    let all: Vec<_> = STRATEGIES
        .iter()
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    HttpResponse::Ok().json(all)
}

/// `GET /api/config/strategy`.
#[utoipa::path(get, path = "/config/strategy", summary = "The active strategy", responses((status = 200, description = "strategy", body = Object)))]
#[get("/config/strategy")]
pub async fn current(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let strategy = engine.selector.send(CurrentStrategy).await?;
    Ok(HttpResponse::Ok().json(json!({ "strategy": strategy })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StrategyBody {
    strategy: String,
}

/// `POST /api/config/strategy {"strategy"}`: switches at once and saves the choice to
/// the config file, so that it survives a restart and the other faces see it.
#[utoipa::path(post, path = "/config/strategy", summary = "Switch the strategy live (saved to the config file)", request_body = StrategyBody, responses((status = 200, description = "strategy", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody)))]
#[post("/config/strategy")]
pub async fn set(
    engine: web::Data<Engine>,
    file: web::Data<ConfigFile>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: StrategyBody = super::from_body(body.into_inner())?;
    let name = body.strategy.trim().to_string();
    engine
        .selector
        .send(SetStrategy { name: name.clone() })
        .await?
        .map_err(|valid| {
            ApiError::BadRequest(format!(
                "strategy: {name:?} is not one of: {}",
                valid.join(", ")
            ))
        })?;
    let path = file.0.clone();
    let saved = name.clone();
    web::block(move || save_strategy(&path, &saved))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| {
            ApiError::Internal(format!(
                "the strategy is now {name}, but saving it to {} failed: {e}",
                file.0.display()
            ))
        })?;
    Ok(HttpResponse::Ok().json(json!({ "strategy": name })))
}
