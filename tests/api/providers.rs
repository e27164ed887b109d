//! Providers: priority routing from a Claude account to an Anthropic-compatible
//! one, with the provider's own URL, auth placement and model map.

use crate::helpers::{spawn_app, BODY};
use crate::mock::{Behavior, MockUpstream};
use serde_json::json;
use std::time::Duration;

const CLAUDE_KEY: &str = "sk-ant-api03-claude-0000000000";
const GLM_KEY: &str = "glm-key-000000000000";

fn glm_answer() -> Behavior {
    Behavior::Json {
        status: 200,
        headers: vec![],
        body: r#"{"id":"msg_glm","type":"message","role":"assistant","model":"glm-4.6","content":[{"type":"text","text":"from glm"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":3}}"#.into(),
    }
}

#[actix_web::test]
async fn a_compatible_provider_takes_over_when_claude_is_rate_limited() {
    let app = spawn_app().await;
    let glm = MockUpstream::start().await;
    glm.set_default(glm_answer());
    app.add_account("claude", CLAUDE_KEY).await;
    let (status, account) = app
        .post_json(
            "/api/accounts",
            json!({"name": "glm", "provider": "anthropic-compatible", "baseUrl": format!("{}/", glm.url),
                   "apiKey": GLM_KEY, "priority": 10, "modelMap": {"sonnet": "glm-4.6", "haiku": "glm-4.5-air"}}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    assert_eq!(account["provider"], "anthropic-compatible");
    assert_eq!(account["baseUrl"], glm.url.as_str());
    assert_eq!(account["modelMap"]["sonnet"], "glm-4.6");

    // Claude first (priority 0), body untouched.
    let answer = app.message(BODY).await;
    assert_eq!(answer.account(), "claude");
    assert_eq!(&app.mock.seen()[0].body[..], BODY.as_bytes());
    assert!(glm.seen().is_empty());

    // Claude rate-limited: the compatible provider serves, with its own auth and model.
    app.mock.script(
        CLAUDE_KEY,
        vec![Behavior::rate_limited(Duration::from_secs(600))],
    );
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "glm"));
    assert_eq!(answer.json()["content"][0]["text"], "from glm");
    let seen = &glm.seen()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(GLM_KEY));
    assert_eq!(
        String::from_utf8_lossy(&seen.body),
        BODY.replace("claude-sonnet-4-5-20250929", "glm-4.6"),
        "only the model differs"
    );
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["provider"], "anthropic-compatible", "{row}");
    assert_eq!(row["requestedModel"], "claude-sonnet-4-5-20250929");
    assert_eq!(row["model"], "glm-4.6");
    assert_eq!(
        row["costUsd"],
        serde_json::Value::Null,
        "no price known for glm-4.6"
    );

    // A model the map does not name goes through unchanged.
    let opus = BODY.replace("claude-sonnet-4-5-20250929", "claude-opus-4-5");
    app.message(&opus).await;
    assert_eq!(&glm.seen()[1].body[..], opus.as_bytes());
}

#[actix_web::test]
async fn presets_place_the_key_as_bearer() {
    let app = spawn_app().await;
    let zai = MockUpstream::start().await;
    let (status, account) = app
        .post_json(
            "/api/accounts",
            json!({"name": "zai", "provider": "zai", "baseUrl": zai.url, "apiKey": "zai-key-0000000000"}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    app.message(BODY).await;
    let seen = &zai.seen()[0];
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer zai-key-0000000000")
    );
    assert_eq!(seen.header("x-api-key"), None);
    // Without a base URL, a preset uses its documented endpoint.
    let (status, account) = app
        .post_json(
            "/api/accounts",
            json!({"name": "mm", "provider": "minimax", "apiKey": "mm-key-000000000000"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(account["provider"], "minimax");
}

#[actix_web::test]
async fn bad_providers_and_base_urls_are_refused() {
    let app = spawn_app().await;
    for (body, field) in [
        (
            json!({"name": "a", "apiKey": "k-000000000000000", "provider": "openai"}),
            "provider",
        ),
        (
            json!({"name": "a", "apiKey": "k-000000000000000", "provider": "anthropic-compatible"}),
            "baseUrl",
        ),
        (
            json!({"name": "a", "apiKey": "k-000000000000000", "provider": "anthropic-compatible", "baseUrl": "ftp://x"}),
            "baseUrl",
        ),
        (
            json!({"name": "a", "apiKey": "k-000000000000000", "provider": "anthropic-compatible", "baseUrl": "https://u:p@host"}),
            "baseUrl",
        ),
        (
            json!({"name": "a", "apiKey": "k-000000000000000", "provider": "anthropic-compatible", "baseUrl": "https://host/#x"}),
            "baseUrl",
        ),
        (
            json!({"name": "a", "apiKey": "k-000000000000000", "modelMap": {"opus": ""}}),
            "modelMap",
        ),
    ] {
        let (status, err) = app.post_json("/api/accounts", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{body} → {err}"
        );
    }
    assert!(app.accounts().await.is_empty());
}
