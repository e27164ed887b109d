//! The daemon's own log: `tracing` with an env-filter, as text or JSON lines on
//! stderr, a daily-rotated file in the data directory, and an in-memory ring (the
//! last 1 000 events) that the API serves as history and as a live stream.

use crate::config::{Config, LogFormat};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Events kept for `/api/logs/history`.
pub const LOG_HISTORY: usize = 1000;
/// Rotated log files kept.
const LOG_FILES_KEPT: usize = 7;
/// Log lines queued for the file writer's thread before new ones are dropped. The
/// appender's default, 128 000, is a 4 MB channel whose every slot is written when
/// it is made: 3.6 MB of the idle daemon's resident memory (26.1 → 22.5 MB,
/// docs/performance.md) for a queue that stays near empty. 8 192 lines still hold
/// a burst of a few hundred milliseconds if the disk stalls.
const LOG_LINES_QUEUED: usize = 8_192;

/// One log event as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LogEvent {
    pub time: String,
    pub level: String,
    pub target: String,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

/// The ring of recent events and the live feed.
pub struct LogHub {
    ring: Mutex<VecDeque<LogEvent>>,
    live: broadcast::Sender<LogEvent>,
}

impl LogHub {
    /// The newest `limit` events, oldest first.
    pub fn history(&self, limit: usize) -> Vec<LogEvent> {
        self.ring
            .lock()
            .map(|r| {
                r.iter()
                    .skip(r.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LogEvent> {
        self.live.subscribe()
    }

    fn push(&self, event: LogEvent) {
        if let Ok(mut ring) = self.ring.lock() {
            if ring.len() == LOG_HISTORY {
                ring.pop_front();
            }
            ring.push_back(event.clone());
        }
        let _ = self.live.send(event);
    }
}

/// The process's hub (one per process, like the subscriber).
pub fn hub() -> Arc<LogHub> {
    static HUB: OnceLock<Arc<LogHub>> = OnceLock::new();
    HUB.get_or_init(|| {
        Arc::new(LogHub {
            ring: Mutex::new(VecDeque::with_capacity(LOG_HISTORY)),
            live: broadcast::channel(256).0,
        })
    })
    .clone()
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.insert(field.name().to_string(), text);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .insert(field.name().to_string(), value.to_string());
        }
    }
}

/// Feeds every event that passes the filter into the hub.
struct HubLayer(Arc<LogHub>);

impl<S: Subscriber> Layer<S> for HubLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        self.0.push(LogEvent {
            time: claudeflare_actors::clock::iso(claudeflare_actors::clock::now_ms()),
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: fields.message,
            fields: fields.fields,
        });
    }
}

/// Installs the global subscriber once; later calls (tests) keep the first.
pub fn init(config: &Config) {
    static FILE_GUARD: OnceLock<tracing_appender::non_blocking::WorkerGuard> = OnceLock::new();
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let stderr = match config.log_format {
        LogFormat::Text => stderr.boxed(),
        LogFormat::Json => stderr.json().flatten_event(true).boxed(),
    };
    // The appender prunes old files at start and complains on stderr when the
    // directory does not exist yet (a first start).
    let _ = std::fs::create_dir_all(config.data_dir.join("logs"));
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("claudeflare")
        .filename_suffix("log")
        .max_log_files(LOG_FILES_KEPT)
        .build(config.data_dir.join("logs"))
        .ok()
        .map(|appender| {
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(LOG_LINES_QUEUED)
                .finish(appender);
            let _ = FILE_GUARD.set(guard);
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .json()
                .flatten_event(true)
        });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .with(HubLayer(hub()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The file writer's queue is bounded below the appender's default; an event must
    /// still reach the file. The only test in this binary that installs the global
    /// subscriber.
    #[test]
    fn an_event_reaches_the_log_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            log_level: "info".to_string(),
            ..Config::default()
        };
        init(&config);
        tracing::warn!(probe = "log-file-probe", "a line for the file");
        let logs = dir.path().join("logs");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text: String = std::fs::read_dir(&logs)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                .collect();
            if text.contains("log-file-probe") {
                assert!(text.contains("a line for the file"), "{text}");
                break;
            }
            assert!(Instant::now() < deadline, "no line in {}", logs.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
