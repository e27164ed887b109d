//! Errors the daemon answers with, mapped to a status and a JSON body in one place.
//!
//! The proxy path answers in Anthropic's shape (`{"type":"error","error":{...}}`) so
//! that the SDKs parse it; the management API answers `{"error":{"type","message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// An error of the management API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::BadGateway(_) => "bad_gateway",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "management API failure");
        }
        HttpResponse::build(self.status_code()).json(json!({
            "error": {"type": self.kind(), "message": self.to_string()}
        }))
    }
}

impl From<claudeflare_actors::registry::RegistryError> for ApiError {
    fn from(e: claudeflare_actors::registry::RegistryError) -> Self {
        use claudeflare_actors::registry::RegistryError;
        match e {
            RegistryError::NotFound(id) => ApiError::NotFound(format!("no account {id:?}")),
            RegistryError::DuplicateName(name) => {
                ApiError::Conflict(format!("an account named {name:?} already exists"))
            }
            RegistryError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<claudeflare_actors::StoreError> for ApiError {
    fn from(e: claudeflare_actors::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::Internal(format!("engine unavailable: {e}"))
    }
}

/// The management API's error body, for the OpenAPI document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable kind (`invalid_request`, `not_found`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong, naming the field at fault.
    pub message: String,
}

/// An error body in Anthropic's shape, for answers the proxy makes itself.
pub fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "type": "error",
        "error": {"type": kind, "message": message}
    }))
}
