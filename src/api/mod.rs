//! The management API (`/health`, `/api/*`): the contract the dashboard, the CLI and
//! the TUI share. JSON in camelCase; every error is `{"error":{"type","message"}}`.

mod accounts;
mod analytics;
pub mod health;
mod keys;
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
use actix_web::{get, web, HttpRequest, HttpResponse};
use claudeflare_actors::Engine;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{scope, AppExt};

/// Largest JSON body the management API accepts.
const API_JSON_LIMIT: usize = 64 * 1024;

/// Registers the management routes. Every route is an annotated handler, so the
/// OpenAPI document is collected from exactly what is served.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(API_JSON_LIMIT)
            .error_handler(json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .service(health::health)
    .service(metrics)
    .service(
        scope::scope("/api")
            .wrap(ErrorHandlers::new().default_handler(json_for_bare_errors))
            .service(openapi_json)
            .service(accounts::list)
            .service(accounts::add)
            .service(accounts::one)
            .service(accounts::remove)
            .service(accounts::pause)
            .service(accounts::resume)
            .service(accounts::rename)
            .service(accounts::reset_rate_limit)
            .service(accounts::set_tier)
            .service(accounts::set_priority)
            .service(oauth::start_reauth)
            .service(oauth::init)
            .service(oauth::callback)
            .service(requests::list)
            .service(requests::live)
            .service(requests::detail)
            .service(requests::one)
            .service(logs::history)
            .service(logs::live)
            .service(stats::get)
            .service(stats::reset)
            .service(analytics::get)
            .service(strategy::list)
            .service(settings::get)
            .service(strategy::current)
            .service(strategy::set)
            .service(settings::get_retention)
            .service(settings::set_retention)
            .service(settings::cleanup)
            .service(settings::compact)
            .service(keys::create)
            .service(keys::list)
            .service(keys::disable)
            .service(keys::enable)
            .service(keys::remove)
            .service(keys::audit)
            .default_service(web::to(api_not_found)),
    );
}

/// The OpenAPI document of the routes above, built once at start.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = actix_web::App::new()
        .into_utoipa_app()
        .configure(configure)
        .split_for_parts();
    doc.info.title = "Claudeflare management API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Accounts, request history, analytics, live streams, configuration and metrics \
         of the claudeflare daemon. The proxy itself is every /v1/* path, forwarded as is."
            .into(),
    );
    doc
}

/// The document as served, with the route table the 405 answers are made from.
pub struct ApiDocument {
    pub json: String,
    /// (path template, methods) of every documented route.
    routes: Vec<(String, Vec<String>)>,
}

impl ApiDocument {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> ApiDocument {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let value = serde_json::to_value(item).unwrap_or_default();
                let methods = value
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .filter(|k| {
                                matches!(k.as_str(), "get" | "post" | "put" | "delete" | "patch")
                            })
                            .map(|k| k.to_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                (path.clone(), methods)
            })
            .collect();
        ApiDocument {
            json: doc.to_json().unwrap_or_default(),
            routes,
        }
    }

    /// The methods documented for a concrete path (`{x}` segments match anything).
    fn methods_for(&self, path: &str) -> Vec<String> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let mut methods: Vec<String> = self
            .routes
            .iter()
            .filter(|(template, _)| {
                let t: Vec<&str> = template.split('/').collect();
                t.len() == parts.len()
                    && t.iter()
                        .zip(&parts)
                        .all(|(a, b)| (a.starts_with('{') && a.ends_with('}')) || a == b)
            })
            .flat_map(|(_, m)| m.iter().cloned())
            .collect();
        methods.sort();
        methods.dedup();
        methods
    }
}

#[utoipa::path(get, path = "/openapi.json", summary = "This document (OpenAPI 3)", responses((status = 200, description = "The OpenAPI document", body = Object)))]
#[get("/openapi.json")]
async fn openapi_json(doc: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.json.clone())
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
#[utoipa::path(get, path = "/metrics", summary = "Prometheus metrics", responses((status = 200, description = "OpenMetrics text")))]
#[get("/metrics")]
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

/// No route matched: 405 (with `Allow`) when the path exists for other methods,
/// else 404.
async fn api_not_found(req: HttpRequest, doc: web::Data<ApiDocument>) -> HttpResponse {
    let methods = doc.methods_for(req.path());
    if methods.is_empty() {
        return actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
            "no such endpoint: {} {}",
            req.method(),
            req.path()
        )));
    }
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, methods.join(", ")))
        .json(serde_json::json!({"error": {
            "type": "method_not_allowed",
            "message": format!("{} is not allowed on {}; use {}", req.method(), req.path(), methods.join(", ")),
        }}))
}
