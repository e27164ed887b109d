use super::*;
use crate::domain::{Account, AccountKind, Secret};
use crate::secrets::Cipher;

pub(crate) fn api_key_account(name: &str, created_at: i64) -> Account {
    let mut a = Account::new(
        format!("id-{name}"),
        name.to_string(),
        AccountKind::ApiKey,
        created_at,
    );
    a.api_key = Some(Secret::new(format!("sk-ant-test-{name}-0123456789")));
    a
}

pub(crate) fn test_cipher() -> Cipher {
    Cipher::from_hex(&"42".repeat(32)).expect("key")
}

pub(crate) fn record(id: &str, ts: i64, success: bool) -> RequestRecord {
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
        requested_model: None,
        provider: None,
        api_key_name: None,
        instance_id: None,
    }
}

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(&dir.path().join("t.db"), test_cipher()).expect("open");
    (dir, store)
}

/// Where a test's database lives; `open` may be called again (a restart).
pub(super) enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(super::testing::TestDatabase),
}

impl Backend {
    pub(super) fn open(&self, cipher: Cipher) -> Result<Store, StoreError> {
        match self {
            Backend::Sqlite(dir) => Store::open_sqlite(&dir.path().join("t.db"), cipher),
            Backend::Postgres(db) => Store::open_postgres(db.url(), cipher),
        }
    }
}

/// Runs a store test against SQLite, then against a fresh PostgreSQL database
/// when one is configured (`CLAUDEFLARE_TEST_DATABASE_URL`).
pub(super) fn each_backend(name: &str, test: impl Fn(&Backend)) {
    test(&Backend::Sqlite(tempfile::tempdir().expect("temp dir")));
    if let Some(db) = super::testing::TestDatabase::create(name) {
        test(&Backend::Postgres(db));
    }
}

#[test]
fn accounts_round_trip_and_names_are_unique() {
    each_backend("accounts_round_trip_and_names_are_unique", |backend| {
        let store = backend.open(test_cipher()).expect("open");
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
    });
}

/// A log entry for `record`, with a small payload when `with_payload`.
fn entry(record: RequestRecord, with_payload: bool) -> LogEntry {
    let payload = with_payload.then(|| RequestPayload {
        request_id: record.id.clone(),
        request_headers: "{}".into(),
        request_body: Some(b"{}".to_vec().into()),
        response_headers: "{}".into(),
        response_body: None,
        truncated: false,
    });
    LogEntry {
        record: Arc::new(record),
        payload: payload.map(Arc::new),
    }
}

/// `n` successful requests with payloads, ids `{prefix}000` on.
fn paced_batch(prefix: &str, n: i64) -> Vec<LogEntry> {
    (0..n)
        .map(|i| entry(record(&format!("{prefix}{i:03}"), 1000 + i, true), true))
        .collect()
}

/// A paced write of `batch` that gives up stores none of it.
fn assert_gives_up_storing_nothing(store: &Store, batch: &[LogEntry], pacing: Pacing) {
    let result = store.insert_requests_paced(batch, pacing);
    assert!(matches!(result, Err(StoreError::Deferred)), "{result:?}");
    assert_eq!(store.history_totals().expect("totals").requests, 0);
    assert!(
        store
            .request_by_id(&batch[0].record.id)
            .expect("read")
            .is_none(),
        "rolled back"
    );
}

#[test]
fn request_batches_are_written_and_read_newest_first() {
    each_backend(
        "request_batches_are_written_and_read_newest_first",
        |backend| {
            let store = backend.open(test_cipher()).expect("open");
            let batch: Vec<LogEntry> = (0..1200)
                .map(|i| {
                    let id = format!("r{i:05}");
                    entry(record(&id, 1000 + i, i % 4 != 0), i % 2 == 0)
                })
                .collect();
            store.insert_requests(&batch).expect("insert");
            let recent = store
                .query_requests(&RequestFilter {
                    limit: 3,
                    ..RequestFilter::default()
                })
                .expect("recent");
            let ids: Vec<&str> = recent.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, ["r01199", "r01198", "r01197"]);
            assert!(store.request_payload("r00002").expect("payload").is_some());
            assert!(store.request_payload("r00001").expect("payload").is_none());
            let totals = store.history_totals().expect("totals");
            assert_eq!(totals.requests, 1200);
            assert_eq!(totals.successes, 900);
            assert_eq!(totals.input_tokens, 3600);
            assert!((totals.cost_usd - 600.0).abs() < 1e-6);
        },
    );
}

#[test]
fn a_yielding_batch_stores_everything_an_immediate_one_does() {
    each_backend(
        "a_yielding_batch_stores_everything_an_immediate_one_does",
        |backend| {
            let store = backend.open(test_cipher()).expect("open");
            let batch = paced_batch("y", 37);
            // Yields all the way through the first half, none in the second.
            let (first, second) = batch.split_at(20);
            let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let paced = |yield_until| crate::store::Pacing {
                yield_until: Some(yield_until),
                give_up_after: Some(std::time::Duration::from_secs(60)),
                give_up_at: Some(std::time::Instant::now() + std::time::Duration::from_secs(60)),
            };
            store
                .insert_requests_paced(first, paced(later))
                .expect("insert");
            store
                .insert_requests_paced(second, paced(std::time::Instant::now()))
                .expect("insert");
            let totals = store.history_totals().expect("totals");
            assert_eq!(totals.requests, 37);
            for id in ["y000", "y019", "y020", "y036"] {
                assert!(store.request_by_id(id).expect("row").is_some(), "{id}");
                assert!(
                    store.request_payload(id).expect("payload").is_some(),
                    "{id}"
                );
            }
        },
    );
}

#[test]
fn a_paced_write_kept_from_the_cpu_gives_up_and_stores_nothing() {
    let (_dir, store) = tests_support::test_store();
    let batch = paced_batch("d", 40);
    // Any gap at all between two statements is too long.
    let impatient = Pacing {
        yield_until: None,
        give_up_after: Some(Duration::ZERO),
        give_up_at: None,
    };
    assert_gives_up_storing_nothing(&store, &batch, impatient);

    // The same batch, written again, is stored whole.
    store.insert_requests(&batch).expect("insert");
    assert_eq!(store.history_totals().expect("totals").requests, 40);
}

#[test]
fn a_paced_write_still_running_at_its_deadline_gives_up_and_stores_nothing() {
    let (_dir, store) = tests_support::test_store();
    let batch = paced_batch("l", 40);
    // Patient between statements, but the job came too late: its deadline is past.
    let late = Pacing {
        yield_until: None,
        give_up_after: Some(Duration::from_secs(60)),
        give_up_at: Some(std::time::Instant::now()),
    };
    std::thread::sleep(Duration::from_millis(2));
    assert_gives_up_storing_nothing(&store, &batch, late);
    // The same batch with a deadline ahead is stored whole.
    let in_time = Pacing {
        give_up_at: Some(std::time::Instant::now() + Duration::from_secs(60)),
        ..late
    };
    store
        .insert_requests_paced(&batch, in_time)
        .expect("insert");
    assert_eq!(store.history_totals().expect("totals").requests, 40);
}

#[test]
fn a_batch_stores_every_field_and_a_record_stored_before_is_kept_once() {
    each_backend(
        "a_batch_stores_every_field_and_a_record_stored_before_is_kept_once",
        |backend| {
            let store = backend.open(test_cipher()).expect("open");
            // Every optional field set on odd records, none on even ones, across
            // full multi-row statements and a remainder.
            let batch: Vec<LogEntry> = (0..21)
                .map(|i| {
                    let mut r = record(&format!("f{i:03}"), 1000 + i, true);
                    if i % 2 == 1 {
                        r.error_message = Some("e".into());
                        r.time_to_first_token_ms = Some(3);
                        r.cache_read_input_tokens = Some(9);
                        r.output_tokens_per_second = Some(1.5);
                        r.client_ip = Some("127.0.0.1".into());
                        r.requested_model = Some("m".into());
                        r.provider = Some("anthropic".into());
                        r.api_key_name = Some("k".into());
                        r.instance_id = Some("i".into());
                        r.stream = true;
                    } else {
                        r.account_id = None;
                        r.status_code = None;
                        r.model = None;
                        r.input_tokens = None;
                        r.output_tokens = None;
                        r.cache_creation_input_tokens = None;
                        r.cost_usd = None;
                    }
                    entry(r, i % 3 == 0)
                })
                .collect();
            store.insert_requests(&batch).expect("insert");
            for e in &batch {
                let (stored, payload) = store
                    .request_by_id(&e.record.id)
                    .expect("row")
                    .expect("stored");
                assert_eq!(stored, *e.record);
                assert_eq!(payload.as_ref(), e.payload.as_deref());
            }
            // A batch retried after a commit that did land: its records are not
            // stored twice, and the new ones in it are stored.
            let mut retried: Vec<LogEntry> = batch[..17].to_vec();
            retried.push(entry(record("f100", 2000, true), true));
            store.insert_requests(&retried).expect("insert again");
            assert_eq!(store.history_totals().expect("totals").requests, 22);
            assert!(store.request_payload("f100").expect("payload").is_some());
        },
    );
}

#[test]
fn data_survives_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested/dir/t.db");
    {
        let store = Store::open_sqlite(&path, test_cipher()).expect("open");
        store
            .insert_account(&api_key_account("a", 1))
            .expect("insert");
        store.checkpoint().expect("checkpoint");
    }
    let store = Store::open_sqlite(&path, test_cipher()).expect("reopen");
    assert_eq!(store.load_accounts().expect("load").len(), 1);
    each_backend("data_survives_reopening", |backend| {
        let store = backend.open(test_cipher()).expect("open");
        store
            .insert_account(&api_key_account("a", 1))
            .expect("insert");
        drop(store);
        let store = backend.open(test_cipher()).expect("reopen");
        assert_eq!(store.load_accounts().expect("load").len(), 1);
    });
}

#[test]
fn credentials_are_encrypted_at_rest_and_need_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.db");
    {
        let store = Store::open_sqlite(&path, test_cipher()).expect("open");
        let mut a = api_key_account("a", 1);
        a.kind = AccountKind::Oauth;
        a.access_token = Some(Secret::new("sk-ant-oat01-ACCESS-visible-marker"));
        a.refresh_token = Some(Secret::new("sk-ant-ort01-REFRESH-visible-marker"));
        store.insert_account(&a).expect("insert");
        store.checkpoint().expect("checkpoint");
    }
    let raw = std::fs::read(&path).expect("read db");
    let text = String::from_utf8_lossy(&raw);
    for secret in [
        "sk-ant-test-a-0123456789",
        "ACCESS-visible-marker",
        "REFRESH-visible-marker",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} is readable in the database file"
        );
    }
    let wrong = Cipher::from_hex(&"43".repeat(32)).expect("key");
    let err = Store::open_sqlite(&path, wrong).and_then(|s| s.load_accounts());
    assert!(matches!(err, Err(StoreError::Decrypt(_))));
    let store = Store::open_sqlite(&path, test_cipher()).expect("open");
    let a = &store.load_accounts().expect("load")[0];
    assert_eq!(
        a.refresh_token.as_ref().map(Secret::expose),
        Some("sk-ant-ort01-REFRESH-visible-marker")
    );
}

#[test]
fn plaintext_credentials_from_older_versions_are_encrypted_on_open() {
    each_backend("plaintext_credentials", |backend| {
        use diesel::connection::SimpleConnection;
        {
            let store = backend.open(test_cipher()).expect("open");
            store
                .insert_account(&api_key_account("a", 1))
                .expect("insert");
            store
                .conn()
                .expect("conn")
                .batch_execute("UPDATE accounts SET api_key = 'sk-ant-legacy-plaintext-key'")
                .expect("downgrade");
        }
        let store = backend.open(test_cipher()).expect("open");
        use diesel::prelude::*;
        let stored: Option<String> = schema::accounts::table
            .select(schema::accounts::api_key)
            .first(&mut store.conn().expect("conn"))
            .expect("row");
        assert!(
            stored.as_deref().is_some_and(|v| v.starts_with("enc:v1:")),
            "{stored:?}"
        );
        let a = &store.load_accounts().expect("load")[0];
        assert_eq!(
            a.api_key.as_ref().map(Secret::expose),
            Some("sk-ant-legacy-plaintext-key")
        );
        let wrong = Cipher::from_hex(&"43".repeat(32)).expect("key");
        let err = backend.open(wrong).and_then(|s| s.load_accounts());
        assert!(matches!(err, Err(StoreError::Decrypt(_))));
    });
}

#[test]
fn retention_deletes_every_old_payload_and_request_in_small_batches() {
    each_backend(
        "retention_deletes_every_old_payload_and_request_in_small_batches",
        |backend| {
            let store = backend.open(test_cipher()).expect("open");
            let batch: Vec<LogEntry> = (0..25)
                .map(|i| LogEntry {
                    // 0..20 are old; 20..25 are recent.
                    record: Arc::new(record(
                        &format!("r{i:03}"),
                        if i < 20 { 1_000 + i } else { 1_000_000 + i },
                        true,
                    )),
                    payload: Some(Arc::new(RequestPayload {
                        request_id: format!("r{i:03}"),
                        request_headers: "{}".into(),
                        request_body: None,
                        response_headers: "{}".into(),
                        response_body: None,
                        truncated: false,
                    })),
                })
                .collect();
            store.insert_requests(&batch).expect("insert");
            // Payloads older than 500 000 go (all 20 old ones, 3 per transaction); requests
            // older than 1 010 go (the first 10).
            let (payloads, requests) = store
                .delete_older_than(500_000, 1_010, 3)
                .expect("retention");
            assert_eq!((payloads, requests), (20, 10));
            for i in 0..25 {
                let id = format!("r{i:03}");
                assert_eq!(
                    store.request_payload(&id).expect("payload").is_some(),
                    i >= 20,
                    "{id}"
                );
            }
            assert_eq!(
                store
                    .query_requests(&RequestFilter {
                        limit: 100,
                        ..RequestFilter::default()
                    })
                    .expect("rows")
                    .len(),
                15
            );
            // Space back after retention, on either database.
            store.compact().expect("compact");
            assert_eq!(store.integrity_check().expect("check"), "ok");
        },
    );
}

#[test]
fn two_writers_change_different_columns_without_undoing_each_other() {
    each_backend("two_writers", |backend| {
        // Two handles on one database stand for two instances.
        let (a, b) = (
            backend.open(test_cipher()).expect("open a"),
            backend.open(test_cipher()).expect("open b"),
        );
        let base = api_key_account("x", 1);
        a.insert_account(&base).expect("insert");
        // A counts three requests; B, from the same starting point, benches the account.
        let mut counted = base.clone();
        counted.request_count += 3;
        counted.total_requests += 3;
        counted.last_used = Some(50);
        a.save_account_changes(&[AccountDelta {
            before: base.clone(),
            after: counted,
        }])
        .expect("a saves");
        let mut benched = base.clone();
        benched.rate_limited_until = Some(9_999);
        benched.request_count += 2;
        benched.total_requests += 2;
        b.save_account_changes(&[AccountDelta {
            before: base.clone(),
            after: benched,
        }])
        .expect("b saves");
        let stored = a.load_account(&base.id).expect("load").expect("row");
        assert_eq!(stored.rate_limited_until, Some(9_999), "B's bench kept");
        assert_eq!(stored.request_count, 5, "both instances' requests counted");
        assert_eq!(stored.total_requests, 5);
        assert_eq!(stored.last_used, Some(50), "A's column kept");
        // A reset goes down to the value, not by a delta; no change writes nothing.
        let mut reset = stored.clone();
        reset.request_count = 0;
        b.save_account_changes(&[
            AccountDelta {
                before: stored.clone(),
                after: reset,
            },
            AccountDelta {
                before: stored.clone(),
                after: stored.clone(),
            },
        ])
        .expect("reset");
        let after = b.load_account(&base.id).expect("load").expect("row");
        assert_eq!((after.request_count, after.total_requests), (0, 5));
        // New tokens are written whole and read back decrypted.
        let mut signed_in = after.clone();
        signed_in.kind = AccountKind::Oauth;
        signed_in.api_key = None;
        signed_in.refresh_token = Some(Secret::new("sk-ant-ort01-rotated"));
        signed_in.expires_at = Some(77);
        a.save_credentials(&signed_in).expect("tokens");
        let read = b.load_account(&base.id).expect("load").expect("row");
        assert_eq!(
            read.refresh_token.as_ref().map(Secret::expose),
            Some("sk-ant-ort01-rotated")
        );
        assert_eq!(
            (read.kind, read.expires_at, read.api_key.is_none()),
            (AccountKind::Oauth, Some(77), true)
        );
    });
}

#[test]
fn postgres_refresh_lock_admits_one_instance_at_a_time() {
    let Some(db) = super::testing::TestDatabase::create("refresh_lock") else {
        return;
    };
    // Two instances starting together migrate once (under the advisory lock).
    let url = db.url().to_string();
    let opened: Vec<Store> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Store::open_postgres(&url, test_cipher()))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("thread").expect("open"))
        .collect();
    let (a, b) = (opened[0].clone(), opened[1].clone());
    let held = a
        .lock_refresh("acct")
        .expect("lock")
        .expect("postgres locks");
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let second = b.lock_refresh("acct").expect("lock");
        tx.send(()).expect("send");
        drop(second);
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "the second instance must wait while the first refreshes"
    );
    // Another account is not held up.
    drop(a.lock_refresh("other").expect("lock"));
    held.release();
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the second instance gets the lock once it is released");
    waiter.join().expect("thread");
    // SQLite has one instance: no lock.
    let (_dir, sqlite) = temp_store();
    assert!(sqlite.lock_refresh("acct").expect("lock").is_none());
}

#[test]
fn postgres_migrates_without_a_statement_timeout_and_pools_with_one() {
    let Some(db) = super::testing::TestDatabase::create("statement_timeout") else {
        return;
    };
    let store = Store::open_postgres(db.url(), test_cipher()).expect("open");
    // Migrations run with the timeout off (the rollup backfill of a large history
    // takes longer than 30 s); the migrating connection then goes back to the pool,
    // so every pooled connection must have the pool's 30 s again.
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    let mut conns: Vec<_> = (0..8).map(|_| store.conn().expect("conn")).collect();
    for conn in &mut conns {
        let s: Setting = diesel::sql_query("SHOW statement_timeout")
            .get_result(&mut **conn)
            .expect("show");
        assert_eq!(s.statement_timeout, "30s");
    }
}

/// An integer `PRAGMA name` on each pooled connection, all held at once so that
/// every connection answers, not only the first one again.
fn pragma_on_every_connection(store: &Store, name: &str) -> Vec<i64> {
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }
    let mut held = Vec::new();
    let mut values = Vec::new();
    for _ in 0..4 {
        let mut conn = store.conn().expect("connection");
        let rows: Vec<Row> =
            diesel::sql_query(format!("SELECT {name} AS value FROM pragma_{name}()"))
                .load(&mut *conn)
                .expect("pragma");
        values.extend(rows.first().map(|r| r.value));
        held.push(conn);
    }
    values
}

#[test]
fn every_sqlite_connection_has_the_small_page_cache() {
    let (_dir, store) = temp_store();
    assert_eq!(pragma_on_every_connection(&store, "cache_size"), [-128; 4]);
}

#[test]
fn batch_writes_leave_foreign_keys_on_for_every_connection() {
    let (_dir, store) = temp_store();
    store
        .insert_requests(&paced_batch("k", 40))
        .expect("insert");
    // A write that gives up leaves them on too.
    let impatient = Pacing {
        yield_until: None,
        give_up_after: Some(Duration::ZERO),
        give_up_at: None,
    };
    assert!(matches!(
        store.insert_requests_paced(&paced_batch("g", 40), impatient),
        Err(StoreError::Deferred)
    ));
    assert_eq!(pragma_on_every_connection(&store, "foreign_keys"), [1; 4]);
    // And they hold: a payload without its request is refused.
    let orphan = RequestPayload {
        request_id: "no-such-request".into(),
        request_headers: "{}".into(),
        request_body: None,
        response_headers: "{}".into(),
        response_body: None,
        truncated: false,
    };
    let refused = diesel::insert_into(schema::request_payloads::table)
        .values(&orphan)
        .execute(&mut *store.conn().expect("connection"));
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn a_new_sqlite_database_has_8_kib_pages() {
    use diesel::sql_types::BigInt;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        page_size: i64,
    }
    let (_dir, store) = temp_store();
    let rows: Vec<Row> = diesel::sql_query("PRAGMA page_size")
        .load(&mut *store.conn().expect("connection"))
        .expect("pragma");
    assert_eq!(rows.first().map(|r| r.page_size), Some(8_192));
}
