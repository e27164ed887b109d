//! A stand-in for the Anthropic API, for benchmarks and manual checks: answers every
//! request with a fixed Messages JSON body, or a fixed 15-event SSE stream when the
//! request asks for `"stream":true`. Usage: `mock-upstream [PORT] [EVENT_GAP_MS]`.

use actix_web::web::Bytes;
use actix_web::{web, App, HttpResponse, HttpServer};
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

async fn answer(body: Bytes, gap: web::Data<Duration>, sse: web::Data<Vec<Bytes>>) -> HttpResponse {
    let wants_stream = body.windows(13).any(|w| w == b"\"stream\":true");
    if !wants_stream {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(JSON_BODY);
    }
    let gap = **gap;
    if gap.is_zero() {
        let all: Vec<u8> = sse.iter().flat_map(|b| b.iter().copied()).collect();
        return HttpResponse::Ok()
            .content_type("text/event-stream")
            .body(all);
    }
    let events = sse.get_ref().clone();
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
    let events: Vec<Bytes> = sse_body()
        .split_inclusive("\n\n")
        .map(|e| Bytes::from(e.to_string()))
        .collect();
    let gap = web::Data::new(Duration::from_millis(gap_ms));
    let sse = web::Data::new(events);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(gap.clone())
            .app_data(sse.clone())
            .app_data(web::PayloadConfig::new(64 << 20))
            .default_service(web::to(answer))
    })
    .bind(("127.0.0.1", port))?;
    println!("mock upstream on http://127.0.0.1:{port}");
    server.run().await
}
