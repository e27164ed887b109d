//! Row types: how accounts and requests are laid out in the tables.

use super::schema::{accounts, request_payloads, requests};
use crate::domain::{Account, AccountKind, Secret};
use crate::secrets::{Cipher, DecryptError};
use diesel::prelude::*;
use std::sync::Arc;

#[derive(Queryable, Selectable, Insertable, AsChangeset, Debug)]
#[diesel(table_name = accounts, treat_none_as_null = true)]
pub(crate) struct AccountRow {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub kind: String,
    pub api_key: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_at: Option<i64>,
    pub tier: i32,
    pub priority: i32,
    pub paused: bool,
    pub auth_failed: bool,
    pub rate_limited_until: Option<i64>,
    pub rate_limit_status: Option<String>,
    pub rate_limit_reset: Option<i64>,
    pub rate_limit_remaining: Option<i64>,
    pub utilization_5h: Option<f64>,
    pub utilization_7d: Option<f64>,
    pub session_start: Option<i64>,
    pub session_request_count: i64,
    pub request_count: i64,
    pub total_requests: i64,
    pub last_used: Option<i64>,
    pub created_at: i64,
    pub requires_reauth: bool,
    pub email: Option<String>,
    pub organization: Option<String>,
    pub base_url: Option<String>,
    /// JSON object.
    pub model_map: Option<String>,
}

impl AccountRow {
    /// The row for an account, its secrets encrypted.
    pub(crate) fn from_account(a: &Account, cipher: &Cipher) -> Self {
        let secret = |s: &Option<Secret>| s.as_ref().map(|s| cipher.encrypt(s.expose()));
        AccountRow {
            id: a.id.clone(),
            name: a.name.clone(),
            provider: a.provider.clone(),
            kind: a.kind.as_str().to_string(),
            api_key: secret(&a.api_key),
            access_token: secret(&a.access_token),
            refresh_token: secret(&a.refresh_token),
            expires_at: a.expires_at,
            tier: a.tier,
            priority: a.priority,
            paused: a.paused,
            auth_failed: a.auth_failed,
            rate_limited_until: a.rate_limited_until,
            rate_limit_status: a.rate_limit_status.clone(),
            rate_limit_reset: a.rate_limit_reset,
            rate_limit_remaining: a.rate_limit_remaining,
            utilization_5h: a.utilization_5h,
            utilization_7d: a.utilization_7d,
            session_start: a.session_start,
            session_request_count: a.session_request_count,
            request_count: a.request_count,
            total_requests: a.total_requests,
            last_used: a.last_used,
            created_at: a.created_at,
            requires_reauth: a.requires_reauth,
            email: a.email.clone(),
            organization: a.organization.clone(),
            base_url: a.base_url.clone(),
            model_map: a
                .model_map
                .as_ref()
                .and_then(|m| serde_json::to_string(m).ok()),
        }
    }

    /// `Ok(None)` for a row whose kind this version does not know (it is skipped with
    /// a warning); `Err` when a secret does not decrypt with this key.
    pub(crate) fn into_account(self, cipher: &Cipher) -> Result<Option<Account>, DecryptError> {
        let Some(kind) = AccountKind::parse(&self.kind) else {
            tracing::warn!(account = %self.name, kind = %self.kind, "skipping an account of unknown kind");
            return Ok(None);
        };
        let open = |s: Option<String>| -> Result<Option<Secret>, DecryptError> {
            s.map(|v| cipher.decrypt(&v).map(Secret::new)).transpose()
        };
        Ok(Some(Account {
            id: self.id,
            name: self.name,
            provider: self.provider,
            kind,
            api_key: open(self.api_key)?,
            access_token: open(self.access_token)?,
            refresh_token: open(self.refresh_token)?,
            expires_at: self.expires_at,
            tier: self.tier,
            priority: self.priority,
            paused: self.paused,
            auth_failed: self.auth_failed,
            rate_limited_until: self.rate_limited_until,
            cooldown_until: None,
            rate_limit_status: self.rate_limit_status,
            rate_limit_reset: self.rate_limit_reset,
            rate_limit_remaining: self.rate_limit_remaining,
            utilization_5h: self.utilization_5h,
            utilization_7d: self.utilization_7d,
            session_start: self.session_start,
            session_request_count: self.session_request_count,
            request_count: self.request_count,
            total_requests: self.total_requests,
            last_used: self.last_used,
            created_at: self.created_at,
            requires_reauth: self.requires_reauth,
            refresh_backoff_until: None,
            email: self.email,
            organization: self.organization,
            base_url: self.base_url,
            model_map: self.model_map.and_then(|m| serde_json::from_str(&m).ok()),
        }))
    }
}

/// One proxied request as recorded: who served it, how it went, what it used and cost.
#[derive(Queryable, Selectable, Insertable, Clone, Debug, PartialEq)]
#[diesel(table_name = requests, treat_none_as_default_value = false)]
pub struct RequestRecord {
    pub id: String,
    pub timestamp: i64,
    pub method: String,
    pub path: String,
    pub account_id: Option<String>,
    pub account_name: String,
    pub status_code: Option<i32>,
    pub success: bool,
    pub error_message: Option<String>,
    pub response_time_ms: i64,
    pub time_to_first_token_ms: Option<i64>,
    pub failover_attempts: i32,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_input_tokens: Option<i64>,
    pub cache_creation_input_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub output_tokens_per_second: Option<f64>,
    pub stream: bool,
    pub client_ip: Option<String>,
    /// The model the client asked for, when a model map sent another.
    pub requested_model: Option<String>,
    pub provider: Option<String>,
    /// The access key the request came in with (access control on).
    pub api_key_name: Option<String>,
    /// The daemon that answered (several share one PostgreSQL history).
    pub instance_id: Option<String>,
}

/// What went over the wire for one request, capped, with credential headers removed.
#[derive(Queryable, Selectable, Insertable, Clone, Debug, PartialEq)]
#[diesel(table_name = request_payloads, treat_none_as_default_value = false)]
pub struct RequestPayload {
    pub request_id: String,
    /// JSON object of header name → value.
    pub request_headers: String,
    pub request_body: Option<Blob>,
    pub response_headers: String,
    pub response_body: Option<Blob>,
    /// A body was longer than the capture limit and was cut.
    pub truncated: bool,
}

/// A stored body. It shares the buffer it was captured from, so a request body
/// (often hundreds of kB from Claude Code) is not copied to be stored; the proxy
/// copies only what would hold a larger buffer than itself (a small answer read
/// into the upstream connection's buffer). Read back, it owns its bytes.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Binary)]
pub struct Blob(pub bytes::Bytes);

impl std::ops::Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(v.into())
    }
}

impl<DB> diesel::serialize::ToSql<diesel::sql_types::Binary, DB> for Blob
where
    DB: diesel::backend::Backend,
    [u8]: diesel::serialize::ToSql<diesel::sql_types::Binary, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        <[u8] as diesel::serialize::ToSql<diesel::sql_types::Binary, DB>>::to_sql(&self.0, out)
    }
}

impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Binary, DB> for Blob
where
    DB: diesel::backend::Backend,
    Vec<u8>: diesel::deserialize::FromSql<diesel::sql_types::Binary, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        <Vec<u8> as diesel::deserialize::FromSql<diesel::sql_types::Binary, DB>>::from_sql(bytes)
            .map(Blob::from)
    }
}

/// A row shared with others (the live stats hold the same record) as one row of a
/// multi-row `INSERT`. Diesel prepares an insert from a `&[T; N]` once and reuses
/// the statement, found by type, when `T` is an owned type: this is that type.
pub(crate) struct SharedRow<T>(pub Arc<T>);

// Diesel's insert of a `&[T; N]` asks for `T: Insertable` as well as `&T`; the
// statement itself binds through the borrowed impl below.
impl<T, Tab> Insertable<Tab> for SharedRow<T>
where
    T: Insertable<Tab> + Clone,
{
    type Values = T::Values;

    fn values(self) -> Self::Values {
        Arc::unwrap_or_clone(self.0).values()
    }
}

impl<'a, T, Tab> Insertable<Tab> for &'a SharedRow<T>
where
    &'a T: Insertable<Tab>,
{
    type Values = <&'a T as Insertable<Tab>>::Values;

    fn values(self) -> Self::Values {
        (&*self.0).values()
    }
}
