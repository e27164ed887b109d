//! The TUI: every screen rendered from fixture state with cursive's puppet backend,
//! key presses turned into commands, and a smoke test of the real binary in tmux.

use crate::helpers::{spawn_app, BODY};
use claudeflare::tui::model::{Command, Connection, Screen, Snapshot, TuiState};
use cursive::backends::puppet::observed::ObservedScreen;
use cursive::backends::puppet::Backend;
use cursive::event::{Event, Key};
use cursive::Vec2;
use serde_json::json;
use std::time::Duration;

fn fixture() -> TuiState {
    let now = claudeflare_actors::clock::now_ms();
    let in_90_min = claudeflare_actors::clock::iso(now + 90 * 60_000);
    let mut state = TuiState::new("http://127.0.0.1:8080");
    state.now_ms = now;
    state.connection = Connection::Connected;
    state.data = Snapshot {
        health: json!({"status": "degraded", "pool": {"available": 1, "configured": 2}}),
        stats: json!({"totalRequests": 1234, "successRate": 99.5, "totalTokens": 56789, "totalCostUsd": 12.5, "avgResponseTime": 850.0}),
        accounts: vec![
            json!({"name": "work-max", "kind": "oauth", "tier": 20, "priority": 0, "totalRequests": 1000, "sessionInfo": {"active": true}, "utilization5h": 0.42, "utilization7d": 0.1}),
            json!({"name": "pro-spare", "kind": "api_key", "provider": "zai", "baseUrl": "https://api.z.ai/api/anthropic", "tier": 1, "priority": 0, "totalRequests": 234, "unavailableReason": "rate_limited", "rateLimitedUntil": in_90_min, "utilization5h": 1.0}),
        ],
        requests: vec![
            json!({"timestamp": "2026-11-26T12:00:01.000Z", "accountName": "work-max", "statusCode": 200, "model": "claude-sonnet-4-5", "inputTokens": 11, "outputTokens": 7, "responseTimeMs": 321, "success": true}),
        ],
        logs: vec![
            json!({"time": "2026-11-26T12:00:02.000Z", "level": "WARN", "message": "account rate-limited"}),
        ],
        analytics: json!({"totals": {"requests": 1234, "successRate": 99.5}, "timeSeries": [{"requests": 1.0}, {"requests": 5.0}, {"requests": 3.0}], "modelDistribution": [{"model": "claude-sonnet-4-5", "requests": 900}, {"model": "claude-opus-4-5", "requests": 334}]}),
        strategy: "session".into(),
        strategies: vec![
            json!({"name": "session", "description": "One account at a time"}),
            json!({"name": "round-robin", "description": "In turn"}),
        ],
    };
    state
}

struct Harness {
    siv: cursive::Cursive,
    backend_input: crossbeam_channel::Sender<Option<Event>>,
    frames: crossbeam_channel::Receiver<ObservedScreen>,
    commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
    backend: Option<Box<Backend>>,
}

fn harness(size: Vec2) -> Harness {
    let backend = Backend::init(Some(size));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut siv = cursive::Cursive::new();
    claudeflare::tui::install(&mut siv, fixture(), tx);
    Harness {
        backend_input: backend.input(),
        frames: backend.stream(),
        siv,
        commands: rx,
        backend: Some(backend),
    }
}

impl Harness {
    /// Presses keys, then returns the screen.
    fn press(&mut self, events: &[Event]) -> ObservedScreen {
        let backend = self.backend.take().expect("backend");
        let mut runner = self.siv.runner(backend);
        // Lay out first: buttons only take key presses once they have a place.
        runner.refresh();
        for e in events {
            self.backend_input.send(Some(e.clone())).expect("input");
            runner.step();
        }
        runner.refresh();
        let screen = self.frames.try_iter().last().expect("a frame");
        // The runner borrows the Cursive; keep the backend for the next call.
        drop(runner);
        self.backend = Some(Backend::init(Some(screen.size())));
        let backend = self.backend.as_ref().expect("backend");
        self.backend_input = backend.input();
        self.frames = backend.stream();
        screen
    }
}

fn has(screen: &ObservedScreen, text: &str) -> bool {
    !screen.find_occurences(text).is_empty()
}

#[test]
fn every_screen_renders_from_state_in_80_by_24() {
    let mut h = harness(Vec2::new(80, 24));
    let s = h.press(&[]);
    for text in [
        "claudeflare",
        "connected",
        "Requests 1234",
        "work-max",
        "pro-spare",
        "rate limited",
        "in 1h ",
        "q quit",
    ] {
        assert!(has(&s, text), "overview lacks {text:?}");
    }
    let s = h.press(&[Event::Char('2')]);
    assert!(has(&s, "[2 Accounts]") && has(&s, "tier 20") && has(&s, "p pause"));
    assert!(has(&s, "zai"), "the provider is shown");
    let s = h.press(&[Event::Char('3')]);
    assert!(has(&s, "claude-sonnet-4-5") && has(&s, "321 ms"));
    let s = h.press(&[Event::Key(Key::Enter)]);
    assert!(has(&s, "\"inputTokens\": 11"), "request details");
    h.press(&[Event::Key(Key::Esc)]);
    let s = h.press(&[Event::Char('4')]);
    assert!(has(&s, "account rate-limited"));
    let s = h.press(&[Event::Char(' ')]);
    assert!(has(&s, "Logs (paused)"));
    let s = h.press(&[Event::Char('c')]);
    assert!(!has(&s, "account rate-limited"), "cleared");
    let s = h.press(&[Event::Char('5')]);
    assert!(
        has(&s, "▂█▅") && has(&s, "claude-opus-4-5"),
        "sparkline and bars"
    );
    let s = h.press(&[Event::Char('6')]);
    assert!(has(&s, "Strategy: session") && has(&s, "round-robin"));
}

#[test]
fn keys_drive_commands_with_confirmation() {
    let mut h = harness(Vec2::new(100, 30));
    h.press(&[Event::Char('2')]);
    // Pause the selected (first) account: asks, then sends the command.
    let s = h.press(&[Event::Char('p')]);
    assert!(has(&s, "Pause work-max?"));
    h.press(&[Event::Key(Key::Enter)]);
    assert_eq!(
        h.commands.try_recv().ok(),
        Some(Command::Pause("work-max".into()))
    );
    // Resume the second account.
    h.press(&[
        Event::Key(Key::Down),
        Event::Char('r'),
        Event::Key(Key::Enter),
    ]);
    assert_eq!(
        h.commands.try_recv().ok(),
        Some(Command::Resume("pro-spare".into()))
    );
    // Declining sends nothing.
    h.press(&[
        Event::Char('d'),
        Event::Key(Key::Right),
        Event::Key(Key::Enter),
    ]);
    assert!(h.commands.try_recv().is_err());
    // Analytics range keys.
    h.press(&[Event::Char('5'), Event::Char('w')]);
    assert_eq!(
        h.commands.try_recv().ok(),
        Some(Command::SetRange("7d".into()))
    );
    // Strategy switch.
    // (A screen is laid out between key presses, as on a real terminal.)
    h.press(&[Event::Char('6')]);
    h.press(&[Event::Key(Key::Down), Event::Key(Key::Enter)]);
    h.press(&[Event::Key(Key::Enter)]);
    assert_eq!(
        h.commands.try_recv().ok(),
        Some(Command::SetStrategy("round-robin".into()))
    );
    assert_eq!(
        h.siv
            .user_data::<claudeflare::tui::Shared>()
            .map(|s| s.state.screen),
        Some(Screen::Strategy)
    );
}

#[test]
fn a_lost_connection_is_shown_not_a_crash() {
    let mut state = fixture();
    state.connection = Connection::Lost("cannot reach claudeflare".into());
    let backend = Backend::init(Some(Vec2::new(100, 24)));
    let frames = backend.stream();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut siv = cursive::Cursive::new();
    claudeflare::tui::install(&mut siv, state, tx);
    let mut runner = siv.runner(backend);
    runner.refresh();
    let s = frames.try_iter().last().expect("frame");
    assert!(has(&s, "connection lost") && has(&s, "retrying"));
}

#[actix_web::test]
async fn the_real_binary_runs_in_tmux() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("note: tmux is not installed; skipping the TUI smoke test (.ci/run installs it)");
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux must be installed in CI"
        );
        return;
    }
    let app = spawn_app().await;
    app.add_account("smoke-account", "sk-ant-api03-tmux-0000")
        .await;
    app.message(BODY).await;
    let session = format!("cf-tui-{}", std::process::id());
    let command = format!(
        "{} tui --server {}",
        env!("CARGO_BIN_EXE_claudeflare"),
        app.address
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    let capture = || tmux(&["capture-pane", "-p", "-t", &session]);
    let mut screen = String::new();
    for _ in 0..50 {
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        screen = capture();
        if screen.contains("connected") && screen.contains("smoke-account") {
            break;
        }
    }
    assert!(
        screen.contains("claudeflare")
            && screen.contains("connected")
            && screen.contains("smoke-account"),
        "{screen}"
    );
    tmux(&["send-keys", "-t", &session, "2"]);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let screen = capture();
    assert!(screen.contains("[2 Accounts]"), "{screen}");
    tmux(&["send-keys", "-t", &session, "q"]);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let gone = tmux(&["has-session", "-t", &session]);
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(gone.is_empty());
}
