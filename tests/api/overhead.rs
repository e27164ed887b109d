//! `x-claudeflare-overhead-ms`: the proxy's own time, without the upstream's.

use crate::helpers::{spawn_app, BODY};
use crate::mock::{sse_events, Behavior, SseEnd};
use std::time::{Duration, Instant};

#[actix_web::test]
async fn overhead_header_is_small_and_excludes_a_slow_upstream() {
    let app = spawn_app().await;
    app.add_account("alpha", "key-alpha-0000000000").await;
    // A slow answer: 11 events 60 ms apart, so the request takes well over half a second.
    app.mock.set_default(Behavior::Sse {
        events: sse_events(),
        gap: Duration::from_millis(60),
        end: SseEnd::Complete,
    });

    let started = Instant::now();
    let answer = app.message(BODY).await;
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(answer.status, 200);
    assert!(total_ms >= 500.0, "the mock was not slow: {total_ms} ms");

    let text = answer
        .header("x-claudeflare-overhead-ms")
        .expect("overhead header");
    let (whole, decimals) = text.split_once('.').expect("a decimal");
    assert_eq!(decimals.len(), 3, "three decimals: {text}");
    assert!(whole.bytes().all(|b| b.is_ascii_digit()), "{text}");
    let overhead: f64 = text.parse().expect("a number");
    assert!(overhead >= 0.0, "{text}");
    assert!(
        overhead < 100.0 && overhead < total_ms / 10.0,
        "overhead {overhead} ms is not far below the total {total_ms} ms"
    );
}
