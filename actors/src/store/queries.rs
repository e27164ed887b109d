//! Reads for the management API: filtered request history, one request with its
//! payload, aggregates for stats and analytics, and maintenance (retention, compact).
//! Aggregates run in SQL; nothing here loads the history into memory.

use super::{schema, AnyConnection, Dialect, RequestPayload, RequestRecord, Store, StoreError};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

/// Which requests by outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Success,
    Error,
    Code(i32),
}

impl StatusFilter {
    /// `success`, `error`, or an HTTP status code; `None` for `all` or nothing.
    pub fn parse(text: &str) -> Result<Option<StatusFilter>, String> {
        match text {
            "" | "all" => Ok(None),
            "success" => Ok(Some(StatusFilter::Success)),
            "error" => Ok(Some(StatusFilter::Error)),
            other => other
                .parse::<i32>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(|c| Some(StatusFilter::Code(c)))
                .ok_or_else(|| format!("{other:?} is not all, success, error or a status code")),
        }
    }
}

/// A page of the request history, newest first.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    pub limit: i64,
    /// Only requests older than this request id (the cursor).
    pub before: Option<String>,
    /// Account id or name.
    pub account: Option<String>,
    pub model: Option<String>,
    pub status: Option<StatusFilter>,
    /// The access key's name.
    pub key: Option<String>,
}

/// The range and filters of an analytics query.
#[derive(Clone, Debug, Default)]
pub struct AnalyticsFilter {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Account names or ids; empty means all.
    pub accounts: Vec<String>,
    pub models: Vec<String>,
    pub status: Option<StatusFilter>,
    /// Access key names; empty means all.
    pub keys: Vec<String>,
}

/// Sums over a group of requests (a time bucket, a model, an account...).
#[derive(QueryableByName, Clone, Debug, Default, PartialEq)]
pub struct GroupRow {
    #[diesel(sql_type = Nullable<Text>)]
    pub key: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub requests: i64,
    #[diesel(sql_type = BigInt)]
    pub successes: i64,
    #[diesel(sql_type = BigInt)]
    pub input_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub output_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub cache_read_input_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub cache_creation_input_tokens: i64,
    #[diesel(sql_type = Double)]
    pub cost_usd: f64,
    #[diesel(sql_type = Double)]
    pub avg_response_time_ms: f64,
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_output_tokens_per_second: Option<f64>,
}

/// A [`GroupRow`] for one time bucket.
#[derive(QueryableByName, Clone, Debug, Default, PartialEq)]
pub struct BucketRow {
    #[diesel(sql_type = BigInt)]
    pub bucket: i64,
    #[diesel(embed)]
    pub sums: GroupRow,
}

/// What to group an aggregate by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakdown {
    Model,
    Account,
}

const SUMS: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0) AS BIGINT) AS successes, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cache_read_input_tokens), 0) AS BIGINT) AS cache_read_input_tokens, \
    CAST(COALESCE(SUM(cache_creation_input_tokens), 0) AS BIGINT) AS cache_creation_input_tokens, \
    CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd, \
    CAST(COALESCE(AVG(response_time_ms), 0) AS DOUBLE PRECISION) AS avg_response_time_ms, \
    CAST(AVG(output_tokens_per_second) AS DOUBLE PRECISION) AS avg_output_tokens_per_second";

/// Builds the WHERE clause of an analytics query with its bound values.
struct Where {
    sql: String,
    texts: Vec<String>,
    numbers: Vec<i64>,
}

/// The bound values of a [`Where`], in the order the placeholders appear:
/// `from`, `to`, then any numbers (status code), then the texts.
fn where_clause(f: &AnalyticsFilter) -> Where {
    let mut sql = String::from("timestamp >= ? AND timestamp < ?");
    let mut numbers = Vec::new();
    let mut texts = Vec::new();
    match &f.status {
        Some(StatusFilter::Success) => sql.push_str(" AND success"),
        Some(StatusFilter::Error) => sql.push_str(" AND NOT success"),
        Some(StatusFilter::Code(c)) => {
            sql.push_str(" AND status_code = ?");
            numbers.push(i64::from(*c));
        }
        None => {}
    }
    if !f.accounts.is_empty() {
        let marks = vec!["?"; f.accounts.len()].join(", ");
        sql.push_str(&format!(
            " AND (account_name IN ({marks}) OR account_id IN ({marks}))"
        ));
        texts.extend(f.accounts.iter().cloned());
        texts.extend(f.accounts.iter().cloned());
    }
    if !f.models.is_empty() {
        let marks = vec!["?"; f.models.len()].join(", ");
        sql.push_str(&format!(" AND model IN ({marks})"));
        texts.extend(f.models.iter().cloned());
    }
    if !f.keys.is_empty() {
        let marks = vec!["?"; f.keys.len()].join(", ");
        sql.push_str(&format!(" AND api_key_name IN ({marks})"));
        texts.extend(f.keys.iter().cloned());
    }
    Where {
        sql,
        texts,
        numbers,
    }
}

/// Runs an aggregate with the filter's binds (diesel's boxed raw queries).
fn run<T: QueryableByName<MultiBackend> + 'static>(
    conn: &mut AnyConnection,
    sql: String,
    f: &AnalyticsFilter,
    w: &Where,
    extra: &[i64],
) -> QueryResult<Vec<T>> {
    let mut q = diesel::sql_query(conn.sql(&sql)).into_boxed::<MultiBackend>();
    for n in extra {
        q = q.bind::<BigInt, _>(*n);
    }
    q = q.bind::<BigInt, _>(f.from_ms).bind::<BigInt, _>(f.to_ms);
    for n in &w.numbers {
        q = q.bind::<BigInt, _>(*n);
    }
    for t in &w.texts {
        q = q.bind::<Text, _>(t.clone());
    }
    q.load(conn)
}

use super::connection::MultiBackend;

impl Store {
    /// A page of the history, newest first.
    pub fn query_requests(&self, f: &RequestFilter) -> Result<Vec<RequestRecord>, StoreError> {
        use schema::requests::dsl;
        let mut conn = self.conn()?;
        let mut q = dsl::requests
            .select(RequestRecord::as_select())
            .into_boxed();
        if let Some(before) = &f.before {
            let ts: Option<i64> = dsl::requests
                .filter(dsl::id.eq(before))
                .select(dsl::timestamp)
                .first(&mut conn)
                .optional()?;
            let Some(ts) = ts else {
                return Ok(Vec::new());
            };
            q = q.filter(
                dsl::timestamp
                    .lt(ts)
                    .or(dsl::timestamp.eq(ts).and(dsl::id.lt(before.clone()))),
            );
        }
        if let Some(account) = &f.account {
            q = q.filter(
                dsl::account_id
                    .eq(account.clone())
                    .or(dsl::account_name.eq(account.clone())),
            );
        }
        if let Some(model) = &f.model {
            q = q.filter(dsl::model.eq(model.clone()));
        }
        if let Some(key) = &f.key {
            q = q.filter(dsl::api_key_name.eq(key.clone()));
        }
        match &f.status {
            Some(StatusFilter::Success) => q = q.filter(dsl::success.eq(true)),
            Some(StatusFilter::Error) => q = q.filter(dsl::success.eq(false)),
            Some(StatusFilter::Code(c)) => q = q.filter(dsl::status_code.eq(*c)),
            None => {}
        }
        Ok(q.order((dsl::timestamp.desc(), dsl::id.desc()))
            .limit(f.limit)
            .load(&mut conn)?)
    }

    /// One request and its payload.
    pub fn request_by_id(
        &self,
        id: &str,
    ) -> Result<Option<(RequestRecord, Option<RequestPayload>)>, StoreError> {
        use schema::requests::dsl;
        let record: Option<RequestRecord> = dsl::requests
            .filter(dsl::id.eq(id))
            .select(RequestRecord::as_select())
            .first(&mut self.conn()?)
            .optional()?;
        match record {
            Some(r) => Ok(Some((r, self.request_payload(id)?))),
            None => Ok(None),
        }
    }

    /// Aggregates per model or per account over the whole history (stats at start).
    pub fn totals_by(&self, by: Breakdown) -> Result<Vec<GroupRow>, StoreError> {
        let f = AnalyticsFilter {
            from_ms: i64::MIN,
            to_ms: i64::MAX,
            ..AnalyticsFilter::default()
        };
        self.grouped(&f, by)
    }

    /// Aggregates per model or per account within the filter.
    pub fn grouped(&self, f: &AnalyticsFilter, by: Breakdown) -> Result<Vec<GroupRow>, StoreError> {
        let column = match by {
            Breakdown::Model => "model",
            Breakdown::Account => "account_name",
        };
        let w = where_clause(f);
        let sql = format!(
            "SELECT {column} AS key, {SUMS} FROM requests WHERE {} GROUP BY {column} ORDER BY requests DESC",
            w.sql
        );
        Ok(run(&mut *self.conn()?, sql, f, &w, &[])?)
    }

    /// Aggregates per time bucket of `bucket_ms` within the filter, oldest first.
    pub fn bucketed(
        &self,
        f: &AnalyticsFilter,
        bucket_ms: i64,
    ) -> Result<Vec<BucketRow>, StoreError> {
        let w = where_clause(f);
        let sql = format!(
            "SELECT (timestamp / ?) * ? AS bucket, NULL AS key, {SUMS} FROM requests WHERE {} GROUP BY bucket ORDER BY bucket",
            w.sql
        );
        Ok(run(
            &mut *self.conn()?,
            sql,
            f,
            &w,
            &[bucket_ms.max(1), bucket_ms.max(1)],
        )?)
    }

    /// The totals within the filter.
    pub fn summed(&self, f: &AnalyticsFilter) -> Result<GroupRow, StoreError> {
        let w = where_clause(f);
        let sql = format!("SELECT NULL AS key, {SUMS} FROM requests WHERE {}", w.sql);
        let rows: Vec<GroupRow> = run(&mut *self.conn()?, sql, f, &w, &[])?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// The `pct` percentile (0..1) of response times of one model within the filter.
    pub fn response_time_percentile(
        &self,
        f: &AnalyticsFilter,
        model: Option<&str>,
        pct: f64,
    ) -> Result<Option<i64>, StoreError> {
        #[derive(QueryableByName)]
        struct Value {
            #[diesel(sql_type = BigInt)]
            v: i64,
        }
        let mut scoped = f.clone();
        let model_clause = match model {
            Some(m) => {
                scoped.models = vec![m.to_string()];
                ""
            }
            None => " AND model IS NULL",
        };
        let w = where_clause(&scoped);
        let count: Vec<Value> = run(
            &mut *self.conn()?,
            format!(
                "SELECT COUNT(*) AS v FROM requests WHERE {}{model_clause}",
                w.sql
            ),
            &scoped,
            &w,
            &[],
        )?;
        let n = count.first().map_or(0, |c| c.v);
        if n == 0 {
            return Ok(None);
        }
        let offset = ((n as f64 * pct).ceil() as i64 - 1).clamp(0, n - 1);
        let sql = format!(
            "SELECT response_time_ms AS v FROM requests WHERE {}{model_clause} ORDER BY response_time_ms LIMIT 1 OFFSET {offset}",
            w.sql
        );
        let rows: Vec<Value> = run(&mut *self.conn()?, sql, &scoped, &w, &[])?;
        Ok(rows.first().map(|r| r.v))
    }

    /// Deletes every request and payload (stats reset, history clear).
    pub fn clear_history(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        Ok(conn.transaction(|c| {
            diesel::delete(schema::request_payloads::table).execute(c)?;
            diesel::delete(schema::requests::table).execute(c)
        })?)
    }

    /// Deletes payloads older than `payload_before_ms` and requests older than
    /// `request_before_ms`, in transactions of at most `batch` rows so that writers
    /// never wait long. Returns (payloads, requests) deleted.
    pub fn delete_older_than(
        &self,
        payload_before_ms: i64,
        request_before_ms: i64,
        batch: i64,
    ) -> Result<(usize, usize), StoreError> {
        // Each statement picks at most `batch` rows that still qualify, so every
        // round makes progress until none are left.
        let payloads = self.delete_in_batches(
            "DELETE FROM request_payloads WHERE request_id IN \
             (SELECT p.request_id FROM request_payloads p JOIN requests r ON r.id = p.request_id \
              WHERE r.timestamp < ? LIMIT ?)",
            payload_before_ms,
            batch,
        )?;
        let requests = self.delete_in_batches(
            "DELETE FROM requests WHERE id IN \
             (SELECT id FROM requests WHERE timestamp < ? LIMIT ?)",
            request_before_ms,
            batch,
        )?;
        Ok((payloads, requests))
    }

    /// Runs a `DELETE … (SELECT … < ? LIMIT ?)` in its own transaction until it
    /// deletes fewer than `batch` rows; the total deleted.
    fn delete_in_batches(
        &self,
        sql: &str,
        before_ms: i64,
        batch: i64,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let mut conn = self.conn()?;
            let sql = conn.sql(sql).into_owned();
            let n = conn.transaction(|c| {
                diesel::sql_query(sql)
                    .bind::<BigInt, _>(before_ms)
                    .bind::<BigInt, _>(batch)
                    .execute(c)
            })?;
            total += n;
            if (n as i64) < batch {
                return Ok(total);
            }
        }
    }

    /// SQLite's own consistency check: `ok` when the file is sound. (PostgreSQL
    /// keeps its own consistency; there the answer is always `ok`.)
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            integrity_check: String,
        }
        if self.dialect == Dialect::Postgres {
            return Ok("ok".to_string());
        }
        let rows: Vec<Row> =
            diesel::sql_query("PRAGMA integrity_check").load(&mut *self.conn()?)?;
        Ok(rows
            .into_iter()
            .map(|r| r.integrity_check)
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Reclaims free space and folds the WAL into the main file.
    pub fn compact(&self) -> Result<(), StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);"
            }
            Dialect::Postgres => "VACUUM ANALYZE requests; VACUUM ANALYZE request_payloads;",
        };
        self.conn()?.batch_execute(sql)?;
        Ok(())
    }
}
