//! The management API (`/health`, `/api/*`): the contract the dashboard, the CLI and
//! the TUI share. JSON in camelCase; every error is `{"error":{"type","message"}}`.

mod accounts;
mod analytics;
pub mod health;
mod logs;
pub mod oauth;
mod requests;
pub mod settings;
mod stats;
pub mod strategy;

use crate::error::ApiError;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpRequest, HttpResponse};
use claudeflare_actors::Engine;

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
    .route("/health", web::get().to(health::health))
    .route("/metrics", web::get().to(metrics))
    .service(
        web::scope("/api")
            .wrap(ErrorHandlers::new().default_handler(json_for_bare_errors))
            .service(
                web::resource("/accounts")
                    .route(web::get().to(accounts::list))
                    .route(web::post().to(accounts::add)),
            )
            .service(
                web::resource("/accounts/{id}")
                    .route(web::get().to(accounts::one))
                    .route(web::delete().to(accounts::remove)),
            )
            .service(web::resource("/accounts/{id}/pause").route(web::post().to(accounts::pause)))
            .service(web::resource("/accounts/{id}/resume").route(web::post().to(accounts::resume)))
            .service(web::resource("/accounts/{id}/rename").route(web::post().to(accounts::rename)))
            .service(
                web::resource("/accounts/{id}/reset-rate-limit")
                    .route(web::post().to(accounts::reset_rate_limit)),
            )
            .service(web::resource("/accounts/{id}/reauth").route(web::post().to(oauth::reauth)))
            .service(web::resource("/accounts/{id}/tier").route(web::post().to(accounts::tier)))
            .service(
                web::resource("/accounts/{id}/priority").route(web::post().to(accounts::priority)),
            )
            .service(web::resource("/oauth/init").route(web::post().to(oauth::init)))
            .service(web::resource("/oauth/callback").route(web::post().to(oauth::callback)))
            .service(web::resource("/requests").route(web::get().to(requests::list)))
            .service(web::resource("/requests/stream").route(web::get().to(requests::stream)))
            .service(web::resource("/requests/detail").route(web::get().to(requests::detail)))
            .service(web::resource("/requests/{id}").route(web::get().to(requests::one)))
            .service(web::resource("/logs/history").route(web::get().to(logs::history)))
            .service(web::resource("/logs/stream").route(web::get().to(logs::stream)))
            .service(web::resource("/stats").route(web::get().to(stats::get)))
            .service(web::resource("/stats/reset").route(web::post().to(stats::reset)))
            .service(web::resource("/analytics").route(web::get().to(analytics::get)))
            .service(web::resource("/strategies").route(web::get().to(strategy::list)))
            .service(web::resource("/config").route(web::get().to(settings::get)))
            .service(
                web::resource("/config/strategy")
                    .route(web::get().to(strategy::current))
                    .route(web::post().to(strategy::set)),
            )
            .service(
                web::resource("/config/retention")
                    .route(web::get().to(settings::get_retention))
                    .route(web::post().to(settings::set_retention)),
            )
            .service(web::resource("/maintenance/cleanup").route(web::post().to(settings::cleanup)))
            .service(web::resource("/maintenance/compact").route(web::post().to(settings::compact)))
            .default_service(web::to(api_not_found)),
    );
}

/// Turns actix's bare error answers (405 for a wrong method, 404, ...) into the
/// API's JSON error shape; answers that already are JSON pass unchanged.
fn json_for_bare_errors<B: actix_web::body::MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (kind, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!(
                "{} is not allowed on {}",
                res.request().method(),
                res.request().path()
            ),
        ),
        StatusCode::NOT_FOUND => (
            "not_found",
            format!("no such endpoint: {}", res.request().path()),
        ),
        other => (
            "error",
            other.canonical_reason().unwrap_or("error").to_string(),
        ),
    };
    let (req, _) = res.into_parts();
    let body = HttpResponse::build(status)
        .json(serde_json::json!({"error": {"type": kind, "message": message}}))
        .map_into_right_body();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(
        req, body,
    )))
}

/// `GET /metrics`: Prometheus text format; account-state gauges are read now.
async fn metrics(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let pool = health::pool(&engine).await?;
    let m = &engine.metrics;
    for (state, n) in [
        ("available", pool.available),
        ("paused", pool.paused),
        ("rate_limited", pool.rate_limited),
        ("requires_reauth", pool.requires_reauth),
    ] {
        m.accounts
            .get_or_create(&claudeflare_actors::metrics::StateLabel {
                state: state.into(),
            })
            .set(n as i64);
    }
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(m.encode()))
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
