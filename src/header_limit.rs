//! Oversized request heads answered with a JSON 431 like every other error.
//!
//! actix-http refuses a request head over 128 KiB (or with more than 96 header lines)
//! in its codec, before any service runs, with a 431 that has an empty body; that
//! limit is a constant and the answer cannot be changed. So the daemon enforces its
//! own, lower limit (`max_header_bytes`) here, as the outermost check after tracing,
//! where the answer can be the usual JSON. Only heads beyond actix's limit still get
//! the bare 431.

use crate::error::anthropic_error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use serde_json::json;

/// actix-http's own limit on a request head (`MAX_BUFFER_SIZE` in its h1 decoder).
pub const CODEC_HEAD_LIMIT: usize = 128 * 1024;

/// The largest `max_header_bytes` allowed: low enough that a head over it reaches this
/// check before actix-http's codec refuses it.
pub const MAX_HEADER_BYTES_CEILING: usize = 112 * 1024;

/// The request head's size as it was on the wire (request line, header lines, the
/// blank line), recomputed from the parsed request.
pub fn head_size(req: &ServiceRequest) -> usize {
    let uri = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    // "METHOD URI HTTP/1.1\r\n"
    let line = req.method().as_str().len() + 1 + uri + 1 + 8 + 2;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Answers 431 with a JSON body when the request head is over `limit` bytes: in
/// Anthropic's shape on `/v1/*` (the SDKs parse it), the management API's elsewhere.
pub async fn check(
    limit: usize,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let size = head_size(&req);
    if size <= limit {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let message =
        format!("request headers are {size} bytes, over the limit of {limit} (max_header_bytes)");
    tracing::debug!(path = %req.path(), size, limit, "request head too large");
    let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    let response = if req.path().starts_with("/v1/") {
        anthropic_error(status, "request_too_large", &message)
    } else {
        HttpResponse::build(status).json(json!({
            "error": {"type": "request_too_large", "message": message}
        }))
    };
    Ok(req.into_response(response).map_into_right_body())
}
