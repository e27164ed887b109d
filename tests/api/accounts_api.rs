//! The minimum management API: health, accounts, and its errors.

use crate::helpers::spawn_app;
use serde_json::json;

const KEY: &str = "sk-ant-api03-secretsecretsecret-WXYZ";

#[actix_web::test]
async fn health_reports_pool_and_strategy() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["accounts"], 0);
    assert_eq!(body["strategy"], "session");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[actix_web::test]
async fn adding_an_account_returns_it_without_the_key() {
    let app = spawn_app().await;
    let mut r = app
        .client
        .post(app.url("/api/accounts"))
        .send_json(&json!({"name": "work", "apiKey": KEY, "tier": 5, "priority": 3}))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 201);
    let text = String::from_utf8(r.body().await.expect("body").to_vec()).expect("utf8");
    assert!(!text.contains("secretsecret"), "the key leaked: {text}");
    let a: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(a["name"], "work");
    assert_eq!(a["kind"], "api_key");
    assert_eq!(a["tier"], 5);
    assert_eq!(a["priority"], 3);
    assert_eq!(a["paused"], false);
    assert_eq!(a["credentialHint"], "****WXYZ");
    for key in [
        "id",
        "rateLimitedUntil",
        "rateLimitStatus",
        "rateLimitReset",
        "requestCount",
        "lastUsed",
    ] {
        assert!(a.get(key).is_some(), "missing {key}");
    }
    let list = app.accounts().await;
    assert_eq!(list.len(), 1);
    assert!(!list[0].to_string().contains("secretsecret"));
    let (_, health) = app.get_json("/health").await;
    assert_eq!(health["accounts"], 1);
}

#[actix_web::test]
async fn bad_account_input_gets_a_400_naming_the_field() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"apiKey": KEY}), "name"),
        (json!({"name": "", "apiKey": KEY}), "name"),
        (json!({"name": "x/y", "apiKey": KEY}), "name"),
        (json!({"name": "a"}), "apiKey"),
        (json!({"name": "a", "apiKey": "has space"}), "apiKey"),
        (json!({"name": "a", "apiKey": KEY, "tier": 3}), "tier"),
        (
            json!({"name": "a", "apiKey": KEY, "priority": 101}),
            "priority",
        ),
        (json!({"name": "a", "apiKey": KEY, "tier": "five"}), "tier"),
    ] {
        let (status, err) = app.post_json("/api/accounts", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        let message = err["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(field), "{body} → {message}");
        assert_eq!(err["error"]["type"], "invalid_request");
    }
    assert!(app.accounts().await.is_empty(), "nothing was added");

    let mut r = app
        .client
        .post(app.url("/api/accounts"))
        .insert_header(("content-type", "application/json"))
        .send_body("{not json")
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    let err: serde_json::Value =
        serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    assert!(err["error"]["message"].is_string());

    let r = app
        .client
        .post(app.url("/api/accounts"))
        .insert_header(("content-type", "text/plain"))
        .send_body("name=a")
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 415);
}

#[actix_web::test]
async fn duplicate_names_conflict() {
    let app = spawn_app().await;
    app.add_account("work", KEY).await;
    let (status, err) = app
        .post_json(
            "/api/accounts",
            json!({"name": "work", "apiKey": "other-key-000000000"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(err["error"]["type"], "conflict");
}

#[actix_web::test]
async fn accounts_are_removed_by_id_or_name() {
    let app = spawn_app().await;
    let a = app.add_account("one", "key-one-000000000000").await;
    app.add_account("two", "key-two-000000000000").await;
    let id = a["id"].as_str().expect("id");
    let r = app
        .client
        .delete(app.url(&format!("/api/accounts/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    let r = app
        .client
        .delete(app.url("/api/accounts/two"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    assert!(app.accounts().await.is_empty());
    let mut r = app
        .client
        .delete(app.url("/api/accounts/two"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 404);
    let err: serde_json::Value =
        serde_json::from_slice(&r.body().await.expect("body")).expect("json");
    assert_eq!(err["error"]["type"], "not_found");
}

#[actix_web::test]
async fn pause_and_resume() {
    let app = spawn_app().await;
    app.add_account("one", "key-one-000000000000").await;
    let (status, a) = app.post_json("/api/accounts/one/pause", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(a["paused"], true);
    assert_eq!(app.account("one").await["paused"], true);
    let (status, a) = app.post_json("/api/accounts/one/resume", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(a["paused"], false);
    let (status, _) = app.post_json("/api/accounts/nobody/pause", json!({})).await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn unknown_routes_get_json_404() {
    let app = spawn_app().await;
    for path in ["/api/nothing", "/nothing"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["type"], "not_found");
    }
}
