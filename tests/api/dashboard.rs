//! The dashboard in a real browser: the daemon and the mock upstream from the
//! harness, Debian's Chromium driven by `tests/browser/dashboard.mjs`
//! (playwright-core). The script asks for a request through the proxy when the
//! Requests tab is live ("@@ SEND"); this test sends it and answers with its id.
//!
//! Skips with a note when Chromium, Node or `tests/browser/node_modules` is missing,
//! except under CI (`CI` set), where `.ci/run` installs them and a skip would hide a
//! broken set-up. Screenshots go to `target/screenshots/`; with
//! `UPDATE_SCREENSHOTS=1` the ones `/about` shows are copied to `static/screenshots/`.

use crate::helpers::{spawn_app, TestApp};
use crate::mock::{Behavior, SseEnd};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const KEY_A: &str = "sk-ant-api03-dash-alpha-AAAA";
const KEY_B: &str = "sk-ant-api03-dash-beta-BBBB";

/// The screenshots `/about` shows.
const ABOUT_SHOTS: [&str; 4] = ["overview", "accounts", "request-detail", "analytics-dark"];

/// A conversation with a system prompt, thinking, tool use and a tool result.
fn conversation(model: &str, stream: bool) -> String {
    serde_json::json!({
        "model": model,
        "max_tokens": 256,
        "stream": stream,
        "system": "You are a helpful weather assistant.",
        "tools": [{"name": "get_weather", "description": "Current weather for a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants the weather; call the tool.", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C and sunny"}
            ]}
        ]
    })
    .to_string()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install -y chromium, or set CHROMIUM)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no `node` on the PATH".into());
    }
    let modules = repo().join("tests/browser/node_modules/playwright-core");
    if !modules.exists() {
        return Some(
            "tests/browser/node_modules is missing (run `npm ci` in tests/browser)".into(),
        );
    }
    None
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    target.join("screenshots")
}

/// Two accounts, round-robin, and some history: JSON answers carrying rate-limit
/// headers, streamed answers, two models, and a failure.
async fn seeded_app() -> TestApp {
    let app = spawn_app().await;
    app.add_account("alpha", KEY_A).await;
    app.add_account("beta", KEY_B).await;
    let (status, body) = app
        .post_json(
            "/api/config/strategy",
            serde_json::json!({"strategy": "round-robin"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reset = (std::time::SystemTime::now() + Duration::from_secs(3 * 3600))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let limited = Behavior::message().with_headers(&[
        ("anthropic-ratelimit-unified-status", "allowed"),
        ("anthropic-ratelimit-unified-reset", &reset),
        ("anthropic-ratelimit-unified-5h-utilization", "0.42"),
        ("anthropic-ratelimit-unified-7d-utilization", "0.13"),
    ]);
    app.mock.always(KEY_A, limited);
    app.mock
        .always(KEY_B, Behavior::sse(Duration::ZERO, SseEnd::Complete));
    let mut sent = 0;
    for model in ["claude-sonnet-4-5-20250929", "claude-haiku-4-5"] {
        for stream in [false, true, false] {
            let answer = app
                .send(
                    "/v1/messages",
                    &conversation(model, stream),
                    &[("x-api-key", "client-key")],
                )
                .await;
            assert_eq!(answer.status, 200);
            sent += 1;
        }
    }
    app.mock
        .script(KEY_A, vec![Behavior::error(400, "invalid_request_error")]);
    let answer = app
        .send(
            "/v1/messages",
            &conversation("claude-sonnet-4-5-20250929", false),
            &[("x-api-key", "client-key")],
        )
        .await;
    sent += 1;
    let _ = answer;
    app.wait_for_requests(sent).await;
    app
}

#[actix_web::test]
async fn the_dashboard_works_in_a_real_browser() {
    if let Some(why) = missing() {
        if std::env::var_os("CI").is_some() {
            panic!("the browser test cannot run under CI: {why}");
        }
        eprintln!("SKIPPED the browser test of the dashboard: {why}");
        return;
    }
    let app = seeded_app().await;
    // The live request goes to alpha (beta is paused by then): a streamed answer with
    // thinking, so the detail view shows the whole conversation.
    app.mock
        .always(KEY_A, Behavior::sse(Duration::ZERO, SseEnd::Complete));

    let shots = screenshot_dir();
    let mut child = Command::new("node")
        .arg(repo().join("tests/browser/dashboard.mjs"))
        .arg(&app.address)
        .arg(&shots)
        .current_dir(repo().join("tests/browser"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut passed = false;
    let mut live_id = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let line = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(_) => {
                let _ = child.kill();
                panic!("the browser script took longer than 3 minutes");
            }
        };
        eprintln!("{line}");
        if line == "@@ SEND" {
            let answer = app
                .send(
                    "/v1/messages",
                    &conversation("claude-sonnet-4-5-20250929", true),
                    &[("x-api-key", "client-key")],
                )
                .await;
            assert_eq!(answer.status, 200);
            let id = answer.request_id();
            writeln!(stdin, "SENT {id}").expect("answer the script");
            stdin.flush().expect("flush");
            live_id = Some(id);
        } else if line.starts_with("@@ OK") {
            passed = true;
        }
    }
    drop(stdin);
    let status = child.wait().expect("node exit");
    assert!(
        status.success() && passed,
        "the browser checks failed ({status}); screenshots in {}",
        shots.display()
    );

    // What the browser did, seen from the API.
    let beta = app.account("beta").await;
    assert_eq!(beta["paused"], true, "beta was paused from the UI: {beta}");
    let live = app.request(&live_id.expect("a live request")).await;
    assert_eq!(live["accountName"], "alpha");

    for name in ABOUT_SHOTS {
        let shot = shots.join(format!("{name}.png"));
        assert!(shot.exists(), "no screenshot {}", shot.display());
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            let to = repo()
                .join("static/screenshots")
                .join(format!("{name}.png"));
            std::fs::copy(&shot, &to).expect("copy the screenshot");
        }
    }
    app.stop().await;
}
