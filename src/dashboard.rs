//! The web dashboard: hand-written HTML, CSS and JavaScript modules from `static/`,
//! compiled into the binary with `rust-embed` (the `debug-embed` feature makes debug
//! builds embed too, so tests serve exactly what an installed binary serves).
//!
//! Routes, none of which overlaps `/v1/*`, `/api/*`, `/health` or `/metrics`:
//! - `GET /`: the dashboard (`static/index.html`);
//! - `GET /about`: the landing page (`static/about.html`);
//! - `GET /static/{path}`: any embedded file (scripts, styles, screenshots, icon).
//!
//! Every answer carries a strong `ETag` (from the file's SHA-256, computed at build
//! time) and is revalidated (`Cache-Control: no-cache`, a 304 when unchanged), since
//! the files have no content hash in their names; screenshots may be cached an hour.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// The policy for the HTML pages: only this origin's scripts, styles and API.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

/// Registers the dashboard's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(index))
            .route(web::head().to(index)),
    )
    .service(
        web::resource("/about")
            .route(web::get().to(about))
            .route(web::head().to(about)),
    )
    .service(
        web::resource("/static/{path:.*}")
            .route(web::get().to(asset))
            .route(web::head().to(asset)),
    );
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn about(req: HttpRequest) -> HttpResponse {
    serve(&req, "about.html")
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    serve(&req, &path)
}

/// The content type for a file name; unknown kinds are served as bytes.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `If-None-Match` names this entity tag (or is `*`).
fn matches_etag(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn serve(req: &HttpRequest, path: &str) -> HttpResponse {
    // Embedded names never start with a slash nor climb out of the folder.
    let path = path.trim_start_matches('/');
    let Some(file) = (!path.split('/').any(|part| part == ".."))
        .then(|| Assets::get(path))
        .flatten()
    else {
        return HttpResponse::NotFound().json(serde_json::json!({
            "error": {"type": "not_found", "message": format!("no such file: /static/{path}")}
        }));
    };
    let etag = format!("\"{}\"", &hex(&file.metadata.sha256_hash())[..32]);
    let cache = if path.starts_with("screenshots/") {
        "public, max-age=3600"
    } else {
        "no-cache"
    };
    let not_modified = matches_etag(req, &etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    let kind = content_type(path);
    if kind.starts_with("text/html") {
        response
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
            .insert_header((header::REFERRER_POLICY, "no-referrer"))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    }
    if not_modified {
        return response.finish();
    }
    response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(kind)));
    // For HEAD, actix sends the headers (length included) and leaves the body out.
    response.body(file.data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_are_embedded() {
        for name in ["index.html", "about.html", "css/app.css", "js/app.js"] {
            assert!(Assets::get(name).is_some(), "{name} is not embedded");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("css/app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("screenshots/overview.png"), "image/png");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
