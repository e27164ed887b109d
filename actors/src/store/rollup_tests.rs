//! Rollup correctness: analytics on generated histories against sums computed here
//! from the records themselves, for ranges that cut minutes and hours, with every
//! filter; the rollups after retention and clears; the migration's backfill against
//! the rollups the writer keeps; percentiles against exact ones; two instances
//! writing to one PostgreSQL at once. Each runs on SQLite, then on PostgreSQL when
//! `CLAUDEFLARE_TEST_DATABASE_URL` names a server.

use super::*;
use crate::store::tests::{each_backend, test_cipher};
use crate::store::{Breakdown, Dialect, LogEntry};
use diesel::connection::SimpleConnection;
use std::sync::Arc;

/// Runs `test` on a fresh store of each backend.
fn on_each_store(name: &str, test: impl Fn(&Store)) {
    each_backend(name, |backend| {
        test(&backend.open(test_cipher()).expect("open"))
    });
}

const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % HOUR;

fn record(i: usize, ts: i64) -> RequestRecord {
    let accounts = ["alpha", "beta", "gamma"];
    let models = [
        Some("claude-sonnet-4-5"),
        Some("claude-opus-4-5"),
        None,
        Some("claude-haiku-4-5"),
    ];
    let keys = [Some("ci"), None, Some("laptop")];
    let account = accounts[i % 3];
    let success = i % 7 != 3;
    RequestRecord {
        id: format!("r{i:07}"),
        timestamp: ts,
        method: "POST".into(),
        path: "/v1/messages".into(),
        // The no_account answers carry no id.
        account_id: (!i.is_multiple_of(11)).then(|| format!("id-{account}")),
        account_name: account.into(),
        status_code: match i % 7 {
            3 => Some([429, 500, 529][i % 3]),
            5 => None,
            _ => Some(200),
        },
        success,
        error_message: None,
        response_time_ms: ((i * 7919) % 30_000) as i64,
        time_to_first_token_ms: None,
        failover_attempts: 0,
        model: models[(i / 3) % 4].map(str::to_string),
        input_tokens: (!i.is_multiple_of(5)).then_some((i % 1000) as i64),
        output_tokens: Some((i % 300) as i64),
        cache_read_input_tokens: i.is_multiple_of(2).then_some(7),
        cache_creation_input_tokens: Some((i % 3) as i64),
        cost_usd: (!i.is_multiple_of(13)).then_some((i % 17) as f64 * 0.125),
        output_tokens_per_second: success.then_some((i % 50) as f64 + 0.5),
        stream: false,
        client_ip: None,
        requested_model: None,
        provider: None,
        api_key_name: keys[i % 3].map(str::to_string),
        // Several instances' rows are summed together.
        instance_id: Some(format!("instance-{}", i % 2)),
    }
}

/// `n` records spread over `span` ms from `T0 + offset`, written in batches of 500.
fn history(store: &Store, n: usize, offset: i64, span: i64) -> Vec<RequestRecord> {
    let records: Vec<RequestRecord> = (0..n)
        .map(|i| record(i, T0 + offset + (i as i64 * span) / n as i64))
        .collect();
    for chunk in records.chunks(500) {
        let batch: Vec<LogEntry> = chunk
            .iter()
            .map(|r| LogEntry {
                record: Arc::new(r.clone()),
                payload: None,
            })
            .collect();
        store.insert_requests(&batch).expect("insert");
    }
    records
}

fn matches(f: &AnalyticsFilter, r: &RequestRecord) -> bool {
    let status = match &f.status {
        None => true,
        Some(StatusFilter::Success) => r.success,
        Some(StatusFilter::Error) => !r.success,
        Some(StatusFilter::Code(c)) => r.status_code == Some(*c),
    };
    let account = f.accounts.is_empty()
        || f.accounts.contains(&r.account_name)
        || r.account_id
            .as_ref()
            .is_some_and(|id| f.accounts.contains(id));
    let model = f.models.is_empty() || r.model.as_ref().is_some_and(|m| f.models.contains(m));
    let key = f.keys.is_empty() || r.api_key_name.as_ref().is_some_and(|k| f.keys.contains(k));
    f.from_ms <= r.timestamp && r.timestamp < f.to_ms && status && account && model && key
}

/// The sums the analytics should report for these records, computed here.
fn expected(records: &[&RequestRecord], key: Option<String>) -> GroupRow {
    let n = records.len() as i64;
    let sum = |g: fn(&RequestRecord) -> Option<i64>| records.iter().filter_map(|r| g(r)).sum();
    let tps: Vec<f64> = records
        .iter()
        .filter_map(|r| r.output_tokens_per_second)
        .collect();
    GroupRow {
        key,
        requests: n,
        successes: records.iter().filter(|r| r.success).count() as i64,
        input_tokens: sum(|r| r.input_tokens),
        output_tokens: sum(|r| r.output_tokens),
        cache_read_input_tokens: sum(|r| r.cache_read_input_tokens),
        cache_creation_input_tokens: sum(|r| r.cache_creation_input_tokens),
        cost_usd: records.iter().filter_map(|r| r.cost_usd).sum(),
        avg_response_time_ms: if n == 0 {
            0.0
        } else {
            records.iter().map(|r| r.response_time_ms).sum::<i64>() as f64 / n as f64
        },
        avg_output_tokens_per_second: (!tps.is_empty())
            .then(|| tps.iter().sum::<f64>() / tps.len() as f64),
    }
}

fn assert_same(got: &GroupRow, want: &GroupRow, what: &str) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    let ok = got.key == want.key
        && got.requests == want.requests
        && got.successes == want.successes
        && got.input_tokens == want.input_tokens
        && got.output_tokens == want.output_tokens
        && got.cache_read_input_tokens == want.cache_read_input_tokens
        && got.cache_creation_input_tokens == want.cache_creation_input_tokens
        && close(got.cost_usd, want.cost_usd)
        && close(got.avg_response_time_ms, want.avg_response_time_ms)
        && match (
            got.avg_output_tokens_per_second,
            want.avg_output_tokens_per_second,
        ) {
            (Some(a), Some(b)) => close(a, b),
            (a, b) => a == b,
        };
    assert!(ok, "{what}:\n got  {got:?}\n want {want:?}");
}

/// Checks totals, per-model, per-account and per-bucket figures of `f` against the
/// records.
fn check(store: &Store, records: &[RequestRecord], f: &AnalyticsFilter, bucket: i64) {
    let what = format!("{f:?} bucket {bucket}");
    let kept: Vec<&RequestRecord> = records.iter().filter(|r| matches(f, r)).collect();
    assert_same(
        &store.summed(f).expect("summed"),
        &expected(&kept, None),
        &what,
    );

    let mut by_model: HashMap<Option<String>, Vec<&RequestRecord>> = HashMap::new();
    let mut by_account: HashMap<Option<String>, Vec<&RequestRecord>> = HashMap::new();
    let mut by_bucket: std::collections::BTreeMap<i64, Vec<&RequestRecord>> = Default::default();
    for r in &kept {
        by_model.entry(r.model.clone()).or_default().push(r);
        by_account
            .entry(Some(r.account_name.clone()))
            .or_default()
            .push(r);
        by_bucket
            .entry((r.timestamp / bucket) * bucket)
            .or_default()
            .push(r);
    }
    for (by, groups) in [
        (Breakdown::Model, &by_model),
        (Breakdown::Account, &by_account),
    ] {
        let got = store.grouped(f, by).expect("grouped");
        assert_eq!(got.len(), groups.len(), "{what} {by:?}");
        for g in &got {
            assert_same(g, &expected(&groups[&g.key], g.key.clone()), &what);
        }
        assert!(got.windows(2).all(|w| w[0].requests >= w[1].requests));
    }
    let got = store.bucketed(f, bucket).expect("bucketed");
    assert_eq!(
        got.iter().map(|b| b.bucket).collect::<Vec<_>>(),
        by_bucket.keys().copied().collect::<Vec<_>>(),
        "{what}"
    );
    for b in &got {
        assert_same(&b.sums, &expected(&by_bucket[&b.bucket], None), &what);
    }
}

fn filters(from: i64, to: i64) -> Vec<AnalyticsFilter> {
    let base = AnalyticsFilter {
        from_ms: from,
        to_ms: to,
        ..AnalyticsFilter::default()
    };
    vec![
        base.clone(),
        AnalyticsFilter {
            status: Some(StatusFilter::Success),
            ..base.clone()
        },
        AnalyticsFilter {
            status: Some(StatusFilter::Error),
            ..base.clone()
        },
        AnalyticsFilter {
            status: Some(StatusFilter::Code(529)),
            ..base.clone()
        },
        AnalyticsFilter {
            accounts: vec!["beta".into(), "id-gamma".into()],
            ..base.clone()
        },
        AnalyticsFilter {
            models: vec!["claude-opus-4-5".into(), "claude-haiku-4-5".into()],
            keys: vec!["ci".into()],
            ..base
        },
    ]
}

#[test]
fn analytics_match_the_records_for_any_range_and_filter() {
    on_each_store(
        "analytics_match_the_records_for_any_range_and_filter",
        |store| {
            // 6 000 requests over 5 h 10 min starting at 00:07:13.
            let offset = 7 * MINUTE + 13_000;
            let records = history(store, 6_000, offset, 5 * HOUR + 10 * MINUTE);
            let ranges = [
                // Cuts minutes and hours at both ends.
                (T0 + 30 * MINUTE + 1_234, T0 + 4 * HOUR + 17 * MINUTE + 999),
                // Whole hours only.
                (T0 + HOUR, T0 + 3 * HOUR),
                // Less than a minute.
                (T0 + 2 * HOUR + 5_000, T0 + 2 * HOUR + 45_000),
                // Everything, and more.
                (T0 - 3 * HOUR, T0 + 9 * HOUR),
                // Nothing.
                (T0 + 10 * HOUR, T0 + 11 * HOUR),
            ];
            for (from, to) in ranges {
                for f in filters(from, to) {
                    for bucket in [MINUTE, 5 * MINUTE, HOUR, 1_000] {
                        check(store, &records, &f, bucket);
                    }
                }
            }
            // Stats at start-up read the whole history the same way.
            let whole = AnalyticsFilter {
                from_ms: i64::MIN,
                to_ms: i64::MAX,
                ..AnalyticsFilter::default()
            };
            check(store, &records, &whole, HOUR);
            assert_eq!(
                store
                    .totals_by(Breakdown::Model)
                    .expect("totals")
                    .iter()
                    .map(|g| g.requests)
                    .sum::<i64>(),
                6_000
            );
        },
    );
}

#[test]
fn a_known_history_gives_known_buckets() {
    on_each_store("a_known_history_gives_known_buckets", |store| {
        // 10:00–10:59: 30 requests, 10 per 20 minutes; 11:00–11:59: 12 requests, of which
        // every fourth failed. Input tokens 100 each, cost $0.25 each, 2 s each.
        let mut records = Vec::new();
        for i in 0..42usize {
            let ts = if i < 30 {
                T0 + 10 * HOUR + (i as i64 / 10) * 20 * MINUTE + 1_000 * i as i64
            } else {
                T0 + 11 * HOUR + (i as i64 - 30) * 5 * MINUTE
            };
            let mut r = record(i, ts);
            r.model = Some(if i < 30 { "m-a" } else { "m-b" }.into());
            r.success = !(i >= 30 && i % 4 == 0);
            r.input_tokens = Some(100);
            r.output_tokens = Some(10);
            r.cache_read_input_tokens = None;
            r.cache_creation_input_tokens = None;
            r.cost_usd = Some(0.25);
            r.response_time_ms = 2_000;
            records.push(r);
        }
        store
            .insert_requests(
                &records
                    .iter()
                    .map(|r| LogEntry {
                        record: Arc::new(r.clone()),
                        payload: None,
                    })
                    .collect::<Vec<_>>(),
            )
            .expect("insert");
        let f = AnalyticsFilter {
            from_ms: T0 + 10 * HOUR,
            to_ms: T0 + 12 * HOUR,
            ..AnalyticsFilter::default()
        };
        let a = store.analytics(&f, HOUR, 8).expect("analytics");
        let hours: Vec<(i64, i64, i64, i64, f64)> = a
            .buckets
            .iter()
            .map(|b| {
                (
                    (b.bucket - T0) / HOUR,
                    b.sums.requests,
                    b.sums.successes,
                    b.sums.input_tokens,
                    b.sums.cost_usd,
                )
            })
            .collect();
        assert_eq!(hours, [(10, 30, 30, 3_000, 7.5), (11, 12, 9, 1_200, 3.0)]);
        assert_eq!(a.totals.requests, 42);
        assert_eq!(a.totals.output_tokens, 420);
        assert_eq!(a.totals.avg_response_time_ms, 2_000.0);
        let twenty = store.bucketed(&f, 20 * MINUTE).expect("buckets");
        assert_eq!(
            twenty.iter().map(|b| b.sums.requests).collect::<Vec<_>>(),
            [10, 10, 10, 4, 4, 4]
        );
        assert_eq!(
            a.by_model
                .iter()
                .map(|m| (m.key.as_deref(), m.requests, m.cost_usd))
                .collect::<Vec<_>>(),
            [(Some("m-a"), 30, 7.5), (Some("m-b"), 12, 3.0)]
        );
        assert_eq!(
            a.p95_by_model,
            [
                (Some("m-a".to_string()), 2_000),
                (Some("m-b".to_string()), 2_000)
            ]
        );
        let series: Vec<(&str, Vec<i64>)> = a
            .series_by_model
            .iter()
            .map(|(m, rows)| (m.as_str(), rows.iter().map(|r| r.sums.requests).collect()))
            .collect();
        assert_eq!(series, [("m-a", vec![30]), ("m-b", vec![12])]);
    });
}

/// Every row of both rollup tables as text, costs rounded (summing order differs
/// between the writer and the migration).
fn rollup_rows(store: &Store) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }
    // PostgreSQL rounds NUMERIC to a number of places, not DOUBLE PRECISION.
    let round = |column: &str| match store.dialect() {
        Dialect::Sqlite => format!("ROUND({column}, 6)"),
        Dialect::Postgres => format!("ROUND(CAST({column} AS NUMERIC), 6)"),
    };
    let values = format!(
        "requests || '|' || input_tokens || '|' || output_tokens \
         || '|' || cache_read_input_tokens || '|' || cache_creation_input_tokens \
         || '|' || {} || '|' || response_time_ms_sum \
         || '|' || {} || '|' || output_tokens_per_second_count",
        round("cost_usd"),
        round("output_tokens_per_second_sum")
    );
    let mut bins = String::new();
    for k in 0..RT_BINS {
        bins.push_str(&format!(" || ',' || rt_{k}"));
    }
    let sql = format!(
        "SELECT 'full|' || grain_ms || '|' || bucket_ms || '|' || account_id \
         || '|' || account_name || '|' || model || '|' || api_key_name || '|' || status_code \
         || '|' || success || '|' || {values} AS line FROM request_rollups \
         UNION ALL \
         SELECT 'account|' || grain_ms || '|' || bucket_ms || '|' || account_id \
         || '|' || account_name || '|' || model || '|' || success \
         || '|' || {values}{bins} AS line FROM request_account_rollups \
         ORDER BY line"
    );
    let rows: Vec<Line> = diesel::sql_query(sql)
        .load(&mut *store.conn().expect("conn"))
        .expect("rows");
    rows.into_iter().map(|l| l.line).collect()
}

/// Rebuilds the rollups with the migration's backfill statements.
fn backfill(store: &Store) {
    let up = match store.dialect() {
        Dialect::Sqlite => {
            include_str!("../../../migrations/sqlite/2026-11-26-000011_request_rollups/up.sql")
        }
        Dialect::Postgres => {
            include_str!("../../../migrations/postgres/2026-11-26-000011_request_rollups/up.sql")
        }
    };
    let (_, backfill) = up.split_once("-- backfill").expect("backfill marker");
    let (_, statements) = backfill.split_once('\n').expect("statements");
    let mut conn = store.conn().expect("conn");
    conn.batch_execute("DELETE FROM request_rollups; DELETE FROM request_account_rollups;")
        .expect("clear");
    conn.batch_execute(statements).expect("backfill");
}

#[test]
fn the_migration_backfill_builds_the_rollups_the_writer_keeps() {
    on_each_store(
        "the_migration_backfill_builds_the_rollups_the_writer_keeps",
        |store| {
            let records = history(store, 3_000, 59 * MINUTE, 3 * HOUR);
            let live = rollup_rows(store);
            assert!(live.len() > 100);
            backfill(store);
            assert_eq!(rollup_rows(store), live);
            check(
                store,
                &records,
                &AnalyticsFilter {
                    from_ms: T0,
                    to_ms: T0 + 5 * HOUR,
                    ..AnalyticsFilter::default()
                },
                HOUR,
            );
        },
    );
}

#[test]
fn retention_and_clear_keep_the_rollups_in_step() {
    on_each_store("retention_and_clear_keep_the_rollups_in_step", |store| {
        let records = history(store, 4_000, 0, 4 * HOUR);
        // Cut in the middle of a minute of the second hour, in transactions of 333 rows.
        let cut = T0 + HOUR + 17 * MINUTE + 31_000;
        let (_, deleted) = store.delete_older_than(0, cut, 333).expect("retention");
        let kept: Vec<RequestRecord> = records.into_iter().filter(|r| r.timestamp >= cut).collect();
        assert_eq!(deleted, 4_000 - kept.len());
        // The same rows as rebuilt from the requests left, so none for buckets that
        // lost all their requests.
        let live = rollup_rows(store);
        backfill(store);
        assert_eq!(rollup_rows(store), live);
        for f in filters(T0, T0 + 5 * HOUR) {
            check(store, &kept, &f, MINUTE);
        }

        store.clear_history().expect("clear");
        assert!(rollup_rows(store).is_empty());
        check(
            store,
            &[],
            &AnalyticsFilter {
                from_ms: T0,
                to_ms: T0 + 5 * HOUR,
                ..AnalyticsFilter::default()
            },
            HOUR,
        );
    });
}

#[test]
fn percentiles_are_exact_for_small_ranges_and_within_ten_percent_beyond() {
    on_each_store(
        "percentiles_are_exact_for_small_ranges_and_within_ten_percent_beyond",
        |store| {
            let records = history(store, 8_000, 13 * MINUTE + 7, 3 * HOUR);
            for f in filters(T0 + 20 * MINUTE + 500, T0 + 2 * HOUR + 41 * MINUTE) {
                let mut conn = store.conn().expect("conn");
                let exact = exact_percentiles(&mut conn, &f, 95).expect("exact");
                // The full rollups have no histogram: key and status-code filters are exact.
                let estimated = if needs_full_rollups(&f) {
                    exact.clone()
                } else {
                    percentiles_from_histogram(&mut conn, &f, 95).expect("histogram")
                };
                // The exact answer, computed here.
                let mut values: HashMap<Option<String>, Vec<i64>> = HashMap::new();
                for r in records.iter().filter(|r| matches(&f, r)) {
                    values
                        .entry(r.model.clone())
                        .or_default()
                        .push(r.response_time_ms);
                }
                assert_eq!(exact.len(), values.len(), "{f:?}");
                assert_eq!(estimated.len(), values.len(), "{f:?}");
                for (model, v) in &exact {
                    let mut all = values[model].clone();
                    all.sort_unstable();
                    let rank = (all.len() * 95).div_ceil(100);
                    assert_eq!(*v, all[rank - 1], "{f:?} {model:?}");
                    let (_, e) = estimated
                        .iter()
                        .find(|(m, _)| m == model)
                        .expect("estimated");
                    assert!(
                        (e - v).abs() <= 1.max(v / 10),
                        "{f:?} {model:?}: {e} vs {v}"
                    );
                }
                // The public call picks the exact path for this many rows.
                drop(conn);
                assert_eq!(
                    sorted(store.response_time_percentiles(&f, 95).expect("p95")),
                    sorted(exact)
                );
            }
        },
    );
}

fn sorted(mut v: Vec<(Option<String>, i64)>) -> Vec<(Option<String>, i64)> {
    v.sort();
    v
}

/// The requests stored now, as the records they were written from.
fn stored(store: &Store, written: &[RequestRecord]) -> Vec<RequestRecord> {
    let ids: std::collections::HashSet<String> = store
        .query_requests(&crate::store::RequestFilter {
            limit: i64::MAX,
            ..Default::default()
        })
        .expect("requests")
        .into_iter()
        .map(|r| r.id)
        .collect();
    written
        .iter()
        .filter(|r| ids.contains(&r.id))
        .cloned()
        .collect()
}

#[test]
fn two_instances_writing_at_once_keep_the_rollups_exact() {
    each_backend("two_instances_rollups", |backend| {
        // Two stores on one database are two instances (two pools).
        let instances = [
            backend.open(test_cipher()).expect("open a"),
            backend.open(test_cipher()).expect("open b"),
        ];
        let records: Vec<RequestRecord> = (0..6_000)
            .map(|i| record(i, T0 + (i as i64 * 20 * MINUTE) / 6_000))
            .collect();
        let whole = AnalyticsFilter {
            from_ms: T0,
            to_ms: T0 + HOUR,
            ..AnalyticsFilter::default()
        };
        // Four writers, two per instance, interleaved so that every batch adds to
        // the same hour rows and mostly the same minute rows as the others; with
        // `cleanup` running on the other instance meanwhile.
        let run = |records: &[RequestRecord], cleanup: &(dyn Fn(&Store) + Sync)| {
            std::thread::scope(|s| {
                for w in 0..4 {
                    let store = &instances[w % 2];
                    let mine: Vec<LogEntry> = records
                        .iter()
                        .skip(w)
                        .step_by(4)
                        .map(|r| LogEntry {
                            record: Arc::new(r.clone()),
                            payload: None,
                        })
                        .collect();
                    s.spawn(move || {
                        for batch in mine.chunks(50) {
                            store.insert_requests(batch).expect("insert");
                        }
                    });
                }
                s.spawn(|| cleanup(&instances[1]));
            });
        };

        // Retention at the same time: what is left is in the rollups exactly once.
        let cut = T0 + 7 * MINUTE + 30_000;
        run(&records[..3_000], &|store: &Store| {
            for _ in 0..20 {
                store.delete_older_than(0, cut, 40).expect("retention");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        let left = stored(&instances[0], &records[..3_000]);
        assert!(left.len() < 3_000, "retention deleted nothing");
        let live = rollup_rows(&instances[0]);
        backfill(&instances[0]);
        assert_eq!(rollup_rows(&instances[0]), live);
        check(&instances[0], &left, &whole, MINUTE);

        // A history clear at the same time: the batches written after it are the
        // history, and the rollups are theirs.
        run(&records[3_000..], &|store: &Store| {
            std::thread::sleep(std::time::Duration::from_millis(30));
            store.clear_history().expect("clear");
        });
        let left = stored(&instances[0], &records);
        let live = rollup_rows(&instances[0]);
        backfill(&instances[0]);
        assert_eq!(rollup_rows(&instances[0]), live);
        check(&instances[1], &left, &whole, MINUTE);
    });
}

#[test]
fn a_database_from_before_the_rollups_gets_them_built_from_its_history() {
    use crate::store::tests::Backend;
    use diesel::migration::MigrationSource;
    use diesel_migrations::MigrationHarness;
    each_backend("rollups_upgrade", |backend| {
        // A database at the version before the rollups (main's head: SQLite up to
        // 000010_instance, PostgreSQL its init), holding a history from two
        // instances.
        let (mut conn, migrations) = match backend {
            Backend::Sqlite(dir) => (
                AnyConnection::Sqlite(
                    diesel::SqliteConnection::establish(&dir.path().join("t.db").to_string_lossy())
                        .expect("sqlite"),
                ),
                crate::store::SQLITE_MIGRATIONS,
            ),
            Backend::Postgres(db) => (
                AnyConnection::Postgres(diesel::PgConnection::establish(db.url()).expect("pg")),
                crate::store::POSTGRES_MIGRATIONS,
            ),
        };
        diesel::migration::MigrationConnection::setup(&mut conn).expect("migrations table");
        let earlier = MigrationSource::<MultiBackend>::migrations(&migrations).expect("list");
        for m in earlier
            .iter()
            .filter(|m| !m.name().to_string().ends_with("_request_rollups"))
        {
            conn.run_migration(m).expect("earlier migration");
        }
        let records: Vec<RequestRecord> = (0..3_000)
            .map(|i| record(i, T0 + 13_000 + i as i64 * 4_999))
            .collect();
        for r in &records {
            diesel::insert_into(crate::store::schema::requests::table)
                .values(r)
                .execute(&mut conn)
                .expect("insert");
        }
        drop(conn);

        // Opening it runs the rollup migration, whose backfill builds what the
        // writer would have kept.
        let store = backend.open(test_cipher()).expect("upgrade");
        let built = rollup_rows(&store);
        assert!(built.len() > 100);
        {
            let mut conn = store.conn().expect("conn");
            clear(&mut conn).expect("clear");
            add(&mut *conn, records.iter()).expect("add");
        }
        assert_eq!(rollup_rows(&store), built);
        for f in filters(T0 + 30 * MINUTE + 1_234, T0 + 4 * HOUR + 5 * MINUTE) {
            check(&store, &records, &f, HOUR);
        }
    });
}
