//! Failover before the first byte: which answers move on, which are delivered, and
//! what the client sees when no account is left.

use crate::helpers::{spawn_app, spawn_app_with, BODY};
use crate::mock::Behavior;
use std::time::{Duration, Instant};

const A: &str = "key-alpha-0000000000";
const B: &str = "key-beta-00000000000";

async fn two_accounts() -> crate::helpers::TestApp {
    let app = spawn_app().await;
    app.add_account("alpha", A).await;
    app.add_account("beta", B).await;
    app
}

#[actix_web::test]
async fn a_429_with_limit_headers_benches_the_account_and_the_client_never_sees_it() {
    let app = two_accounts().await;
    app.mock
        .script(A, vec![Behavior::rate_limited(Duration::from_secs(3600))]);
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.account(), "beta");
    let alpha = app.account("alpha").await;
    assert!(alpha["rateLimitedUntil"].is_string(), "{alpha}");
    assert_eq!(alpha["rateLimitStatus"], "rejected");
    assert_eq!(alpha["utilization5h"], 1.01);
    assert_eq!(alpha["available"], false);
    // Later requests skip the benched account entirely.
    let again = app.message(BODY).await;
    assert_eq!(again.account(), "beta");
    assert_eq!(app.mock.seen_with_key(A), 1);
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["failoverAttempts"], 1);
    assert_eq!(row["accountName"], "beta");
}

#[actix_web::test]
async fn windowless_429_and_out_of_credits_fail_over_without_benching() {
    let app = two_accounts().await;
    let out_of_credits = Behavior::error(429, "rate_limit_error").with_headers(&[
        ("anthropic-ratelimit-unified-status", "rejected"),
        (
            "anthropic-ratelimit-unified-overage-disabled-reason",
            "out_of_credits",
        ),
    ]);
    for behavior in [Behavior::windowless_429(), out_of_credits] {
        app.mock.script(A, vec![behavior]);
        let answer = app.message(BODY).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.account(), "beta");
        let alpha = app.account("alpha").await;
        assert_eq!(alpha["available"], true, "{alpha}");
        assert_eq!(alpha["rateLimitedUntil"], serde_json::Value::Null);
    }
}

#[actix_web::test]
async fn overloaded_and_gateway_errors_fail_over() {
    let app = two_accounts().await;
    // Start the session on alpha: transient failures do not move it.
    assert_eq!(app.message(BODY).await.account(), "alpha");
    for status in [502u16, 503, 504] {
        app.mock
            .script(A, vec![Behavior::error(status, "api_error")]);
        let answer = app.message(BODY).await;
        assert_eq!(
            (answer.status, answer.account()),
            (200, "beta"),
            "on {status}"
        );
        assert_eq!(app.account("alpha").await["available"], true);
    }
    app.mock
        .script(A, vec![Behavior::error(529, "overloaded_error")]);
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "beta"));
    let alpha = app.account("alpha").await;
    assert_eq!(
        alpha["unavailableReason"], "overloaded",
        "a 529 cools the account down"
    );
}

#[actix_web::test]
async fn a_refused_key_marks_the_account_and_fails_over() {
    let app = two_accounts().await;
    app.mock
        .script(A, vec![Behavior::error(401, "authentication_error")]);
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "beta"));
    let alpha = app.account("alpha").await;
    assert_eq!(alpha["authFailed"], true);
    assert_eq!(alpha["available"], false);
    // Resuming puts it back.
    let (status, resumed) = app
        .post_json("/api/accounts/alpha/resume", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(resumed["authFailed"], false);
    assert_eq!(resumed["available"], true);
}

#[actix_web::test]
async fn a_header_timeout_fails_over() {
    let app = spawn_app_with(|c| c.upstream_header_timeout_ms = 300).await;
    app.add_account("alpha", A).await;
    app.add_account("beta", B).await;
    app.mock.script(A, vec![Behavior::Hang]);
    let started = Instant::now();
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "beta"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[actix_web::test]
async fn the_last_account_is_retried_with_backoff() {
    let app = spawn_app_with(|c| {
        c.retry_delay_ms = 100;
        c.retry_backoff = 2.0;
    })
    .await;
    app.add_account("alpha", A).await;
    app.mock.script(
        A,
        vec![
            Behavior::error(529, "overloaded_error"),
            Behavior::error(503, "api_error"),
        ],
    );
    let started = Instant::now();
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "alpha"));
    // Jittered waits of at least 50 ms and 100 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.mock.seen_with_key(A), 3);
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["failoverAttempts"], 2);
    assert_eq!(row["success"], true);
}

#[actix_web::test]
async fn retries_give_up_after_the_configured_attempts() {
    let app = spawn_app_with(|c| c.retry_attempts = 2).await;
    app.add_account("alpha", A).await;
    app.mock.always(A, Behavior::error(503, "api_error"));
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json()["error"]["type"], "pool_exhausted");
    assert_eq!(app.mock.seen_with_key(A), 3, "one try and two retries");
}

#[actix_web::test]
async fn connection_refused_is_transient_and_ends_in_pool_exhausted() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let app = spawn_app_with(|c| {
        c.upstream_url = format!("http://127.0.0.1:{port}");
        c.retry_attempts = 1;
    })
    .await;
    app.add_account("alpha", A).await;
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 503);
    let error = &answer.json()["error"];
    assert_eq!(error["type"], "pool_exhausted");
    assert!(error["accounts"][0]["reason"]
        .as_str()
        .unwrap_or("")
        .contains("unreachable"));
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["success"], false);
    assert_eq!(row["statusCode"], 503);
}

#[actix_web::test]
async fn pool_exhausted_names_the_accounts_and_the_earliest_return() {
    let app = two_accounts().await;
    app.mock
        .script(A, vec![Behavior::rate_limited(Duration::from_secs(120))]);
    app.mock
        .script(B, vec![Behavior::rate_limited(Duration::from_secs(900))]);
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 503);
    let retry_after: i64 = answer
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!(
        (110..=121).contains(&retry_after),
        "retry-after {retry_after}"
    );
    let json = answer.json();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "pool_exhausted");
    assert!(json["error"]["next_available_at"].is_string());
    let accounts = json["error"]["accounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(accounts.len(), 2);
    assert!(accounts
        .iter()
        .all(|a| a["reason"] == "rate_limited" && a["available_at"].is_string()));

    // Now both are benched before selection: the same answer without an upstream call.
    let calls = app.mock.seen().len();
    let again = app.message(BODY).await;
    assert_eq!(again.status, 503, "served by {}", again.account());
    assert_eq!(app.mock.seen().len(), calls);
    let retry_after: i64 = again
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((100..=121).contains(&retry_after));
}

#[actix_web::test]
async fn paused_accounts_are_skipped_and_come_back_on_resume() {
    let app = two_accounts().await;
    let (status, _) = app
        .post_json("/api/accounts/alpha/pause", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    for _ in 0..3 {
        assert_eq!(app.message(BODY).await.account(), "beta");
    }
    let (status, _) = app
        .post_json("/api/accounts/beta/pause", serde_json::json!({}))
        .await;
    assert_eq!(status, 200);
    let answer = app.message(BODY).await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.header("retry-after"),
        Some("60"),
        "paused accounts do not come back by themselves"
    );
    app.post_json("/api/accounts/alpha/resume", serde_json::json!({}))
        .await;
    assert_eq!(app.message(BODY).await.account(), "alpha");
}

#[actix_web::test]
async fn the_session_sticks_to_one_account_until_a_429_moves_it() {
    let app = spawn_app().await;
    app.add_account("alpha", A).await;
    app.add_account("beta", B).await;
    app.add_account("gamma", "key-gamma-0000000000").await;
    for _ in 0..5 {
        assert_eq!(app.message(BODY).await.account(), "alpha");
    }
    app.mock
        .script(A, vec![Behavior::rate_limited(Duration::from_secs(600))]);
    let moved = app.message(BODY).await;
    let new_home = moved.account().to_string();
    assert_ne!(new_home, "alpha");
    for _ in 0..5 {
        assert_eq!(app.message(BODY).await.account(), new_home);
    }
    let accounts = app.accounts().await;
    let active: Vec<&str> = accounts
        .iter()
        .filter(|a| a["sessionInfo"]["active"] == true)
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(active, [new_home.as_str()]);
}

#[actix_web::test]
async fn a_success_after_the_bench_ran_out_clears_it_and_keeps_its_limits() {
    let app = spawn_app().await;
    app.add_account("alpha", A).await;
    app.mock
        .script(A, vec![Behavior::rate_limited(Duration::from_secs(2))]);
    let refused = app.message(BODY).await;
    assert_ne!(refused.status, 200);
    let alpha = app.account("alpha").await;
    assert!(alpha["rateLimitedUntil"].is_string(), "{alpha}");

    // The reset header has whole seconds: the bench ends within 2 s.
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    app.mock.script(
        A,
        vec![Behavior::message().with_headers(&[
            ("anthropic-ratelimit-unified-status", "allowed"),
            ("anthropic-ratelimit-unified-5h-utilization", "0.25"),
        ])],
    );
    let answer = app.message(BODY).await;
    assert_eq!((answer.status, answer.account()), (200, "alpha"));
    // The success's limits travel with the request's use record.
    let alpha = app.account("alpha").await;
    assert_eq!(
        alpha["rateLimitedUntil"],
        serde_json::Value::Null,
        "{alpha}"
    );
    assert_eq!(alpha["rateLimitStatus"], "allowed", "{alpha}");
    assert_eq!(alpha["utilization5h"], 0.25, "{alpha}");
    assert_eq!(alpha["totalRequests"], 1, "{alpha}");
}
