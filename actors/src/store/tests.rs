use super::*;
use crate::domain::{Account, AccountKind, Secret};

pub(crate) fn api_key_account(name: &str, created_at: i64) -> Account {
    Account {
        id: format!("id-{name}"),
        name: name.to_string(),
        provider: "anthropic".to_string(),
        kind: AccountKind::ApiKey,
        api_key: Some(Secret::new(format!("sk-ant-test-{name}-0123456789"))),
        access_token: None,
        refresh_token: None,
        expires_at: None,
        tier: 1,
        priority: 0,
        paused: false,
        auth_failed: false,
        rate_limited_until: None,
        cooldown_until: None,
        rate_limit_status: None,
        rate_limit_reset: None,
        rate_limit_remaining: None,
        utilization_5h: None,
        utilization_7d: None,
        session_start: None,
        session_request_count: 0,
        request_count: 0,
        total_requests: 0,
        last_used: None,
        created_at,
    }
}

fn record(id: &str, ts: i64, success: bool) -> RequestRecord {
    RequestRecord {
        id: id.to_string(),
        timestamp: ts,
        method: "POST".into(),
        path: "/v1/messages".into(),
        account_id: Some("id-a".into()),
        account_name: "a".into(),
        status_code: Some(if success { 200 } else { 500 }),
        success,
        error_message: None,
        response_time_ms: 10,
        time_to_first_token_ms: None,
        failover_attempts: 0,
        model: Some("claude-sonnet-4-5".into()),
        input_tokens: Some(3),
        output_tokens: Some(4),
        cache_read_input_tokens: None,
        cache_creation_input_tokens: Some(1),
        cost_usd: Some(0.5),
        output_tokens_per_second: None,
        stream: false,
        client_ip: None,
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(&dir.path().join("t.db")).expect("open");
    (dir, store)
}

#[test]
fn accounts_round_trip_and_names_are_unique() {
    let (_dir, store) = temp_store();
    let mut a = api_key_account("a", 1);
    store.insert_account(&a).expect("insert");
    store
        .insert_account(&api_key_account("b", 2))
        .expect("insert");
    let mut dup = api_key_account("a", 3);
    dup.id = "other".into();
    assert!(matches!(
        store.insert_account(&dup),
        Err(StoreError::DuplicateName(n)) if n == "a"
    ));
    a.paused = true;
    a.rate_limited_until = Some(99);
    a.total_requests = 7;
    store.save_accounts(&[a]).expect("save");
    let loaded = store.load_accounts().expect("load");
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].name, "a");
    assert!(loaded[0].paused);
    assert_eq!(loaded[0].rate_limited_until, Some(99));
    assert_eq!(loaded[0].total_requests, 7);
    assert_eq!(
        loaded[0].api_key.as_ref().map(Secret::expose),
        Some("sk-ant-test-a-0123456789")
    );
    assert!(store.delete_account("id-b").expect("delete"));
    assert!(!store.delete_account("id-b").expect("delete"));
    assert_eq!(store.load_accounts().expect("load").len(), 1);
}

#[test]
fn request_batches_are_written_and_read_newest_first() {
    let (_dir, store) = temp_store();
    let batch: Vec<LogEntry> = (0..1200)
        .map(|i| LogEntry {
            record: record(&format!("r{i:05}"), 1000 + i, i % 4 != 0),
            payload: (i % 2 == 0).then(|| RequestPayload {
                request_id: format!("r{i:05}"),
                request_headers: "{}".into(),
                request_body: Some(b"{}".to_vec()),
                response_headers: "{}".into(),
                response_body: None,
                truncated: false,
            }),
        })
        .collect();
    store.insert_requests(&batch).expect("insert");
    let recent = store.recent_requests(3).expect("recent");
    let ids: Vec<&str> = recent.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r01199", "r01198", "r01197"]);
    assert!(store.request_payload("r00002").expect("payload").is_some());
    assert!(store.request_payload("r00001").expect("payload").is_none());
    let totals = store.history_totals().expect("totals");
    assert_eq!(totals.requests, 1200);
    assert_eq!(totals.successes, 900);
    assert_eq!(totals.input_tokens, 3600);
    assert!((totals.cost_usd - 600.0).abs() < 1e-6);
}

#[test]
fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/dir/t.db");
    {
        let store = Store::open_sqlite(&path).expect("open");
        store
            .insert_account(&api_key_account("a", 1))
            .expect("insert");
        store.checkpoint().expect("checkpoint");
    }
    let store = Store::open_sqlite(&path).expect("reopen");
    assert_eq!(store.load_accounts().expect("load").len(), 1);
}
