//! The CLI against a real daemon: every command's output and exit code.

use crate::helpers::{spawn_app, TestApp, BODY};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(app_address: &str, args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_claudeflare"))
        .args(args)
        .args(["--server", app_address])
        .env_remove("CLAUDEFLARE_API_KEY")
        .env_remove("CLAUDEFLARE_SERVER")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn cli(app: &TestApp, args: &[&str], stdin: &str) -> Out {
    let (address, args, stdin) = (
        app.address.clone(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        stdin.to_string(),
    );
    actix_web::rt::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&address, &args, &stdin)
    })
    .await
    .expect("join")
}

#[actix_web::test]
async fn account_commands_print_tables_and_json_and_exit_right() {
    let app = spawn_app().await;
    let out = cli(
        &app,
        &["account", "add", "alpha", "--api-key-stdin", "--tier", "5"],
        "sk-ant-api03-cli-alpha-0001\n",
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("NAME") && out.stdout.contains("alpha"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("cli-alpha-0001"),
        "the key is never printed"
    );
    let out = cli(
        &app,
        &["--json", "account", "add", "beta", "--api-key-stdin"],
        "sk-ant-api03-cli-beta-0002\n",
    )
    .await;
    assert_eq!(out.code, 0);
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("json");
    assert_eq!(v["name"], "beta");
    // No terminal and no --api-key-stdin: a usage error, nothing added.
    let out = cli(&app, &["account", "add", "gamma"], "").await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--api-key-stdin"));

    let out = cli(&app, &["account", "list"], "").await;
    assert_eq!(out.code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with("NAME") && lines[0].contains("TIER"));
    let out = cli(&app, &["--json", "account", "list"], "").await;
    let list: Value = serde_json::from_str(out.stdout.trim()).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let out = cli(&app, &["account", "show", "alpha"], "").await;
    assert!(
        out.stdout.contains("tier") && out.stdout.contains('5'),
        "{}",
        out.stdout
    );

    for args in [
        vec!["account", "pause", "alpha"],
        vec!["account", "resume", "alpha"],
        vec!["account", "tier", "alpha", "20"],
        vec!["account", "priority", "alpha", "3"],
        vec!["account", "rename", "beta", "bravo"],
    ] {
        let out = cli(&app, &args, "").await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    }
    let alpha = app.account("alpha").await;
    assert_eq!(
        (alpha["tier"].as_i64(), alpha["priority"].as_i64()),
        (Some(20), Some(3))
    );
    assert_eq!(app.account("bravo").await["name"], "bravo");

    // The daemon refuses: exit 1 with its message on one line.
    let out = cli(&app, &["account", "pause", "nobody"], "").await;
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.trim().lines().count(), 1);
    assert!(out.stderr.contains("nobody"));
    // Bad arguments: exit 2.
    assert_eq!(
        cli(&app, &["account", "tier", "alpha", "7"], "").await.code,
        2
    );
    assert_eq!(cli(&app, &["account", "frobnicate"], "").await.code, 2);

    // Removal asks; no answer means no.
    let out = cli(&app, &["account", "remove", "bravo"], "").await;
    assert_eq!(out.code, 1);
    assert_eq!(app.accounts().await.len(), 2);
    let out = cli(&app, &["account", "remove", "bravo"], "y\n").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(&app, &["account", "remove", "alpha", "--yes"], "").await;
    assert_eq!(out.code, 0);
    assert!(app.accounts().await.is_empty());
}

#[actix_web::test]
async fn the_oauth_sign_in_runs_on_the_terminal() {
    let app = spawn_app().await;
    let tokens = app.tokens.clone();
    let address = app.address.clone();
    let out = actix_web::rt::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_claudeflare"))
            .args([
                "account", "add", "max1", "--mode", "max", "--server", &address,
            ])
            .env_remove("DISPLAY")
            .env_remove("BROWSER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut url = String::new();
        let mut line = String::new();
        while url.is_empty() && stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(u) = line.trim().strip_prefix("https://") {
                url = format!("https://{u}");
            }
            line.clear();
        }
        let query: std::collections::HashMap<String, String> = url
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokens.register_code("cli-code", &query["code_challenge"], &query["state"]);
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "cli-code#{}", query["state"]).expect("paste");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
    .await
    .expect("join");
    assert_eq!(out.0, Some(0), "{}", out.1);
    assert!(
        out.1.contains("max1") && out.1.contains("oauth"),
        "{}",
        out.1
    );
}

#[actix_web::test]
async fn strategy_stats_requests_logs_analytics_history_maintenance() {
    let app = spawn_app().await;
    app.add_account("alpha", "sk-ant-api03-cli-0003").await;
    for _ in 0..3 {
        app.message(BODY).await;
    }
    app.wait_for_requests(3).await;

    let out = cli(&app, &["strategy"], "").await;
    assert_eq!((out.code, out.stdout.trim()), (0, "session"));
    let out = cli(&app, &["strategy", "round-robin"], "").await;
    assert_eq!((out.code, out.stdout.trim()), (0, "round-robin"));
    let out = cli(&app, &["strategy", "bogus"], "").await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("weighted-round-robin"),
        "{}",
        out.stderr
    );

    let out = cli(&app, &["stats"], "").await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("totalRequests") && out.stdout.contains('3'),
        "{}",
        out.stdout
    );
    let out = cli(&app, &["requests", "--limit", "2"], "").await;
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    assert!(out.stdout.starts_with("TIME") && out.stdout.contains("alpha"));
    let out = cli(&app, &["--json", "requests"], "").await;
    let rows: Value = serde_json::from_str(out.stdout.trim()).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(3));
    let out = cli(&app, &["logs", "-n", "5"], "").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(&app, &["analytics", "--range", "1h"], "").await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("requests") && out.stdout.contains("MODEL"),
        "{}",
        out.stdout
    );
    assert_eq!(cli(&app, &["analytics", "--range", "2h"], "").await.code, 2);
    for args in [
        vec!["maintenance", "cleanup"],
        vec!["maintenance", "compact"],
    ] {
        assert_eq!(cli(&app, &args, "").await.code, 0, "{args:?}");
    }
    assert_eq!(
        cli(&app, &["history", "clear"], "").await.code,
        1,
        "asks first"
    );
    assert_eq!(cli(&app, &["history", "clear", "--yes"], "").await.code, 0);
    assert_eq!(
        app.get_json("/api/requests")
            .await
            .1
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let out = cli(&app, &["stats", "reset", "--yes"], "").await;
    assert_eq!(out.code, 0);
    let out = cli(&app, &["completions", "bash"], "").await;
    assert!(out.code == 0 && out.stdout.contains("claudeflare"));
}

#[actix_web::test]
async fn requests_follow_prints_new_requests_as_they_finish() {
    let app = spawn_app().await;
    app.add_account("alpha", "sk-ant-api03-cli-0004").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_claudeflare"))
        .args([
            "requests",
            "--follow",
            "--limit",
            "1",
            "--server",
            &app.address,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let reader = actix_web::rt::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        // The header of the (empty) table, then one line per finished request.
        let mut seen = Vec::new();
        while let Some(Ok(line)) = lines.next() {
            seen.push(line);
            if seen.iter().any(|l| l.contains("alpha")) {
                break;
            }
        }
        seen
    });
    actix_web::rt::time::sleep(std::time::Duration::from_millis(500)).await;
    app.message(BODY).await;
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
        .await
        .expect("a line in time")
        .expect("join");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter()
            .any(|l| l.contains("alpha") && l.contains("200")),
        "{seen:?}"
    );
}

#[test]
fn an_unreachable_daemon_is_exit_3_with_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let out = run(&address, &["account", "list"], "");
    assert_eq!(out.code, 3);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "claudeflare: cannot reach claudeflare at {address}: is 'claudeflare serve' running?"
        )
    );
}
