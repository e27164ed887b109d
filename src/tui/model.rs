//! The TUI's state: plain data, filled by the HTTP poller in production and by
//! fixtures in tests. Views are built from it and nothing else.

use serde_json::Value;

/// The screens, on keys 1 to 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Accounts,
    Requests,
    Logs,
    Analytics,
    Strategy,
}

impl Screen {
    pub const ALL: [(char, Screen, &'static str); 6] = [
        ('1', Screen::Overview, "Overview"),
        ('2', Screen::Accounts, "Accounts"),
        ('3', Screen::Requests, "Requests"),
        ('4', Screen::Logs, "Logs"),
        ('5', Screen::Analytics, "Analytics"),
        ('6', Screen::Strategy, "Strategy"),
    ];

    pub fn title(self) -> &'static str {
        Screen::ALL
            .iter()
            .find(|(_, s, _)| *s == self)
            .map(|(_, _, t)| *t)
            .unwrap_or("")
    }
}

/// Whether the daemon answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Connection {
    Connecting,
    Connected,
    /// The last error; the poller keeps retrying.
    Lost(String),
}

/// What the daemon said at the last poll.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub health: Value,
    pub stats: Value,
    pub accounts: Vec<Value>,
    pub requests: Vec<Value>,
    pub logs: Vec<Value>,
    pub analytics: Value,
    pub strategy: String,
    pub strategies: Vec<Value>,
}

/// Everything a view needs.
#[derive(Clone, Debug)]
pub struct TuiState {
    pub server: String,
    pub connection: Connection,
    pub data: Snapshot,
    pub screen: Screen,
    pub logs_paused: bool,
    /// Log lines cleared by the user are those older than this count.
    pub logs_cleared_at: usize,
    pub range: String,
    /// The last message of an action (shown in the status bar).
    pub notice: Option<String>,
    /// Unix ms of the snapshot, for countdowns.
    pub now_ms: i64,
}

impl TuiState {
    pub fn new(server: &str) -> Self {
        Self {
            server: server.to_string(),
            connection: Connection::Connecting,
            data: Snapshot::default(),
            screen: Screen::Overview,
            logs_paused: false,
            logs_cleared_at: 0,
            range: "24h".to_string(),
            notice: None,
            now_ms: claudeflare_actors::clock::now_ms(),
        }
    }
}

/// What the user asked the daemon to do (sent to the poller, which calls the API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Refresh,
    Pause(String),
    Resume(String),
    Remove(String),
    SetTier(String, i32),
    AddApiKey { name: String, key: String },
    SetStrategy(String),
    SetRange(String),
}
