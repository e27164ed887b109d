//! An in-process Anthropic stand-in, built from ../shared/ANTHROPIC-PROTOCOL.md: JSON
//! and SSE answers (paced, truncated, dropped, with in-stream errors), every error
//! status with and without rate-limit headers, and hangs. Behaviour is scripted per
//! `x-api-key` (so each test account can act differently), falling back to a default.

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::stream::{self, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How an SSE answer ends.
#[derive(Clone, Copy, Debug)]
pub enum SseEnd {
    /// With `message_stop`.
    Complete,
    /// Ends cleanly but before `message_stop`.
    Truncated,
    /// The connection breaks mid-stream.
    Broken,
    /// Stops sending (and never ends).
    Stall,
}

#[derive(Clone, Debug)]
pub enum Behavior {
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Sse {
        events: Vec<(String, String)>,
        gap: Duration,
        end: SseEnd,
    },
    /// Never answers.
    Hang,
}

pub const MODEL: &str = "claude-sonnet-4-5-20250929";

impl Behavior {
    /// A normal Messages answer with known usage (11 in, 7 out, 5 cache read, 3 written).
    pub fn message() -> Self {
        Behavior::Json {
            status: 200,
            headers: vec![],
            body: format!(
                r#"{{"id":"msg_01","type":"message","role":"assistant","model":"{MODEL}","content":[{{"type":"text","text":"Hello"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":7,"cache_creation":{{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0}},"service_tier":"standard"}}}}"#
            ),
        }
    }

    pub fn error(status: u16, kind: &str) -> Self {
        Behavior::Json {
            status,
            headers: vec![],
            body: format!(
                r#"{{"type":"error","error":{{"type":"{kind}","message":"mock {kind}"}},"request_id":"req_mock"}}"#
            ),
        }
    }

    pub fn with_headers(self, extra: &[(&str, &str)]) -> Self {
        match self {
            Behavior::Json {
                status,
                mut headers,
                body,
            } => {
                headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                Behavior::Json {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }

    /// A subscription's 429 with the unified headers, resetting `reset_in` from now.
    pub fn rate_limited(reset_in: Duration) -> Self {
        let reset = (std::time::SystemTime::now() + reset_in)
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        Behavior::error(429, "rate_limit_error").with_headers(&[
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-reset", &reset),
            (
                "anthropic-ratelimit-unified-representative-claim",
                "five_hour",
            ),
            ("anthropic-ratelimit-unified-5h-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-utilization", "1.01"),
            ("anthropic-ratelimit-unified-7d-utilization", "0.42"),
            ("retry-after", &reset_in.as_secs().to_string()),
            ("x-should-retry", "true"),
        ])
    }

    /// A 429 that is not about the account's window.
    pub fn windowless_429() -> Self {
        Behavior::error(429, "rate_limit_error").with_headers(&[("x-should-retry", "true")])
    }

    /// The standard streamed answer: 25 in, 9 cache read, 4 written, 42 out.
    pub fn sse(gap: Duration, end: SseEnd) -> Self {
        Behavior::Sse {
            events: sse_events(),
            gap,
            end,
        }
    }
}

/// The events of a full stream, thinking and tool use included.
pub fn sse_events() -> Vec<(String, String)> {
    let e = |n: &str, d: &str| (n.to_string(), d.to_string());
    vec![
        e(
            "message_start",
            &format!(
                r#"{{"type":"message_start","message":{{"id":"msg_1","type":"message","role":"assistant","model":"{MODEL}","content":[],"stop_reason":null,"usage":{{"input_tokens":25,"cache_creation_input_tokens":4,"cache_read_input_tokens":9,"output_tokens":1}}}}}}"#
            ),
        ),
        e(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        ),
        e("ping", r#"{"type":"ping"}"#),
        e(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}}"#,
        ),
        e(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}}"#,
        ),
        e(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        e(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        ),
        e(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}"#,
        ),
        e(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        e(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42}}"#,
        ),
        e("message_stop", r#"{"type":"message_stop"}"#),
    ]
}

#[derive(Default)]
struct Script {
    per_key: HashMap<String, VecDeque<Behavior>>,
    default_per_key: HashMap<String, Behavior>,
}

/// Counters the tests read.
#[derive(Default)]
pub struct Counters {
    pub streams_started: AtomicUsize,
    pub streams_finished: AtomicUsize,
    /// Streams whose body was dropped before the end: the proxy cancelled them.
    pub streams_cancelled: AtomicUsize,
}

#[derive(Clone)]
pub struct MockUpstream {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
    default: Arc<Mutex<Behavior>>,
    pub counters: Arc<Counters>,
}

struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Script>>,
    default: Arc<Mutex<Behavior>>,
    counters: Arc<Counters>,
}

impl MockUpstream {
    pub async fn start() -> MockUpstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Script::default()));
        let default = Arc::new(Mutex::new(Behavior::message()));
        let counters = Arc::new(Counters::default());
        let shared = web::Data::new(Shared {
            seen: seen.clone(),
            script: script.clone(),
            default: default.clone(),
            counters: counters.clone(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        MockUpstream {
            url: format!("http://127.0.0.1:{port}"),
            seen,
            script,
            default,
            counters,
        }
    }

    /// What every request gets unless scripted otherwise.
    pub fn set_default(&self, b: Behavior) {
        *self.default.lock().expect("lock") = b;
    }

    /// The next answers for requests carrying this API key, in order.
    pub fn script(&self, key: &str, answers: Vec<Behavior>) {
        self.script
            .lock()
            .expect("lock")
            .per_key
            .insert(key.to_string(), answers.into());
    }

    /// What this key gets once its script has run out.
    pub fn always(&self, key: &str, b: Behavior) {
        self.script
            .lock()
            .expect("lock")
            .default_per_key
            .insert(key.to_string(), b);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn seen_with_key(&self, key: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.header("x-api-key") == Some(key))
            .count()
    }
}

async fn answer(req: HttpRequest, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    // Scripts are keyed by the credential: the API key, or the OAuth bearer token.
    let key = req
        .headers()
        .get("x-api-key")
        .or_else(|| req.headers().get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v))
        .unwrap_or("")
        .to_string();
    shared.seen.lock().expect("lock").push(Seen {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    });
    let behavior = {
        let mut script = shared.script.lock().expect("lock");
        let scripted = script.per_key.get_mut(&key).and_then(VecDeque::pop_front);
        scripted
            .or_else(|| script.default_per_key.get(&key).cloned())
            .unwrap_or_else(|| shared.default.lock().expect("lock").clone())
    };
    match behavior {
        Behavior::Json {
            status,
            headers,
            body,
        } => {
            let mut r = HttpResponse::build(StatusCode::from_u16(status).expect("status"));
            r.content_type("application/json");
            for (k, v) in headers {
                r.append_header((k, v));
            }
            r.body(body)
        }
        Behavior::Hang => {
            actix_web::rt::time::sleep(Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }
        Behavior::Sse { events, gap, end } => {
            shared
                .counters
                .streams_started
                .fetch_add(1, Ordering::SeqCst);
            let guard = StreamGuard {
                counters: shared.counters.clone(),
                finished: false,
            };
            let mut events = events;
            if matches!(end, SseEnd::Truncated | SseEnd::Broken | SseEnd::Stall) {
                events.truncate(events.len() - 3);
            }
            let n = events.len();
            let body = stream::unfold((0usize, guard), move |(i, mut guard)| {
                let events = events.clone();
                async move {
                    if i > 0 {
                        actix_web::rt::time::sleep(gap).await;
                    }
                    if i == n {
                        match end {
                            SseEnd::Broken => {
                                guard.finished = true;
                                guard
                                    .counters
                                    .streams_finished
                                    .fetch_add(1, Ordering::SeqCst);
                                return Some((
                                    Err(std::io::Error::other("mock break")),
                                    (i + 1, guard),
                                ));
                            }
                            SseEnd::Stall => {
                                actix_web::rt::time::sleep(Duration::from_secs(3600)).await;
                            }
                            _ => {}
                        }
                        guard.finished = true;
                        guard
                            .counters
                            .streams_finished
                            .fetch_add(1, Ordering::SeqCst);
                        return None;
                    }
                    if i > n {
                        return None;
                    }
                    let (name, data) = &events[i];
                    let chunk = Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
                    Some((Ok::<_, std::io::Error>(chunk), (i + 1, guard)))
                }
            })
            .boxed_local();
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .append_header(("cache-control", "no-cache"))
                .streaming(body)
        }
    }
}

struct StreamGuard {
    counters: Arc<Counters>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.counters
                .streams_cancelled
                .fetch_add(1, Ordering::SeqCst);
        }
    }
}
