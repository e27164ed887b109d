//! `spawn_app()`: the real daemon on port 0 against a fresh data directory and an
//! in-process mock upstream, with typed helpers for what the tests do.

use crate::mock::MockUpstream;
use crate::mock_oauth::MockTokens;
use actix_web::dev::ServerHandle;
use actix_web::web::Bytes;
use claudeflare::{Application, Config};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BODY: &str = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#;
pub const STREAM_BODY: &str = r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;

pub struct TestApp {
    pub address: String,
    pub mock: MockUpstream,
    pub tokens: MockTokens,
    pub data_dir: Arc<tempfile::TempDir>,
    pub client: awc::Client,
    handle: ServerHandle,
    join: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
}

/// A test config: port 0, fast retries, the mock as upstream.
pub fn test_config(data_dir: PathBuf, upstream: &str, tokens: &MockTokens) -> Config {
    Config {
        port: 0,
        data_dir,
        upstream_url: upstream.to_string(),
        oauth_token_url: tokens.token_url(),
        oauth_api_key_url: tokens.api_key_url(),
        retry_delay_ms: 10,
        retry_max_delay_ms: 2_000,
        overload_cooldown_ms: 10_000,
        workers: 2,
        log_level: "warn".into(),
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mock = MockUpstream::start().await;
    let tokens = MockTokens::start().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    start(mock, tokens, dir, adjust).await
}

/// Builds the daemon; `Err` carries the start-up error's message.
pub async fn try_start(
    mock: MockUpstream,
    tokens: MockTokens,
    data_dir: Arc<tempfile::TempDir>,
    adjust: impl FnOnce(&mut Config),
) -> Result<TestApp, String> {
    let mut config = test_config(data_dir.path().to_path_buf(), &mock.url, &tokens);
    // What the config file in the data directory says, as `serve` would read it.
    let flags = claudeflare::config::Overrides {
        data_dir: Some(data_dir.path().to_path_buf()),
        ..Default::default()
    };
    if let Ok(loaded) = Config::load(None, &flags) {
        config.strategy = loaded.strategy;
        config.config_file = loaded.config_file;
    }
    adjust(&mut config);
    claudeflare::telemetry::init(&config);
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let join = actix_web::rt::spawn(app.run_until_stopped());
    Ok(TestApp {
        address,
        mock,
        tokens,
        data_dir,
        client: awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish(),
        handle,
        join,
    })
}

async fn start(
    mock: MockUpstream,
    tokens: MockTokens,
    data_dir: Arc<tempfile::TempDir>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    try_start(mock, tokens, data_dir, adjust)
        .await
        .expect("build app")
}

impl TestApp {
    /// Stops the daemon gracefully (flushing the logger) and starts it again on the same
    /// data directory and mock.
    pub async fn restart(self) -> TestApp {
        let mock = self.mock.clone();
        let tokens = self.tokens.clone();
        let dir = self.data_dir.clone();
        self.stop().await;
        start(mock, tokens, dir, |_| {}).await
    }

    /// Stops the daemon and hands back what a restart needs.
    pub async fn stop_keeping(self) -> (MockUpstream, MockTokens, Arc<tempfile::TempDir>) {
        let kept = (
            self.mock.clone(),
            self.tokens.clone(),
            self.data_dir.clone(),
        );
        self.stop().await;
        kept
    }

    /// Imports an OAuth account from existing tokens.
    pub async fn import_oauth(
        &self,
        name: &str,
        refresh: &str,
        access: &str,
        expires_at_ms: i64,
    ) -> Value {
        let (status, body) = self
            .post_json(
                "/api/accounts",
                serde_json::json!({
                    "name": name, "refreshToken": refresh, "accessToken": access, "expiresAt": expires_at_ms
                }),
            )
            .await;
        assert_eq!(status, 201, "import {name}: {body}");
        body
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.join.await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let mut r = self.client.get(self.url(path)).send().await.expect("get");
        let status = r.status().as_u16();
        let body = r.body().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let mut r = self
            .client
            .post(self.url(path))
            .send_json(&body)
            .await
            .expect("post");
        let status = r.status().as_u16();
        let body = r.body().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn add_account(&self, name: &str, key: &str) -> Value {
        let (status, body) = self
            .post_json(
                "/api/accounts",
                serde_json::json!({"name": name, "apiKey": key}),
            )
            .await;
        assert_eq!(status, 201, "add account {name}: {body}");
        body
    }

    pub async fn accounts(&self) -> Vec<Value> {
        let (status, body) = self.get_json("/api/accounts").await;
        assert_eq!(status, 200);
        body.as_array().cloned().unwrap_or_default()
    }

    pub async fn account(&self, name: &str) -> Value {
        self.accounts()
            .await
            .into_iter()
            .find(|a| a["name"] == name)
            .unwrap_or(Value::Null)
    }

    /// POSTs a Messages request with a client key and reads the whole answer.
    pub async fn message(&self, body: &str) -> Answer {
        self.send("/v1/messages", body, &[("x-api-key", "client-key")])
            .await
    }

    pub async fn send(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .client
            .post(self.url(path))
            .insert_header(("content-type", "application/json"))
            .insert_header(("anthropic-version", "2023-06-01"));
        for h in headers {
            req = req.insert_header(*h);
        }
        let mut r = req
            .send_body(body.to_string())
            .await
            .expect("send through proxy");
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let body = r.body().limit(64 << 20).await.unwrap_or_default();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The request history, waiting until it holds at least `n` rows (the logger
    /// writes in batches).
    pub async fn wait_for_requests(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.get_json("/api/requests?limit=1000").await;
            assert_eq!(status, 200);
            let rows = body.as_array().cloned().unwrap_or_default();
            if rows.len() >= n || Instant::now() > deadline {
                return rows;
            }
            actix_web::rt::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// The newest request row with this id.
    pub async fn request(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows = self.wait_for_requests(1).await;
            if let Some(r) = rows.into_iter().find(|r| r["id"] == id) {
                return r;
            }
            assert!(Instant::now() < deadline, "request {id} was never recorded");
            actix_web::rt::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn request_id(&self) -> String {
        self.header("x-claudeflare-request-id")
            .expect("request id header")
            .to_string()
    }

    pub fn account(&self) -> &str {
        self.header("x-claudeflare-account").unwrap_or("")
    }
}
