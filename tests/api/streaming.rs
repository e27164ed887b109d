//! Streaming: events pass at the upstream's pace, usage is read on the way, and every
//! way a stream can end is recorded truthfully.

use crate::helpers::{spawn_app, spawn_app_with, STREAM_BODY};
use crate::mock::{sse_events, Behavior, SseEnd, MODEL};
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const KEY: &str = "key-alpha-0000000000";

fn full_stream_bytes() -> Vec<u8> {
    sse_events()
        .iter()
        .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
        .collect::<String>()
        .into_bytes()
}

#[actix_web::test]
async fn sse_events_reach_the_client_at_the_upstreams_pace_and_unchanged() {
    let app = spawn_app().await;
    app.add_account("alpha", KEY).await;
    let gap = Duration::from_millis(150);
    app.mock.set_default(Behavior::sse(gap, SseEnd::Complete));

    let started = Instant::now();
    let mut response = app
        .client
        .post(app.url("/v1/messages"))
        .insert_header(("content-type", "application/json"))
        .send_body(STREAM_BODY)
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut arrivals = Vec::new();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.next().await {
        let chunk = chunk.expect("chunk");
        // One event per upstream write; note when each event's bytes arrived.
        let events_in_chunk = chunk.windows(2).filter(|w| w == b"\n\n").count();
        for _ in 0..events_in_chunk {
            arrivals.push(started.elapsed());
        }
        bytes.extend_from_slice(&chunk);
    }
    assert_eq!(
        bytes,
        full_stream_bytes(),
        "the stream is passed through byte for byte"
    );
    assert_eq!(arrivals.len(), sse_events().len());
    // The first event is not held back until the end...
    assert!(
        arrivals[0] < Duration::from_millis(500),
        "first event at {:?}",
        arrivals[0]
    );
    // ...and consecutive events arrive about one upstream gap apart, not in a burst.
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let paced = gaps
        .iter()
        .filter(|g| **g >= Duration::from_millis(100))
        .count();
    assert!(paced >= gaps.len() - 1, "gaps {gaps:?}");
    let total = *arrivals.last().expect("arrivals") - arrivals[0];
    assert!(total >= gap * 9, "events spread over {total:?}");
}

#[actix_web::test]
async fn streamed_usage_and_cost_are_recorded() {
    let app = spawn_app().await;
    app.add_account("alpha", KEY).await;
    app.mock
        .set_default(Behavior::sse(Duration::from_millis(5), SseEnd::Complete));
    let answer = app.message(STREAM_BODY).await;
    assert_eq!(answer.status, 200);
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["success"], true, "{row}");
    assert_eq!(row["stream"], true);
    assert_eq!(row["model"], MODEL);
    assert_eq!(row["inputTokens"], 25);
    assert_eq!(row["outputTokens"], 42);
    assert_eq!(row["cacheReadInputTokens"], 9);
    assert_eq!(row["cacheCreationInputTokens"], 4);
    let cost = row["costUsd"].as_f64().expect("cost");
    assert!((cost - 0.0007227).abs() < 1e-9, "cost {cost}");
    assert!(row["timeToFirstTokenMs"].is_number());
    assert!(row["outputTokensPerSecond"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(row["accountName"], "alpha");
}

#[actix_web::test]
async fn json_usage_and_cost_are_recorded() {
    let app = spawn_app().await;
    app.add_account("alpha", KEY).await;
    let answer = app.message(crate::helpers::BODY).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["content"][0]["text"], "Hello");
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["success"], true);
    assert_eq!(row["stream"], false);
    assert_eq!(row["inputTokens"], 11);
    assert_eq!(row["outputTokens"], 7);
    assert_eq!(row["cacheReadInputTokens"], 5);
    assert_eq!(row["cacheCreationInputTokens"], 3);
    let cost = row["costUsd"].as_f64().expect("cost");
    assert!((cost - 0.00015075).abs() < 1e-10, "cost {cost}");
    assert_eq!(row["statusCode"], 200);
    assert!(row["responseTimeMs"].as_i64().is_some());
}

#[actix_web::test]
async fn an_unknown_model_is_recorded_with_null_cost() {
    let app = spawn_app().await;
    app.add_account("alpha", KEY).await;
    app.mock.set_default(Behavior::Json {
        status: 200,
        headers: vec![],
        body: r#"{"model":"mystery-1","usage":{"input_tokens":3,"output_tokens":4}}"#.into(),
    });
    let answer = app.message(crate::helpers::BODY).await;
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["model"], "mystery-1");
    assert_eq!(row["inputTokens"], 3);
    assert!(row["costUsd"].is_null());
}

async fn recorded_error(end: SseEnd, idle_ms: u64) -> serde_json::Value {
    let app = spawn_app_with(|c| c.stream_idle_timeout_ms = idle_ms).await;
    app.add_account("alpha", KEY).await;
    app.mock
        .set_default(Behavior::sse(Duration::from_millis(5), end));
    let answer = app.message(STREAM_BODY).await;
    assert_eq!(
        answer.status, 200,
        "the status was already sent when the stream failed"
    );
    app.request(&answer.request_id()).await
}

#[actix_web::test]
async fn a_stream_without_message_stop_is_recorded_as_truncated() {
    let row = recorded_error(SseEnd::Truncated, 60_000).await;
    assert_eq!(row["success"], false);
    assert!(
        row["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("truncated"),
        "{row}"
    );
    assert_eq!(row["inputTokens"], 25, "usage seen before the cut is kept");
}

#[actix_web::test]
async fn a_broken_upstream_stream_is_recorded_as_failed() {
    let row = recorded_error(SseEnd::Broken, 60_000).await;
    assert_eq!(row["success"], false);
    // awc reports a cut connection as the end of the body; the missing
    // message_stop is what shows the stream broke.
    let message = row["errorMessage"].as_str().unwrap_or("");
    assert!(
        message.contains("broke") || message.contains("truncated"),
        "{row}"
    );
}

#[actix_web::test]
async fn a_stalled_stream_hits_the_idle_timeout() {
    let started = Instant::now();
    let row = recorded_error(SseEnd::Stall, 300).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(row["success"], false);
    assert!(
        row["errorMessage"].as_str().unwrap_or("").contains("idle"),
        "{row}"
    );
}

#[actix_web::test]
async fn a_stream_longer_than_the_idle_timeout_is_fine_while_events_keep_coming() {
    // 15 events 60 ms apart: ~0.9 s in all, against an idle timeout of 250 ms.
    let app = spawn_app_with(|c| c.stream_idle_timeout_ms = 250).await;
    app.add_account("alpha", KEY).await;
    app.mock
        .set_default(Behavior::sse(Duration::from_millis(60), SseEnd::Complete));
    let started = Instant::now();
    let answer = app.message(STREAM_BODY).await;
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "the stream was paced"
    );
    assert_eq!(answer.status, 200);
    let text = String::from_utf8_lossy(&answer.body);
    assert!(text.contains("message_stop"), "{text}");
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["success"], true, "{row}");
    assert!(row["errorMessage"].is_null(), "{row}");
}

#[actix_web::test]
async fn an_error_event_inside_a_200_stream_fails_the_request() {
    let app = spawn_app().await;
    app.add_account("alpha", KEY).await;
    let mut events = sse_events();
    events.truncate(3);
    events.push((
        "error".into(),
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
    ));
    app.mock.set_default(Behavior::Sse {
        events,
        gap: Duration::from_millis(5),
        end: SseEnd::Complete,
    });
    let answer = app.message(STREAM_BODY).await;
    assert_eq!(answer.status, 200);
    let row = app.request(&answer.request_id()).await;
    assert_eq!(row["success"], false);
    assert_eq!(row["errorMessage"], "overloaded_error: Overloaded");
}

#[actix_web::test]
async fn a_client_disconnect_cancels_the_upstream_request() {
    let app = spawn_app().await;
    app.add_account("alpha", KEY).await;
    app.mock
        .set_default(Behavior::sse(Duration::from_millis(300), SseEnd::Complete));
    let mut response = app
        .client
        .post(app.url("/v1/messages"))
        .insert_header(("content-type", "application/json"))
        .send_body(STREAM_BODY)
        .await
        .expect("send");
    let id = response
        .headers()
        .get("x-claudeflare-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("id")
        .to_string();
    let first = response.next().await.expect("first chunk").expect("ok");
    assert!(first.starts_with(b"event: message_start"));
    drop(response);

    let deadline = Instant::now() + Duration::from_secs(3);
    while app.mock.counters.streams_cancelled.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the upstream stream was never cancelled"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.mock.counters.streams_finished.load(Ordering::SeqCst), 0);
    let row = app.request(&id).await;
    assert_eq!(row["success"], false);
    assert!(row["errorMessage"]
        .as_str()
        .unwrap_or("")
        .contains("client disconnected"));
}

/// A client that closes its socket normally (a FIN, not a reset) while the upstream
/// is between two events: the upstream request is dropped at once, not when the next
/// event fails to reach the client.
#[actix_web::test]
async fn a_client_hanging_up_between_events_cancels_the_upstream_at_once() {
    use std::io::{Read, Write};
    let app = spawn_app().await;
    app.add_account("alpha", KEY).await;
    app.mock
        .set_default(Behavior::sse(Duration::from_secs(10), SseEnd::Complete));
    let addr = app.address.trim_start_matches("http://").to_string();
    let hung_up = actix_web::rt::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        let head = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{STREAM_BODY}",
            STREAM_BODY.len()
        );
        s.write_all(head.as_bytes()).expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("event: message_start") {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed before the first event");
            seen.extend_from_slice(&buf[..n]);
        }
        // Everything sent has been read, so close() sends a FIN.
        drop(s);
        let seen = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        let id = seen
            .lines()
            .find_map(|l| l.strip_prefix("x-claudeflare-request-id: "))
            .expect("request id header")
            .trim()
            .to_string();
        (Instant::now(), id)
    })
    .await
    .expect("client thread");
    let (hung_up, id) = hung_up;

    // The record is written when the proxy drops the stream (and with it the
    // upstream request); the logger adds at most its 100 ms batch delay.
    let row = app.request(&id).await;
    assert!(
        hung_up.elapsed() < Duration::from_secs(2),
        "the stream was dropped {:?} after the hang-up (next event in 10 s)",
        hung_up.elapsed()
    );
    assert_eq!(row["success"], false);
    assert!(row["errorMessage"]
        .as_str()
        .unwrap_or("")
        .contains("client disconnected"));
}
