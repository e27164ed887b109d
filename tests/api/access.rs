//! Access control: keys and roles per route class, fail-closed on the network, the
//! audit log, the CLI's key commands, and that no secret leaks anywhere.

use crate::helpers::{spawn_app, try_start, TestApp, BODY};
use crate::mock::MockUpstream;
use crate::mock_oauth::MockTokens;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Arc;

const ACCOUNT_KEY: &str = "sk-ant-api03-account-LEAKMARK-0001";

async fn status(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    bearer: bool,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method.parse().expect("method"), app.url(path))
        .insert_header(("content-type", "application/json"));
    if let Some(k) = key {
        req = if bearer {
            req.insert_header(("authorization", format!("Bearer {k}")))
        } else {
            req.insert_header(("x-api-key", k))
        };
    }
    let body = if method == "POST" { BODY } else { "" };
    let mut r = req.send_body(body).await.expect("send");
    let code = r.status().as_u16();
    let bytes = r.body().limit(16 << 20).await.unwrap_or_default();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn issue(app: &TestApp, name: &str, role: &str, admin: Option<&str>) -> String {
    let mut req = app.client.post(app.url("/api/keys"));
    if let Some(k) = admin {
        req = req.insert_header(("x-api-key", k));
    }
    let mut r = req
        .send_json(&json!({"name": name, "role": role}))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    v["key"].as_str().expect("key").to_string()
}

#[actix_web::test]
async fn every_route_class_with_every_kind_of_key() {
    let app = spawn_app().await;
    app.add_account("alpha", ACCOUNT_KEY).await;
    let admin = issue(&app, "ops", "admin", None).await;
    let proxy = issue(&app, "ci", "proxy", Some(&admin)).await;
    let disabled = issue(&app, "old", "proxy", Some(&admin)).await;
    let (code, _) = status(&app, "POST", "/api/keys/old/disable", Some(&admin), false).await;
    assert_eq!(code, 200);

    // (method, path, none, wrong, disabled, proxy, admin)
    let table = [
        ("GET", "/health", 200, 200, 200, 200, 200),
        ("GET", "/", 200, 200, 200, 200, 200),
        ("POST", "/v1/messages", 401, 401, 401, 200, 200),
        ("GET", "/api/accounts", 401, 401, 401, 403, 200),
        ("GET", "/api/openapi.json", 401, 401, 401, 403, 200),
        ("GET", "/metrics", 401, 401, 401, 403, 200),
    ];
    for (method, path, none, wrong, off, p, a) in table {
        for (key, want, who) in [
            (None, none, "no key"),
            (Some("cfk_not-a-real-key"), wrong, "wrong key"),
            (Some(disabled.as_str()), off, "disabled key"),
            (Some(proxy.as_str()), p, "proxy key"),
            (Some(admin.as_str()), a, "admin key"),
        ] {
            for bearer in [false, true] {
                let (code, body) = status(&app, method, path, key, bearer).await;
                assert_eq!(
                    code, want,
                    "{method} {path} with {who} (bearer {bearer}): {body}"
                );
                if code == 401 || code == 403 {
                    if path.starts_with("/v1") {
                        assert_eq!(body["type"], "error");
                        let kind = if code == 401 {
                            "authentication_error"
                        } else {
                            "permission_error"
                        };
                        assert_eq!(body["error"]["type"], kind);
                    } else {
                        assert!(body["error"]["message"].is_string(), "{body}");
                    }
                }
            }
        }
    }
    // The daemon's keys never reach the upstream; the account's key does.
    for seen in app.mock.seen() {
        assert_eq!(seen.header("x-api-key"), Some(ACCOUNT_KEY));
        assert_eq!(seen.header("authorization"), None);
    }
    // Each request records the key it came with; the history filters by key.
    let mut by_key = Vec::new();
    for _ in 0..100 {
        let (_, rows) = status(&app, "GET", "/api/requests?key=ci", Some(&admin), false).await;
        by_key = rows.as_array().cloned().unwrap_or_default();
        if by_key.len() == 2 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    assert_eq!(
        by_key.len(),
        2,
        "the proxy key's two requests (x-api-key and Bearer)"
    );
    assert!(by_key.iter().all(|r| r["apiKeyName"] == "ci"));
    let (_, stats) = status(&app, "GET", "/api/stats", Some(&admin), false).await;
    let ci = stats["keys"]
        .as_array()
        .and_then(|l| l.iter().find(|k| k["name"] == "ci").cloned())
        .unwrap_or_default();
    assert_eq!(ci["requests"], 2, "stats per key: {stats}");
    // A deleted key is refused like an unknown one.
    let (code, _) = status(&app, "DELETE", "/api/keys/ci", Some(&admin), false).await;
    assert_eq!(code, 200);
    let (code, _) = status(&app, "POST", "/v1/messages", Some(&proxy), false).await;
    assert_eq!(code, 401);
    // Keys are listed without the key; use is counted.
    let (_, keys) = status(&app, "GET", "/api/keys", Some(&admin), false).await;
    assert!(!keys.to_string().contains(&admin[4..]));
    let ops = keys
        .as_array()
        .and_then(|l| l.iter().find(|k| k["name"] == "ops").cloned())
        .unwrap_or_default();
    assert_eq!(ops["role"], "admin");
}

#[actix_web::test]
async fn binding_beyond_loopback_without_a_key_refuses_to_start() {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let (mock, tokens) = (MockUpstream::start().await, MockTokens::start().await);
    let err = try_start(mock.clone(), tokens.clone(), dir.clone(), |c| {
        c.host = "0.0.0.0".into()
    })
    .await
    .err()
    .expect("refused");
    assert!(
        err.contains("--insecure-no-auth") && err.contains("0.0.0.0"),
        "{err}"
    );
    let app = try_start(mock, tokens, dir, |c| {
        c.host = "0.0.0.0".into();
        c.insecure_no_auth = true;
    })
    .await
    .expect("starts with the flag");
    app.stop().await;
}

#[actix_web::test]
async fn management_actions_are_audited_with_the_key_name() {
    let app = spawn_app().await;
    app.add_account("alpha", ACCOUNT_KEY).await;
    let admin = issue(&app, "ops", "admin", None).await;
    status(
        &app,
        "POST",
        "/api/accounts/alpha/pause",
        Some(&admin),
        false,
    )
    .await;
    let (code, entries) = status(&app, "GET", "/api/audit", Some(&admin), false).await;
    assert_eq!(code, 200);
    let entries = entries.as_array().cloned().unwrap_or_default();
    assert_eq!(entries[0]["action"], "POST /api/accounts/alpha/pause");
    assert_eq!(entries[0]["actor"], "ops");
    assert_eq!(entries[0]["statusCode"], 200);
    assert!(entries
        .iter()
        .any(|e| e["action"] == "POST /api/keys" && e["actor"] == "local"));
    assert!(entries.iter().any(|e| e["action"] == "POST /api/accounts"));
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_claudeflare"))
        .args(args)
        .env_remove("CLAUDEFLARE_API_KEY")
        .env_remove("CLAUDEFLARE_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn the_first_admin_key_can_be_made_offline_and_the_cli_uses_it() {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let path = dir.path().to_str().expect("utf8").to_string();
    let (code, key, err) = cli(&[
        "keys",
        "create",
        "boot",
        "--role",
        "admin",
        "--data-dir",
        &path,
    ]);
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("cfk_"));
    let raw = std::fs::read(dir.path().join("claudeflare.db")).expect("db");
    assert!(
        !String::from_utf8_lossy(&raw).contains(&key[4..]),
        "the key is stored only as a hash"
    );

    let app = try_start(
        MockUpstream::start().await,
        MockTokens::start().await,
        dir,
        |_| {},
    )
    .await
    .expect("start");
    let (code, _) = status(&app, "GET", "/api/accounts", None, false).await;
    assert_eq!(code, 401, "the offline key switched access control on");
    let server = app.address.clone();
    let code_out = actix_web::rt::task::spawn_blocking({
        let (server, key) = (server.clone(), key.clone());
        move || {
            let list = cli(&["keys", "list", "--server", &server, "--api-key", &key]);
            let created = cli(&[
                "--json",
                "keys",
                "create",
                "ci",
                "--server",
                &server,
                "--api-key",
                &key,
            ]);
            let refused = cli(&[
                "keys",
                "list",
                "--server",
                &server,
                "--api-key",
                "cfk_wrong",
            ]);
            (list, created, refused)
        }
    })
    .await
    .expect("join");
    let (list, created, refused) = code_out;
    assert_eq!(list.0, 0, "{}", list.2);
    assert!(
        list.1.starts_with("NAME") && list.1.contains("boot") && list.1.contains("admin"),
        "{}",
        list.1
    );
    assert_eq!(created.0, 0);
    let v: Value = serde_json::from_str(created.1.trim()).expect("json");
    assert_eq!(v["role"], "proxy");
    assert_eq!(refused.0, 1);
    assert_eq!(refused.2.trim().lines().count(), 1, "{}", refused.2);
    app.stop().await;
    let unreachable =
        actix_web::rt::task::spawn_blocking(move || cli(&["keys", "list", "--server", &server]))
            .await
            .expect("join");
    assert_eq!(unreachable.0, 3);
    assert!(
        unreachable.2.contains("cannot reach claudeflare at")
            && unreachable.2.contains("is 'claudeflare serve' running?")
    );
}

#[actix_web::test]
async fn no_secret_appears_in_any_answer_log_payload_or_file() {
    let app = spawn_app().await;
    let admin = issue(&app, "ops", "admin", None).await;
    let proxy = issue(&app, "ci", "proxy", Some(&admin)).await;
    let (code, _) = status(&app, "POST", "/api/accounts", Some(&admin), false).await;
    assert_eq!(code, 400);
    let mut r = app
        .client
        .post(app.url("/api/accounts"))
        .insert_header(("x-api-key", admin.as_str()))
        .send_json(&json!({"name": "alpha", "apiKey": ACCOUNT_KEY}))
        .await
        .expect("add");
    assert_eq!(r.status().as_u16(), 201);
    let mut seen_text = String::from_utf8_lossy(&r.body().await.expect("body")).into_owned();
    app.tokens.issue_refresh("sk-ant-ort01-LEAKMARK-refresh");
    let mut r = app
        .client
        .post(app.url("/api/accounts"))
        .insert_header(("x-api-key", admin.as_str()))
        .send_json(&json!({"name": "sub", "refreshToken": "sk-ant-ort01-LEAKMARK-refresh", "accessToken": "sk-ant-oat01-LEAKMARK-access", "expiresAt": 1}))
        .await
        .expect("import");
    seen_text.push_str(&String::from_utf8_lossy(&r.body().await.expect("body")));
    for _ in 0..3 {
        let (code, body) = status(&app, "POST", "/v1/messages", Some(&proxy), true).await;
        assert_eq!(code, 200);
        seen_text.push_str(&body.to_string());
    }
    // The logger writes in batches: wait until the three rows are there.
    for _ in 0..100 {
        let (_, rows) = status(&app, "GET", "/api/requests", Some(&admin), false).await;
        if rows.as_array().map(Vec::len) == Some(3) {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    for path in [
        "/api/accounts",
        "/api/requests/detail?limit=10",
        "/api/logs/history",
        "/api/stats",
        "/api/config",
        "/api/keys",
        "/api/audit",
        "/metrics",
        "/health",
    ] {
        let mut r = app
            .client
            .get(app.url(path))
            .insert_header(("x-api-key", admin.as_str()))
            .send()
            .await
            .expect("get");
        seen_text.push_str(&String::from_utf8_lossy(
            &r.body().limit(16 << 20).await.unwrap_or_default(),
        ));
    }
    let (_, _, dir) = app.stop_keeping().await;
    let mut files = vec![dir.path().to_path_buf()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else {
            // The process-wide log file may rotate under us: a file that vanished
            // between listing and reading holds nothing to check.
            if let Ok(bytes) = std::fs::read(&p) {
                seen_text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    for log in claudeflare::telemetry::hub().history(1000) {
        seen_text.push_str(&serde_json::to_string(&log).unwrap_or_default());
    }
    assert!(!seen_text.contains("LEAKMARK"), "a credential leaked");
    assert!(
        !seen_text.contains(&admin[4..]) && !seen_text.contains(&proxy[4..]),
        "a daemon key leaked"
    );
}

#[actix_web::test]
async fn per_key_limits_answer_429_with_retry_after() {
    use crate::mock::{Behavior, SseEnd};
    let app = spawn_app().await;
    app.add_account("alpha", ACCOUNT_KEY).await;
    let admin = issue(&app, "ops", "admin", None).await;
    let limited = |name: &str, body: Value| {
        let client = app.client.clone();
        let url = app.url("/api/keys");
        let admin = admin.clone();
        let mut body = body;
        body["name"] = json!(name);
        async move {
            let mut r = client
                .post(url)
                .insert_header(("x-api-key", admin))
                .send_json(&body)
                .await
                .expect("post");
            assert_eq!(r.status().as_u16(), 201);
            let v: Value = serde_json::from_slice(&r.body().await.expect("body")).expect("json");
            v["key"].as_str().expect("key").to_string()
        }
    };
    // Two requests a minute.
    let rpm = limited("rpm", json!({"role": "proxy", "requestsPerMinute": 2})).await;
    for _ in 0..2 {
        assert_eq!(
            status(&app, "POST", "/v1/messages", Some(&rpm), false)
                .await
                .0,
            200
        );
    }
    let mut r = app
        .client
        .post(app.url("/v1/messages"))
        .insert_header(("x-api-key", rpm.as_str()))
        .send_body(BODY)
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 429);
    let retry: i64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    let body: Value = serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // One stream at a time.
    app.mock.set_default(Behavior::sse(
        std::time::Duration::from_millis(100),
        SseEnd::Complete,
    ));
    let one = limited("one", json!({"role": "proxy", "maxConcurrent": 1})).await;
    let first = {
        let client = app.client.clone();
        let url = app.url("/v1/messages");
        let key = one.clone();
        actix_web::rt::spawn(async move {
            let mut r = client
                .post(url)
                .insert_header(("x-api-key", key))
                .send_body(crate::helpers::STREAM_BODY)
                .await
                .expect("send");
            let _ = r.body().limit(1 << 20).await;
            r.status().as_u16()
        })
    };
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        status(&app, "POST", "/v1/messages", Some(&one), false)
            .await
            .0,
        429
    );
    assert_eq!(first.await.expect("join"), 200);
    assert_eq!(
        status(&app, "POST", "/v1/messages", Some(&one), false)
            .await
            .0,
        200,
        "the place is free again"
    );
}
