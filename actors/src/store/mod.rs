//! The diesel store: accounts, request records and their payloads.
//!
//! Every method blocks; callers run them off the async workers (`spawn_blocking`).
//! Writes come from two batching paths only (the RequestLogger and the
//! AccountRegistry), each one transaction per batch.

mod connection;
mod models;
mod queries;
mod rollup;
pub mod schema;
mod sync;
pub mod testing;

pub use connection::{AnyConnection, Dialect};
pub use sync::{AccountDelta, RefreshLock};

pub use models::{Blob, RequestPayload, RequestRecord};
pub use queries::{AnalyticsFilter, Breakdown, BucketRow, GroupRow, RequestFilter, StatusFilter};
pub use rollup::Analytics;

use crate::domain::Account;
use crate::secrets::Cipher;
use connection::AnyManager;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{CustomizeConnection, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use models::{AccountRow, SharedRow};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// The PostgreSQL advisory lock key under which instances starting together migrate
/// one at a time (any constant unlikely to collide; "cfmigrat" in ASCII).
const MIGRATION_LOCK: i64 = 0x6366_6d69_6772_6174;

/// Failures at the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("an account named {0:?} already exists")]
    DuplicateName(String),
    #[error("database error: {0}")]
    Query(#[from] DieselError),
    #[error("database task failed: {0}")]
    Task(String),
    /// A paced write gave up and rolled back (see [`Pacing::give_up_after`] and
    /// [`Pacing::give_up_at`]).
    #[error("the write was given up: its thread waited too long for a CPU")]
    Deferred,
    #[error(transparent)]
    Decrypt(#[from] crate::secrets::DecryptError),
}

/// A finished request and, when capture is on, its payload: one unit of the logger's batch.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// Shared with the live stats, which the logger hands it on to.
    pub record: Arc<RequestRecord>,
    pub payload: Option<Arc<RequestPayload>>,
}

/// Totals over the whole request history, for the stats counters at start-up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryTotals {
    pub requests: i64,
    pub successes: i64,
    pub response_time_ms: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cost_usd: f64,
}

#[derive(QueryableByName)]
struct TotalsRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    requests: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    successes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    response_time_ms: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    input_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    output_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cache_read_input_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    cache_creation_input_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    cost_usd: f64,
}

/// SQLite settings of every pooled connection. The page cache is 128 KiB (16 pages)
/// per connection instead of SQLite's 2 MiB. A logger batch outgrows it either way
/// and spills pages to the WAL early; neither a 16 MiB cache nor 512 KiB wrote
/// faster (docs/performance.md, seventh and fifteenth rounds); reads of older rows
/// come from the kernel's page cache; and the caches filling up as the database grew
/// were the daemon's RSS growth in the soak test (2 MiB each, `docs/testing.md`) and
/// most of SQLite's share of the step after aborted streams (512 KiB each).
const SQLITE_SESSION: &str = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
     PRAGMA synchronous = NORMAL; PRAGMA cache_size = -128;";

/// PostgreSQL session settings of every pooled connection: a statement stuck on a
/// lock must not hold a pool connection forever.
const POSTGRES_SESSION: &str = "SET statement_timeout = 30000;";

#[derive(Debug)]
struct SessionSettings;

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        let settings = match conn.dialect() {
            Dialect::Sqlite => SQLITE_SESSION,
            Dialect::Postgres => POSTGRES_SESSION,
        };
        conn.batch_execute(settings)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Rows per `INSERT` statement when a logger batch is written. One statement per
/// row spent a quarter of the writer's time in diesel walking and binding the
/// query, and SQLite starting the statement; sixteen rows per statement share that
/// (docs/performance.md, seventh round). 16 × 25 columns stays far below either
/// dialect's limit on bound parameters.
const ROWS_PER_INSERT: usize = 16;

/// `INSERT` that skips a row whose id is already stored, in the dialect's words.
///
/// A record is only stored twice when a batch is retried after a commit that did
/// land but reported failure (a PostgreSQL connection lost at `COMMIT`); failing
/// the whole batch on it would keep failing, and the records behind it would pile
/// up until dropped. (The batch's rollup increments are added again then: a
/// rollup may count such a batch twice.) On SQLite, `OR IGNORE` also spares the
/// requests' multi-row statement a statement journal: it can no longer abort
/// half-way, so there is nothing to undo (measured: a sixth of the writer's time).
macro_rules! insert_new {
    (Sqlite, $c:ident, $table:expr, $values:expr) => {
        diesel::insert_or_ignore_into($table)
            .values($values)
            .execute($c)
    };
    (Postgres, $c:ident, $table:expr, $values:expr) => {
        diesel::insert_into($table)
            .values($values)
            .on_conflict_do_nothing()
            .execute($c)
    };
}

/// How a write that can wait shares the CPU ([`Store::insert_requests_paced`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Pacing {
    /// Yield the CPU before every statement until then.
    pub yield_until: Option<Instant>,
    /// Give the write up (roll it back: [`StoreError::Deferred`]) when the thread
    /// went longer than this between two statements: a thread of lowered priority
    /// on a machine that just became busy, which would hold the batch (and the
    /// database's write lock) for seconds.
    pub give_up_after: Option<Duration>,
    /// Give the write up when a statement would start after this instant: also a
    /// lowered thread that got the job late, or many short turns in a row, must
    /// not keep its records unstored past what a kill -9 may lose.
    pub give_up_at: Option<Instant>,
}

/// The inserts of [`Store::insert_requests`] and the batch's rollup increments,
/// written once for both dialects' connection types, paced by `$pacing` (a
/// [`Pacing`]) before every statement.
macro_rules! insert_entries {
    ($dialect:ident, $c:ident, $batch:expr, $pacing:expr) => {{
        let batch: &[LogEntry] = $batch;
        let pacing: Pacing = $pacing;
        let mut last = Instant::now();
        let mut pace = || -> Result<(), DieselError> {
            let now = Instant::now();
            if pacing
                .give_up_after
                .is_some_and(|limit| now.duration_since(last) > limit)
                || pacing.give_up_at.is_some_and(|t| now > t)
            {
                return Err(DieselError::RollbackTransaction);
            }
            if pacing.yield_until.is_some_and(|t| now < t) {
                std::thread::yield_now();
            }
            last = Instant::now();
            Ok(())
        };
        // Full statements of shared rows, then the remainder row by row.
        macro_rules! insert_rows {
            ($table:expr, $rows:expr) => {{
                let rows: Vec<&Arc<_>> = $rows.collect();
                let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
                for chunk in &mut chunks {
                    pace()?;
                    let shared: [SharedRow<_>; ROWS_PER_INSERT] =
                        std::array::from_fn(|k| SharedRow(Arc::clone(chunk[k])));
                    insert_new!($dialect, $c, $table, &shared)?;
                }
                for row in chunks.remainder() {
                    insert_new!($dialect, $c, $table, Arc::as_ref(row))?;
                }
            }};
        }
        insert_rows!(schema::requests::table, batch.iter().map(|e| &e.record));
        insert_rows!(
            schema::request_payloads::table,
            batch.iter().filter_map(|e| e.payload.as_ref())
        );
        rollup::add($c, batch.iter().map(|e| &*e.record))?;
        Ok::<_, DieselError>(())
    }};
}

/// A handle on the database; cheap to clone (a connection pool).
#[derive(Clone)]
pub struct Store {
    pool: Pool<AnyManager>,
    cipher: Cipher,
    dialect: Dialect,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`, switches it to WAL,
    /// runs the embedded migrations, and encrypts any credential still stored in
    /// plaintext. Credentials are encrypted with `cipher`; a wrong key is an error here.
    pub fn open_sqlite(path: &Path, cipher: Cipher) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        }
        let url = path
            .to_str()
            .ok_or_else(|| StoreError::Open(format!("{}: not UTF-8", path.display())))?;
        let store = Store::connect(url, &path.display().to_string(), cipher)?;
        // 8 KiB pages, set before the first table exists (a database created with
        // other pages keeps them). A stored payload with a streamed answer outgrew
        // a 4 KiB page into overflow pages; 8 KiB pages raised SSE throughput by
        // ~10%, and 16 KiB ones no further, for more bytes written per commit
        // (docs/performance.md, seventh round).
        store
            .conn()?
            .batch_execute("PRAGMA page_size = 8192; PRAGMA journal_mode = WAL;")?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens the PostgreSQL database at `url` (shared by several instances), runs
    /// its migrations under an advisory lock so that instances starting together
    /// migrate once, and encrypts any plaintext credential. Fails at once (with the
    /// reason, never the URL's password) when the server cannot be reached.
    pub fn open_postgres(url: &str, cipher: Cipher) -> Result<Store, StoreError> {
        // One direct attempt first: the pool would retry for its whole timeout.
        let first = diesel::pg::PgConnection::establish(url).map_err(|e| {
            let reason = e.to_string();
            let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            StoreError::Open(format!("{}: {reason}", redact_url(url)))
        })?;
        drop(first);
        let store = Store::connect(url, &redact_url(url), cipher)?;
        store.migrate()?;
        Ok(store)
    }

    /// A pool on `url`; `shown` names the database in errors.
    fn connect(url: &str, shown: &str, cipher: Cipher) -> Result<Store, StoreError> {
        let dialect = Dialect::of_url(url);
        // A connection to a local file does not go stale: r2d2's default recycling
        // (idle 10 min, lifetime 30 min) would only throw away warm caches and
        // prepared statements. PostgreSQL connections keep the defaults.
        let (max_size, idle_timeout, max_lifetime) = match dialect {
            Dialect::Sqlite => (4, None, None),
            Dialect::Postgres => (
                8,
                Some(Duration::from_secs(600)),
                Some(Duration::from_secs(1800)),
            ),
        };
        let pool = Pool::builder()
            .max_size(max_size)
            .idle_timeout(idle_timeout)
            .max_lifetime(max_lifetime)
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SessionSettings))
            .error_handler(Box::new(connection::OutageLog::default()))
            .build(AnyManager::new(url))
            .map_err(|e| StoreError::Open(format!("{shown}: {e}")))?;
        Ok(Store {
            pool,
            cipher,
            dialect,
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let migrations = match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => {
                // No statement timeout while migrating: waiting for another
                // instance's migration, and the analytics rollups' backfill of an
                // existing history (one statement of ~7 s per million requests on
                // a 2-core box), can both take longer than 30 s.
                conn.batch_execute("SET statement_timeout = 0;")
                    .map_err(|e| StoreError::Migration(e.to_string()))?;
                diesel::sql_query("SELECT pg_advisory_lock($1)")
                    .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .map(|_| ())
                    .map_err(|e| StoreError::Migration(e.to_string()))?;
                POSTGRES_MIGRATIONS
            }
        };
        let ran = conn
            .run_pending_migrations(migrations)
            .map(|_| ())
            .map_err(|e| StoreError::Migration(e.to_string()));
        let mut restored = Ok(());
        if self.dialect == Dialect::Postgres {
            // Also released when the connection closes, should this fail.
            let _ = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            // The connection goes back to the pool: with the pool's settings.
            restored = conn.batch_execute(POSTGRES_SESSION);
        }
        drop(conn);
        ran?;
        restored?;
        self.encrypt_plaintext_secrets()
    }

    /// Which database this is: PostgreSQL means state shared with other instances.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn conn(&self) -> Result<PooledConnection<AnyManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    pub fn load_accounts(&self) -> Result<Vec<Account>, StoreError> {
        use schema::accounts::dsl;
        let rows: Vec<AccountRow> = dsl::accounts
            .order(dsl::created_at.asc())
            .select(AccountRow::as_select())
            .load(&mut self.conn()?)?;
        let mut accounts = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(a) = row.into_account(&self.cipher)? {
                accounts.push(a);
            }
        }
        Ok(accounts)
    }

    /// Rewrites accounts whose credentials an older version stored in plaintext.
    fn encrypt_plaintext_secrets(&self) -> Result<(), StoreError> {
        use schema::accounts::dsl;
        type Stored = (Option<String>, Option<String>, Option<String>);
        let stored: Vec<Stored> = dsl::accounts
            .select((dsl::api_key, dsl::access_token, dsl::refresh_token))
            .load(&mut self.conn()?)?;
        let plaintext = stored.iter().any(|(a, b, c)| {
            [a, b, c]
                .iter()
                .any(|v| v.as_deref().is_some_and(Cipher::is_plaintext))
        });
        if plaintext {
            let accounts = self.load_accounts()?;
            self.save_accounts(&accounts)?;
            tracing::info!(accounts = accounts.len(), "stored credentials encrypted");
        }
        Ok(())
    }

    pub fn insert_account(&self, account: &Account) -> Result<(), StoreError> {
        let row = AccountRow::from_account(account, &self.cipher);
        diesel::insert_into(schema::accounts::table)
            .values(&row)
            .execute(&mut self.conn()?)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    StoreError::DuplicateName(account.name.clone())
                }
                other => StoreError::Query(other),
            })?;
        Ok(())
    }

    /// Removes an account; its request history stays (it carries the name).
    pub fn delete_account(&self, id: &str) -> Result<bool, StoreError> {
        use schema::accounts::dsl;
        let n = diesel::delete(dsl::accounts.filter(dsl::id.eq(id))).execute(&mut self.conn()?)?;
        Ok(n > 0)
    }

    /// Writes the changing columns of several accounts in one transaction.
    pub fn save_accounts(&self, accounts: &[Account]) -> Result<(), StoreError> {
        use schema::accounts::dsl;
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            for a in accounts {
                let row = AccountRow::from_account(a, &self.cipher);
                diesel::update(dsl::accounts.filter(dsl::id.eq(&a.id)))
                    .set(&row)
                    .execute(c)?;
            }
            Ok::<_, DieselError>(())
        })?;
        Ok(())
    }

    /// Inserts a batch of finished requests and their payloads in one transaction,
    /// and adds the batch to the analytics rollups in the same transaction.
    ///
    /// One single-row INSERT per record with every column named and `None` bound as
    /// NULL: that statement has a fixed shape, so diesel prepares it once per
    /// connection and afterwards only binds and steps it. (A multi-row INSERT, or a
    /// derived single-row one that leaves `None` columns out, is built as SQL text and
    /// prepared again every time; that was about half the logger's cost.)
    pub fn insert_requests(&self, batch: &[LogEntry]) -> Result<(), StoreError> {
        self.insert_requests_paced(batch, Pacing::default())
    }

    /// [`Store::insert_requests`] for a logger that is keeping up: on SQLite it
    /// yields the CPU between statements (every `ROWS_PER_INSERT` records) until
    /// `pacing.yield_until`, then writes the rest at once; and it gives up with
    /// [`StoreError::Deferred`], storing nothing, when it was kept from running
    /// longer than `pacing.give_up_after` or is still writing at
    /// `pacing.give_up_at`.
    ///
    /// SQLite runs on this thread, so a batch is milliseconds of CPU in one piece.
    /// A proxy worker (or the client, or the upstream) woken meanwhile on the same
    /// core waited for the writer's whole time slice, up to a scheduler tick (4 ms
    /// at HZ=250): that was most of the c=1 p99 (docs/performance.md). Yielding
    /// lets the woken thread run at once. It is bounded in time because a writer
    /// that yields on a saturated machine gets almost no CPU at all: the records
    /// pile up and are dropped. A logger that is behind passes an empty `Pacing`.
    pub fn insert_requests_paced(
        &self,
        batch: &[LogEntry],
        pacing: Pacing,
    ) -> Result<(), StoreError> {
        // On the dialect's own connection: through the multi-connection each bind
        // is converted and the statement is not reused, which tripled the cost per
        // record (docs/performance.md).
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(c) => {
                // Foreign keys off for this transaction only. A multi-row INSERT into
                // a table with an immediate foreign key may abort half-way, so SQLite
                // gives each payload statement a statement journal: a temporary file
                // created, written (~2 kB per payload) and deleted at every batch. The
                // key holds here by construction: each payload's request is inserted
                // earlier in the same transaction (or was stored before, when a batch
                // is retried). (`PRAGMA defer_foreign_keys` does not spare the journal;
                // the pragma is a no-op inside a transaction, hence around it.)
                c.batch_execute("PRAGMA foreign_keys = OFF")?;
                let written =
                    c.immediate_transaction(|c| insert_entries!(Sqlite, c, batch, pacing));
                c.batch_execute("PRAGMA foreign_keys = ON")?;
                match written {
                    Err(DieselError::RollbackTransaction) => return Err(StoreError::Deferred),
                    other => other?,
                }
            }
            // PostgreSQL does the work in its own process: nothing to pace.
            AnyConnection::Postgres(c) => {
                c.transaction(|c| insert_entries!(Postgres, c, batch, Pacing::default()))?
            }
        }
        Ok(())
    }

    pub fn request_payload(&self, id: &str) -> Result<Option<RequestPayload>, StoreError> {
        use schema::request_payloads::dsl;
        Ok(dsl::request_payloads
            .filter(dsl::request_id.eq(id))
            .select(RequestPayload::as_select())
            .first(&mut self.conn()?)
            .optional()?)
    }

    /// Sums over the whole history (one aggregate query, run once at start-up).
    pub fn history_totals(&self) -> Result<HistoryTotals, StoreError> {
        // CAST keeps the sums BIGINT in both dialects (PostgreSQL widens SUM(bigint)).
        let row: TotalsRow = diesel::sql_query(
            "SELECT COUNT(*) AS requests, \
             CAST(COALESCE(SUM(CASE WHEN success THEN 1 ELSE 0 END), 0) AS BIGINT) AS successes, \
             CAST(COALESCE(SUM(response_time_ms), 0) AS BIGINT) AS response_time_ms, \
             CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
             CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
             CAST(COALESCE(SUM(cache_read_input_tokens), 0) AS BIGINT) AS cache_read_input_tokens, \
             CAST(COALESCE(SUM(cache_creation_input_tokens), 0) AS BIGINT) AS cache_creation_input_tokens, \
             CAST(COALESCE(SUM(cost_usd), 0) AS DOUBLE PRECISION) AS cost_usd \
             FROM requests",
        )
        .get_result(&mut self.conn()?)?;
        Ok(HistoryTotals {
            requests: row.requests,
            successes: row.successes,
            response_time_ms: row.response_time_ms,
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
            cache_read_input_tokens: row.cache_read_input_tokens,
            cache_creation_input_tokens: row.cache_creation_input_tokens,
            cost_usd: row.cost_usd,
        })
    }

    /// Makes the WAL part of the main file (at shutdown); PostgreSQL needs nothing.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if self.dialect == Dialect::Sqlite {
            self.conn()?
                .batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        Ok(())
    }
}

/// A database URL fit for messages: the password and any parameters left out.
pub fn redact_url(url: &str) -> String {
    let url = url.split('?').next().unwrap_or(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Runs a blocking store call on the blocking thread pool.
pub async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

#[cfg(test)]
mod tests;

/// Fixtures shared by the engine's unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::api_key_account as account;
    pub(crate) use super::tests::record as request_record;

    /// A store on a fresh PostgreSQL database, or `None` (with a note) when no
    /// server is configured.
    pub(crate) fn test_postgres_store(
        test: &str,
    ) -> Option<(super::testing::TestDatabase, super::Store)> {
        let db = super::testing::TestDatabase::create(test)?;
        let store =
            super::Store::open_postgres(db.url(), super::tests::test_cipher()).expect("open");
        Some((db, store))
    }

    /// A store on a fresh temporary file.
    pub(crate) fn test_store() -> (tempfile::TempDir, super::Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            super::Store::open_sqlite(&dir.path().join("t.db"), super::tests::test_cipher())
                .expect("open");
        (dir, store)
    }
}
