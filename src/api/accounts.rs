//! `/api/accounts`: list, add (API keys), remove, pause and resume.

use crate::error::ApiError;
use actix_web::{delete, get, post, web, HttpResponse};
use claudeflare_actors::clock::now_ms;
use claudeflare_actors::domain::{Secret, TIERS};
use claudeflare_actors::oauth::TokenSet;
use claudeflare_actors::registry::{
    AccountChange, AddAccount, ChangeAccount, NewCredentials, RemoveAccount,
};
use claudeflare_actors::Engine;
use serde::Deserialize;

#[utoipa::path(get, path = "/accounts", summary = "List accounts (credentials never shown, only a hint)", responses((status = 200, description = "The accounts", body = Object)))]
#[get("/accounts")]
pub async fn list(engine: web::Data<Engine>) -> Result<HttpResponse, ApiError> {
    let now = now_ms();
    let accounts: Vec<_> = engine
        .accounts()
        .await?
        .iter()
        .map(|(a, active)| a.summary(now, *active))
        .collect();
    Ok(HttpResponse::Ok().json(accounts))
}

/// The body of `POST /api/accounts`: an API key, or existing OAuth tokens to import
/// (a subscription account without the browser step).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount {
    name: String,
    api_key: Option<String>,
    refresh_token: Option<String>,
    access_token: Option<String>,
    /// Unix milliseconds or an RFC 3339 time.
    expires_at: Option<serde_json::Value>,
    tier: Option<i32>,
    priority: Option<i32>,
    /// `anthropic` (default), `anthropic-compatible`, `zai` or `minimax`.
    provider: Option<String>,
    /// Where requests go; required for `anthropic-compatible`.
    base_url: Option<String>,
    /// Requested model (exact id, or `opus`/`sonnet`/`haiku`) → model sent.
    model_map: Option<std::collections::BTreeMap<String, String>>,
}

/// Provider, base URL and model map of a new account, checked.
type ProviderSettings = (
    String,
    Option<String>,
    Option<std::collections::BTreeMap<String, String>>,
);

fn provider_settings(body: &NewAccount) -> Result<ProviderSettings, ApiError> {
    use claudeflare_actors::providers;
    let provider = body.provider.clone().unwrap_or_else(|| "anthropic".into());
    let preset = providers::preset(&provider).ok_or_else(|| {
        let names: Vec<&str> = providers::PRESETS.iter().map(|p| p.id).collect();
        ApiError::BadRequest(format!(
            "provider: {provider:?} is not one of: {}",
            names.join(", ")
        ))
    })?;
    let base_url = match &body.base_url {
        Some(url) => Some(
            providers::validate_base_url(url)
                .map_err(|e| ApiError::BadRequest(format!("baseUrl: {e}")))?,
        ),
        None => None,
    };
    if preset.id == "anthropic-compatible" && base_url.is_none() {
        return Err(ApiError::BadRequest(
            "baseUrl: required for the anthropic-compatible provider".into(),
        ));
    }
    if let Some(map) = &body.model_map {
        if map
            .iter()
            .any(|(k, v)| k.trim().is_empty() || v.trim().is_empty() || v.len() > 200)
        {
            return Err(ApiError::BadRequest(
                "modelMap: keys and values must be non-empty model names".into(),
            ));
        }
    }
    Ok((
        preset.id.to_string(),
        base_url,
        body.model_map.clone().filter(|m| !m.is_empty()),
    ))
}

/// A credential as the client sent it: one token, no spaces, a sane length.
fn token(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(v) = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) || v.len() > 4096 {
        return Err(ApiError::BadRequest(format!(
            "{field}: must be a single token with no spaces"
        )));
    }
    Ok(Some(v))
}

fn expiry(value: Option<serde_json::Value>) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("expiresAt: must be unix milliseconds".into())),
        Some(serde_json::Value::String(s)) => claudeflare_actors::clock::parse_rfc3339_ms(&s)
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest("expiresAt: must be an RFC 3339 time".into())),
        Some(_) => Err(ApiError::BadRequest(
            "expiresAt: must be unix milliseconds or an RFC 3339 time".into(),
        )),
    }
}

/// Account names are shown everywhere and used on the command line: keep them plain.
pub(crate) fn validate_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::BadRequest(
            "name: must be 1 to 64 characters".into(),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ' '))
    {
        return Err(ApiError::BadRequest(
            "name: may hold letters, digits, spaces and - _ . @ only".into(),
        ));
    }
    Ok(name.to_string())
}

#[utoipa::path(post, path = "/accounts", summary = "Add an account: an API key, or OAuth tokens to import", request_body = NewAccount, responses((status = 201, description = "The new account", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody), (status = 409, description = "Name already taken", body = crate::error::ErrorBody)))]
#[post("/accounts")]
pub async fn add(
    engine: web::Data<Engine>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: NewAccount = super::from_body(body.into_inner())?;
    let name = validate_name(&body.name)?;
    let (provider, base_url, model_map) = provider_settings(&body)?;
    let api_key = token("apiKey", body.api_key)?;
    let refresh_token = token("refreshToken", body.refresh_token)?;
    let access_token = token("accessToken", body.access_token)?;
    let expires_at = expiry(body.expires_at)?;
    let credentials =
        match (api_key, refresh_token) {
            (Some(key), None) => NewCredentials::ApiKey(Secret::new(key)),
            (None, Some(refresh)) => NewCredentials::OAuth(TokenSet {
                access_token: access_token.map(Secret::new),
                refresh_token: Secret::new(refresh),
                expires_at,
                email: None,
                organization: None,
            }),
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "apiKey: give either apiKey or refreshToken, not both".into(),
                ))
            }
            (None, None) => return Err(ApiError::BadRequest(
                "apiKey: required (a Console API key), or refreshToken to import an OAuth account"
                    .into(),
            )),
        };
    let tier = check_tier(body.tier.unwrap_or(1))?;
    let priority = check_priority(body.priority.unwrap_or(0))?;
    let account = engine
        .registry
        .send(AddAccount {
            name,
            credentials,
            tier,
            priority,
            provider,
            base_url,
            model_map,
        })
        .await??;
    Ok(HttpResponse::Created().json(account.summary(now_ms(), false)))
}

#[utoipa::path(delete, path = "/accounts/{id}", summary = "Remove an account (its history stays)", params(("id" = String, Path, description = "Account id or name")), responses((status = 200, description = "Removed", body = Object), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[delete("/accounts/{id}")]
pub async fn remove(
    engine: web::Data<Engine>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let removed = engine
        .registry
        .send(RemoveAccount {
            id_or_name: id.into_inner(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "removed": true, "id": removed.id, "name": removed.name
    })))
}

async fn change(
    engine: &Engine,
    id: String,
    change: AccountChange,
) -> Result<HttpResponse, ApiError> {
    let account = engine
        .registry
        .send(ChangeAccount {
            id_or_name: id,
            change,
        })
        .await??;
    Ok(HttpResponse::Ok().json(account.summary(now_ms(), false)))
}

#[utoipa::path(post, path = "/accounts/{id}/pause", summary = "Take an account out of rotation", params(("id" = String, Path, description = "Account id or name")), responses((status = 200, description = "The account", body = Object), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[post("/accounts/{id}/pause")]
pub async fn pause(
    engine: web::Data<Engine>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(&engine, id.into_inner(), AccountChange::Pause).await
}

#[utoipa::path(post, path = "/accounts/{id}/resume", summary = "Put an account back in rotation (clears a refused-credential mark)", params(("id" = String, Path, description = "Account id or name")), responses((status = 200, description = "The account", body = Object), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[post("/accounts/{id}/resume")]
pub async fn resume(
    engine: web::Data<Engine>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(&engine, id.into_inner(), AccountChange::Resume).await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TierBody {
    tier: i32,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PriorityBody {
    priority: i32,
}

pub(crate) fn check_tier(tier: i32) -> Result<i32, ApiError> {
    if TIERS.contains(&tier) {
        Ok(tier)
    } else {
        Err(ApiError::BadRequest("tier: must be 1, 5 or 20".into()))
    }
}

pub(crate) fn check_priority(priority: i32) -> Result<i32, ApiError> {
    if (0..=100).contains(&priority) {
        Ok(priority)
    } else {
        Err(ApiError::BadRequest(
            "priority: must be between 0 and 100".into(),
        ))
    }
}

/// `POST /api/accounts/{id}/tier {"tier"}`.
#[utoipa::path(post, path = "/accounts/{id}/tier", summary = "Set the tier (1, 5 or 20)", params(("id" = String, Path, description = "Account id or name")), request_body = TierBody, responses((status = 200, description = "The account", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[post("/accounts/{id}/tier")]
pub async fn set_tier(
    engine: web::Data<Engine>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: TierBody = super::from_body(body.into_inner())?;
    let tier = check_tier(body.tier)?;
    change(&engine, id.into_inner(), AccountChange::Tier(tier)).await
}

/// `POST /api/accounts/{id}/priority {"priority"}`.
#[utoipa::path(post, path = "/accounts/{id}/priority", summary = "Set the priority (0-100, lower first)", params(("id" = String, Path, description = "Account id or name")), request_body = PriorityBody, responses((status = 200, description = "The account", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[post("/accounts/{id}/priority")]
pub async fn set_priority(
    engine: web::Data<Engine>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: PriorityBody = super::from_body(body.into_inner())?;
    let priority = check_priority(body.priority)?;
    change(&engine, id.into_inner(), AccountChange::Priority(priority)).await
}

/// Finds one account by id or name.
async fn find(
    engine: &Engine,
    id: &str,
) -> Result<(std::sync::Arc<claudeflare_actors::Account>, bool), ApiError> {
    let accounts = engine.accounts().await?;
    accounts
        .iter()
        .find(|(a, _)| a.id == id)
        .or_else(|| accounts.iter().find(|(a, _)| a.name == id))
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no account {id:?}")))
}

/// `GET /api/accounts/{id or name}`.
#[utoipa::path(get, path = "/accounts/{id}", summary = "One account", params(("id" = String, Path, description = "Account id or name")), responses((status = 200, description = "The account", body = Object), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[get("/accounts/{id}")]
pub async fn one(
    engine: web::Data<Engine>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (account, active) = find(&engine, &id).await?;
    Ok(HttpResponse::Ok().json(account.summary(now_ms(), active)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RenameBody {
    name: String,
}

/// `POST /api/accounts/{id}/rename {"name"}`.
#[utoipa::path(post, path = "/accounts/{id}/rename", summary = "Rename an account", params(("id" = String, Path, description = "Account id or name")), request_body = RenameBody, responses((status = 200, description = "The account", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody), (status = 404, description = "No such account", body = crate::error::ErrorBody), (status = 409, description = "Name already taken", body = crate::error::ErrorBody)))]
#[post("/accounts/{id}/rename")]
pub async fn rename(
    engine: web::Data<Engine>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: RenameBody = super::from_body(body.into_inner())?;
    let name = validate_name(&body.name)?;
    change(&engine, id.into_inner(), AccountChange::Rename(name)).await
}

/// `POST /api/accounts/{id}/reset-rate-limit`: back into rotation now.
#[utoipa::path(post, path = "/accounts/{id}/reset-rate-limit", summary = "Clear a rate-limit bench, cooldown or refresh backoff now", params(("id" = String, Path, description = "Account id or name")), responses((status = 200, description = "The account", body = Object), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[post("/accounts/{id}/reset-rate-limit")]
pub async fn reset_rate_limit(
    engine: web::Data<Engine>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    change(&engine, id.into_inner(), AccountChange::ResetRateLimit).await
}
