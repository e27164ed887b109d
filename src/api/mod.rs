//! The management API (`/health`, `/api/*`): the contract the dashboard, the CLI and
//! the TUI share. JSON in camelCase; every error is `{"error":{"type","message"}}`.

mod accounts;
pub mod oauth;
mod requests;
pub mod strategy;

use crate::error::ApiError;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{web, HttpRequest, HttpResponse};
use claudeflare_actors::registry::ListAccounts;
use claudeflare_actors::selector::CurrentStrategy;
use claudeflare_actors::Engine;
use serde::Serialize;

/// Largest JSON body the management API accepts.
const API_JSON_LIMIT: usize = 64 * 1024;

/// Registers the management routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(API_JSON_LIMIT)
            .error_handler(json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .route("/health", web::get().to(health))
    .service(
        web::scope("/api")
            .service(
                web::resource("/accounts")
                    .route(web::get().to(accounts::list))
                    .route(web::post().to(accounts::add)),
            )
            .service(web::resource("/accounts/{id}").route(web::delete().to(accounts::remove)))
            .service(web::resource("/accounts/{id}/pause").route(web::post().to(accounts::pause)))
            .service(web::resource("/accounts/{id}/resume").route(web::post().to(accounts::resume)))
            .service(web::resource("/accounts/{id}/reauth").route(web::post().to(oauth::reauth)))
            .service(web::resource("/oauth/init").route(web::post().to(oauth::init)))
            .service(web::resource("/oauth/callback").route(web::post().to(oauth::callback)))
            .service(web::resource("/accounts/{id}/tier").route(web::post().to(accounts::tier)))
            .service(
                web::resource("/accounts/{id}/priority").route(web::post().to(accounts::priority)),
            )
            .service(web::resource("/strategies").route(web::get().to(strategy::list)))
            .service(
                web::resource("/config/strategy")
                    .route(web::get().to(strategy::current))
                    .route(web::post().to(strategy::set)),
            )
            .service(web::resource("/requests").route(web::get().to(requests::list)))
            .default_service(web::to(api_not_found)),
    );
}

/// Reads a JSON body into `T`, naming the field at fault when it does not fit.
pub(crate) fn from_body<T: serde::de::DeserializeOwned>(
    body: serde_json::Value,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::BadRequest(format!("invalid body: {inner}"))
        } else {
            ApiError::BadRequest(format!("{path}: {inner}"))
        }
    })
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "the body must be JSON (content-type: application/json)".into(),
        ),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(format!("the body is larger than {limit} bytes"))
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        other => ApiError::BadRequest(format!("invalid JSON body: {other}")),
    };
    api.into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query: {err}")).into()
}

async fn api_not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    accounts: usize,
    strategy: String,
    version: &'static str,
}

/// `GET /health`: liveness plus the pool size and strategy.
async fn health(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let accounts = engine.registry.send(ListAccounts).await?;
    let strategy = engine.selector.send(CurrentStrategy).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok",
        accounts: accounts.len(),
        strategy,
        version: env!("CARGO_PKG_VERSION"),
    }))
}
