//! Two real daemons on one PostgreSQL against one mock upstream and one mock
//! token endpoint: they behave as one proxy. Skipped (with a note) where
//! `CLAUDEFLARE_TEST_DATABASE_URL` is unset; `.ci/run` sets it.

use crate::helpers::{try_start, TestApp, BODY};
use crate::mock::{Behavior, MockUpstream};
use crate::mock_oauth::MockTokens;
use crate::relay::Relay;
use claudeflare_actors::store::testing::TestDatabase;
use serde_json::{json, Value};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every instance must share the key that encrypts credentials at rest.
const SHARED_SECRET: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// One daemon named `name` on the database at `url`.
async fn instance(name: &str, url: &str, mock: &MockUpstream, tokens: &MockTokens) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let (name, url) = (name.to_string(), url.to_string());
    try_start(mock.clone(), tokens.clone(), dir, move |c| {
        c.database_url = Some(url);
        c.instance_id = Some(name);
        c.secret_key = Some(SHARED_SECRET.to_string());
    })
    .await
    .expect("start instance")
}

/// Two instances, `a` and `b`, on a fresh database.
async fn pair(test: &str) -> Option<(TestDatabase, TestApp, TestApp)> {
    let db = TestDatabase::create(test)?;
    let mock = MockUpstream::start().await;
    let tokens = MockTokens::start().await;
    let a = instance("a", db.url(), &mock, &tokens).await;
    let b = instance("b", db.url(), &mock, &tokens).await;
    Some((db, a, b))
}

/// Adds `first` and `second` (in that order) on `a` and waits until `b` has both.
async fn two_accounts(a: &TestApp, b: &TestApp) {
    a.add_account("first", "sk-ant-api03-first").await;
    a.add_account("second", "sk-ant-api03-second").await;
    until_accounts(b, |list| list.len() == 2).await;
}

/// Polls `check` on `app`'s account list until it holds; the time it took.
async fn until_accounts(app: &TestApp, check: impl Fn(&[Value]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check(&app.accounts().await) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "condition never held: {:?}",
            app.accounts().await
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ms() -> i64 {
    claudeflare_actors::clock::now_ms()
}

#[actix_web::test]
async fn an_account_added_on_one_instance_serves_on_the_other() {
    let Some((_db, a, b)) = pair("cluster_add").await else {
        return;
    };
    a.add_account("shared", "sk-ant-api03-shared-key").await;
    let took = until_accounts(&b, |list| list.iter().any(|x| x["name"] == "shared")).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    let answer = b.message(BODY).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.account(), "shared");
    // Pausing on B takes it out of A's rotation too.
    let (status, _) = b.post_json("/api/accounts/shared/pause", json!({})).await;
    assert_eq!(status, 200);
    until_accounts(&a, |list| list.iter().any(|x| x["paused"] == true)).await;
    // Removing it on A removes it on B.
    let r = a
        .client
        .delete(a.url("/api/accounts/shared"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 200);
    until_accounts(&b, |list| list.is_empty()).await;
}

#[actix_web::test]
async fn an_expired_token_is_refreshed_once_across_the_cluster() {
    let Some((_db, a, b)) = pair("cluster_refresh").await else {
        return;
    };
    a.tokens.issue_refresh("sk-ant-ort01-cluster");
    a.import_oauth(
        "sub",
        "sk-ant-ort01-cluster",
        "sk-ant-oat01-expired",
        now_ms() - 1_000,
    )
    .await;
    until_accounts(&b, |list| list.iter().any(|x| x["name"] == "sub")).await;
    // A slow token endpoint: every request on both instances arrives while the
    // refresh is still running.
    a.tokens.with(|s| s.delay = Duration::from_millis(400));
    let (a, b) = (Rc::new(a), Rc::new(b));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(actix_web::rt::spawn(async move {
            app.message(BODY).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), 200);
    }
    assert_eq!(
        a.tokens.with(|s| s.refresh_calls),
        1,
        "exactly one refresh reached the token endpoint"
    );
    let seen = a.mock.seen();
    assert_eq!(seen.len(), 50);
    assert!(seen
        .iter()
        .all(|s| s.header("authorization") == Some("Bearer sk-ant-oat01-access-0001-mock")));
}

#[actix_web::test]
async fn a_rate_limit_seen_by_one_instance_benches_the_account_on_the_other() {
    let Some((_db, a, b)) = pair("cluster_limits").await else {
        return;
    };
    two_accounts(&a, &b).await;
    a.mock.script(
        "sk-ant-api03-first",
        vec![Behavior::rate_limited(Duration::from_secs(600))],
    );
    let answer = a.message(BODY).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.account(), "second", "A failed over");
    let took = until_accounts(&b, |list| {
        list.iter()
            .any(|x| x["name"] == "first" && !x["rateLimitedUntil"].is_null())
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "B learned of it after {took:?}"
    );
    for _ in 0..10 {
        let answer = b.message(BODY).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.account(), "second");
    }
    assert_eq!(
        a.mock.seen_with_key("sk-ant-api03-first"),
        1,
        "B never sent to the benched account"
    );
}

#[actix_web::test]
async fn with_the_session_strategy_both_instances_use_one_account() {
    let Some((_db, a, b)) = pair("cluster_session").await else {
        return;
    };
    two_accounts(&a, &b).await;
    // A's first request is refused as overloaded by `first` (A alone notes the
    // short cooldown), so A's session starts on `second`; B, left to itself,
    // would start on `first`, the oldest.
    a.mock.script(
        "sk-ant-api03-first",
        vec![Behavior::error(529, "overloaded_error")],
    );
    let answer = a.message(BODY).await;
    assert_eq!(answer.account(), "second");
    until_accounts(&b, |list| {
        list.iter()
            .any(|x| x["name"] == "second" && x["sessionInfo"]["active"] == true)
    })
    .await;
    for app in [&b, &a, &b, &a, &b] {
        let answer = app.message(BODY).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.account(), "second");
    }
}

#[actix_web::test]
async fn both_instances_write_one_history() {
    let Some((_db, a, b)) = pair("cluster_history").await else {
        return;
    };
    a.add_account("shared", "sk-ant-api03-shared").await;
    until_accounts(&b, |list| list.len() == 1).await;
    for app in [&a, &b, &a, &b, &b] {
        assert_eq!(app.message(BODY).await.status, 200);
    }
    let rows = a.wait_for_requests(5).await;
    assert_eq!(rows.len(), 5);
    let count = |id: &str| rows.iter().filter(|r| r["instanceId"] == id).count();
    assert_eq!((count("a"), count("b")), (2, 3));
    let (_, stats) = b.get_json("/api/stats").await;
    assert_eq!(stats["instanceId"], "b");
    let (_, analytics) = b.get_json("/api/analytics?range=1h").await;
    assert_eq!(analytics["totals"]["requests"], 5, "{analytics}");
    // The whole day reads hour and minute rollups too: both instances' batches are
    // in them.
    let (_, day) = a
        .get_json("/api/analytics?range=24h&modelBreakdown=true")
        .await;
    assert_eq!(day["totals"]["requests"], 5, "{day}");
    let per_model: i64 = day["modelPerformance"]
        .as_array()
        .expect("modelPerformance")
        .iter()
        .filter_map(|m| m["requests"].as_i64())
        .sum();
    assert_eq!(per_model, 5, "{day}");
}

#[actix_web::test]
async fn the_database_going_away_loses_no_request_and_no_record() {
    let Some(db) = TestDatabase::create("cluster_outage") else {
        return;
    };
    // The instance reaches PostgreSQL through a relay the test can cut.
    let authority = db
        .url()
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("host:port in the test URL")
        .to_string();
    let relay = Relay::start(authority.clone());
    let url = db
        .url()
        .replacen(&authority, &format!("127.0.0.1:{}", relay.port), 1);
    let mock = MockUpstream::start().await;
    let tokens = MockTokens::start().await;
    let a = instance("a", &url, &mock, &tokens).await;
    a.add_account("shared", "sk-ant-api03-shared").await;
    let mut sent = 0;
    let started = Instant::now();
    let mut cut_at = None;
    while started.elapsed() < Duration::from_secs(4) {
        let elapsed = started.elapsed();
        if elapsed > Duration::from_millis(800) && cut_at.is_none() {
            relay.cut();
            cut_at = Some(elapsed);
        }
        if elapsed > Duration::from_millis(2_500) {
            relay.restore();
        }
        let answer = a.message(BODY).await;
        assert_eq!(
            answer.status, 200,
            "request {sent} failed during the outage"
        );
        sent += 1;
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(sent > 50, "only {sent} requests");
    // Everything buffered during the outage reaches the database afterwards.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, stats) = a.get_json("/api/analytics?range=1h").await;
        if status == 200 && stats["totals"]["requests"] == sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} sent, history has {}",
            stats["totals"]["requests"]
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let account = a.account("shared").await;
    assert_eq!(account["totalRequests"], sent, "{account}");
}

#[actix_web::test]
async fn an_unreachable_database_stops_start_up_with_one_line() {
    let Some(_db) = TestDatabase::create("cluster_unreachable") else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mock = MockUpstream::start().await;
    let tokens = MockTokens::start().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let started = Instant::now();
    let err = try_start(mock, tokens, dir, move |c| {
        c.database_url = Some(format!(
            "postgres://someone:hunter2-secret@127.0.0.1:{port}/nothing"
        ));
    })
    .await
    .err()
    .expect("start must fail");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.contains('\n'), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
    assert!(err.contains("127.0.0.1"), "{err}");
}
