//! Account writes that several instances can make to one database without
//! overwriting each other, and the cluster-wide lock around a token refresh.

use super::models::AccountRow;
use super::{schema, AnyConnection, AnyManager, Dialect, Store, StoreError};
use crate::domain::{Account, Secret};
use diesel::prelude::*;
use diesel::r2d2::PooledConnection;
use diesel::result::Error as DieselError;

/// One account as it was last stored and as it is now.
#[derive(Clone, Debug)]
pub struct AccountDelta {
    pub before: Account,
    pub after: Account,
}

fn exposed(s: &Option<Secret>) -> Option<&str> {
    s.as_ref().map(Secret::expose)
}

/// `Some(column = value)` when the value changed; diesel leaves `None` out of the SET.
macro_rules! changed {
    ($before:expr, $after:expr, $row:expr, $col:ident) => {
        ($before.$col != $after.$col).then(|| schema::accounts::$col.eq($row.$col.clone()))
    };
}

/// A counter: `+ delta` when it grew (other instances add their own), the value
/// itself when it went down (a reset).
macro_rules! counter {
    ($before:expr, $after:expr, $col:ident) => {
        (
            ($after.$col > $before.$col).then(|| {
                schema::accounts::$col.eq(schema::accounts::$col + ($after.$col - $before.$col))
            }),
            ($after.$col < $before.$col).then(|| schema::accounts::$col.eq($after.$col)),
        )
    };
}

impl Store {
    /// Writes only the columns each change touched, counters as increments, in one
    /// transaction. Instances sharing the database change different columns of one
    /// account (one benches it, another counts a request); writing whole rows
    /// would undo each other's changes.
    pub fn save_account_changes(&self, changes: &[AccountDelta]) -> Result<(), StoreError> {
        use schema::accounts::dsl;
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            for AccountDelta {
                before: b,
                after: a,
            } in changes
            {
                let row = AccountRow::from_account(a, &self.cipher);
                let creds_changed = exposed(&b.api_key) != exposed(&a.api_key)
                    || exposed(&b.access_token) != exposed(&a.access_token)
                    || exposed(&b.refresh_token) != exposed(&a.refresh_token)
                    || b.expires_at != a.expires_at
                    || b.kind != a.kind;
                let credentials = creds_changed.then(|| {
                    (
                        dsl::kind.eq(row.kind.clone()),
                        dsl::api_key.eq(row.api_key.clone()),
                        dsl::access_token.eq(row.access_token.clone()),
                        dsl::refresh_token.eq(row.refresh_token.clone()),
                        dsl::expires_at.eq(row.expires_at),
                    )
                });
                let settings = (
                    changed!(b, a, row, name),
                    changed!(b, a, row, tier),
                    changed!(b, a, row, priority),
                    changed!(b, a, row, paused),
                    changed!(b, a, row, auth_failed),
                    changed!(b, a, row, requires_reauth),
                    changed!(b, a, row, email),
                    changed!(b, a, row, organization),
                    changed!(b, a, row, base_url),
                    (b.model_map != a.model_map).then(|| dsl::model_map.eq(row.model_map.clone())),
                    (b.provider != a.provider).then(|| dsl::provider.eq(row.provider.clone())),
                );
                let limits = (
                    changed!(b, a, row, rate_limited_until),
                    changed!(b, a, row, rate_limit_status),
                    changed!(b, a, row, rate_limit_reset),
                    changed!(b, a, row, rate_limit_remaining),
                    changed!(b, a, row, utilization_5h),
                    changed!(b, a, row, utilization_7d),
                );
                // A new session restarts its counter: written as a value, not a delta.
                let session_restarted = b.session_start != a.session_start;
                let session = (
                    changed!(b, a, row, session_start),
                    session_restarted
                        .then(|| dsl::session_request_count.eq(a.session_request_count)),
                );
                let session_count = if session_restarted {
                    (None, None)
                } else {
                    counter!(b, a, session_request_count)
                };
                let counters = (
                    counter!(b, a, request_count),
                    counter!(b, a, total_requests),
                    session_count,
                    changed!(b, a, row, last_used),
                );
                let set = (credentials, settings, limits, session, counters);
                match diesel::update(dsl::accounts.filter(dsl::id.eq(&a.id)))
                    .set(set)
                    .execute(c)
                {
                    Ok(_) | Err(DieselError::QueryBuilderError(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, DieselError>(())
        })?;
        Ok(())
    }

    /// Writes an account's credentials and sign-in state at once (absolute values:
    /// a rotated refresh token must be stored before it is used).
    pub fn save_credentials(&self, a: &Account) -> Result<(), StoreError> {
        use schema::accounts::dsl;
        let row = AccountRow::from_account(a, &self.cipher);
        diesel::update(dsl::accounts.filter(dsl::id.eq(&a.id)))
            .set((
                dsl::kind.eq(row.kind),
                dsl::api_key.eq(row.api_key),
                dsl::access_token.eq(row.access_token),
                dsl::refresh_token.eq(row.refresh_token),
                dsl::expires_at.eq(row.expires_at),
                dsl::requires_reauth.eq(row.requires_reauth),
                dsl::auth_failed.eq(row.auth_failed),
                dsl::email.eq(row.email),
                dsl::organization.eq(row.organization),
            ))
            .execute(&mut self.conn()?)?;
        Ok(())
    }

    /// One account as stored now (after another instance may have changed it).
    pub fn load_account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        use schema::accounts::dsl;
        let row: Option<AccountRow> = dsl::accounts
            .filter(dsl::id.eq(id))
            .select(AccountRow::as_select())
            .first(&mut self.conn()?)
            .optional()?;
        match row {
            Some(row) => Ok(row.into_account(&self.cipher)?),
            None => Ok(None),
        }
    }

    /// Takes the cluster-wide lock on refreshing `account_id`'s tokens, waiting
    /// for another instance's refresh to finish; `None` with SQLite (one instance,
    /// whose refresher is already single-flight). The lock goes with the guard.
    pub fn lock_refresh(&self, account_id: &str) -> Result<Option<RefreshLock>, StoreError> {
        if self.dialect != Dialect::Postgres {
            return Ok(None);
        }
        let mut conn = self.conn()?;
        diesel::sql_query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(account_id)
            .execute(&mut *conn)?;
        Ok(Some(RefreshLock {
            conn: Some(conn),
            account_id: account_id.to_string(),
        }))
    }
}

/// A held refresh lock: a session-level advisory lock on its own pooled connection.
pub struct RefreshLock {
    conn: Option<PooledConnection<AnyManager>>,
    account_id: String,
}

impl RefreshLock {
    /// Lets the next instance refresh (blocking; call off the async workers).
    pub fn release(mut self) {
        self.unlock();
    }

    fn unlock(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let done = diesel::sql_query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(&self.account_id)
                .execute(&mut *conn);
            if let Err(e) = done {
                // The lock ends with the session: make sure this connection is not reused.
                tracing::warn!(error = %e, "releasing a refresh lock failed; closing its connection");
                if let AnyConnection::Postgres(pg) = &mut *conn {
                    use diesel::connection::SimpleConnection;
                    let _ = pg.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())");
                }
            }
        }
    }
}

impl Drop for RefreshLock {
    fn drop(&mut self) {
        self.unlock();
    }
}
