//! Reads for the management API: filtered request history, one request with its
//! payload, aggregates for stats and analytics, and maintenance (retention, compact).
//! Aggregates run in SQL; nothing here loads the history into memory.

use super::{rollup, schema, Dialect, RequestPayload, RequestRecord, Store, StoreError};
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

    /// Aggregates per model or per account within the filter (from the rollups).
    pub fn grouped(&self, f: &AnalyticsFilter, by: Breakdown) -> Result<Vec<GroupRow>, StoreError> {
        Ok(rollup::grouped(
            &mut *self.conn()?,
            f,
            by == Breakdown::Model,
        )?)
    }

    /// Aggregates per time bucket of `bucket_ms` within the filter, oldest first.
    pub fn bucketed(
        &self,
        f: &AnalyticsFilter,
        bucket_ms: i64,
    ) -> Result<Vec<BucketRow>, StoreError> {
        Ok(rollup::bucketed(&mut *self.conn()?, f, bucket_ms, false)?)
    }

    /// The totals within the filter.
    pub fn summed(&self, f: &AnalyticsFilter) -> Result<GroupRow, StoreError> {
        Ok(rollup::summed(&mut *self.conn()?, f)?)
    }

    /// The `percent` percentile of response times per model within the filter:
    /// exact for small ranges, within 10% beyond (see `rollup`).
    pub fn response_time_percentiles(
        &self,
        f: &AnalyticsFilter,
        percent: i64,
    ) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        let mut conn = self.conn()?;
        let requests = rollup::summed(&mut conn, f)?.requests;
        Ok(rollup::percentiles(&mut conn, f, percent, requests)?)
    }

    /// Deletes every request and payload (stats reset, history clear).
    pub fn clear_history(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        Ok(conn.transaction(|c| {
            rollup::lock_out_writers(c)?;
            diesel::delete(schema::request_payloads::table).execute(c)?;
            rollup::clear(c)?;
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
        let requests = self.delete_requests_in_batches(request_before_ms, batch)?;
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

    /// Reclaims free space and folds the WAL into the main file (SQLite); vacuums
    /// and analyzes the history tables (PostgreSQL).
    pub fn compact(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        match self.dialect {
            Dialect::Sqlite => conn.batch_execute(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )?,
            // One VACUUM per statement: several in one string run as one implicit
            // transaction, where VACUUM is refused. The rollup rows are updated in
            // place by every batch, so they gather dead versions too.
            Dialect::Postgres => {
                for table in [
                    "requests",
                    "request_payloads",
                    "request_account_rollups",
                    "request_rollups",
                ] {
                    conn.batch_execute(&format!("VACUUM ANALYZE {table}"))?;
                }
            }
        }
        Ok(())
    }
}
