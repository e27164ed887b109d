//! An in-process OAuth token endpoint: checks PKCE and state on code exchange,
//! rotates refresh tokens (a reused one gets `invalid_grant`, as upstream), counts
//! refreshes and how many run at once, and can be told to fail or to be slow.

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct TokenState {
    /// Authorization codes the test registered: code → (challenge, state).
    codes: HashMap<String, (String, String)>,
    valid_refresh: HashSet<String>,
    next: usize,
    pub refresh_calls: usize,
    in_flight: usize,
    pub max_in_flight: usize,
    pub delay: Duration,
    pub expires_in: i64,
    /// Answers the next refresh calls get instead of tokens.
    pub fail_refresh: Vec<(u16, Value)>,
    pub minted_keys: Vec<String>,
}

#[derive(Clone)]
pub struct MockTokens {
    pub url: String,
    pub state: Arc<Mutex<TokenState>>,
}

impl MockTokens {
    pub async fn start() -> MockTokens {
        let state = Arc::new(Mutex::new(TokenState {
            expires_in: 3600,
            ..TokenState::default()
        }));
        let shared = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .route("/v1/oauth/token", web::post().to(token))
                .route(
                    "/api/oauth/claude_cli/create_api_key",
                    web::post().to(mint_key),
                )
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        MockTokens {
            url: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    pub fn token_url(&self) -> String {
        format!("{}/v1/oauth/token", self.url)
    }

    pub fn api_key_url(&self) -> String {
        format!("{}/api/oauth/claude_cli/create_api_key", self.url)
    }

    /// Accepts `code` once, for this PKCE challenge and state.
    pub fn register_code(&self, code: &str, challenge: &str, state: &str) {
        self.state
            .lock()
            .expect("lock")
            .codes
            .insert(code.into(), (challenge.into(), state.into()));
    }

    /// Makes a refresh token valid (as if issued earlier).
    pub fn issue_refresh(&self, token: &str) {
        self.state
            .lock()
            .expect("lock")
            .valid_refresh
            .insert(token.into());
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut TokenState) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }
}

fn issue(state: &mut TokenState) -> Value {
    state.next += 1;
    let n = state.next;
    let refresh = format!("sk-ant-ort01-refresh-{n:04}-mock");
    state.valid_refresh.insert(refresh.clone());
    json!({
        "access_token": format!("sk-ant-oat01-access-{n:04}-mock"),
        "refresh_token": refresh,
        "expires_in": state.expires_in,
        "token_type": "Bearer",
        "scope": "user:inference",
        "account": {"uuid": "acc-uuid", "email_address": "someone@example.com"},
        "organization": {"uuid": "org-uuid", "name": "Example Org"}
    })
}

fn invalid_grant(description: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .json(json!({"error": "invalid_grant", "error_description": description}))
}

async fn token(body: Bytes, state: web::Data<Arc<Mutex<TokenState>>>) -> HttpResponse {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_request"}));
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match field("grant_type").as_str() {
        "authorization_code" => {
            let mut s = state.lock().expect("lock");
            let Some((challenge, expected_state)) = s.codes.remove(&field("code")) else {
                return invalid_grant("Invalid authorization code");
            };
            let verifier_hash =
                URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
            if verifier_hash != challenge {
                return invalid_grant("code_verifier does not match the challenge");
            }
            if field("state") != expected_state {
                return invalid_grant("state mismatch");
            }
            if field("client_id").is_empty() || field("redirect_uri").is_empty() {
                return HttpResponse::BadRequest().json(json!({"error": "invalid_request"}));
            }
            HttpResponse::Ok().json(issue(&mut s))
        }
        "refresh_token" => {
            let delay = {
                let mut s = state.lock().expect("lock");
                s.in_flight += 1;
                s.max_in_flight = s.max_in_flight.max(s.in_flight);
                s.delay
            };
            if !delay.is_zero() {
                actix_web::rt::time::sleep(delay).await;
            }
            let mut s = state.lock().expect("lock");
            s.in_flight -= 1;
            s.refresh_calls += 1;
            if !s.fail_refresh.is_empty() {
                let (status, body) = s.fail_refresh.remove(0);
                return HttpResponse::build(
                    actix_web::http::StatusCode::from_u16(status).expect("status"),
                )
                .json(body);
            }
            // Rotation: a refresh token works once.
            if !s.valid_refresh.remove(&field("refresh_token")) {
                return invalid_grant("Refresh token not found or invalid");
            }
            HttpResponse::Ok().json(issue(&mut s))
        }
        _ => HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"})),
    }
}

async fn mint_key(req: HttpRequest, state: web::Data<Arc<Mutex<TokenState>>>) -> HttpResponse {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bearer.starts_with("Bearer sk-ant-oat01-") {
        return HttpResponse::Unauthorized().json(json!({"error": "unauthorized"}));
    }
    let mut s = state.lock().expect("lock");
    let key = format!("sk-ant-api03-minted-{:04}-KEYX", s.minted_keys.len() + 1);
    s.minted_keys.push(key.clone());
    HttpResponse::Ok().json(json!({"raw_key": key}))
}
