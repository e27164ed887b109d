//! Strategies through the real proxy: distribution, priority, live switching.

use crate::helpers::{spawn_app, TestApp, BODY};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

async fn with_accounts(strategy: &str, accounts: &[(&str, i32)]) -> TestApp {
    let app = spawn_app().await;
    for (name, tier) in accounts {
        let (status, body) = app
            .post_json(
                "/api/accounts",
                json!({"name": name, "apiKey": format!("key-{name}-0000000000"), "tier": tier}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = app
        .post_json("/api/config/strategy", json!({ "strategy": strategy }))
        .await;
    assert_eq!(status, 200, "{body}");
    app
}

async fn run(app: &TestApp, n: usize, session: impl Fn(usize) -> Option<String>) -> Vec<String> {
    let mut served = Vec::with_capacity(n);
    for i in 0..n {
        let answer = match session(i) {
            Some(id) => {
                app.send(
                    "/v1/messages",
                    BODY,
                    &[("x-claude-code-session-id", id.as_str())],
                )
                .await
            }
            None => app.message(BODY).await,
        };
        assert_eq!(answer.status, 200);
        served.push(answer.account().to_string());
    }
    served
}

fn counts(served: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for s in served {
        *m.entry(s.as_str()).or_insert(0) += 1;
    }
    m
}

#[actix_web::test]
async fn strategies_are_listed_and_switched_live_and_saved() {
    let app = spawn_app().await;
    let (status, list) = app.get_json("/api/strategies").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .map(|l| l.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "session",
            "session-affinity",
            "round-robin",
            "least-requests",
            "weighted",
            "weighted-round-robin"
        ]
    );
    assert!(list[0]["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));

    let (_, current) = app.get_json("/api/config/strategy").await;
    assert_eq!(current["strategy"], "session");
    let (status, _) = app
        .post_json("/api/config/strategy", json!({"strategy": "round-robin"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get_json("/api/config/strategy").await.1["strategy"],
        "round-robin"
    );
    assert_eq!(app.get_json("/health").await.1["strategy"], "round-robin");

    let (status, err) = app
        .post_json("/api/config/strategy", json!({"strategy": "random"}))
        .await;
    assert_eq!(status, 400);
    let message = err["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("strategy") && message.contains("weighted-round-robin"),
        "{message}"
    );

    let file = app.data_dir.path().join("config.toml");
    let text = std::fs::read_to_string(&file).expect("config file written");
    assert!(text.contains("strategy = \"round-robin\""), "{text}");
    let app = app.restart().await;
    assert_eq!(
        app.get_json("/api/config/strategy").await.1["strategy"],
        "round-robin"
    );
}

#[actix_web::test]
async fn an_edit_of_the_config_file_takes_effect_while_running() {
    let app = spawn_app().await;
    let file = app.data_dir.path().join("config.toml");
    std::fs::write(&file, "# edited by hand\nstrategy = \"weighted\"\n").expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if app.get_json("/api/config/strategy").await.1["strategy"] == "weighted" {
            break;
        }
        assert!(Instant::now() < deadline, "the file edit was never applied");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn round_robin_spreads_evenly() {
    let app = with_accounts("round-robin", &[("a", 1), ("b", 1), ("c", 1)]).await;
    let served = run(&app, 300, |_| None).await;
    let c = counts(&served);
    assert_eq!((c["a"], c["b"], c["c"]), (100, 100, 100), "{c:?}");
}

#[actix_web::test]
async fn weighted_follows_the_tiers() {
    let app = with_accounts("weighted", &[("pro", 1), ("max5", 5), ("max20", 20)]).await;
    let served = run(&app, 2600, |_| None).await;
    let c = counts(&served);
    let share = |n: &str, want: f64| {
        let got = c.get(n).copied().unwrap_or(0) as f64 / 2600.0;
        assert!(
            (got - want).abs() < 0.02,
            "{n}: {got:.3} vs {want:.3} ({c:?})"
        );
    };
    share("pro", 1.0 / 26.0);
    share("max5", 5.0 / 26.0);
    share("max20", 20.0 / 26.0);
}

#[actix_web::test]
async fn weighted_round_robin_interleaves() {
    let app = with_accounts(
        "weighted-round-robin",
        &[("pro", 1), ("max5", 5), ("max20", 20)],
    )
    .await;
    let served = run(&app, 260, |_| None).await;
    let c = counts(&served);
    assert_eq!((c["pro"], c["max5"], c["max20"]), (10, 50, 200), "{c:?}");
    let longest = served
        .chunk_by(|a, b| a == b)
        .filter(|run| run[0] == "max20")
        .map(<[String]>::len)
        .max()
        .unwrap_or(0);
    assert!(longest <= 4, "longest run on max20: {longest}");
}

#[actix_web::test]
async fn session_affinity_keeps_parallel_clients_apart() {
    let app = with_accounts("session-affinity", &[("a", 1), ("b", 1)]).await;
    let served = run(&app, 40, |i| Some(format!("session-{}", i % 2))).await;
    let first: Vec<&String> = served.iter().step_by(2).collect();
    let second: Vec<&String> = served.iter().skip(1).step_by(2).collect();
    assert!(first.iter().all(|n| *n == first[0]), "{served:?}");
    assert!(second.iter().all(|n| *n == second[0]), "{served:?}");
    assert_ne!(first[0], second[0]);
}

#[actix_web::test]
async fn lower_priority_accounts_serve_only_when_the_others_cannot() {
    let app = with_accounts("round-robin", &[("main1", 1), ("main2", 1), ("backup", 1)]).await;
    let (status, _) = app
        .post_json("/api/accounts/backup/priority", json!({"priority": 10}))
        .await;
    assert_eq!(status, 200);
    let served = run(&app, 20, |_| None).await;
    let c = counts(&served);
    assert_eq!(c.get("backup"), None, "{c:?}");
    app.post_json("/api/accounts/main1/pause", json!({})).await;
    app.post_json("/api/accounts/main2/pause", json!({})).await;
    assert_eq!(app.message(BODY).await.account(), "backup");
}

#[actix_web::test]
async fn tier_and_priority_are_validated() {
    let app = with_accounts("session", &[("a", 1)]).await;
    let (status, a) = app
        .post_json("/api/accounts/a/tier", json!({"tier": 20}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(a["tier"], 20);
    let (status, a) = app
        .post_json("/api/accounts/a/priority", json!({"priority": 7}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(a["priority"], 7);
    for (path, body, field) in [
        ("/api/accounts/a/tier", json!({"tier": 2}), "tier"),
        ("/api/accounts/a/tier", json!({}), "tier"),
        (
            "/api/accounts/a/priority",
            json!({"priority": -1}),
            "priority",
        ),
        (
            "/api/accounts/a/priority",
            json!({"priority": "high"}),
            "priority",
        ),
    ] {
        let (status, err) = app.post_json(path, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(field),
            "{err}"
        );
    }
    let (status, _) = app
        .post_json("/api/accounts/nobody/tier", json!({"tier": 5}))
        .await;
    assert_eq!(status, 404);
    let a = app.account("a").await;
    assert_eq!(
        (a["tier"].as_i64(), a["priority"].as_i64()),
        (Some(20), Some(7))
    );
}

#[actix_web::test]
async fn switching_strategy_under_load_loses_no_request() {
    let app = with_accounts("session", &[("a", 1), ("b", 5), ("c", 20)]).await;
    let app = std::rc::Rc::new(app);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        clients.push(actix_web::rt::spawn(async move {
            let mut ok = 0;
            for _ in 0..30 {
                if app.message(BODY).await.status == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let names = [
        "round-robin",
        "weighted",
        "session-affinity",
        "weighted-round-robin",
        "least-requests",
        "session",
    ];
    for i in 0..30 {
        let (status, _) = app
            .post_json(
                "/api/config/strategy",
                json!({"strategy": names[i % names.len()]}),
            )
            .await;
        assert_eq!(status, 200);
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    let mut ok = 0;
    for c in clients {
        ok += c.await.expect("client");
    }
    assert_eq!(ok, 240);
    assert_eq!(app.wait_for_requests(240).await.len(), 240);
}
