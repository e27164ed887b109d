//! The request history and its survival across restarts.

use crate::helpers::{spawn_app, BODY};

#[actix_web::test]
async fn restart_keeps_accounts_history_and_state() {
    let app = spawn_app().await;
    app.add_account("alpha", "key-alpha-0000000000").await;
    app.add_account("beta", "key-beta-00000000000").await;
    app.post_json("/api/accounts/beta/pause", serde_json::json!({}))
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.message(BODY).await.request_id());
    }
    let app = app.restart().await;

    let accounts = app.accounts().await;
    assert_eq!(accounts.len(), 2);
    let alpha = app.account("alpha").await;
    assert_eq!(alpha["totalRequests"], 3);
    assert_eq!(
        alpha["sessionInfo"]["active"], true,
        "the session survives the restart"
    );
    assert_eq!(app.account("beta").await["paused"], true);
    let rows = app.wait_for_requests(3).await;
    let got: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    ids.reverse();
    assert_eq!(got, ids, "newest first, all kept");
    // The key still works after the restart.
    assert_eq!(app.message(BODY).await.account(), "alpha");
}

#[actix_web::test]
async fn request_rows_have_the_documented_shape_and_limit() {
    let app = spawn_app().await;
    app.add_account("alpha", "key-alpha-0000000000").await;
    for _ in 0..4 {
        app.message(BODY).await;
    }
    app.wait_for_requests(4).await;
    let (status, rows) = app.get_json("/api/requests?limit=2").await;
    assert_eq!(status, 200);
    let rows = rows.as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2);
    for key in [
        "id",
        "timestamp",
        "method",
        "path",
        "accountId",
        "accountName",
        "statusCode",
        "success",
        "errorMessage",
        "responseTimeMs",
        "timeToFirstTokenMs",
        "failoverAttempts",
        "model",
        "inputTokens",
        "outputTokens",
        "cacheReadInputTokens",
        "cacheCreationInputTokens",
        "costUsd",
        "outputTokensPerSecond",
        "stream",
    ] {
        assert!(rows[0].get(key).is_some(), "row lacks {key}: {}", rows[0]);
    }
    assert_eq!(rows[0]["method"], "POST");
    assert_eq!(rows[0]["path"], "/v1/messages");
    for bad in ["0", "1001", "x"] {
        let (status, body) = app.get_json(&format!("/api/requests?limit={bad}")).await;
        assert_eq!(status, 400, "limit={bad}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("limit"));
    }
}

#[actix_web::test]
async fn concurrent_requests_are_each_counted_once_everywhere() {
    // The workers hand records and account uses to the engine in batches, one per
    // round of their event loop: many requests at once make rounds of several.
    let app = spawn_app().await;
    app.add_account("alpha", "key-alpha-0000000000").await;
    app.add_account("beta", "key-beta-00000000000").await;
    let n = 48;
    let answers = futures_util::future::join_all((0..n).map(|_| app.message(BODY))).await;
    assert!(answers.iter().all(|a| a.status == 200));
    // Read at once: the account list drains what the workers queued for the engine.
    let mut served = 0;
    for name in ["alpha", "beta"] {
        served += app.account(name).await["totalRequests"]
            .as_i64()
            .unwrap_or(-1);
    }
    assert_eq!(served, n as i64, "each use counted on its account");
    let rows = app.wait_for_requests(n).await;
    assert_eq!(rows.len(), n, "one row per request");
    let mut ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no row twice");
    let (_, stats) = app.get_json("/api/stats").await;
    assert_eq!(stats["totalRequests"], n, "{stats}");
}
