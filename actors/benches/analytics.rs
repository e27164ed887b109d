//! The analytics answer over a large history, and the logger's insert cost.
//!
//! Generates `ANALYTICS_ROWS` request rows (default 1 000 000) spread over the last
//! 24 hours in a temporary SQLite database, through `Store::insert_requests` in
//! batches of 1 000 like the logger, then times every store query the
//! `GET /api/analytics?range=24h&modelBreakdown=true` handler makes, and the cost of
//! one logger batch on top of that history.
//!
//! Run: `cargo bench -p claudeflare-actors --bench analytics` (about 3 minutes;
//! `ANALYTICS_ROWS=100000` for a quick look). `ANALYTICS_DB` names a SQLite file or
//! a `postgres://` URL to use instead of a temporary file (its rows are reused when
//! it has some), so the same bench measures PostgreSQL.

use claudeflare_actors::clock::now_ms;
use claudeflare_actors::secrets::Cipher;
use claudeflare_actors::store::{
    AnalyticsFilter, Dialect, LogEntry, RequestFilter, RequestPayload, RequestRecord, Store,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const ACCOUNTS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
const MODELS: [&str; 4] = [
    "claude-sonnet-4-5",
    "claude-opus-4-5",
    "claude-haiku-4-5",
    "claude-sonnet-4-5-20250929",
];
const KEYS: [Option<&str>; 3] = [Some("ci"), Some("laptop"), None];

/// One plausible request: ~5% failures (429, 500, 529, and a cut 200 stream),
/// response times with a long tail, token counts and a cost.
fn record(rng: &mut fastrand::Rng, id: u64, timestamp: i64) -> RequestRecord {
    let account = ACCOUNTS[rng.usize(..ACCOUNTS.len())];
    let model = MODELS[rng.usize(..MODELS.len())];
    let roll = rng.u32(..1000);
    let (status, success) = match roll {
        0..=19 => (429, false),
        20..=29 => (500, false),
        30..=44 => (529, false),
        45..=49 => (200, false),
        _ => (200, true),
    };
    let tail = rng.f64();
    let response_time_ms = if success {
        300 + (tail * tail * tail * 60_000.0) as i64
    } else {
        5 + rng.i64(0..400)
    };
    let input = rng.i64(10..20_000);
    let output = if success { rng.i64(1..4_000) } else { 0 };
    let cache_read = if rng.bool() { rng.i64(0..50_000) } else { 0 };
    RequestRecord {
        id: format!("{id:020}"),
        timestamp,
        method: "POST".into(),
        path: "/v1/messages".into(),
        account_id: Some(format!("id-{account}")),
        account_name: account.into(),
        status_code: Some(status),
        success,
        error_message: (!success).then(|| format!("upstream status {status}")),
        response_time_ms,
        time_to_first_token_ms: success.then_some(response_time_ms / 4),
        failover_attempts: 0,
        model: Some(model.into()),
        input_tokens: Some(input),
        output_tokens: Some(output),
        cache_read_input_tokens: Some(cache_read),
        cache_creation_input_tokens: Some(0),
        cost_usd: Some((input * 3 + output * 15) as f64 / 1e6),
        output_tokens_per_second: success
            .then(|| output as f64 * 1000.0 / response_time_ms.max(1) as f64),
        stream: rng.bool(),
        client_ip: Some("127.0.0.1".into()),
        requested_model: None,
        provider: Some("anthropic".into()),
        api_key_name: KEYS[rng.usize(..KEYS.len())].map(str::to_string),
        instance_id: Some(["a", "b"][rng.usize(..2)].into()),
    }
}

fn entry(record: RequestRecord, payload: bool) -> LogEntry {
    let payload = payload.then(|| RequestPayload {
        request_id: record.id.clone(),
        request_headers: r#"{"content-type":"application/json"}"#.into(),
        request_body: Some(vec![b'x'; 1500].into()),
        response_headers: r#"{"content-type":"application/json"}"#.into(),
        response_body: Some(vec![b'y'; 800].into()),
        truncated: false,
    });
    LogEntry {
        record: Arc::new(record),
        payload: payload.map(Arc::new),
    }
}

/// A store holding `rows` requests spread evenly over the 24 hours before `now`.
/// With `ANALYTICS_DB` set, that SQLite file or PostgreSQL database is used, and
/// generated only when it holds no requests yet (then `now` is its newest request's
/// time).
fn generate(rows: u64, now: i64) -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cipher = Cipher::from_hex(&"42".repeat(32)).expect("key");
    let (store, shown) = match std::env::var("ANALYTICS_DB") {
        Ok(url) if Dialect::of_url(&url) == Dialect::Postgres => (
            Store::open_postgres(&url, cipher).expect("open"),
            "the PostgreSQL database".to_string(),
        ),
        db => {
            let path = db
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| dir.path().join("bench.db"));
            let shown = path.display().to_string();
            (Store::open_sqlite(&path, cipher).expect("open"), shown)
        }
    };
    let newest = store
        .query_requests(&RequestFilter {
            limit: 1,
            ..RequestFilter::default()
        })
        .expect("newest");
    if let Some(r) = newest.first() {
        eprintln!("using the requests already in {shown}");
        return (dir, store, r.timestamp);
    }
    let mut rng = fastrand::Rng::with_seed(6);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..rows {
        let ts = now - DAY + 1 + (i as i64 * (DAY - 1)) / rows as i64;
        batch.push(entry(record(&mut rng, i, ts), false));
        if batch.len() == 1000 {
            store.insert_requests(&batch).expect("insert");
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.insert_requests(&batch).expect("insert");
    }
    let took = started.elapsed();
    eprintln!(
        "generated {rows} rows in {:.1} s ({:.1} µs per row)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / rows as f64
    );
    (dir, store, now)
}

/// Every store query `GET /api/analytics?range=24h&modelBreakdown=true` makes: the
/// handler's one call (`src/api/analytics.rs`).
fn analytics_answer(store: &Store, f: &AnalyticsFilter, bucket: i64) -> usize {
    let a = store.analytics(f, bucket, 8).expect("analytics");
    a.buckets.len()
        + a.by_model.len()
        + a.by_account.len()
        + a.p95_by_model.len()
        + a.series_by_model
            .iter()
            .map(|(_, s)| s.len())
            .sum::<usize>()
}

fn bench(c: &mut Criterion) {
    let rows = std::env::var("ANALYTICS_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000u64);
    let (_dir, store, now) = generate(rows, now_ms());
    let day = AnalyticsFilter {
        from_ms: now + 1 - DAY,
        to_ms: now + 1,
        ..AnalyticsFilter::default()
    };
    let mut group = c.benchmark_group("analytics");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("24h", |b| {
        b.iter(|| black_box(analytics_answer(&store, &day, HOUR)))
    });
    let one_account = AnalyticsFilter {
        accounts: vec!["beta".into()],
        ..day.clone()
    };
    group.bench_function("24h_one_account", |b| {
        b.iter(|| black_box(analytics_answer(&store, &one_account, HOUR)))
    });
    let hour = AnalyticsFilter {
        from_ms: now + 1 - HOUR,
        ..day.clone()
    };
    group.bench_function("1h", |b| {
        b.iter(|| black_box(analytics_answer(&store, &hour, MINUTE)))
    });
    group.finish();

    // One logger batch (1 000 records, 100 ms of traffic at 10 000 requests/s) on top
    // of the generated history. Dated two days back so that they stay out of the
    // ranges above when ANALYTICS_DB is reused.
    let mut group = c.benchmark_group("insert_requests");
    group.sample_size(30);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut next_id = rows;
    let mut tick = 0i64;
    let run = now_ms();
    for payloads in [false, true] {
        let name = if payloads {
            "batch_1000_with_payloads"
        } else {
            "batch_1000"
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (0..1000)
                        .map(|_| {
                            next_id += 1;
                            tick += 1;
                            let mut r = record(&mut rng, next_id, now - 2 * DAY + tick / 10);
                            // Unique across runs on a reused ANALYTICS_DB.
                            r.id = format!("{run}-{next_id:012}");
                            entry(r, payloads)
                        })
                        .collect::<Vec<_>>()
                },
                |batch| store.insert_requests(&batch).expect("insert"),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
