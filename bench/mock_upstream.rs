//! A stand-in for the Anthropic API, for benchmarks and manual checks: answers every
//! request with a fixed Messages JSON body, or a fixed 15-event SSE stream when the
//! request asks for `"stream":true`.
//!
//! Usage: `mock-upstream [PORT] [EVENT_GAP_MS] [FAULT_PERCENT]`.
//!
//! Faults, for the soak test (`bench/soak.sh`): with `FAULT_PERCENT` > 0 that share of
//! answers (chosen pseudo-randomly) is one of four faults, in equal parts; a request
//! header `x-mock-fault: overloaded|server_error|close|cut|none` picks one instead.
//! - `overloaded`: 529 `overloaded_error`; `server_error`: 500 `api_error`;
//! - `close`: the connection is closed before any response header;
//! - `cut`: a 200 whose body stops half-way (a stream without its last events, or a
//!   JSON body shorter than its `Content-Length`), then the connection is closed.
//!
//! `GET /__mock/stats` answers the counts of answers and faults so far as JSON.

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const JSON_BODY: &str = r#"{"id":"msg_01bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello from the mock upstream."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":7}}"#;

fn sse_body() -> String {
    let mut events = vec![
        ("message_start", r#"{"type":"message_start","message":{"id":"msg_01bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#.to_string()),
        ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_string()),
        ("ping", r#"{"type":"ping"}"#.to_string()),
    ];
    for i in 0..9 {
        events.push((
            "content_block_delta",
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"word{i} "}}}}"#),
        ));
    }
    events.push((
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#.to_string(),
    ));
    events.push(("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":9}}"#.to_string()));
    events.push(("message_stop", r#"{"type":"message_stop"}"#.to_string()));
    events
        .iter()
        .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
        .collect()
}

/// The faults the mock can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Overloaded,
    ServerError,
    Close,
    Cut,
}

impl Fault {
    const ALL: [Fault; 4] = [
        Fault::Overloaded,
        Fault::ServerError,
        Fault::Close,
        Fault::Cut,
    ];

    fn from_header(value: &str) -> Option<Option<Fault>> {
        match value.trim() {
            "overloaded" => Some(Some(Fault::Overloaded)),
            "server_error" => Some(Some(Fault::ServerError)),
            "close" => Some(Some(Fault::Close)),
            "cut" => Some(Some(Fault::Cut)),
            "none" => Some(None),
            _ => None,
        }
    }
}

/// The mock's settings and counters, shared by its workers.
struct Mock {
    gap: Duration,
    /// Share of answers that are faults, in parts per million.
    fault_ppm: u32,
    events: Vec<Bytes>,
    answers: AtomicU64,
    faults: [AtomicU64; 4],
}

impl Mock {
    fn pick_fault(&self, req: &HttpRequest) -> Option<Fault> {
        let asked = req
            .headers()
            .get("x-mock-fault")
            .and_then(|v| v.to_str().ok())
            .and_then(Fault::from_header);
        match asked {
            Some(choice) => choice,
            None if self.fault_ppm > 0 && fastrand::u32(..1_000_000) < self.fault_ppm => {
                Some(Fault::ALL[fastrand::usize(..Fault::ALL.len())])
            }
            None => None,
        }
    }
}

/// A body that yields `parts` and then fails, which makes actix close the connection
/// without finishing the response (before the head when `parts` is empty).
fn failing_stream(
    parts: Vec<Bytes>,
    gap: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(0usize, move |i| {
        let part = parts.get(i).cloned();
        async move {
            if i > 0 && !gap.is_zero() {
                actix_web::rt::time::sleep(gap).await;
            }
            match part {
                Some(bytes) => Some((Ok(bytes), i + 1)),
                None if i == usize::MAX => None,
                None => Some((
                    Err(std::io::Error::other("mock fault: connection cut")),
                    usize::MAX,
                )),
            }
        }
    })
}

const OVERLOADED_BODY: &str =
    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded (mock fault)"}}"#;
const SERVER_ERROR_BODY: &str = r#"{"type":"error","error":{"type":"api_error","message":"Internal server error (mock fault)"}}"#;

fn fault_answer(fault: Fault, wants_stream: bool, mock: &Mock) -> HttpResponse {
    match fault {
        Fault::Overloaded => HttpResponse::build(
            // Anthropic's "overloaded", which has no name in the `http` crate.
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        )
        .content_type("application/json")
        .body(OVERLOADED_BODY),
        Fault::ServerError => HttpResponse::InternalServerError()
            .content_type("application/json")
            .body(SERVER_ERROR_BODY),
        Fault::Close => HttpResponse::Ok()
            .content_type("application/json")
            .streaming(failing_stream(Vec::new(), Duration::ZERO)),
        Fault::Cut if wants_stream => {
            let half = mock.events[..mock.events.len() / 2].to_vec();
            HttpResponse::Ok()
                .content_type("text/event-stream")
                .streaming(failing_stream(half, mock.gap))
        }
        Fault::Cut => {
            let half = Bytes::from_static(&JSON_BODY.as_bytes()[..JSON_BODY.len() / 2]);
            HttpResponse::Ok()
                .content_type("application/json")
                .body(SizedStream::new(
                    JSON_BODY.len() as u64,
                    // A pause so that the head and the first half go out before the cut.
                    failing_stream(vec![half], Duration::from_millis(5)),
                ))
        }
    }
}

async fn stats(mock: web::Data<Mock>) -> HttpResponse {
    let count = |f: Fault| mock.faults[f as usize].load(Ordering::Relaxed);
    HttpResponse::Ok().json(serde_json::json!({
        "answers": mock.answers.load(Ordering::Relaxed),
        "overloaded": count(Fault::Overloaded),
        "server_error": count(Fault::ServerError),
        "close": count(Fault::Close),
        "cut": count(Fault::Cut),
    }))
}

async fn answer(req: HttpRequest, body: Bytes, mock: web::Data<Mock>) -> HttpResponse {
    let wants_stream = body.windows(13).any(|w| w == b"\"stream\":true");
    mock.answers.fetch_add(1, Ordering::Relaxed);
    if let Some(fault) = mock.pick_fault(&req) {
        mock.faults[fault as usize].fetch_add(1, Ordering::Relaxed);
        return fault_answer(fault, wants_stream, &mock);
    }
    if !wants_stream {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(JSON_BODY);
    }
    let gap = mock.gap;
    if gap.is_zero() {
        let all: Vec<u8> = mock.events.iter().flat_map(|b| b.iter().copied()).collect();
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(all);
    }
    let events = mock.events.clone();
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let events = events.clone();
        async move {
            if i >= events.len() {
                return None;
            }
            if i > 0 {
                actix_web::rt::time::sleep(gap).await;
            }
            Some((Ok::<_, std::io::Error>(events[i].clone()), i + 1))
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(stream)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9090);
    let gap_ms: u64 = args.next().and_then(|g| g.parse().ok()).unwrap_or(0);
    let fault_percent: f64 = args
        .next()
        .and_then(|f| f.parse().ok())
        .filter(|f: &f64| f.is_finite())
        .unwrap_or(0.0)
        .clamp(0.0, 100.0);
    let events: Vec<Bytes> = sse_body()
        .split_inclusive("\n\n")
        .map(|e| Bytes::from(e.to_string()))
        .collect();
    let mock = web::Data::new(Mock {
        gap: Duration::from_millis(gap_ms),
        fault_ppm: (fault_percent * 10_000.0).round() as u32,
        events,
        answers: AtomicU64::new(0),
        faults: Default::default(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(mock.clone())
            .app_data(web::PayloadConfig::new(64 << 20))
            .route("/__mock/stats", web::get().to(stats))
            .default_service(web::to(answer))
    })
    .bind(("127.0.0.1", port))?;
    println!("mock upstream on http://127.0.0.1:{port} (faults: {fault_percent}%)");
    server.run().await
}
