//! Analytics rollups: the request history pre-aggregated per minute and per hour,
//! so that an analytics query reads a few thousand rollup rows instead of every
//! request in its range (docs/architecture.md, "Analytics"). Two tables:
//! `request_account_rollups` (per account, model and outcome, with a response-time
//! histogram) answers every query except those filtering on access keys or a status
//! code, which read `request_rollups` (per account, model, key, status code and
//! outcome; sums only).
//!
//! - Writes: [`add`] runs in the logger's transaction and upserts one row per key,
//!   grain and table for the whole batch (the batch is summed in memory first);
//!   retention deletes take what they delete back out
//!   ([`Store::delete_requests_in_batches`]); [`clear`] empties both with the history.
//!   Every write is an increment (`c = c + excluded.c`), never a read-modify-write,
//!   so several instances writing to one PostgreSQL add up; the keys of a batch are
//!   upserted in one fixed order, so two writers' transactions never deadlock.
//! - Reads: a range is split into whole hours (hour rows), the whole minutes left at
//!   its ends (minute rows) and the partial minutes at the very ends (`requests`
//!   rows), and the parts are summed together in SQL, so every figure is exact for
//!   any range and filter. Per-model response-time percentiles are exact from the
//!   request rows up to [`EXACT_PERCENTILE_MAX_ROWS`] requests (and always with a key
//!   or status-code filter), estimated from the histogram within 10% beyond.
//!
//! All SQL here runs on SQLite and PostgreSQL alike: `?` placeholders (numbered for
//! PostgreSQL by [`AnyConnection::sql`]), `COALESCE`, `CAST(… AS BIGINT | DOUBLE
//! PRECISION)`, `ON CONFLICT … DO UPDATE`. The upsert is a `QueryFragment`, generic
//! over the backend: the logger runs it on the dialect's own connection (prepared
//! once), retention through the multi-connection.

use super::connection::MultiBackend;
use super::queries::{AnalyticsFilter, BucketRow, GroupRow, StatusFilter};
use super::{AnyConnection, Dialect, RequestRecord, Store, StoreError};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, QueryableByName};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::row::NamedRow;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Bool, Double, HasSqlType, Integer, Nullable, Text};
use std::collections::HashMap;
use std::fmt::Write as _;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// The grains kept, coarsest first. Hours keep a 24 h query to ~24 rows per key;
/// minutes serve the 1 h and 6 h ranges (1- and 5-minute buckets) and the ends of
/// the longer ones.
const GRAINS: [i64; 2] = [HOUR, MINUTE];

/// Timestamps beyond this are read from `requests` only (keeps bucket arithmetic
/// clear of overflow for the open-ended "whole history" range).
const MAX_ROLLUP_MS: i64 = i64::MAX / 4;

/// Number of response-time histogram bins (`rt_0` … `rt_79`).
const RT_BINS: usize = 80;

/// Lower bound (ms) of each response-time bin: 0, 1, 2, … each bound the previous
/// one times 1.2 rounded up, up to 4 866 321 ms (81 min) for the last, open bin. The
/// migrations' backfill (`2026-11-26-000011_request_rollups/up.sql`) spells out
/// the same bounds.
const RT_BOUNDS: [i64; RT_BINS] = rt_bounds();

const fn rt_bounds() -> [i64; RT_BINS] {
    let mut bounds = [0i64; RT_BINS];
    let mut i = 1;
    while i < RT_BINS {
        let grown = (6 * bounds[i - 1] + 4) / 5;
        bounds[i] = if grown > bounds[i - 1] + 1 {
            grown
        } else {
            bounds[i - 1] + 1
        };
        i += 1;
    }
    bounds
}

/// The bin a response time falls in.
fn rt_bin(ms: i64) -> usize {
    RT_BOUNDS.partition_point(|&b| b <= ms).saturating_sub(1)
}

/// The value reported for a bin: its middle, which is within 10% (or 1 ms) of any
/// value in it; for the last, open bin, its lower bound.
fn rt_estimate(bin: usize) -> i64 {
    match RT_BOUNDS.get(bin + 1) {
        Some(upper) => (RT_BOUNDS[bin] + upper - 1) / 2,
        None => RT_BOUNDS[RT_BINS - 1],
    }
}

/// Up to this many requests in range (after filters), percentiles are computed
/// exactly from the request rows (a sort of at most this many values); beyond, from
/// the histogram.
const EXACT_PERCENTILE_MAX_ROWS: i64 = 20_000;

// ---------------------------------------------------------------------------------
// Writes

/// What one request adds to its rollup rows (or, negated, takes from them).
pub(super) struct Contribution<'a> {
    timestamp: i64,
    account_id: &'a str,
    account_name: &'a str,
    model: &'a str,
    api_key_name: &'a str,
    status_code: i32,
    success: bool,
    response_time_ms: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_input_tokens: i64,
    cache_creation_input_tokens: i64,
    cost_usd: f64,
    output_tokens_per_second: Option<f64>,
}

/// `From<&$row>` for [`Contribution`]: a stored record and a row a retention delete
/// returns have the same fields, so they count the same way.
macro_rules! contribution_from {
    ($row:ty) => {
        impl<'a> From<&'a $row> for Contribution<'a> {
            fn from(r: &'a $row) -> Self {
                Contribution {
                    timestamp: r.timestamp,
                    account_id: r.account_id.as_deref().unwrap_or(""),
                    account_name: &r.account_name,
                    model: r.model.as_deref().unwrap_or(""),
                    api_key_name: r.api_key_name.as_deref().unwrap_or(""),
                    status_code: r.status_code.unwrap_or(0),
                    success: r.success,
                    response_time_ms: r.response_time_ms,
                    input_tokens: r.input_tokens.unwrap_or(0),
                    output_tokens: r.output_tokens.unwrap_or(0),
                    cache_read_input_tokens: r.cache_read_input_tokens.unwrap_or(0),
                    cache_creation_input_tokens: r.cache_creation_input_tokens.unwrap_or(0),
                    cost_usd: r.cost_usd.unwrap_or(0.0),
                    output_tokens_per_second: r.output_tokens_per_second,
                }
            }
        }
    };
}

contribution_from!(RequestRecord);

/// A request row as a retention delete returns it.
#[derive(QueryableByName)]
struct Removed {
    #[diesel(sql_type = BigInt)]
    timestamp: i64,
    #[diesel(sql_type = Nullable<Text>)]
    account_id: Option<String>,
    #[diesel(sql_type = Text)]
    account_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    model: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    api_key_name: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    status_code: Option<i32>,
    #[diesel(sql_type = Bool)]
    success: bool,
    #[diesel(sql_type = BigInt)]
    response_time_ms: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    input_tokens: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    output_tokens: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    cache_read_input_tokens: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    cache_creation_input_tokens: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    cost_usd: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    output_tokens_per_second: Option<f64>,
}

contribution_from!(Removed);

/// The primary key of a rollup row: of `request_rollups` when `full`, else of
/// `request_account_rollups` (then the key name is empty and the status code 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key<'a> {
    full: bool,
    grain: i64,
    bucket: i64,
    account_id: &'a str,
    account_name: &'a str,
    model: &'a str,
    api_key_name: &'a str,
    status_code: i32,
    success: bool,
}

/// The summed columns of a rollup row.
#[derive(Clone, Debug)]
struct Sums {
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_input_tokens: i64,
    cache_creation_input_tokens: i64,
    cost_usd: f64,
    response_time_ms_sum: i64,
    output_tokens_per_second_sum: f64,
    output_tokens_per_second_count: i64,
    rt: [i32; RT_BINS],
}

impl Default for Sums {
    fn default() -> Self {
        Sums {
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            cache_read_input_tokens: 0,
            cache_creation_input_tokens: 0,
            cost_usd: 0.0,
            response_time_ms_sum: 0,
            output_tokens_per_second_sum: 0.0,
            output_tokens_per_second_count: 0,
            rt: [0; RT_BINS],
        }
    }
}

impl Sums {
    fn add(&mut self, c: &Contribution<'_>, bin: usize, sign: i64) {
        self.requests += sign;
        self.input_tokens += sign * c.input_tokens;
        self.output_tokens += sign * c.output_tokens;
        self.cache_read_input_tokens += sign * c.cache_read_input_tokens;
        self.cache_creation_input_tokens += sign * c.cache_creation_input_tokens;
        self.cost_usd += sign as f64 * c.cost_usd;
        self.response_time_ms_sum += sign * c.response_time_ms;
        if let Some(tps) = c.output_tokens_per_second {
            self.output_tokens_per_second_sum += sign as f64 * tps;
            self.output_tokens_per_second_count += sign;
        }
        self.rt[bin] += sign as i32;
    }

    fn merge(&mut self, other: &Sums) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cost_usd += other.cost_usd;
        self.response_time_ms_sum += other.response_time_ms_sum;
        self.output_tokens_per_second_sum += other.output_tokens_per_second_sum;
        self.output_tokens_per_second_count += other.output_tokens_per_second_count;
        for (a, b) in self.rt.iter_mut().zip(other.rt.iter()) {
            *a += b;
        }
    }
}

/// Sums contributions per key, grain and table; `sign` -1 to take them out. Each
/// request is hashed once, into its full minute key; the hour and per-account keys
/// are then summed from those (a batch has far fewer keys than requests).
fn aggregate<'a>(
    rows: impl IntoIterator<Item = Contribution<'a>>,
    sign: i64,
) -> HashMap<Key<'a>, Sums> {
    let finest = GRAINS[GRAINS.len() - 1];
    let mut minutes: HashMap<Key<'a>, Sums> = HashMap::new();
    for c in rows {
        let key = Key {
            full: true,
            grain: finest,
            bucket: (c.timestamp / finest) * finest,
            account_id: c.account_id,
            account_name: c.account_name,
            model: c.model,
            api_key_name: c.api_key_name,
            status_code: c.status_code,
            success: c.success,
        };
        minutes
            .entry(key)
            .or_default()
            .add(&c, rt_bin(c.response_time_ms), sign);
    }
    let mut out: HashMap<Key<'a>, Sums> = HashMap::with_capacity(minutes.len() * 2);
    for (key, sums) in &minutes {
        for grain in GRAINS {
            let full = Key {
                grain,
                bucket: (key.bucket / grain) * grain,
                ..*key
            };
            let by_account = Key {
                full: false,
                api_key_name: "",
                status_code: 0,
                ..full
            };
            if grain != finest {
                out.entry(full).or_default().merge(sums);
            }
            out.entry(by_account).or_default().merge(sums);
        }
    }
    out.extend(minutes);
    out
}

const KEY_COLUMNS: &str =
    "grain_ms, bucket_ms, account_id, account_name, model, api_key_name, status_code, success";
const ACCOUNT_KEY_COLUMNS: &str = "grain_ms, bucket_ms, account_id, account_name, model, success";
const SUM_COLUMNS: [&str; 9] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cost_usd",
    "response_time_ms_sum",
    "output_tokens_per_second_sum",
    "output_tokens_per_second_count",
];

/// The upsert of one rollup row: `INSERT … VALUES (…) ON CONFLICT (key) DO UPDATE
/// SET c = c + excluded.c`. Its text never changes, so diesel prepares it once per
/// connection and afterwards only binds and steps it (`sql_query` text would be
/// parsed again on every call: with 97 columns that cost more than the upsert).
/// `FULL`: into `request_rollups` (sums only), else into `request_account_rollups`
/// (sums and the response-time histogram).
pub(super) struct UpsertRow<'a, const FULL: bool> {
    key: &'a Key<'a>,
    sums: &'a Sums,
}

/// The statement-cache identity of [`UpsertRow`] (the same text every time).
pub(super) struct UpsertRowId<const FULL: bool>;

impl<const FULL: bool> QueryId for UpsertRow<'_, FULL> {
    type QueryId = UpsertRowId<FULL>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Conn, const FULL: bool> RunQueryDsl<Conn> for UpsertRow<'_, FULL> {}

impl<DB, const FULL: bool> QueryFragment<DB> for UpsertRow<'_, FULL>
where
    DB: Backend
        + HasSqlType<BigInt>
        + HasSqlType<Text>
        + HasSqlType<Integer>
        + HasSqlType<Bool>
        + HasSqlType<Double>,
    i64: ToSql<BigInt, DB>,
    str: ToSql<Text, DB>,
    i32: ToSql<Integer, DB>,
    bool: ToSql<Bool, DB>,
    f64: ToSql<Double, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (k, s) = (self.key, self.sums);
        let (table, key_columns) = if FULL {
            ("request_rollups", KEY_COLUMNS)
        } else {
            ("request_account_rollups", ACCOUNT_KEY_COLUMNS)
        };
        out.push_sql("INSERT INTO ");
        out.push_sql(table);
        out.push_sql(" (");
        out.push_sql(key_columns);
        for c in SUM_COLUMNS {
            out.push_sql(", ");
            out.push_sql(c);
        }
        if !FULL {
            for name in RT_COLUMNS.iter() {
                out.push_sql(", ");
                out.push_sql(name);
            }
        }
        out.push_sql(") VALUES (");
        out.push_bind_param::<BigInt, _>(&k.grain)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&k.bucket)?;
        for text in [k.account_id, k.account_name, k.model] {
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(text)?;
        }
        if FULL {
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(k.api_key_name)?;
            out.push_sql(", ");
            out.push_bind_param::<Integer, _>(&k.status_code)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Bool, _>(&k.success)?;
        for n in [
            &s.requests,
            &s.input_tokens,
            &s.output_tokens,
            &s.cache_read_input_tokens,
            &s.cache_creation_input_tokens,
        ] {
            out.push_sql(", ");
            out.push_bind_param::<BigInt, _>(n)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Double, _>(&s.cost_usd)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&s.response_time_ms_sum)?;
        out.push_sql(", ");
        out.push_bind_param::<Double, _>(&s.output_tokens_per_second_sum)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&s.output_tokens_per_second_count)?;
        if !FULL {
            for n in &s.rt {
                out.push_sql(", ");
                out.push_bind_param::<Integer, _>(n)?;
            }
        }
        out.push_sql(") ON CONFLICT (");
        out.push_sql(key_columns);
        out.push_sql(") DO UPDATE SET ");
        let rt_columns = if FULL { &[][..] } else { &RT_COLUMNS[..] };
        for (i, c) in SUM_COLUMNS
            .iter()
            .copied()
            .chain(rt_columns.iter().map(String::as_str))
            .enumerate()
        {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_sql(c);
            out.push_sql(" = ");
            out.push_sql(table);
            out.push_sql(".");
            out.push_sql(c);
            out.push_sql(" + excluded.");
            out.push_sql(c);
        }
        Ok(())
    }
}

/// `rt_0` … `rt_79`.
static RT_COLUMNS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (0..RT_BINS).map(|k| format!("rt_{k}")).collect());

/// Adds summed rows into the tables, one cached upsert per key, in key order: every
/// writer locks the rows it shares with another (the current hour's, say) in the
/// same order, so concurrent transactions on PostgreSQL wait for each other instead
/// of deadlocking.
fn upsert<C>(conn: &mut C, rows: &HashMap<Key<'_>, Sums>) -> QueryResult<()>
where
    C: Connection,
    for<'x> UpsertRow<'x, true>: QueryFragment<C::Backend>,
    for<'x> UpsertRow<'x, false>: QueryFragment<C::Backend>,
{
    let mut ordered: Vec<(&Key<'_>, &Sums)> = rows.iter().collect();
    ordered.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, sums) in ordered {
        if key.full {
            UpsertRow::<true> { key, sums }.execute(conn)?;
        } else {
            UpsertRow::<false> { key, sums }.execute(conn)?;
        }
    }
    Ok(())
}

/// Adds a batch of new requests to the rollups (in the caller's transaction, on
/// either dialect's own connection).
pub(super) fn add<'a, C>(
    conn: &mut C,
    records: impl IntoIterator<Item = &'a RequestRecord>,
) -> QueryResult<()>
where
    C: Connection,
    for<'x> UpsertRow<'x, true>: QueryFragment<C::Backend>,
    for<'x> UpsertRow<'x, false>: QueryFragment<C::Backend>,
{
    upsert(
        conn,
        &aggregate(records.into_iter().map(Contribution::from), 1),
    )
}

/// Takes deleted requests out of the rollups and drops the rows left empty.
fn subtract(conn: &mut AnyConnection, removed: &[Removed]) -> QueryResult<()> {
    let sums = aggregate(removed.iter().map(Contribution::from), -1);
    upsert(conn, &sums)?;
    for full in [true, false] {
        for grain in GRAINS {
            let buckets = sums
                .keys()
                .filter(|k| k.full == full && k.grain == grain)
                .map(|k| k.bucket);
            let (Some(lo), Some(hi)) = (buckets.clone().min(), buckets.max()) else {
                continue;
            };
            let table = if full {
                "request_rollups"
            } else {
                "request_account_rollups"
            };
            // Under PostgreSQL's READ COMMITTED a row another instance has just added
            // to is re-checked after its lock is released, and then kept.
            let sql = format!(
                "DELETE FROM {table} WHERE grain_ms = ? AND bucket_ms >= ? AND bucket_ms <= ? \
                 AND requests <= 0"
            );
            diesel::sql_query(conn.sql(&sql))
                .bind::<BigInt, _>(grain)
                .bind::<BigInt, _>(lo)
                .bind::<BigInt, _>(hi)
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Keeps every other writer out of `requests` (and so of the rollups, which only
/// writers of `requests` touch) until the caller's transaction ends: on PostgreSQL
/// a history clear must not run while another instance's batch is in flight, or it
/// would delete that batch's rollup increments but not its rows (inserted rows
/// uncommitted at the DELETE survive it), and its DELETEs and the batch's upserts
/// could deadlock. SQLite has one writer at a time anyway.
pub(super) fn lock_out_writers(conn: &mut AnyConnection) -> QueryResult<()> {
    if conn.dialect() == Dialect::Postgres {
        // Conflicts with the ROW EXCLUSIVE lock every INSERT and DELETE takes, and
        // with itself.
        diesel::sql_query("LOCK TABLE requests IN SHARE ROW EXCLUSIVE MODE").execute(conn)?;
    }
    Ok(())
}

/// Empties the rollups (with the history, in the caller's transaction, after
/// [`lock_out_writers`]).
pub(super) fn clear(conn: &mut AnyConnection) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM request_rollups").execute(conn)?;
    diesel::sql_query("DELETE FROM request_account_rollups").execute(conn)?;
    Ok(())
}

impl Store {
    /// Deletes requests older than `before_ms`, at most `batch` (the oldest) per
    /// transaction, each transaction also taking its rows out of the rollups.
    /// Returns how many were deleted.
    pub(super) fn delete_requests_in_batches(
        &self,
        before_ms: i64,
        batch: i64,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut conn = self.conn()?;
            // RETURNING gives exactly the rows this transaction deleted: on PostgreSQL
            // a row another instance's retention deleted first is not returned here,
            // so each row is taken out of the rollups once.
            let sql = conn
                .sql(
                    "DELETE FROM requests WHERE id IN \
                     (SELECT id FROM requests WHERE timestamp < ? ORDER BY timestamp LIMIT ?) \
                     RETURNING timestamp, account_id, account_name, model, api_key_name, \
                     status_code, success, response_time_ms, input_tokens, output_tokens, \
                     cache_read_input_tokens, cache_creation_input_tokens, cost_usd, \
                     output_tokens_per_second",
                )
                .into_owned();
            let n = conn.transaction(|c| {
                let removed: Vec<Removed> = diesel::sql_query(sql)
                    .bind::<BigInt, _>(before_ms)
                    .bind::<BigInt, _>(batch)
                    .load(c)?;
                subtract(c, &removed)?;
                Ok::<_, diesel::result::Error>(removed.len())
            })?;
            total += n;
            if (n as i64) < batch {
                return Ok(total);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Reads

/// Where one part of a range is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Rollup rows of `grain` with `from <= bucket_ms < to`.
    Rollup { grain: i64, from: i64, to: i64 },
    /// Request rows with `from <= timestamp < to`.
    Raw { from: i64, to: i64 },
}

/// Splits `[from, to)` into the largest whole buckets of `grains` (coarsest first)
/// and request rows for what is left at the ends.
fn plan(from: i64, to: i64, grains: &[i64]) -> Vec<Part> {
    let mut parts = Vec::new();
    if from >= to {
        return parts;
    }
    let lo = from.clamp(0, MAX_ROLLUP_MS);
    let hi = to.clamp(0, MAX_ROLLUP_MS);
    if from < lo {
        parts.push(Part::Raw {
            from,
            to: lo.min(to),
        });
    }
    cover(lo.max(from), hi.min(to), grains, &mut parts);
    if to > hi {
        parts.push(Part::Raw {
            from: hi.max(from),
            to,
        });
    }
    parts
}

fn cover(from: i64, to: i64, grains: &[i64], parts: &mut Vec<Part>) {
    if from >= to {
        return;
    }
    let Some((&grain, finer)) = grains.split_first() else {
        parts.push(Part::Raw { from, to });
        return;
    };
    // Both ends are within 0..=MAX_ROLLUP_MS here, so `/` floors and nothing overflows.
    let first = (from + grain - 1) / grain * grain;
    let last = (to / grain) * grain;
    if first < last {
        cover(from, first, finer, parts);
        parts.push(Part::Rollup {
            grain,
            from: first,
            to: last,
        });
        cover(last, to, finer, parts);
    } else {
        cover(from, to, finer, parts);
    }
}

/// A bound value of a read query.
enum Bind {
    Int(i64),
    Text(String),
}

/// SQL text and its bound values, in placeholder order.
#[derive(Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn int(&mut self, n: i64) -> &mut Self {
        self.binds.push(Bind::Int(n));
        self
    }

    fn texts(&mut self, values: &[String]) -> &mut Self {
        self.binds.extend(values.iter().cloned().map(Bind::Text));
        self
    }

    fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds);
        self
    }

    fn load<T: QueryableByName<MultiBackend> + 'static>(
        self,
        conn: &mut AnyConnection,
    ) -> QueryResult<Vec<T>> {
        let mut q = diesel::sql_query(conn.sql(&self.text)).into_boxed::<MultiBackend>();
        for b in self.binds {
            q = match b {
                Bind::Int(n) => q.bind::<BigInt, _>(n),
                Bind::Text(t) => q.bind::<Text, _>(t),
            };
        }
        q.load(conn)
    }
}

/// ` AND …` for the filter's status, accounts, models and keys; the columns have
/// the same names in `requests` and `request_rollups`.
fn filters(f: &AnalyticsFilter, sql: &mut Sql) {
    match &f.status {
        Some(StatusFilter::Success) => {
            sql.push(" AND success");
        }
        Some(StatusFilter::Error) => {
            sql.push(" AND NOT success");
        }
        Some(StatusFilter::Code(c)) => {
            sql.push(" AND status_code = ?").int(i64::from(*c));
        }
        None => {}
    }
    let marks = |n: usize| vec!["?"; n].join(", ");
    if !f.accounts.is_empty() {
        let m = marks(f.accounts.len());
        sql.push(&format!(
            " AND (account_name IN ({m}) OR account_id IN ({m}))"
        ))
        .texts(&f.accounts)
        .texts(&f.accounts);
    }
    if !f.models.is_empty() {
        sql.push(&format!(" AND model IN ({})", marks(f.models.len())))
            .texts(&f.models);
    }
    if !f.keys.is_empty() {
        sql.push(&format!(" AND api_key_name IN ({})", marks(f.keys.len())))
            .texts(&f.keys);
    }
}

/// Which columns a [`source`] yields.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Columns {
    /// `bucket_ms, model, success` and the sums.
    Sums,
    /// The same and `account_name`.
    SumsWithAccount,
    /// `model, rt_0 … rt_79`, from the rollup parts only.
    Histogram,
    /// `model` and `v` (a response time), from the request-row parts only.
    Values,
}

const ROLLUP_SUMS: &str = "bucket_ms, model, success, requests, input_tokens, \
    output_tokens, cache_read_input_tokens, cache_creation_input_tokens, cost_usd, \
    response_time_ms_sum, output_tokens_per_second_sum, output_tokens_per_second_count";

/// The same columns computed from one request row (missing values count as 0, as
/// they do in the rollups).
const RAW_SUMS: &str = "timestamp AS bucket_ms, COALESCE(model, '') AS model, \
    success, 1 AS requests, COALESCE(input_tokens, 0) AS input_tokens, \
    COALESCE(output_tokens, 0) AS output_tokens, \
    COALESCE(cache_read_input_tokens, 0) AS cache_read_input_tokens, \
    COALESCE(cache_creation_input_tokens, 0) AS cache_creation_input_tokens, \
    COALESCE(cost_usd, 0) AS cost_usd, response_time_ms AS response_time_ms_sum, \
    COALESCE(output_tokens_per_second, 0) AS output_tokens_per_second_sum, \
    CASE WHEN output_tokens_per_second IS NULL THEN 0 ELSE 1 END AS output_tokens_per_second_count";

fn rollup_histogram_columns() -> String {
    let mut s = String::from("model");
    for k in 0..RT_BINS {
        let _ = write!(s, ", rt_{k}");
    }
    s
}

/// Whether `f` needs the full rollups (`request_rollups`): it filters on access keys
/// or a status code. Everything else reads `request_account_rollups`, a few rows
/// per bucket, which also holds the response-time histogram.
fn needs_full_rollups(f: &AnalyticsFilter) -> bool {
    !f.keys.is_empty() || matches!(f.status, Some(StatusFilter::Code(_)))
}

/// `(SELECT … UNION ALL SELECT …)`: one SELECT per part of the plan (the rollup
/// parts, the request-row parts, or both, as `columns` asks), each with the filter,
/// so that every part is a plain range scan of its table's key or index.
fn source(f: &AnalyticsFilter, grains: &[i64], columns: Columns) -> Sql {
    let (rollup_cols, raw_cols) = match columns {
        Columns::Sums => (Some(ROLLUP_SUMS.to_string()), Some(RAW_SUMS.to_string())),
        Columns::SumsWithAccount => (
            Some(format!("account_name, {ROLLUP_SUMS}")),
            Some(format!("account_name, {RAW_SUMS}")),
        ),
        Columns::Histogram => (Some(rollup_histogram_columns()), None),
        Columns::Values => (
            None,
            Some("COALESCE(model, '') AS model, response_time_ms AS v".to_string()),
        ),
    };
    let table = if needs_full_rollups(f) {
        "request_rollups"
    } else {
        "request_account_rollups"
    };
    let mut parts: Vec<Part> = plan(f.from_ms, f.to_ms, grains)
        .into_iter()
        .filter(|p| match p {
            Part::Rollup { .. } => rollup_cols.is_some(),
            Part::Raw { .. } => raw_cols.is_some(),
        })
        .collect();
    if parts.is_empty() {
        // Nothing to read: one empty range, for a source with the right columns.
        parts.push(if rollup_cols.is_some() {
            Part::Rollup {
                grain: 0,
                from: 0,
                to: 0,
            }
        } else {
            Part::Raw { from: 0, to: 0 }
        });
    }
    let mut sql = Sql::default();
    sql.push("(");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        match (*part, &rollup_cols, &raw_cols) {
            (Part::Rollup { grain, from, to }, Some(cols), _) => {
                sql.push(&format!(
                    "SELECT {cols} FROM {table} \
                     WHERE grain_ms = ? AND bucket_ms >= ? AND bucket_ms < ?"
                ))
                .int(grain)
                .int(from)
                .int(to);
            }
            (Part::Raw { from, to }, _, Some(cols)) => {
                sql.push(&format!(
                    "SELECT {cols} FROM requests WHERE timestamp >= ? AND timestamp < ?"
                ))
                .int(from)
                .int(to);
            }
            // Filtered out above.
            _ => continue,
        }
        filters(f, &mut sql);
    }
    sql.push(") u");
    sql
}

/// The [`GroupRow`] columns, summed over a [`source`] of [`Columns::Sums`].
const AGGREGATES: &str = "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN success THEN requests ELSE 0 END), 0) AS BIGINT) AS successes, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cache_read_input_tokens), 0) AS BIGINT) AS cache_read_input_tokens, \
    CAST(COALESCE(SUM(cache_creation_input_tokens), 0) AS BIGINT) AS cache_creation_input_tokens, \
    CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
    CAST(COALESCE(CAST(SUM(response_time_ms_sum) AS DOUBLE PRECISION) / NULLIF(SUM(requests), 0), 0) AS DOUBLE PRECISION) AS avg_response_time_ms, \
    CAST(CAST(SUM(output_tokens_per_second_sum) AS DOUBLE PRECISION) / NULLIF(SUM(output_tokens_per_second_count), 0) AS DOUBLE PRECISION) AS avg_output_tokens_per_second";

/// The grains whose buckets fit whole into buckets of `bucket_ms`.
fn grains_for(bucket_ms: i64) -> Vec<i64> {
    GRAINS.into_iter().filter(|g| bucket_ms % g == 0).collect()
}

/// Totals within the filter.
pub(super) fn summed(conn: &mut AnyConnection, f: &AnalyticsFilter) -> QueryResult<GroupRow> {
    let mut sql = Sql::default();
    sql.push(&format!("SELECT NULL AS key, {AGGREGATES} FROM "))
        .append(source(f, &GRAINS, Columns::Sums));
    let rows: Vec<GroupRow> = sql.load(conn)?;
    Ok(rows.into_iter().next().unwrap_or_default())
}

/// Totals per model (`by_model`) or per account name, most requests first.
pub(super) fn grouped(
    conn: &mut AnyConnection,
    f: &AnalyticsFilter,
    by_model: bool,
) -> QueryResult<Vec<GroupRow>> {
    let (key, column, columns) = if by_model {
        ("NULLIF(model, '')", "model", Columns::Sums)
    } else {
        ("account_name", "account_name", Columns::SumsWithAccount)
    };
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {key} AS key, {AGGREGATES} FROM "))
        .append(source(f, &GRAINS, columns))
        .push(&format!(" GROUP BY {column} ORDER BY requests DESC, key"));
    sql.load(conn)
}

/// Totals per time bucket of `bucket_ms` (oldest first); with `by_model`, per model
/// and bucket (ordered by model, then bucket), the model in `key`.
pub(super) fn bucketed(
    conn: &mut AnyConnection,
    f: &AnalyticsFilter,
    bucket_ms: i64,
    by_model: bool,
) -> QueryResult<Vec<BucketRow>> {
    let bucket_ms = bucket_ms.max(1);
    let (key, group, order) = if by_model {
        ("NULLIF(model, '')", "bucket, model", "key, bucket")
    } else {
        ("NULL", "bucket", "bucket")
    };
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT (bucket_ms / ?) * ? AS bucket, {key} AS key, {AGGREGATES} FROM "
    ))
    .int(bucket_ms)
    .int(bucket_ms)
    .append(source(f, &grains_for(bucket_ms), Columns::Sums))
    .push(&format!(" GROUP BY {group} ORDER BY {order}"));
    sql.load(conn)
}

/// A model's response-time histogram within a filter.
struct HistogramRow {
    key: Option<String>,
    counts: Vec<i64>,
}

impl<DB: Backend> QueryableByName<DB> for HistogramRow
where
    Option<String>: FromSql<Nullable<Text>, DB>,
    i64: FromSql<BigInt, DB>,
{
    fn build<'a>(row: &impl NamedRow<'a, DB>) -> deserialize::Result<Self> {
        let key = NamedRow::get::<Nullable<Text>, Option<String>>(row, "key")?;
        let counts = (0..RT_BINS)
            .map(|k| NamedRow::get::<BigInt, i64>(row, &format!("rt_{k}")))
            .collect::<deserialize::Result<Vec<i64>>>()?;
        Ok(HistogramRow { key, counts })
    }
}

/// The `percent` percentile (the ⌈n·percent/100⌉-th smallest value) per model,
/// estimated from the histogram: the middle of the bin that value falls in. The
/// rollup parts of the range give their histogram columns summed per model; the
/// request rows at its ends are counted per distinct response time (far fewer rows
/// than a bin test per row and column) and binned here.
pub(super) fn percentiles_from_histogram(
    conn: &mut AnyConnection,
    f: &AnalyticsFilter,
    percent: i64,
) -> QueryResult<Vec<(Option<String>, i64)>> {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = Nullable<Text>)]
        key: Option<String>,
        #[diesel(sql_type = BigInt)]
        v: i64,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut sums = String::from("NULLIF(model, '') AS key");
    for k in 0..RT_BINS {
        let _ = write!(sums, ", CAST(COALESCE(SUM(rt_{k}), 0) AS BIGINT) AS rt_{k}");
    }
    let mut sql = Sql::default();
    sql.push(&format!("SELECT {sums} FROM "))
        .append(source(f, &GRAINS, Columns::Histogram))
        .push(" GROUP BY model");
    let mut histograms: Vec<HistogramRow> = sql.load(conn)?;
    let mut sql = Sql::default();
    sql.push("SELECT NULLIF(model, '') AS key, v, CAST(COUNT(*) AS BIGINT) AS n FROM ")
        .append(source(f, &GRAINS, Columns::Values))
        .push(" GROUP BY model, v");
    for value in sql.load::<Value>(conn)? {
        let i = match histograms.iter().position(|h| h.key == value.key) {
            Some(i) => i,
            None => {
                histograms.push(HistogramRow {
                    key: value.key.clone(),
                    counts: vec![0; RT_BINS],
                });
                histograms.len() - 1
            }
        };
        histograms[i].counts[rt_bin(value.v)] += value.n;
    }
    Ok(histograms
        .into_iter()
        .filter_map(|h| {
            let n: i64 = h.counts.iter().sum();
            let rank = (n * percent + 99) / 100;
            let mut seen = 0;
            h.counts
                .iter()
                .position(|c| {
                    seen += c;
                    n > 0 && seen >= rank
                })
                .map(|bin| (h.key, rt_estimate(bin)))
        })
        .collect())
}

/// The exact `percent` percentile per model, from the request rows (one sort of the
/// rows in range, so only for small ranges).
pub(super) fn exact_percentiles(
    conn: &mut AnyConnection,
    f: &AnalyticsFilter,
    percent: i64,
) -> QueryResult<Vec<(Option<String>, i64)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        key: Option<String>,
        #[diesel(sql_type = BigInt)]
        v: i64,
    }
    let mut sql = Sql::default();
    sql.push(
        "SELECT key, v FROM (SELECT NULLIF(COALESCE(model, ''), '') AS key, \
         response_time_ms AS v, \
         ROW_NUMBER() OVER (PARTITION BY COALESCE(model, '') ORDER BY response_time_ms) AS rn, \
         COUNT(*) OVER (PARTITION BY COALESCE(model, '')) AS n \
         FROM requests WHERE timestamp >= ? AND timestamp < ?",
    )
    .int(f.from_ms)
    .int(f.to_ms);
    filters(f, &mut sql);
    sql.push(") t WHERE rn = (n * ? + 99) / 100").int(percent);
    let rows: Vec<Row> = sql.load(conn)?;
    Ok(rows.into_iter().map(|r| (r.key, r.v)).collect())
}

/// The `percent` percentile of response times per model: exact when at most
/// [`EXACT_PERCENTILE_MAX_ROWS`] of the `requests` in range match, else estimated.
/// The full rollups carry no histogram (it would double the writer's cost), so with
/// a key or status-code filter the answer is always exact, and slow on large ranges.
pub(super) fn percentiles(
    conn: &mut AnyConnection,
    f: &AnalyticsFilter,
    percent: i64,
    requests: i64,
) -> QueryResult<Vec<(Option<String>, i64)>> {
    if requests <= EXACT_PERCENTILE_MAX_ROWS || needs_full_rollups(f) {
        exact_percentiles(conn, f, percent)
    } else {
        percentiles_from_histogram(conn, f, percent)
    }
}

/// Everything `GET /api/analytics` shows, read in one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Analytics {
    pub totals: GroupRow,
    pub buckets: Vec<BucketRow>,
    /// Most requests first.
    pub by_model: Vec<GroupRow>,
    pub by_account: Vec<GroupRow>,
    /// The 95th percentile of response times per model (`None`: no model).
    pub p95_by_model: Vec<(Option<String>, i64)>,
    /// A time series per model, for the busiest models asked for.
    pub series_by_model: Vec<(String, Vec<BucketRow>)>,
}

impl Store {
    /// The analytics of a range: totals, a series of `bucket_ms` buckets, totals per
    /// model and per account, the p95 per model, and series for the
    /// `series_models` busiest models. Six aggregate queries over the rollups in
    /// one read transaction, so that the figures agree with each other.
    pub fn analytics(
        &self,
        f: &AnalyticsFilter,
        bucket_ms: i64,
        series_models: usize,
    ) -> Result<Analytics, StoreError> {
        let mut conn = self.conn()?;
        Ok(conn.transaction(|c| {
            if c.dialect() == Dialect::Postgres {
                // One snapshot for all six queries (READ COMMITTED would give each
                // its own, and another instance's batch could land in between).
                diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(c)?;
            }
            let totals = summed(c, f)?;
            let buckets = bucketed(c, f, bucket_ms, false)?;
            let by_model = grouped(c, f, true)?;
            let by_account = grouped(c, f, false)?;
            let p95_by_model = percentiles(c, f, 95, totals.requests)?;
            let top: Vec<String> = by_model
                .iter()
                .filter_map(|m| m.key.clone())
                .take(series_models)
                .collect();
            let mut series_by_model: Vec<(String, Vec<BucketRow>)> =
                top.iter().map(|m| (m.clone(), Vec::new())).collect();
            if !top.is_empty() {
                let scoped = AnalyticsFilter {
                    models: top,
                    ..f.clone()
                };
                for row in bucketed(c, &scoped, bucket_ms, true)? {
                    if let Some((_, rows)) = series_by_model
                        .iter_mut()
                        .find(|(m, _)| row.sums.key.as_deref() == Some(m.as_str()))
                    {
                        rows.push(row);
                    }
                }
            }
            Ok::<_, diesel::result::Error>(Analytics {
                totals,
                buckets,
                by_model,
                by_account,
                p95_by_model,
                series_by_model,
            })
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_every_value_and_estimates_stay_within_ten_percent() {
        assert_eq!(RT_BOUNDS[0], 0);
        assert!(RT_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        assert!(RT_BOUNDS[RT_BINS - 2] < 4_194_304 && RT_BOUNDS[RT_BINS - 1] >= 4_194_304);
        assert_eq!(rt_bin(-5), 0);
        assert_eq!(rt_bin(i64::MAX), RT_BINS - 1);
        let mut last_bin = 0;
        for v in 0..RT_BOUNDS[RT_BINS - 1] {
            let bin = rt_bin(v);
            assert!(bin == last_bin || bin == last_bin + 1, "{v}");
            last_bin = bin;
            assert!(RT_BOUNDS[bin] <= v && v < RT_BOUNDS[bin + 1], "{v}");
            let err = (rt_estimate(bin) - v).abs();
            assert!(
                err <= 1 || err * 10 <= v,
                "{v}: estimate {}",
                rt_estimate(bin)
            );
        }
    }

    #[test]
    fn a_range_is_split_into_hours_minutes_and_request_rows() {
        let h = HOUR;
        let m = MINUTE;
        // 10:00:30 .. 13:20:10
        let from = 10 * h + 30_000;
        let to = 13 * h + 20 * m + 10_000;
        assert_eq!(
            plan(from, to, &GRAINS),
            vec![
                Part::Raw {
                    from,
                    to: 10 * h + m
                },
                Part::Rollup {
                    grain: m,
                    from: 10 * h + m,
                    to: 11 * h
                },
                Part::Rollup {
                    grain: h,
                    from: 11 * h,
                    to: 13 * h
                },
                Part::Rollup {
                    grain: m,
                    from: 13 * h,
                    to: 13 * h + 20 * m
                },
                Part::Raw {
                    from: 13 * h + 20 * m,
                    to
                },
            ]
        );
        // Less than a minute: request rows only. Empty: nothing.
        assert_eq!(
            plan(h + 5, h + 50, &GRAINS),
            vec![Part::Raw {
                from: h + 5,
                to: h + 50
            }]
        );
        assert!(plan(h, h, &GRAINS).is_empty());
        // Aligned to the hour: no request rows at all.
        assert_eq!(
            plan(h, 3 * h, &GRAINS),
            vec![Part::Rollup {
                grain: h,
                from: h,
                to: 3 * h
            }]
        );
        // The whole history: open ends go to request rows, without overflow.
        let whole = plan(i64::MIN, i64::MAX, &GRAINS);
        assert_eq!(
            whole.first(),
            Some(&Part::Raw {
                from: i64::MIN,
                to: 0
            })
        );
        assert_eq!(
            whole.last(),
            Some(&Part::Raw {
                from: MAX_ROLLUP_MS,
                to: i64::MAX
            })
        );
        // 5-minute buckets cannot use hour rows.
        assert_eq!(grains_for(5 * m), vec![m]);
        assert_eq!(grains_for(h), vec![h, m]);
        assert!(grains_for(1_000).is_empty());
    }
}

#[cfg(test)]
#[path = "rollup_tests.rs"]
mod store_tests;
