//! The request logger's cost per record (30 batches of 1 000 records
//! with payloads into a fresh SQLite file). `cargo run --release -p
//! claudeflare-actors --example insert_cost`.
use claudeflare_actors::secrets::Cipher;
use claudeflare_actors::store::{LogEntry, RequestPayload, RequestRecord, Store};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let dir = tempfile::tempdir().expect("dir");
    let cipher = Cipher::from_hex(&"42".repeat(32)).expect("key");
    let store = Store::open_sqlite(&dir.path().join("t.db"), cipher).expect("open");
    let mut n = 0u64;
    let mut best = f64::MAX;
    for round in 0..30 {
        let batch: Vec<LogEntry> = (0..1000)
            .map(|_| {
                n += 1;
                let id = format!("r{n:09}");
                let record = sample(&id);
                LogEntry {
                    record: Arc::new(record),
                    payload: Some(Arc::new(RequestPayload {
                        request_id: id,
                        request_headers: r#"{"content-type":"application/json","anthropic-version":"2023-06-01"}"#.into(),
                        request_body: Some(br#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#.to_vec().into()),
                        response_headers: r#"{"content-type":"application/json"}"#.into(),
                        response_body: Some(vec![b'x'; 400].into()),
                        truncated: false,
                    })),
                }
            })
            .collect();
        let t = Instant::now();
        store.insert_requests(&batch).expect("insert");
        let us = t.elapsed().as_secs_f64() * 1e6 / 1000.0;
        best = best.min(us);
        if round % 10 == 9 {
            println!("round {round}: {us:.1} µs/record");
        }
    }
    println!("best: {best:.1} µs/record");
}

fn sample(id: &str) -> RequestRecord {
    RequestRecord {
        id: id.to_string(),
        timestamp: 1_700_000_000_000,
        method: "POST".into(),
        path: "/v1/messages".into(),
        account_id: Some("acct".into()),
        account_name: "a".into(),
        status_code: Some(200),
        success: true,
        error_message: None,
        response_time_ms: 12,
        time_to_first_token_ms: None,
        failover_attempts: 0,
        model: Some("claude-sonnet-4-5".into()),
        input_tokens: Some(11),
        output_tokens: Some(7),
        cache_read_input_tokens: Some(5),
        cache_creation_input_tokens: Some(3),
        cost_usd: Some(0.0001),
        output_tokens_per_second: None,
        stream: false,
        client_ip: Some("127.0.0.1".into()),
        requested_model: None,
        provider: Some("anthropic".into()),
        api_key_name: None,
        instance_id: Some("bench".into()),
    }
}
