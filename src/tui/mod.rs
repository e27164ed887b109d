//! `claudeflare tui`: a terminal view of the running daemon (cursive, crossterm
//! backend). A background thread polls the daemon's API every two seconds and hands
//! each snapshot to the UI thread through cursive's callback sink; key presses go
//! back to that thread as [`Command`]s. Views are built from [`TuiState`] alone, so
//! tests render them with cursive's puppet backend from fixtures.

pub mod model;
pub mod views;

use crate::client::ApiClient;
use cursive::views::{Dialog, SelectView};
use cursive::{CbSink, Cursive};
use model::{Command, Connection, Screen, Snapshot, TuiState};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How often the daemon is polled.
const POLL: Duration = Duration::from_secs(2);

/// What the UI thread keeps: the state and where commands go.
pub struct Shared {
    pub state: TuiState,
    pub commands: UnboundedSender<Command>,
}

fn shared(siv: &mut Cursive) -> Option<&mut Shared> {
    siv.user_data::<Shared>()
}

/// Rebuilds the screen from the state, keeping list selections; waits while a
/// dialog is open so that a poll never closes it.
pub fn redraw(siv: &mut Cursive) {
    if siv.screen().len() > 1 {
        return;
    }
    let Some(state) = shared(siv).map(|s| s.state.clone()) else {
        return;
    };
    let selected = |siv: &mut Cursive, name: &str| {
        siv.call_on_name(name, |v: &mut SelectView<String>| v.selected_id())
            .flatten()
            .or_else(|| {
                siv.call_on_name(name, |v: &mut SelectView<usize>| v.selected_id())
                    .flatten()
            })
    };
    let keep = [
        ("accounts", selected(siv, "accounts")),
        ("requests", selected(siv, "requests")),
        ("strategies", selected(siv, "strategies")),
    ];
    while siv.pop_layer().is_some() {}
    siv.add_fullscreen_layer(views::build(&state));
    for (name, index) in keep {
        if let Some(i) = index {
            siv.call_on_name(name, |v: &mut SelectView<String>| {
                let _ = v.set_selection(i);
            });
            siv.call_on_name(name, |v: &mut SelectView<usize>| {
                let _ = v.set_selection(i);
            });
        }
    }
}

fn send(siv: &mut Cursive, command: Command) {
    if let Some(s) = shared(siv) {
        let _ = s.commands.send(command);
    }
}

fn selected_account(siv: &mut Cursive) -> Option<String> {
    siv.call_on_name("accounts", |v: &mut SelectView<String>| v.selection())
        .flatten()
        .map(|n| n.to_string())
}

fn current_screen(siv: &mut Cursive) -> Screen {
    shared(siv).map_or(Screen::Overview, |s| s.state.screen)
}

/// Asks before doing something to an account.
pub(crate) fn confirm(siv: &mut Cursive, question: String, command: Command) {
    siv.add_layer(
        Dialog::text(question)
            .title("Confirm")
            .button("Yes", move |siv| {
                siv.pop_layer();
                send(siv, command.clone());
            })
            .dismiss_button("No"),
    );
}

/// Installs the state and every key binding on a Cursive instance.
pub fn install(siv: &mut Cursive, state: TuiState, commands: UnboundedSender<Command>) {
    siv.set_user_data(Shared { state, commands });
    siv.add_global_callback('q', |siv| siv.quit());
    siv.add_global_callback(cursive::event::Key::Esc, |siv| {
        if siv.screen().len() > 1 {
            siv.pop_layer();
        }
    });
    for (key, screen, _) in Screen::ALL {
        siv.add_global_callback(key, move |siv| {
            if siv.screen().len() > 1 {
                return;
            }
            if let Some(s) = shared(siv) {
                s.state.screen = screen;
            }
            redraw(siv);
        });
    }
    siv.add_global_callback('p', |siv| {
        if current_screen(siv) == Screen::Accounts {
            if let Some(name) = selected_account(siv) {
                confirm(siv, format!("Pause {name}?"), Command::Pause(name));
            }
        }
    });
    siv.add_global_callback('r', |siv| {
        if current_screen(siv) == Screen::Accounts {
            if let Some(name) = selected_account(siv) {
                confirm(siv, format!("Resume {name}?"), Command::Resume(name));
            }
        }
    });
    siv.add_global_callback('t', |siv| {
        if current_screen(siv) != Screen::Accounts {
            return;
        }
        let Some(name) = selected_account(siv) else {
            return;
        };
        let current = shared(siv)
            .and_then(|s| {
                s.state
                    .data
                    .accounts
                    .iter()
                    .find(|a| a["name"] == name.as_str())
                    .cloned()
            })
            .and_then(|a| a["tier"].as_i64())
            .unwrap_or(1);
        let next = match current {
            1 => 5,
            5 => 20,
            _ => 1,
        };
        confirm(
            siv,
            format!("Set {name} to tier {next}?"),
            Command::SetTier(name, next),
        );
    });
    siv.add_global_callback('d', |siv| match current_screen(siv) {
        Screen::Accounts => {
            if let Some(name) = selected_account(siv) {
                confirm(
                    siv,
                    format!("Remove {name}? Its history stays."),
                    Command::Remove(name),
                );
            }
        }
        Screen::Analytics => send(siv, Command::SetRange("24h".into())),
        _ => {}
    });
    siv.add_global_callback('a', |siv| {
        if current_screen(siv) == Screen::Accounts && siv.screen().len() == 1 {
            let tx = shared(siv).map(|s| s.commands.clone());
            if let Some(tx) = tx {
                siv.add_layer(views::add_dialog(move |c| {
                    let _ = tx.send(c);
                }));
            }
        }
    });
    siv.add_global_callback(' ', |siv| {
        if current_screen(siv) == Screen::Logs {
            if let Some(s) = shared(siv) {
                s.state.logs_paused = !s.state.logs_paused;
            }
            redraw(siv);
        }
    });
    siv.add_global_callback('c', |siv| {
        if current_screen(siv) == Screen::Logs {
            if let Some(s) = shared(siv) {
                s.state.logs_cleared_at = s.state.data.logs.len();
            }
            redraw(siv);
        }
    });
    for (key, range) in [('h', "1h"), ('s', "6h"), ('w', "7d"), ('m', "30d")] {
        siv.add_global_callback(key, move |siv| {
            if current_screen(siv) == Screen::Analytics {
                if let Some(s) = shared(siv) {
                    s.state.range = range.to_string();
                }
                send(siv, Command::SetRange(range.into()));
                redraw(siv);
            }
        });
    }
    redraw(siv);
}

/// Applies a poll result on the UI thread.
fn apply(siv: &mut Cursive, update: Update) {
    if let Some(s) = shared(siv) {
        match update {
            Update::Data(data) => {
                let keep_logs = s.state.logs_paused.then(|| s.state.data.logs.clone());
                s.state.data = *data;
                if let Some(logs) = keep_logs {
                    s.state.data.logs = logs;
                }
                s.state.connection = Connection::Connected;
            }
            Update::Lost(e) => s.state.connection = Connection::Lost(e),
            Update::Notice(n) => s.state.notice = Some(n),
        }
        s.state.now_ms = claudeflare_actors::clock::now_ms();
    }
    redraw(siv);
}

enum Update {
    Data(Box<Snapshot>),
    Lost(String),
    Notice(String),
}

async fn snapshot(api: &ApiClient, range: &str) -> Result<Snapshot, crate::client::ClientError> {
    let list = |v: Value| v.as_array().cloned().unwrap_or_default();
    // /health answers 503 when no account can serve: still a valid snapshot.
    let health = match api.call("GET", "/health", None).await {
        Ok(v) => v,
        Err(crate::client::ClientError::Refused(_)) => json!({"status": "unhealthy"}),
        Err(e) => return Err(e),
    };
    Ok(Snapshot {
        health,
        stats: api.call("GET", "/api/stats", None).await?,
        accounts: list(api.call("GET", "/api/accounts", None).await?),
        requests: list(api.call("GET", "/api/requests?limit=200", None).await?),
        logs: list(api.call("GET", "/api/logs/history?limit=500", None).await?),
        analytics: api
            .call("GET", &format!("/api/analytics?range={range}"), None)
            .await?,
        strategy: api.call("GET", "/api/config/strategy", None).await?["strategy"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        strategies: list(api.call("GET", "/api/strategies", None).await?),
    })
}

async fn perform(api: &ApiClient, command: &Command) -> Option<String> {
    let path = |name: &str, action: &str| format!("/api/accounts/{name}{action}");
    let result = match command {
        Command::Refresh | Command::SetRange(_) => return None,
        Command::Pause(n) => api.call("POST", &path(n, "/pause"), None).await,
        Command::Resume(n) => api.call("POST", &path(n, "/resume"), None).await,
        Command::Remove(n) => api.call("DELETE", &path(n, ""), None).await,
        Command::SetTier(n, t) => {
            api.call("POST", &path(n, "/tier"), Some(json!({"tier": t})))
                .await
        }
        Command::AddApiKey { name, key } => {
            api.call(
                "POST",
                "/api/accounts",
                Some(json!({"name": name, "apiKey": key})),
            )
            .await
        }
        Command::SetStrategy(s) => {
            api.call("POST", "/api/config/strategy", Some(json!({"strategy": s})))
                .await
        }
    };
    Some(match result {
        Ok(_) => "done".to_string(),
        Err(e) => format!("failed: {e}"),
    })
}

/// The poller: runs on its own thread with its own actix System.
fn poll_loop(
    server: String,
    key: Option<String>,
    mut commands: UnboundedReceiver<Command>,
    sink: CbSink,
) {
    actix_web::rt::System::new().block_on(async move {
        let api = ApiClient::new(&server, key);
        let mut range = "24h".to_string();
        loop {
            let update = match snapshot(&api, &range).await {
                Ok(data) => Update::Data(Box::new(data)),
                Err(e) => Update::Lost(e.to_string()),
            };
            if sink.send(Box::new(move |siv| apply(siv, update))).is_err() {
                return;
            }
            match tokio::time::timeout(POLL, commands.recv()).await {
                Ok(None) => return,
                Ok(Some(command)) => {
                    if let Command::SetRange(r) = &command {
                        range = r.clone();
                    }
                    if let Some(notice) = perform(&api, &command).await {
                        let n = format!("{command:?}: {notice}");
                        if sink
                            .send(Box::new(move |siv| apply(siv, Update::Notice(n))))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Err(_) => {}
            }
        }
    });
}

/// `claudeflare tui`.
pub fn run(server: &str, key: Option<String>) -> ExitCode {
    let mut siv = cursive::default();
    let (tx, rx) = unbounded_channel();
    install(&mut siv, TuiState::new(server), tx);
    let sink = siv.cb_sink().clone();
    let (server, key) = (server.to_string(), key);
    std::thread::spawn(move || poll_loop(server, key, rx, sink));
    siv.run();
    ExitCode::SUCCESS
}
