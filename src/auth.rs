//! Access control: once any key exists, `/v1/*` needs a `proxy` or `admin` key and
//! the management API and `/metrics` an `admin` key; `/health` and the dashboard's
//! static files stay open (the dashboard asks for the key itself). Keys come as
//! `x-api-key` or `Authorization: Bearer` and are stripped before forwarding.
//! Management actions are written to the audit log with the key's name.

use crate::error::anthropic_error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use claudeflare_actors::clock::now_ms;
use claudeflare_actors::keys::{AuditEntry, Caller, KeyCheck, KeyRing, Role};
use claudeflare_actors::store::blocking;
use claudeflare_actors::Store;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often key use counters are written.
const KEY_USE_FLUSH: Duration = Duration::from_secs(2);

/// The key ring and where uses and audit entries go.
pub struct Access {
    pub ring: KeyRing,
    store: Store,
    /// Uses per key id since the last flush: (count, last use).
    uses: Mutex<HashMap<String, (i64, i64)>>,
    /// Per-key limit state: (minute, requests in it, requests in flight).
    limits: Mutex<HashMap<String, (i64, u32, u32)>>,
    /// When a store failure was last logged (the database may be away a while).
    failure_log: claudeflare_actors::clock::LogThrottle,
}

/// A request's place under its key's concurrency limit; released on drop.
pub struct InFlight {
    access: Arc<Access>,
    key_id: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut l) = self.access.limits.lock() {
            if let Some(entry) = l.get_mut(&self.key_id) {
                entry.2 = entry.2.saturating_sub(1);
            }
        }
    }
}

/// A response body that holds its key's concurrency place until it is done.
struct HeldBody {
    body: actix_web::body::BoxBody,
    _place: InFlight,
}

impl MessageBody for HeldBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<actix_web::web::Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_next(cx)
    }
}

impl Access {
    pub fn new(ring: KeyRing, store: Store) -> Arc<Access> {
        Arc::new(Access {
            ring,
            store,
            uses: Mutex::new(HashMap::new()),
            limits: Mutex::new(HashMap::new()),
            failure_log: claudeflare_actors::clock::LogThrottle::per_minute(),
        })
    }

    /// Logs a store failure at most once a minute.
    fn warn_store(&self, what: &str, e: &claudeflare_actors::store::StoreError) {
        if self.failure_log.due() {
            tracing::warn!(error = %e, "{what} failed; retrying (logged once a minute)");
        }
    }

    /// Applies a key's optional limits: `Err(seconds to wait)` when over one, else
    /// its concurrency place (when it has a concurrency limit).
    fn admit(self: &Arc<Self>, caller: &Caller) -> Result<Option<InFlight>, i64> {
        let limits = caller.limits;
        if limits.requests_per_minute.is_none() && limits.max_concurrent.is_none() {
            return Ok(None);
        }
        let now = now_ms();
        let minute = now / 60_000;
        let Ok(mut all) = self.limits.lock() else {
            return Ok(None);
        };
        let entry = all.entry(caller.key_id.clone()).or_insert((minute, 0, 0));
        if entry.0 != minute {
            *entry = (minute, 0, entry.2);
        }
        if let Some(rpm) = limits.requests_per_minute {
            if entry.1 >= rpm {
                return Err(((((minute + 1) * 60_000 - now) + 999) / 1000).max(1));
            }
        }
        if let Some(max) = limits.max_concurrent {
            if entry.2 >= max {
                return Err(1);
            }
        }
        entry.1 += 1;
        if limits.max_concurrent.is_some() {
            entry.2 += 1;
            return Ok(Some(InFlight {
                access: self.clone(),
                key_id: caller.key_id.clone(),
            }));
        }
        Ok(None)
    }

    fn note_use(&self, caller: &Caller) {
        if let Ok(mut uses) = self.uses.lock() {
            let entry = uses.entry(caller.key_id.clone()).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = now_ms();
        }
    }

    /// Writes the pending use counters (every 2 s, so a request never waits for it).
    pub async fn flush_uses(self: &Arc<Self>) {
        let batch: Vec<(String, i64, i64)> = match self.uses.lock() {
            Ok(mut u) => u.drain().map(|(id, (n, at))| (id, n, at)).collect(),
            Err(_) => return,
        };
        if batch.is_empty() {
            return;
        }
        let store = self.store.clone();
        let kept = batch.clone();
        if let Err(e) = blocking(move || store.record_key_use(&batch)).await {
            self.warn_store("recording key use", &e);
            // Counted again at the next flush.
            if let Ok(mut uses) = self.uses.lock() {
                for (id, n, at) in kept {
                    let entry = uses.entry(id).or_insert((0, 0));
                    entry.0 += n;
                    entry.1 = entry.1.max(at);
                }
            }
        }
    }

    /// Runs [`Access::flush_uses`] forever, and re-reads the keys from the store
    /// each time, so that a key created with `keys create --data-dir` (straight on
    /// the database) or by another instance is honoured within seconds.
    pub async fn flush_loop(self: Arc<Self>) {
        loop {
            actix_web::rt::time::sleep(KEY_USE_FLUSH).await;
            self.flush_uses().await;
            let (ring, store) = (self.ring.clone(), self.store.clone());
            if let Err(e) = blocking(move || ring.reload(&store)).await {
                self.warn_store("re-reading the keys", &e);
            }
        }
    }
}

/// Which routes need what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Open,
    Proxy,
    Admin,
}

fn classify(path: &str) -> Class {
    if path == "/v1" || path.starts_with("/v1/") {
        Class::Proxy
    } else if path == "/api" || path.starts_with("/api/") || path == "/metrics" {
        Class::Admin
    } else {
        Class::Open
    }
}

fn presented_key(req: &ServiceRequest) -> Option<String> {
    let headers = req.headers();
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|v| v.trim().to_string())
        })
        .filter(|k| !k.is_empty())
}

fn refuse(class: Class, status: StatusCode, message: &str) -> HttpResponse {
    if class == Class::Proxy {
        let kind = if status == StatusCode::FORBIDDEN {
            "permission_error"
        } else {
            "authentication_error"
        };
        return anthropic_error(status, kind, message);
    }
    let kind = if status == StatusCode::FORBIDDEN {
        "forbidden"
    } else {
        "unauthorized"
    };
    HttpResponse::build(status).json(json!({"error": {"type": kind, "message": message}}))
}

/// Whether a request changes management state (and so belongs in the audit log).
fn is_management_action(req: &ServiceRequest) -> bool {
    req.path().starts_with("/api/")
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware; see the module docs.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let mut place: Option<InFlight> = None;
    let Some(access) = req
        .app_data::<web::Data<Arc<Access>>>()
        .map(|a| a.get_ref().clone())
    else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let class = classify(req.path());
    // Built only for the audited requests: the proxy's path allocates nothing here.
    let audit = is_management_action(&req).then(|| {
        let action = format!("{} {}", req.method(), req.path());
        let target = req.match_info().get("id").unwrap_or("").to_string();
        (action, target)
    });
    let mut actor: Option<String> = None;
    if access.ring.is_active() && class != Class::Open {
        let caller = match presented_key(&req).map(|k| access.ring.check(&k)) {
            Some(KeyCheck::Valid(caller)) => caller,
            Some(KeyCheck::Unknown) => {
                let r = refuse(
                    class,
                    StatusCode::UNAUTHORIZED,
                    "this key is not valid (unknown, disabled or deleted)",
                );
                return Ok(req.into_response(r).map_into_right_body());
            }
            None => {
                let r = refuse(
                    class,
                    StatusCode::UNAUTHORIZED,
                    "a key is required: send it as x-api-key or Authorization: Bearer",
                );
                return Ok(req.into_response(r).map_into_right_body());
            }
        };
        if class == Class::Admin && caller.role != Role::Admin {
            let r = refuse(
                class,
                StatusCode::FORBIDDEN,
                "this key may use the proxy only; the management API needs an admin key",
            );
            return Ok(req.into_response(r).map_into_right_body());
        }
        if class == Class::Proxy {
            match access.admit(&caller) {
                Ok(p) => place = p,
                Err(retry_after) => {
                    let mut r = anthropic_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        "this key is over its request limit; retry later",
                    );
                    if let Ok(v) = header::HeaderValue::from_str(&retry_after.to_string()) {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    return Ok(req.into_response(r).map_into_right_body());
                }
            }
            // The daemon's key must never reach the upstream.
            let headers = req.headers_mut();
            headers.remove("x-api-key");
            headers.remove(header::AUTHORIZATION);
        }
        access.note_use(&caller);
        if audit.is_some() {
            actor = Some(caller.name.clone());
        }
        req.extensions_mut().insert(caller);
    }
    let res = next.call(req).await?;
    if let Some((action, target)) = audit {
        let entry = AuditEntry {
            timestamp: now_ms(),
            actor: actor.unwrap_or_else(|| "local".to_string()),
            action,
            target,
            status_code: i32::from(res.status().as_u16()),
        };
        let store = access.store.clone();
        if let Err(e) = blocking(move || store.append_audit(&entry)).await {
            tracing::warn!(error = %e, "writing the audit log failed");
        }
    }
    if let Some(place) = place {
        // Held until the body (a stream, maybe) is done.
        return Ok(res
            .map_body(|_, body| {
                actix_web::body::BoxBody::new(HeldBody {
                    body: actix_web::body::BoxBody::new(body),
                    _place: place,
                })
            })
            .map_into_right_body());
    }
    Ok(res.map_into_left_body())
}

/// Whether a host name or address only accepts local connections.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        assert_eq!(classify("/v1/messages"), Class::Proxy);
        assert_eq!(classify("/api/accounts"), Class::Admin);
        assert_eq!(classify("/metrics"), Class::Admin);
        assert_eq!(classify("/health"), Class::Open);
        assert_eq!(classify("/"), Class::Open);
        assert_eq!(classify("/v1x"), Class::Open);
        assert_eq!(classify("/apix"), Class::Open);
    }

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["0.0.0.0", "::", "192.168.1.10", "example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
