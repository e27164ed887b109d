//! The management API beyond accounts: health, stats, request history and its live
//! stream, analytics, config, retention, maintenance, metrics, and error shapes.

use crate::helpers::{spawn_app, spawn_app_with, TestApp, BODY, STREAM_BODY};
use crate::mock::{Behavior, SseEnd};
use claudeflare_actors::clock::now_ms;
use claudeflare_actors::secrets::Cipher;
use claudeflare_actors::store::{LogEntry, RequestRecord, Store};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const KEY_A: &str = "sk-ant-api03-alpha-secret-AAAA";
const KEY_B: &str = "sk-ant-api03-beta-secret-BBBB";

async fn two_accounts() -> TestApp {
    let app = spawn_app().await;
    app.add_account("alpha", KEY_A).await;
    app.add_account("beta", KEY_B).await;
    app
}

/// Writes records straight into the daemon's database (another writer, as SQLite allows).
fn insert(app: &TestApp, records: Vec<RequestRecord>) {
    let cipher = Cipher::load(None, app.data_dir.path()).expect("key");
    let store =
        Store::open_sqlite(&app.data_dir.path().join("claudeflare.db"), cipher).expect("store");
    let batch: Vec<LogEntry> = records
        .into_iter()
        .map(|record| LogEntry {
            record: Arc::new(record),
            payload: None,
        })
        .collect();
    store.insert_requests(&batch).expect("insert");
}

fn record(
    id: &str,
    ts: i64,
    account: &str,
    model: &str,
    success: bool,
    (rt, input, cost): (i64, i64, f64),
) -> RequestRecord {
    RequestRecord {
        id: id.into(),
        timestamp: ts,
        method: "POST".into(),
        path: "/v1/messages".into(),
        account_id: None,
        account_name: account.into(),
        status_code: Some(if success { 200 } else { 500 }),
        success,
        error_message: (!success).then(|| "upstream status 500".into()),
        response_time_ms: rt,
        time_to_first_token_ms: None,
        failover_attempts: 0,
        model: Some(model.into()),
        input_tokens: Some(input),
        output_tokens: Some(2),
        cache_read_input_tokens: Some(1),
        cache_creation_input_tokens: Some(0),
        cost_usd: Some(cost),
        output_tokens_per_second: None,
        stream: false,
        client_ip: None,
        requested_model: None,
        provider: None,
        api_key_name: None,
        instance_id: None,
    }
}

#[actix_web::test]
async fn health_reports_the_pool_and_turns_503_when_nothing_can_serve() {
    let app = two_accounts().await;
    let (status, h) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "ok");
    assert!(h["uptimeSeconds"].is_number());
    assert_eq!(h["pool"]["configured"], 2);
    assert_eq!(h["pool"]["available"], 2);
    app.post_json("/api/accounts/alpha/pause", json!({})).await;
    let (status, h) = app.get_json("/health").await;
    assert_eq!((status, h["status"].as_str()), (200, Some("degraded")));
    assert_eq!(h["pool"]["paused"], 1);
    app.mock.script(
        KEY_B,
        vec![Behavior::rate_limited(Duration::from_secs(300))],
    );
    app.message(BODY).await;
    let (status, h) = app.get_json("/health").await;
    assert_eq!(status, 503);
    assert_eq!(h["status"], "unhealthy");
    assert_eq!(h["pool"]["rateLimited"], 1);
    assert!(h["pool"]["nextAvailableAt"].is_string());
}

#[actix_web::test]
async fn stats_count_what_the_proxy_did_and_reset_on_confirmation() {
    let app = two_accounts().await;
    for _ in 0..3 {
        assert_eq!(app.message(BODY).await.status, 200);
    }
    app.mock
        .script(KEY_A, vec![Behavior::error(400, "invalid_request_error")]);
    assert_eq!(app.message(BODY).await.status, 400);
    app.wait_for_requests(4).await;
    let (status, s) = app.get_json("/api/stats").await;
    assert_eq!(status, 200);
    assert_eq!(s["totalRequests"], 4);
    assert_eq!(s["successRate"], 75.0);
    assert_eq!(s["tokensByKind"]["input"], 33);
    assert_eq!(s["totalTokens"], (11 + 7 + 5 + 3) * 3);
    assert!(s["totalCostUsd"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(s["topModels"][0]["model"], crate::mock::MODEL);
    assert_eq!(s["accounts"][0]["name"], "alpha");
    assert_eq!(s["accounts"][0]["requests"], 4);
    assert_eq!(s["recentErrors"][0]["statusCode"], 400);

    let (status, err) = app
        .post_json("/api/stats/reset", json!({"confirm": false}))
        .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("confirm"));
    let (status, _) = app
        .post_json("/api/stats/reset", json!({"confirm": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.get_json("/api/stats").await.1["totalRequests"], 0);
    assert_eq!(
        app.get_json("/api/requests")
            .await
            .1
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[actix_web::test]
async fn accounts_can_be_read_renamed_and_unbenched() {
    let app = two_accounts().await;
    let (status, a) = app.get_json("/api/accounts/alpha").await;
    assert_eq!(status, 200);
    assert_eq!(a["name"], "alpha");
    let (status, _) = app.get_json("/api/accounts/nobody").await;
    assert_eq!(status, 404);
    let (status, a) = app
        .post_json("/api/accounts/alpha/rename", json!({"name": "primary"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(a["name"], "primary");
    let (status, _) = app
        .post_json("/api/accounts/primary/rename", json!({"name": "beta"}))
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .post_json("/api/accounts/primary/rename", json!({"name": "a/b"}))
        .await;
    assert_eq!(status, 400);
    app.mock.script(
        KEY_A,
        vec![Behavior::rate_limited(Duration::from_secs(3600))],
    );
    app.message(BODY).await;
    assert_eq!(app.account("primary").await["available"], false);
    let (status, a) = app
        .post_json("/api/accounts/primary/reset-rate-limit", json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(a["available"], true);
    assert_eq!(a["rateLimitedUntil"], Value::Null);
}

#[actix_web::test]
async fn stored_bodies_are_cut_at_the_payload_limit() {
    let app = spawn_app_with(|c| c.payload_max_bytes = 40).await;
    app.add_account("alpha", KEY_A).await;
    let id = app.message(BODY).await.request_id();
    app.wait_for_requests(1).await;
    let (status, detail) = app.get_json(&format!("/api/requests/{id}")).await;
    assert_eq!(status, 200);
    let payload = &detail["payload"];
    assert_eq!(payload["truncated"], true, "{payload}");
    // Cut JSON no longer parses, so the API shows it as text.
    assert_eq!(payload["requestBody"], BODY[..40]);
    let response = payload["responseBody"].as_str().unwrap_or_default();
    assert_eq!(response.len(), 40, "{payload}");
    assert!(response.starts_with('{'), "{payload}");
}

#[actix_web::test]
async fn the_history_pages_filters_and_shows_payloads() {
    let app = two_accounts().await;
    for _ in 0..5 {
        app.message(BODY).await;
    }
    app.mock
        .set_default(Behavior::sse(Duration::from_millis(1), SseEnd::Complete));
    let streamed = app.message(STREAM_BODY).await.request_id();
    let rows = app.wait_for_requests(6).await;
    assert_eq!(rows[0]["id"], streamed.as_str());

    let (_, page1) = app.get_json("/api/requests?limit=4").await;
    let page1 = page1.as_array().cloned().unwrap_or_default();
    let last = page1[3]["id"].as_str().unwrap_or("").to_string();
    let (_, page2) = app
        .get_json(&format!("/api/requests?limit=4&before={last}"))
        .await;
    let page2 = page2.as_array().cloned().unwrap_or_default();
    assert_eq!(page2.len(), 2);
    let all: Vec<&Value> = page1.iter().chain(page2.iter()).map(|r| &r["id"]).collect();
    let ids: Vec<&Value> = rows.iter().map(|r| &r["id"]).collect();
    assert_eq!(all, ids, "pages join up newest first with no overlap");

    let (_, only) = app
        .get_json("/api/requests?account=alpha&status=success&model=claude-sonnet-4-5-20250929")
        .await;
    assert_eq!(only.as_array().map(Vec::len), Some(6));
    let (_, none) = app.get_json("/api/requests?account=beta").await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));
    let (status, _) = app.get_json("/api/requests?status=maybe").await;
    assert_eq!(status, 400);

    let (status, detail) = app.get_json(&format!("/api/requests/{streamed}")).await;
    assert_eq!(status, 200);
    let payload = &detail["payload"];
    assert_eq!(
        payload["requestBody"]["model"],
        "claude-sonnet-4-5-20250929"
    );
    assert_eq!(
        payload["requestHeaders"].get("x-api-key"),
        None,
        "credentials are not stored"
    );
    assert_eq!(
        payload["requestHeaders"]["content-type"],
        "application/json"
    );
    // The upstream's own headers, as they came (the daemon's x-claudeflare-* are not).
    let content_type = payload["responseHeaders"]["content-type"].as_str();
    assert!(
        content_type.is_some_and(|t| t.starts_with("text/event-stream")),
        "{payload}"
    );
    assert_eq!(
        payload["responseHeaders"].get("x-claudeflare-account"),
        None
    );
    let events = payload["responseBody"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(events[0]["event"], "message_start");
    assert_eq!(events[0]["data"]["message"]["usage"]["input_tokens"], 25);
    assert_eq!(
        events.last().map(|e| e["event"].clone()),
        Some(json!("message_stop"))
    );
    let (status, _) = app.get_json("/api/requests/no-such-id").await;
    assert_eq!(status, 404);

    let (status, bulk) = app.get_json("/api/requests/detail?limit=2").await;
    assert_eq!(status, 200);
    let bulk = bulk.as_array().cloned().unwrap_or_default();
    assert_eq!(bulk.len(), 2);
    assert!(bulk[1]["payload"]["responseBody"]["content"].is_array());
}

#[actix_web::test]
async fn the_live_stream_reaches_every_subscriber() {
    let app = two_accounts().await;
    let mut a = app
        .client
        .get(app.url("/api/requests/stream"))
        .send()
        .await
        .expect("stream");
    let mut b = app
        .client
        .get(app.url("/api/requests/stream"))
        .send()
        .await
        .expect("stream");
    assert_eq!(
        a.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let id = app.message(BODY).await.request_id();
    for sub in [&mut a, &mut b] {
        let mut text = String::new();
        while !text.contains("event: request") {
            let chunk = tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .expect("event in time")
                .expect("open")
                .expect("chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(text.contains(&id), "{text}");
        assert!(text.contains("event: request_started"), "{text}");
    }
    // A request on the feed opens at once, also before its batch is written (the
    // logger writes every 50 ms; the dashboard's detail view asks right away).
    let (status, one) = app.get_json(&format!("/api/requests/{id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], id.as_str());
    assert!(one["payload"]["responseBody"].is_object(), "{one}");
}

#[actix_web::test]
async fn analytics_aggregate_a_known_history() {
    let app = two_accounts().await;
    let now = now_ms();
    let minute = 60_000;
    let mut records = Vec::new();
    // 3 minutes ago: 4 sonnet requests on alpha (one failed); 1 minute ago: 2 opus on beta.
    let t1 = now - 3 * minute;
    for i in 0..4 {
        records.push(record(
            &format!("a{i}"),
            t1,
            "alpha",
            "claude-sonnet-4-5",
            i != 3,
            (100 * (i + 1), 10, 0.25),
        ));
    }
    let t2 = now - minute;
    for i in 0..2 {
        records.push(record(
            &format!("b{i}"),
            t2,
            "beta",
            "claude-opus-4-5",
            true,
            (1000, 20, 1.0),
        ));
    }
    // Outside the 1h range.
    records.push(record(
        "old",
        now - 2 * 3_600_000,
        "alpha",
        "claude-sonnet-4-5",
        true,
        (1, 1, 9.0),
    ));
    insert(&app, records);

    let (status, a) = app.get_json("/api/analytics?range=1h").await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["meta"]["bucketMs"], minute);
    assert_eq!(a["totals"]["requests"], 6);
    assert!((a["totals"]["totalCostUsd"].as_f64().unwrap_or(0.0) - 3.0).abs() < 1e-9);
    assert!((a["totals"]["successRate"].as_f64().unwrap_or(0.0) - 500.0 / 6.0).abs() < 1e-9);
    assert_eq!(a["tokenBreakdown"]["input"], 80);
    let series = a["timeSeries"].as_array().cloned().unwrap_or_default();
    assert!(series.len() >= 60);
    assert_eq!(
        series
            .iter()
            .map(|p| p["requests"].as_i64().unwrap_or(0))
            .sum::<i64>(),
        6
    );
    let busiest: Vec<i64> = series
        .iter()
        .filter_map(|p| p["requests"].as_i64())
        .filter(|n| *n > 0)
        .collect();
    assert_eq!(busiest, [4, 2]);
    assert_eq!(
        a["modelDistribution"][0],
        json!({"model": "claude-sonnet-4-5", "requests": 4})
    );
    let costs: Vec<(String, f64)> = a["costByModel"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|c| {
                    (
                        c["model"].as_str().unwrap_or("").to_string(),
                        c["costUsd"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(costs.contains(&("claude-opus-4-5".into(), 2.0)));
    let sonnet = a["modelPerformance"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|m| m["model"] == "claude-sonnet-4-5")
                .cloned()
        })
        .unwrap_or_default();
    assert_eq!(sonnet["p95ResponseTime"], 400);
    assert_eq!(sonnet["errorRate"], 25.0);
    assert_eq!(sonnet["avgResponseTime"], 250.0);
    let beta = a["accountPerformance"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == "beta").cloned())
        .unwrap_or_default();
    assert_eq!(beta["requests"], 2);

    let (_, c) = app
        .get_json("/api/analytics?range=1h&mode=cumulative&modelBreakdown=true")
        .await;
    let last = c["timeSeries"]
        .as_array()
        .and_then(|s| s.last().cloned())
        .unwrap_or_default();
    assert_eq!(last["requests"], 6);
    assert!(c["timeSeriesByModel"]["claude-opus-4-5"].is_array());

    let (_, f) = app
        .get_json("/api/analytics?range=1h&accounts=beta&status=success")
        .await;
    assert_eq!(f["totals"]["requests"], 2);
    let (_, f) = app.get_json("/api/analytics?range=24h&status=error").await;
    assert_eq!(f["totals"]["requests"], 1);
    for bad in ["range=2h", "mode=sum", "status=nope", "modelBreakdown=yes"] {
        let (status, err) = app.get_json(&format!("/api/analytics?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        let field = bad.split('=').next().unwrap_or("");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{err}"
        );
    }
}

#[actix_web::test]
async fn config_retention_and_maintenance() {
    let app = two_accounts().await;
    let (status, c) = app.get_json("/api/config").await;
    assert_eq!(status, 200);
    assert_eq!(c["strategy"], "session");
    assert_eq!(
        c["retention"],
        json!({"payloadDays": 7, "requestDays": 365})
    );
    assert!(!c.to_string().contains("secret"), "{c}");

    let (status, r) = app
        .post_json(
            "/api/config/retention",
            json!({"payloadDays": 3, "requestDays": 30}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(r, json!({"payloadDays": 3, "requestDays": 30}));
    assert_eq!(app.get_json("/api/config/retention").await.1, r);
    let saved = std::fs::read_to_string(app.data_dir.path().join("config.toml")).expect("saved");
    assert!(saved.contains("retention_request_days = 30"), "{saved}");
    for bad in [
        json!({"payloadDays": 0}),
        json!({"requestDays": 5000}),
        json!({"payloadDays": 40}),
    ] {
        let (status, _) = app.post_json("/api/config/retention", bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
    }

    let now = now_ms();
    let day = 86_400_000;
    insert(
        &app,
        vec![
            record("keep", now - day, "alpha", "m", true, (1, 1, 0.0)),
            record("old", now - 40 * day, "alpha", "m", true, (1, 1, 0.0)),
        ],
    );
    let (status, done) = app.post_json("/api/maintenance/cleanup", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(done["deletedRequests"], 1);
    let ids: Vec<Value> = app
        .get_json("/api/requests")
        .await
        .1
        .as_array()
        .map(|l| l.iter().map(|r| r["id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [json!("keep")]);
    let (status, _) = app.post_json("/api/maintenance/compact", json!({})).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn metrics_are_prometheus_text_without_secrets() {
    let app = two_accounts().await;
    app.message(BODY).await;
    app.mock
        .script(KEY_A, vec![Behavior::rate_limited(Duration::from_secs(60))]);
    app.message(BODY).await;
    app.wait_for_requests(2).await;
    let mut r = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status().as_u16(), 200);
    let text = String::from_utf8(r.body().await.expect("body").to_vec()).expect("utf8");
    assert!(text.contains("claudeflare_requests_total{account=\"alpha\",model=\"claude-sonnet-4-5-20250929\",status=\"200\"} 1"), "{text}");
    assert!(
        text.contains("claudeflare_rate_limit_events_total{account=\"alpha\"} 1"),
        "{text}"
    );
    assert!(text.contains("claudeflare_failovers_total 1"), "{text}");
    assert!(
        text.contains("claudeflare_accounts{state=\"rate_limited\"} 1"),
        "{text}"
    );
    assert!(text.contains("claudeflare_tokens_total{kind=\"input\"}"));
    assert!(text.contains("claudeflare_response_seconds_bucket"));
    assert!(
        text.contains("claudeflare_proxy_overhead_seconds_count 2"),
        "{text}"
    );
    assert!(text.contains("claudeflare_in_flight_streams 0"), "{text}");
    assert!(!text.contains("secret"), "no credential in metrics");
}

#[actix_web::test]
async fn every_api_error_is_json() {
    let app = spawn_app().await;
    let r = app
        .client
        .delete(app.url("/api/stats"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 405);
    let mut r = r;
    let body: Value = serde_json::from_slice(&r.body().await.expect("body")).expect("405 is JSON");
    assert_eq!(body["error"]["type"], "method_not_allowed");
    let big = json!({"name": "x", "apiKey": "a".repeat(70_000)});
    let (status, body) = app.post_json("/api/accounts", big).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["type"], "payload_too_large");
    // Invalid UTF-8 in a JSON body: a 400 naming the problem, nothing added.
    let mut r = app
        .client
        .post(app.url("/api/accounts"))
        .insert_header(("content-type", "application/json"))
        .send_body(actix_web::web::Bytes::from_static(
            b"{\"name\":\"\xff\xfe\",\"apiKey\":\"k\"}",
        ))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = serde_json::from_slice(&r.body().await.expect("body")).expect("JSON");
    assert_eq!(body["error"]["type"], "invalid_request");
    assert!(app.accounts().await.is_empty());
    let (status, body) = app.get_json("/api/nothing/here").await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = app.get_json("/api/requests?limit=-1").await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[actix_web::test]
async fn the_daemons_log_is_served_as_history_and_live() {
    let app = two_accounts().await;
    let mut live = app
        .client
        .get(app.url("/api/logs/stream"))
        .send()
        .await
        .expect("stream");
    // A rate limit is logged at WARN (the tests' level).
    app.mock
        .script(KEY_A, vec![Behavior::rate_limited(Duration::from_secs(60))]);
    app.message(BODY).await;
    let mut text = String::new();
    while !text.contains("account rate-limited") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("log event in time")
            .expect("open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: log"));
    let (status, history) = app.get_json("/api/logs/history?limit=1000").await;
    assert_eq!(status, 200);
    let events = history.as_array().cloned().unwrap_or_default();
    let event = events
        .iter()
        .rev()
        .find(|e| e["message"] == "account rate-limited")
        .expect("in the history");
    assert_eq!(event["level"], "WARN");
    assert_eq!(event["fields"]["account"], "alpha");
    assert!(
        !history.to_string().contains("secret"),
        "no credential in the log"
    );
    let (status, _) = app.get_json("/api/logs/history?limit=5000").await;
    assert_eq!(status, 400);
}
