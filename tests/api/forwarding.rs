//! What the upstream sees: headers rewritten for the account, bytes untouched.

use crate::helpers::{spawn_app, BODY};
use crate::mock::Behavior;

#[actix_web::test]
async fn upstream_sees_the_accounts_key_never_the_clients() {
    let app = spawn_app().await;
    app.add_account("alpha", "sk-ant-alpha-000000000000").await;
    let answer = app
        .send(
            "/v1/messages?beta=true",
            BODY,
            &[
                ("x-api-key", "client-secret-key"),
                ("authorization", "Bearer client-token"),
                ("anthropic-beta", "a,b"),
                ("x-stainless-lang", "python"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.account(), "alpha");
    let seen = app.mock.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.path, "/v1/messages?beta=true");
    assert_eq!(s.method, "POST");
    assert_eq!(s.header("x-api-key"), Some("sk-ant-alpha-000000000000"));
    assert_eq!(s.header("authorization"), None);
    assert_eq!(s.header("anthropic-version"), Some("2023-06-01"));
    // API-key accounts keep the client's beta flags as they are.
    assert_eq!(s.header("anthropic-beta"), Some("a,b"));
    assert_eq!(s.header("x-stainless-lang"), Some("python"));
    assert!(!s
        .headers
        .iter()
        .any(|(_, v)| v.contains("client-secret-key") || v.contains("client-token")));
}

#[actix_web::test]
async fn body_bytes_are_forwarded_unchanged() {
    let app = spawn_app().await;
    app.add_account("alpha", "sk-ant-alpha-000000000000").await;
    // Odd spacing, key order, escapes and non-ASCII: re-serializing would change them.
    let body = "{ \"model\" :\"claude-opus-4-5\",\n\t\"max_tokens\": 1e2, \"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"\\u00e9t\u{e9}\",\"signature\":\"sig==\"}]}] ,\"z\":0.10000000000000001}";
    let answer = app.send("/v1/messages", body, &[]).await;
    assert_eq!(answer.status, 200);
    let seen = app.mock.seen();
    assert_eq!(&seen[0].body[..], body.as_bytes());
}

#[actix_web::test]
async fn with_no_accounts_the_clients_own_credential_passes_through() {
    let app = spawn_app().await;
    let answer = app
        .send("/v1/models", "", &[("x-api-key", "the-clients-own-key")])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.account(), "no_account");
    assert_eq!(
        app.mock.seen()[0].header("x-api-key"),
        Some("the-clients-own-key")
    );
    assert_eq!(app.mock.seen()[0].path, "/v1/models");
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["accountName"], "no_account");
    assert_eq!(row["accountId"], serde_json::Value::Null);
    assert_eq!(row["success"], true);
}

#[actix_web::test]
async fn other_statuses_reach_the_client_as_they_are() {
    let app = spawn_app().await;
    app.add_account("alpha", "key-alpha-0000000000").await;
    app.add_account("beta", "key-beta-00000000000").await;
    for (status, kind) in [
        (400, "invalid_request_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (500, "api_error"),
    ] {
        app.mock
            .script("key-alpha-0000000000", vec![Behavior::error(status, kind)]);
        let answer = app.message(BODY).await;
        assert_eq!(answer.status, status);
        assert_eq!(answer.json()["error"]["type"], kind);
        assert_eq!(answer.account(), "alpha", "no failover on {status}");
    }
    assert_eq!(app.mock.seen_with_key("key-beta-00000000000"), 0);
}

#[actix_web::test]
async fn an_oversized_body_gets_413_in_anthropics_shape() {
    let app = spawn_app_with_limit().await;
    let big = format!(r#"{{"model":"x","pad":"{}"}}"#, "a".repeat(2048));
    let answer = app.message(&big).await;
    assert_eq!(answer.status, 413);
    let json = answer.json();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "request_too_large");
    assert!(app.mock.seen().is_empty());
}

async fn spawn_app_with_limit() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|c| c.max_body_bytes = 1024).await
}

#[actix_web::test]
async fn headers_named_by_connection_are_not_forwarded() {
    let app = spawn_app().await;
    app.add_account("alpha", "sk-ant-alpha-000000000000").await;
    let addr = app.address.trim_start_matches("http://").to_string();
    // A raw request: HTTP client libraries manage Connection themselves.
    let reply = actix_web::rt::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        let req = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: x\r\nconnection: close, x-drop-me\r\nx-drop-me: 1\r\nx-keep: 2\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            BODY.len(),
            BODY
        );
        s.write_all(req.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("join");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let seen = app.mock.seen();
    assert_eq!(seen[0].header("x-keep"), Some("2"));
    assert_eq!(seen[0].header("x-drop-me"), None);
}
