//! `GET /health`: whether the daemon can serve, and the pool at a glance.

use crate::error::ApiError;
use actix_web::{get, web, HttpResponse};
use claudeflare_actors::clock::{iso, now_ms};
use claudeflare_actors::domain::Unavailable;
use claudeflare_actors::selector::CurrentStrategy;
use claudeflare_actors::Engine;
use serde::Serialize;
use std::time::Instant;

/// When the daemon started, for `uptimeSeconds`.
pub struct StartedAt(pub Instant);

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub configured: usize,
    pub available: usize,
    pub paused: usize,
    pub rate_limited: usize,
    pub requires_reauth: usize,
    pub next_available_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    accounts: usize,
    strategy: String,
    version: &'static str,
    uptime_seconds: u64,
    pool: Pool,
}

/// The pool's state now.
pub async fn pool(engine: &Engine) -> Result<Pool, ApiError> {
    let now = now_ms();
    let accounts = engine.accounts().await?;
    let mut pool = Pool {
        configured: accounts.len(),
        ..Pool::default()
    };
    let mut next: Option<i64> = None;
    for (a, _) in &accounts {
        match a.unavailable(now) {
            None => pool.available += 1,
            Some((why, at)) => {
                match why {
                    Unavailable::Paused => pool.paused += 1,
                    Unavailable::RequiresReauth => pool.requires_reauth += 1,
                    Unavailable::RateLimited | Unavailable::Overloaded => pool.rate_limited += 1,
                    Unavailable::AuthFailed | Unavailable::RefreshFailed => {}
                }
                if let Some(at) = at {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
    }
    pool.next_available_at = next.map(iso);
    Ok(pool)
}

/// 200 when at least one account can serve (or none is configured), 503 otherwise.
#[utoipa::path(get, path = "/health", summary = "Whether the daemon can serve, and the pool at a glance", responses((status = 200, description = "At least one account can serve, or none is configured", body = Object), (status = 503, description = "Accounts exist but none can serve", body = Object)))]
#[get("/health")]
pub async fn health(
    engine: web::Data<Engine>,
    started: web::Data<StartedAt>,
) -> Result<HttpResponse, ApiError> {
    let pool = pool(&engine).await?;
    let strategy = engine.selector.send(CurrentStrategy).await?;
    let status = if pool.configured == 0 || pool.available == pool.configured {
        "ok"
    } else if pool.available > 0 {
        "degraded"
    } else {
        "unhealthy"
    };
    let body = Health {
        status,
        accounts: pool.configured,
        strategy,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: started.0.elapsed().as_secs(),
        pool,
    };
    Ok(if status == "unhealthy" {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}
