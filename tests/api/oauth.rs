//! Claude subscription accounts: the PKCE sign-in, refresh with one refresh per
//! account at a time, rotation, failure handling, and secrets at rest.

use crate::helpers::{spawn_app, spawn_app_with, try_start, BODY};
use crate::mock::Behavior;
use claudeflare_actors::clock::now_ms;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The query of an authorize URL, decoded.
fn query(url: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap_or_default()
    };
    url.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect()
}

async fn start_sign_in(
    app: &crate::helpers::TestApp,
    body: Value,
) -> (String, HashMap<String, String>) {
    let (status, init) = app.post_json("/api/oauth/init", body).await;
    assert_eq!(status, 200, "{init}");
    let url = init["authUrl"].as_str().expect("authUrl").to_string();
    let session = init["sessionId"].as_str().expect("sessionId").to_string();
    (session, query(&url))
}

#[actix_web::test]
async fn the_pkce_sign_in_creates_a_subscription_account() {
    let app = spawn_app().await;
    let (status, init) = app
        .post_json(
            "/api/oauth/init",
            json!({"name": "max1", "mode": "max", "tier": 20}),
        )
        .await;
    assert_eq!(status, 200);
    let url = init["authUrl"].as_str().expect("url");
    assert!(
        url.starts_with("https://claude.ai/oauth/authorize?"),
        "{url}"
    );
    let q = query(url);
    assert_eq!(q["code"], "true");
    assert_eq!(q["client_id"], "9d1c250a-e61b-44d9-88ed-5944d1962f5e");
    assert_eq!(q["response_type"], "code");
    assert_eq!(
        q["redirect_uri"],
        "https://console.anthropic.com/oauth/code/callback"
    );
    assert_eq!(q["scope"], "org:create_api_key user:profile user:inference");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32);
    assert_ne!(q["state"], q["code_challenge"]);

    app.tokens
        .register_code("auth-code-1", &q["code_challenge"], &q["state"]);
    let (status, account) = app
        .post_json(
            "/api/oauth/callback",
            json!({"sessionId": init["sessionId"], "code": format!("auth-code-1#{}", q["state"])}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["kind"], "oauth");
    assert_eq!(account["tier"], 20);
    assert_eq!(account["email"], "someone@example.com");
    assert_eq!(account["tokenStatus"], "valid");
    assert!(
        !account.to_string().contains("sk-ant-o"),
        "no token in the answer"
    );

    let answer = app
        .send("/v1/messages", BODY, &[("anthropic-beta", "tools-2024")])
        .await;
    assert_eq!((answer.status, answer.account()), (200, "max1"));
    let seen = &app.mock.seen()[0];
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-ant-oat01-access-0001-mock")
    );
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("tools-2024,oauth-2025-04-20")
    );
}

#[actix_web::test]
async fn a_console_sign_in_mints_an_api_key_account() {
    let app = spawn_app().await;
    let (session, q) = start_sign_in(&app, json!({"name": "console1", "mode": "console"})).await;
    app.tokens
        .register_code("c-1", &q["code_challenge"], &q["state"]);
    let (status, account) = app
        .post_json(
            "/api/oauth/callback",
            json!({"sessionId": session, "code": format!("c-1#{}", q["state"])}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["kind"], "api_key");
    assert_eq!(account["credentialHint"], "****KEYX");
    app.message(BODY).await;
    assert_eq!(
        app.mock.seen()[0].header("x-api-key"),
        Some("sk-ant-api03-minted-0001-KEYX")
    );
}

#[actix_web::test]
async fn bad_callbacks_get_clear_400s() {
    let app = spawn_app_with(|c| c.oauth_pending_ttl_ms = 400).await;
    // A code the endpoint does not know: its refusal is quoted.
    let (session, q) = start_sign_in(&app, json!({"name": "x", "mode": "max"})).await;
    let (status, err) = app
        .post_json(
            "/api/oauth/callback",
            json!({"sessionId": session, "code": format!("wrong#{}", q["state"])}),
        )
        .await;
    assert_eq!(status, 400);
    let message = err["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("invalid_grant") && message.contains("Invalid authorization code"),
        "{message}"
    );
    // A session id works once.
    let (status, err) = app
        .post_json(
            "/api/oauth/callback",
            json!({"sessionId": session, "code": "a#b"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("sessionId"));
    // A state that is not this sign-in's.
    let (session, q) = start_sign_in(&app, json!({"name": "x", "mode": "max"})).await;
    app.tokens
        .register_code("c", &q["code_challenge"], &q["state"]);
    let (status, err) = app
        .post_json(
            "/api/oauth/callback",
            json!({"sessionId": session, "code": "c#not-the-state"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("state"),
        "{err}"
    );
    // An expired sign-in.
    let (session, q) = start_sign_in(&app, json!({"name": "x", "mode": "max"})).await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let (status, err) = app
        .post_json(
            "/api/oauth/callback",
            json!({"sessionId": session, "code": format!("c#{}", q["state"])}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("expired"),
        "{err}"
    );
    // Bad init input.
    let (status, err) = app
        .post_json("/api/oauth/init", json!({"name": "y", "mode": "pro"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("mode"),
        "{err}"
    );
    assert!(app.accounts().await.is_empty());
}

#[actix_web::test]
async fn a_hundred_requests_on_an_expired_token_cause_one_refresh() {
    let app = spawn_app_with(|c| c.workers = 2).await;
    app.tokens.issue_refresh("sk-ant-ort01-seed");
    app.tokens.with(|s| s.delay = Duration::from_millis(200));
    app.import_oauth(
        "sub",
        "sk-ant-ort01-seed",
        "sk-ant-oat01-old",
        now_ms() - 1000,
    )
    .await;
    let app = std::rc::Rc::new(app);
    let mut requests = Vec::new();
    for _ in 0..100 {
        let app = app.clone();
        requests.push(actix_web::rt::spawn(async move {
            app.message(BODY).await.status
        }));
    }
    for r in requests {
        assert_eq!(r.await.expect("join"), 200);
    }
    assert_eq!(
        app.tokens.with(|s| s.refresh_calls),
        1,
        "exactly one refresh"
    );
    let seen = app.mock.seen();
    assert_eq!(seen.len(), 100);
    assert!(seen
        .iter()
        .all(|s| s.header("authorization") == Some("Bearer sk-ant-oat01-access-0001-mock")));
    assert_eq!(app.account("sub").await["tokenStatus"], "valid");
}

#[actix_web::test]
async fn two_accounts_refresh_at_the_same_time() {
    let app = spawn_app().await;
    app.post_json("/api/config/strategy", json!({"strategy": "round-robin"}))
        .await;
    for (name, token) in [("one", "sk-ant-ort01-one"), ("two", "sk-ant-ort01-two")] {
        app.tokens.issue_refresh(token);
        app.import_oauth(name, token, "sk-ant-oat01-old", now_ms() - 1000)
            .await;
    }
    app.tokens.with(|s| s.delay = Duration::from_millis(500));
    let app = std::rc::Rc::new(app);
    let started = Instant::now();
    let (a, b) = tokio::join!(app.message(BODY), app.message(BODY));
    assert_eq!((a.status, b.status), (200, 200));
    assert_ne!(a.account(), b.account());
    assert_eq!(
        app.tokens.with(|s| (s.refresh_calls, s.max_in_flight)),
        (2, 2)
    );
    assert!(
        started.elapsed() < Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn rotating_refresh_tokens_never_lose_the_account() {
    // Tokens that expire at once: every request refreshes, and each refresh token
    // works exactly once.
    let app = spawn_app().await;
    app.tokens.with(|s| s.expires_in = 1);
    app.tokens.issue_refresh("sk-ant-ort01-seed");
    app.import_oauth(
        "sub",
        "sk-ant-ort01-seed",
        "sk-ant-oat01-old",
        now_ms() - 1000,
    )
    .await;
    for i in 0..15 {
        let answer = app.message(BODY).await;
        assert_eq!(answer.status, 200, "request {i}");
    }
    assert_eq!(app.tokens.with(|s| s.refresh_calls), 15);
    let account = app.account("sub").await;
    assert_eq!(account["requiresReauth"], false);
    // And across a restart, the newest refresh token is the one stored.
    let app = app.restart().await;
    assert_eq!(app.message(BODY).await.status, 200);
    assert_eq!(app.tokens.with(|s| s.refresh_calls), 16);
}

#[actix_web::test]
async fn a_failed_refresh_skips_the_account_for_a_while() {
    let app = spawn_app().await;
    app.tokens.issue_refresh("sk-ant-ort01-seed");
    app.import_oauth(
        "sub",
        "sk-ant-ort01-seed",
        "sk-ant-oat01-old",
        now_ms() - 1000,
    )
    .await;
    app.add_account("backup", "key-backup-000000000").await;
    app.tokens
        .with(|s| s.fail_refresh.push((500, json!({"error": "server_error"}))));
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "backup"));
    let sub = app.account("sub").await;
    assert_eq!(sub["unavailableReason"], "refresh_failed", "{sub}");
    assert_eq!(sub["requiresReauth"], false);
    for _ in 0..5 {
        assert_eq!(app.message(BODY).await.account(), "backup");
    }
    assert_eq!(
        app.tokens.with(|s| s.refresh_calls),
        1,
        "no hammering during the backoff"
    );
}

#[actix_web::test]
async fn a_dead_refresh_token_needs_reauth_and_reauth_brings_the_account_back() {
    let app = spawn_app().await;
    // Never issued: the endpoint answers invalid_grant.
    let imported = app
        .import_oauth(
            "sub",
            "sk-ant-ort01-dead",
            "sk-ant-oat01-old",
            now_ms() - 1000,
        )
        .await;
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 503);
    let sub = app.account("sub").await;
    assert_eq!(sub["requiresReauth"], true);
    assert_eq!(sub["available"], false);

    let r = app
        .client
        .post(app.url(&format!(
            "/api/accounts/{}/reauth",
            imported["id"].as_str().unwrap_or("")
        )))
        .send()
        .await
        .expect("reauth");
    assert_eq!(r.status().as_u16(), 200);
    let mut r = r;
    let init: Value = serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    let q = query(init["authUrl"].as_str().expect("url"));
    app.tokens
        .register_code("again", &q["code_challenge"], &q["state"]);
    let (status, account) = app
        .post_json(
            "/api/oauth/callback",
            json!({"sessionId": init["sessionId"], "code": format!("again#{}", q["state"])}),
        )
        .await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["id"], imported["id"], "same account");
    assert_eq!(account["requiresReauth"], false);
    assert_eq!(app.message(BODY).await.status, 200);
}

#[actix_web::test]
async fn a_401_forces_one_refresh_and_a_retry_on_the_same_account() {
    let app = spawn_app().await;
    app.tokens.issue_refresh("sk-ant-ort01-seed");
    // The token looks valid for an hour, but the upstream refuses it.
    app.import_oauth(
        "sub",
        "sk-ant-ort01-seed",
        "sk-ant-oat01-revoked",
        now_ms() + 3_600_000,
    )
    .await;
    app.mock.always(
        "sk-ant-oat01-revoked",
        Behavior::error(401, "authentication_error"),
    );
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "sub"));
    assert_eq!(app.tokens.with(|s| s.refresh_calls), 1);
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["success"], true);
    assert_eq!(app.account("sub").await["authFailed"], false);
}

#[actix_web::test]
async fn credentials_are_encrypted_at_rest() {
    let app = spawn_app().await;
    app.tokens.issue_refresh("sk-ant-ort01-seed-SECRETMARK");
    app.import_oauth(
        "sub",
        "sk-ant-ort01-seed-SECRETMARK",
        "sk-ant-oat01-old-SECRETMARK",
        now_ms() + 3_600_000,
    )
    .await;
    app.add_account("key", "sk-ant-api03-plain-SECRETMARK")
        .await;
    assert_eq!(app.message(BODY).await.status, 200);
    let (mock, tokens, dir) = app.stop_keeping().await;

    // Every file the daemon wrote, logs included.
    let mut files = vec![dir.path().to_path_buf()];
    let mut checked = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
            continue;
        }
        checked.push(path.clone());
        // The process-wide log file may rotate under us: a vanished file holds
        // nothing to check.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        assert!(
            !String::from_utf8_lossy(&bytes).contains("SECRETMARK"),
            "{} holds a credential in clear",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secret.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The wrong key is a clear start-up error, not garbage.
    let err = try_start(mock, tokens, dir, |c| c.secret_key = Some("ab".repeat(32)))
        .await
        .err()
        .expect("refused");
    assert!(err.contains("secret key"), "{err}");
}
