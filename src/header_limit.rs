//! Oversized request heads answered with a JSON 431 like every other error.
//!
//! actix-http refuses a request head over 128 KiB (or with more than 96 header lines)
//! in its codec, before any service runs, with a 431 that has an empty body; that
//! limit is a constant and the answer cannot be changed. So the daemon enforces its
//! own, lower limit (`max_header_bytes`) here, as the outermost check after tracing,
//! where the answer can be the usual JSON. Only heads beyond actix's limit still get
//! the bare 431. Being the first of the daemon's code to see every request, it also
//! copies the head's values out of the connection's read buffer
//! ([`detach_header_values`]).

use crate::error::anthropic_error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use bytes::BytesMut;
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

/// Copies the header values into one allocation of their own, so that they no longer
/// hold the connection's read buffer.
///
/// actix-http parses a head in place: each value is a slice of the read buffer (8 KiB
/// or more), and keeps all of it alive. actix-web then keeps up to 128 finished
/// requests per worker for reuse, heads included, so an idle daemon held a read buffer
/// for each request a worker once had in flight at the same time, up to 1 MB per
/// worker after a burst of connections (docs/performance.md, eighteenth round). The
/// copy costs one small allocation per request.
pub fn detach_header_values(headers: &mut HeaderMap) {
    let total: usize = headers.iter().map(|(_, value)| value.len()).sum();
    let mut copy = BytesMut::with_capacity(total);
    for (_, value) in headers.iter() {
        copy.extend_from_slice(value.as_bytes());
    }
    let copy = copy.freeze();
    let mut start = 0;
    headers.retain(|_, value| {
        let end = start + value.len();
        // `retain` visits the values in `iter`'s order; should that ever change, a value
        // whose bytes do not match is left where it is.
        if copy.get(start..end) == Some(value.as_bytes()) {
            if let Ok(mut detached) = HeaderValue::from_maybe_shared(copy.slice(start..end)) {
                detached.set_sensitive(value.is_sensitive());
                *value = detached;
            }
        }
        start = end;
        true
    });
}

/// Answers 431 with a JSON body when the request head is over `limit` bytes: in
/// Anthropic's shape on `/v1/*` (the SDKs parse it), the management API's elsewhere.
pub async fn check(
    limit: usize,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let size = head_size(&req);
    if size <= limit {
        detach_header_values(req.headers_mut());
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;
    use bytes::Bytes;

    /// Name, value and sensitivity of every header, in the map's order.
    fn listed(headers: &HeaderMap) -> Vec<(String, Vec<u8>, bool)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
            .collect()
    }

    #[test]
    fn detached_values_are_the_same_and_no_longer_in_the_read_buffer() {
        // As actix-http parses a head: each value a slice of the connection's buffer.
        let mut read_buffer = vec![0u8; 8192];
        let text = b"application/json sk-ant-secret gzip br";
        read_buffer[..text.len()].copy_from_slice(text);
        let buffer = Bytes::from(read_buffer);
        let value = |range: std::ops::Range<usize>| {
            HeaderValue::from_maybe_shared(buffer.slice(range)).expect("a valid value")
        };
        let mut headers = HeaderMap::new();
        headers.append(HeaderName::from_static("content-type"), value(0..16));
        let mut key = value(17..30);
        key.set_sensitive(true);
        headers.append(HeaderName::from_static("x-api-key"), key);
        headers.append(HeaderName::from_static("accept-encoding"), value(31..35));
        headers.append(HeaderName::from_static("accept-encoding"), value(36..38));
        let before = listed(&headers);

        detach_header_values(&mut headers);

        assert_eq!(listed(&headers), before);
        let inside = buffer.as_ptr_range();
        for (name, value) in headers.iter() {
            let start = value.as_bytes().as_ptr();
            assert!(
                !inside.contains(&start),
                "{name} still points into the buffer"
            );
        }
        assert!(headers
            .get("x-api-key")
            .is_some_and(HeaderValue::is_sensitive));
    }

    #[test]
    fn a_head_without_values_is_left_as_it_is() {
        let mut headers = HeaderMap::new();
        detach_header_values(&mut headers);
        assert!(headers.is_empty());
        headers.append(
            HeaderName::from_static("x-empty"),
            HeaderValue::from_static(""),
        );
        detach_header_values(&mut headers);
        assert_eq!(listed(&headers), vec![("x-empty".into(), vec![], false)]);
    }
}
