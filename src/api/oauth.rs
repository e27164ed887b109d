//! OAuth sign-in (authorization code with PKCE S256) for Claude subscriptions
//! (`max`) and Console accounts (`console`, which mints an API key), and
//! re-authentication of an existing account.

use super::accounts::{check_priority, check_tier, validate_name};
use crate::error::ApiError;
use actix_web::{post, web, HttpResponse};
use claudeflare_actors::clock::{iso, now_ms};
use claudeflare_actors::domain::{AccountKind, Secret};
use claudeflare_actors::oauth::{self, OAuthEndpoints, Pkce, TokenError};
use claudeflare_actors::registry::{AddAccount, ListAccounts, NewCredentials, Reauthenticated};
use claudeflare_actors::secrets::random_token;
use claudeflare_actors::Engine;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most sign-ins waiting for their code at once.
const MAX_PENDING: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A Pro/Max subscription: the account keeps OAuth tokens.
    Max,
    /// A Console sign-in that mints a permanent API key.
    Console,
}

/// A started sign-in, waiting for the code the user pastes back.
struct Pending {
    name: String,
    mode: Mode,
    tier: i32,
    priority: i32,
    verifier: Secret,
    state: String,
    created_ms: i64,
    /// Re-authentication of this account (id) instead of a new account.
    reauth: Option<String>,
}

/// The sign-ins in progress, and where to sign in.
pub struct OAuthFlows {
    endpoints: OAuthEndpoints,
    ttl_ms: i64,
    pending: Mutex<HashMap<String, Pending>>,
}

impl OAuthFlows {
    pub fn new(endpoints: OAuthEndpoints, ttl_ms: i64) -> Self {
        Self {
            endpoints,
            ttl_ms,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a sign-in; returns the authorize URL and the session id.
    fn start(&self, mut pending: Pending) -> Result<(String, String, i64), ApiError> {
        let pkce = Pkce::new();
        let state = random_token(32);
        let base = match pending.mode {
            Mode::Max => &self.endpoints.authorize_url_max,
            Mode::Console => &self.endpoints.authorize_url_console,
        };
        let url = oauth::authorize_url(base, &self.endpoints, &pkce.challenge, &state);
        pending.verifier = pkce.verifier;
        pending.state = state;
        pending.created_ms = now_ms();
        let session_id = random_token(18);
        let expires = pending.created_ms + self.ttl_ms;
        let mut map = self
            .pending
            .lock()
            .map_err(|_| ApiError::Internal("sign-in state unavailable".into()))?;
        let now = pending.created_ms;
        map.retain(|_, p| now - p.created_ms < self.ttl_ms);
        if map.len() >= MAX_PENDING {
            return Err(ApiError::Conflict(
                "too many sign-ins in progress; finish or wait for one to expire".into(),
            ));
        }
        map.insert(session_id.clone(), pending);
        Ok((url, session_id, expires))
    }

    /// Takes a pending sign-in out (a session id works once).
    fn take(&self, session_id: &str) -> Result<Pending, ApiError> {
        let pending = self
            .pending
            .lock()
            .map_err(|_| ApiError::Internal("sign-in state unavailable".into()))?
            .remove(session_id);
        match pending {
            Some(p) if now_ms() - p.created_ms < self.ttl_ms => Ok(p),
            _ => Err(ApiError::BadRequest(
                "sessionId: unknown or expired sign-in; start it again".into(),
            )),
        }
    }
}

fn blank(name: String, mode: Mode, tier: i32, priority: i32, reauth: Option<String>) -> Pending {
    Pending {
        name,
        mode,
        tier,
        priority,
        verifier: Secret::new(String::new()),
        state: String::new(),
        created_ms: 0,
        reauth,
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitBody {
    name: String,
    mode: Mode,
    tier: Option<i32>,
    priority: Option<i32>,
}

/// `POST /api/oauth/init {"name","mode":"max"|"console","tier"?}` →
/// `{"authUrl","sessionId","expiresAt"}`.
#[utoipa::path(post, path = "/oauth/init", summary = "Start an OAuth sign-in (PKCE)", request_body = InitBody, responses((status = 200, description = "authUrl, sessionId, expiresAt", body = Object), (status = 400, description = "Invalid input; the message names the field", body = crate::error::ErrorBody), (status = 409, description = "Name already taken", body = crate::error::ErrorBody)))]
#[post("/oauth/init")]
pub async fn init(
    engine: web::Data<Engine>,
    flows: web::Data<OAuthFlows>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: InitBody = super::from_body(body.into_inner())?;
    let name = validate_name(&body.name)?;
    let tier = check_tier(body.tier.unwrap_or(1))?;
    let priority = check_priority(body.priority.unwrap_or(0))?;
    let accounts = engine.registry.send(ListAccounts).await?;
    if accounts.iter().any(|(a, _)| a.name == name) {
        return Err(ApiError::Conflict(format!(
            "an account named {name:?} already exists (to sign it in again: POST /api/accounts/{{id}}/reauth)"
        )));
    }
    let (url, session_id, expires) = flows.start(blank(name, body.mode, tier, priority, None))?;
    Ok(HttpResponse::Ok().json(json!({
        "authUrl": url, "sessionId": session_id, "expiresAt": iso(expires)
    })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct ReauthBody {
    mode: Option<Mode>,
}

/// `POST /api/accounts/{id}/reauth {"mode"?}`: the same flow for an existing account,
/// which keeps its id, statistics and settings.
#[utoipa::path(post, path = "/accounts/{id}/reauth", summary = "Start a new sign-in for an existing account", params(("id" = String, Path, description = "Account id or name")), request_body(content = Option<ReauthBody>), responses((status = 200, description = "authUrl, sessionId, expiresAt", body = Object), (status = 404, description = "No such account", body = crate::error::ErrorBody)))]
#[post("/accounts/{id}/reauth")]
pub async fn start_reauth(
    engine: web::Data<Engine>,
    flows: web::Data<OAuthFlows>,
    id: web::Path<String>,
    body: Option<web::Json<serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let body: ReauthBody = match body {
        Some(b) => super::from_body(b.into_inner())?,
        None => ReauthBody::default(),
    };
    let id = id.into_inner();
    let accounts = engine.registry.send(ListAccounts).await?;
    let account = accounts
        .iter()
        .map(|(a, _)| a)
        .find(|a| a.id == id)
        .or_else(|| accounts.iter().map(|(a, _)| a).find(|a| a.name == id))
        .ok_or_else(|| ApiError::NotFound(format!("no account {id:?}")))?;
    let mode = body.mode.unwrap_or(match account.kind {
        AccountKind::Oauth => Mode::Max,
        AccountKind::ApiKey => Mode::Console,
    });
    let pending = blank(
        account.name.clone(),
        mode,
        account.tier,
        account.priority,
        Some(account.id.clone()),
    );
    let (url, session_id, expires) = flows.start(pending)?;
    Ok(HttpResponse::Ok().json(json!({
        "authUrl": url, "sessionId": session_id, "expiresAt": iso(expires)
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    session_id: String,
    code: String,
}

fn token_error(what: &str, e: TokenError) -> ApiError {
    match e {
        TokenError::Refused { message, .. } => ApiError::BadRequest(format!(
            "code: the token endpoint refused {what}: {message}"
        )),
        other => ApiError::BadGateway(other.to_string()),
    }
}

/// `POST /api/oauth/callback {"sessionId","code"}`: exchanges the pasted
/// `CODE#STATE` and creates (or re-authenticates) the account.
#[utoipa::path(post, path = "/oauth/callback", summary = "Finish a sign-in with the pasted CODE#STATE", request_body = CallbackBody, responses((status = 200, description = "The re-authenticated account", body = Object), (status = 201, description = "The new account", body = Object), (status = 400, description = "Unknown or expired sign-in, state mismatch, or the token endpoint refused (quoted)", body = crate::error::ErrorBody), (status = 502, description = "The token endpoint could not be reached", body = crate::error::ErrorBody)))]
#[post("/oauth/callback")]
pub async fn callback(
    engine: web::Data<Engine>,
    flows: web::Data<OAuthFlows>,
    client: web::Data<awc::Client>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let body: CallbackBody = super::from_body(body.into_inner())?;
    let pending = flows.take(body.session_id.trim())?;
    let pasted = body.code.trim();
    let (code, state) = match pasted.split_once('#') {
        Some((code, state)) => (code, state),
        None => (pasted, pending.state.as_str()),
    };
    if code.is_empty() {
        return Err(ApiError::BadRequest("code: empty".into()));
    }
    if state != pending.state {
        return Err(ApiError::BadRequest(
            "code: the state does not match this sign-in (was the code from another attempt?); start again"
                .into(),
        ));
    }
    let tokens = oauth::exchange_code(&client, &flows.endpoints, code, state, &pending.verifier)
        .await
        .map_err(|e| token_error("the code", e))?;
    let credentials = match pending.mode {
        Mode::Max => NewCredentials::OAuth(tokens),
        Mode::Console => {
            let access = tokens.access_token.ok_or_else(|| {
                ApiError::BadGateway("the token endpoint gave no access token".into())
            })?;
            let key = oauth::create_api_key(&client, &flows.endpoints, &access)
                .await
                .map_err(|e| token_error("to create an API key", e))?;
            NewCredentials::ApiKey(key)
        }
    };
    let now = now_ms();
    match pending.reauth {
        Some(id) => {
            let account = engine
                .registry
                .send(Reauthenticated {
                    id_or_name: id,
                    credentials,
                })
                .await??;
            Ok(HttpResponse::Ok().json(account.summary(now, false)))
        }
        None => {
            let account = engine
                .registry
                .send(AddAccount {
                    name: pending.name,
                    credentials,
                    tier: pending.tier,
                    priority: pending.priority,
                    provider: "anthropic".into(),
                    base_url: None,
                    model_map: None,
                })
                .await??;
            Ok(HttpResponse::Created().json(account.summary(now, false)))
        }
    }
}
