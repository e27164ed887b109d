//! The AccountRegistry actor: owns the account set, applies every change to it, keeps
//! the store in step, and publishes immutable snapshots to the StrategySelector.

use crate::clock::now_ms;
use crate::domain::{Account, AccountKind, Secret};
use crate::metrics::{AccountLabel, Metrics};
use crate::oauth::TokenSet;
use crate::protocol::RateLimitInfo;
use crate::selector::{AccountServed, PoolUpdated, StrategySelector};
use crate::store::{blocking, Store, StoreError};
use actix::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How often changed account state (counters, marks) is written to the store.
const PERSIST_INTERVAL: Duration = Duration::from_millis(250);

/// Failures of account operations, mapped to HTTP statuses by the API.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("no account {0:?}")]
    NotFound(String),
    #[error("an account named {0:?} already exists")]
    DuplicateName(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateName(n) => RegistryError::DuplicateName(n),
            other => RegistryError::Store(other),
        }
    }
}

/// The registry; see the module docs.
pub struct AccountRegistry {
    store: Store,
    accounts: Vec<Arc<Account>>,
    selector: Addr<StrategySelector>,
    session_duration_ms: i64,
    dirty: HashSet<String>,
    /// Serializes writes of account state so that a later save never loses to an
    /// earlier one that finished late.
    save_lock: Arc<tokio::sync::Mutex<()>>,
    metrics: Option<Arc<Metrics>>,
}

impl AccountRegistry {
    pub fn new(
        store: Store,
        accounts: Vec<Account>,
        selector: Addr<StrategySelector>,
        session_duration_ms: i64,
    ) -> Self {
        Self {
            store,
            accounts: accounts.into_iter().map(Arc::new).collect(),
            selector,
            session_duration_ms,
            dirty: HashSet::new(),
            save_lock: Arc::new(tokio::sync::Mutex::new(())),
            metrics: None,
        }
    }

    /// Where rate-limit events are counted.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn index(&self, id_or_name: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| a.id == id_or_name)
            .or_else(|| self.accounts.iter().position(|a| a.name == id_or_name))
    }

    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a.id == id)
    }

    /// Applies `change` to one account and marks it for saving.
    fn update(&mut self, i: usize, change: impl FnOnce(&mut Account)) -> Arc<Account> {
        let account = Arc::make_mut(&mut self.accounts[i]);
        change(account);
        self.dirty.insert(account.id.clone());
        self.accounts[i].clone()
    }

    fn publish(&self) {
        self.selector
            .do_send(PoolUpdated(Arc::new(self.accounts.clone())));
    }

    /// Writes the dirty accounts; the returned future resolves once they are stored.
    fn save_dirty(&mut self) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let changed: Vec<Account> = self
            .dirty
            .drain()
            .filter_map(|id| {
                self.accounts
                    .iter()
                    .find(|a| a.id == id)
                    .map(|a| Account::clone(a))
            })
            .collect();
        let store = self.store.clone();
        let lock = self.save_lock.clone();
        async move {
            if changed.is_empty() {
                return Ok(());
            }
            let _guard = lock.lock().await;
            blocking(move || store.save_accounts(&changed)).await
        }
    }

    fn is_session_active(&self, a: &Account, now: i64) -> bool {
        a.session_start
            .is_some_and(|s| now - s < self.session_duration_ms)
    }
}

impl Actor for AccountRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish();
        ctx.run_interval(PERSIST_INTERVAL, |act, ctx| {
            if act.dirty.is_empty() {
                return;
            }
            let save = act.save_dirty();
            ctx.spawn(save.into_actor(act).map(|res, _, _| {
                if let Err(e) = res {
                    tracing::error!(error = %e, "saving account state failed");
                }
            }));
        });
    }
}

/// The accounts as the API shows them, each with whether it holds the active session.
#[derive(Message)]
#[rtype(result = "Vec<(Arc<Account>, bool)>")]
pub struct ListAccounts;

impl Handler<ListAccounts> for AccountRegistry {
    type Result = MessageResult<ListAccounts>;

    fn handle(&mut self, _: ListAccounts, _: &mut Self::Context) -> Self::Result {
        let now = now_ms();
        MessageResult(
            self.accounts
                .iter()
                .map(|a| (a.clone(), self.is_session_active(a, now)))
                .collect(),
        )
    }
}

/// The credential a new or re-authenticated account comes with.
#[derive(Clone, Debug)]
pub enum NewCredentials {
    ApiKey(Secret),
    OAuth(TokenSet),
}

impl NewCredentials {
    /// Puts the credential on an account, replacing the other kind's.
    fn apply(self, a: &mut Account) {
        match self {
            NewCredentials::ApiKey(key) => {
                a.kind = AccountKind::ApiKey;
                a.api_key = Some(key);
                a.access_token = None;
                a.refresh_token = None;
                a.expires_at = None;
            }
            NewCredentials::OAuth(tokens) => {
                a.kind = AccountKind::Oauth;
                a.api_key = None;
                apply_tokens(a, tokens);
            }
        }
    }
}

fn apply_tokens(a: &mut Account, t: TokenSet) {
    a.access_token = t.access_token;
    a.refresh_token = Some(t.refresh_token);
    a.expires_at = t.expires_at;
    if t.email.is_some() {
        a.email = t.email;
    }
    if t.organization.is_some() {
        a.organization = t.organization;
    }
    a.refresh_backoff_until = None;
}

/// A new account, validated by the caller.
#[derive(Message)]
#[rtype(result = "Result<Arc<Account>, RegistryError>")]
pub struct AddAccount {
    pub name: String,
    pub credentials: NewCredentials,
    pub tier: i32,
    pub priority: i32,
    /// One of `providers::PRESETS` (validated by the caller).
    pub provider: String,
    pub base_url: Option<String>,
    pub model_map: Option<std::collections::BTreeMap<String, String>>,
}

impl Handler<AddAccount> for AccountRegistry {
    type Result = ResponseActFuture<Self, Result<Arc<Account>, RegistryError>>;

    fn handle(&mut self, msg: AddAccount, _: &mut Self::Context) -> Self::Result {
        if self.accounts.iter().any(|a| a.name == msg.name) {
            return Box::pin(fut::ready(Err(RegistryError::DuplicateName(msg.name))));
        }
        let mut account = Account::new(
            uuid::Uuid::now_v7().to_string(),
            msg.name,
            AccountKind::ApiKey,
            now_ms(),
        );
        msg.credentials.apply(&mut account);
        account.provider = msg.provider;
        account.base_url = msg.base_url;
        account.model_map = msg.model_map;
        account.tier = msg.tier;
        account.priority = msg.priority;
        let store = self.store.clone();
        let row = account.clone();
        Box::pin(
            async move { blocking(move || store.insert_account(&row)).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    res?;
                    let account = Arc::new(account);
                    act.accounts.push(account.clone());
                    act.publish();
                    tracing::info!(account = %account.name, "account added");
                    Ok(account)
                }),
        )
    }
}

/// Removes an account (by id or name); its request history stays.
#[derive(Message)]
#[rtype(result = "Result<Arc<Account>, RegistryError>")]
pub struct RemoveAccount {
    pub id_or_name: String,
}

impl Handler<RemoveAccount> for AccountRegistry {
    type Result = ResponseActFuture<Self, Result<Arc<Account>, RegistryError>>;

    fn handle(&mut self, msg: RemoveAccount, _: &mut Self::Context) -> Self::Result {
        let Some(i) = self.index(&msg.id_or_name) else {
            return Box::pin(fut::ready(Err(RegistryError::NotFound(msg.id_or_name))));
        };
        let id = self.accounts[i].id.clone();
        let store = self.store.clone();
        Box::pin(
            async move { blocking(move || store.delete_account(&id).map(|_| id)).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    let id = res?;
                    let i = act
                        .index_of_id(&id)
                        .ok_or_else(|| RegistryError::NotFound(id.clone()))?;
                    let removed = act.accounts.remove(i);
                    act.dirty.remove(&id);
                    act.publish();
                    tracing::info!(account = %removed.name, "account removed");
                    Ok(removed)
                }),
        )
    }
}

/// A change an operator makes to an account's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountChange {
    Pause,
    /// Back into rotation; also clears a refused-credential mark, so a fixed account
    /// comes back in one step.
    Resume,
    /// Validated by the caller against `domain::TIERS`.
    Tier(i32),
    /// Validated by the caller (0..=100, lower is preferred).
    Priority(i32),
    /// Validated by the caller; must not be another account's name.
    Rename(String),
    /// Clears a rate-limit bench, a cooldown and a refresh backoff now.
    ResetRateLimit,
}

/// Applies an operator's change to one account (by id or name).
#[derive(Message)]
#[rtype(result = "Result<Arc<Account>, RegistryError>")]
pub struct ChangeAccount {
    pub id_or_name: String,
    pub change: AccountChange,
}

impl Handler<ChangeAccount> for AccountRegistry {
    type Result = Result<Arc<Account>, RegistryError>;

    fn handle(&mut self, msg: ChangeAccount, _: &mut Self::Context) -> Self::Result {
        let i = self
            .index(&msg.id_or_name)
            .ok_or(RegistryError::NotFound(msg.id_or_name))?;
        if let AccountChange::Rename(name) = &msg.change {
            let taken = self
                .accounts
                .iter()
                .enumerate()
                .any(|(j, a)| j != i && &a.name == name);
            if taken {
                return Err(RegistryError::DuplicateName(name.clone()));
            }
        }
        let change = msg.change.clone();
        let account = self.update(i, |a| match change {
            AccountChange::Pause => a.paused = true,
            AccountChange::Resume => {
                a.paused = false;
                a.auth_failed = false;
            }
            AccountChange::Tier(t) => a.tier = t,
            AccountChange::Priority(p) => a.priority = p,
            AccountChange::Rename(name) => a.name = name,
            AccountChange::ResetRateLimit => {
                a.rate_limited_until = None;
                a.cooldown_until = None;
                a.refresh_backoff_until = None;
                a.rate_limit_status = None;
            }
        });
        self.publish();
        tracing::info!(account = %account.name, change = ?msg.change, "account changed");
        Ok(account)
    }
}

/// The limits an upstream response reported, kept for display. A successful answer
/// also clears a bench that has run out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RateLimitObserved {
    pub account_id: String,
    pub info: RateLimitInfo,
    pub success: bool,
}

impl Handler<RateLimitObserved> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: RateLimitObserved, _: &mut Self::Context) {
        let Some(i) = self.index_of_id(&msg.account_id) else {
            return;
        };
        let now = now_ms();
        let current = &self.accounts[i];
        let info = msg.info;
        let expired_mark = msg.success && current.rate_limited_until.is_some_and(|u| u <= now);
        let changes = info.has_limit_headers
            && (current.rate_limit_status != info.status
                || current.rate_limit_reset != info.reset_ms
                || current.rate_limit_remaining != info.remaining
                || current.utilization_5h != info.utilization_5h
                || current.utilization_7d != info.utilization_7d);
        if !changes && !expired_mark {
            return;
        }
        self.update(i, |a| {
            if info.has_limit_headers {
                a.rate_limit_status = info.status;
                a.rate_limit_reset = info.reset_ms;
                a.rate_limit_remaining = info.remaining;
                if info.utilization_5h.is_some() {
                    a.utilization_5h = info.utilization_5h;
                }
                if info.utilization_7d.is_some() {
                    a.utilization_7d = info.utilization_7d;
                }
            }
            if expired_mark {
                a.rate_limited_until = None;
            }
        });
    }
}

/// Benches an account until its rate-limit window resets.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RateLimitMark {
    pub account_id: String,
    pub until_ms: i64,
}

impl Handler<RateLimitMark> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: RateLimitMark, _: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            let a = self.update(i, |a| a.rate_limited_until = Some(msg.until_ms));
            if let Some(m) = &self.metrics {
                m.rate_limit_events
                    .get_or_create(&AccountLabel {
                        account: a.name.clone(),
                    })
                    .inc();
            }
            tracing::warn!(account = %a.name, until_ms = msg.until_ms, "account rate-limited");
            self.publish();
        }
    }
}

/// A short pause after an overloaded (529) answer; kept in memory only.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CooldownMark {
    pub account_id: String,
    pub until_ms: i64,
}

impl Handler<CooldownMark> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: CooldownMark, _: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            let account = Arc::make_mut(&mut self.accounts[i]);
            account.cooldown_until = Some(msg.until_ms);
            self.publish();
        }
    }
}

/// The upstream refused the account's credential (401/403).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AuthFailedMark {
    pub account_id: String,
}

impl Handler<AuthFailedMark> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: AuthFailedMark, _: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            let a = self.update(i, |a| a.auth_failed = true);
            tracing::warn!(account = %a.name, "upstream refused the account's credential; it is out of rotation until resumed");
            self.publish();
        }
    }
}

/// An account served a request: counters, last use, and the selector learns of it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordUse {
    pub account_id: String,
    /// The client's session key, for strategies that stick per client.
    pub session_key: Option<String>,
    pub at_ms: i64,
}

impl Handler<RecordUse> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: RecordUse, _: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            self.update(i, |a| {
                a.request_count += 1;
                a.total_requests += 1;
                a.last_used = Some(msg.at_ms);
                if a.session_start.is_some() {
                    a.session_request_count += 1;
                }
            });
        }
        self.selector.do_send(AccountServed {
            account_id: msg.account_id,
            session_key: msg.session_key,
            at_ms: msg.at_ms,
        });
    }
}

/// The selector started a new session on an account: stored so it survives a restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionStarted {
    pub account_id: String,
    pub at_ms: i64,
}

impl Handler<SessionStarted> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: SessionStarted, _: &mut Self::Context) {
        for i in 0..self.accounts.len() {
            let is_new = self.accounts[i].id == msg.account_id;
            if is_new {
                let a = self.update(i, |a| {
                    a.session_start = Some(msg.at_ms);
                    a.session_request_count = 1;
                });
                tracing::info!(account = %a.name, "new session started");
            } else if self.accounts[i].session_start.is_some() {
                self.update(i, |a| {
                    a.session_start = None;
                    a.session_request_count = 0;
                });
            }
        }
    }
}

impl AccountRegistry {
    /// Applies a change and writes it before answering: for tokens, which must be
    /// stored before they are used (a rotated refresh token exists nowhere else).
    fn update_durably(
        &mut self,
        i: usize,
        change: impl FnOnce(&mut Account),
    ) -> ResponseActFuture<Self, Result<Arc<Account>, RegistryError>> {
        let account = self.update(i, change);
        self.dirty.remove(&account.id);
        self.publish();
        let store = self.store.clone();
        let lock = self.save_lock.clone();
        let row = Account::clone(&account);
        Box::pin(
            async move {
                let _guard = lock.lock().await;
                blocking(move || store.save_accounts(&[row])).await
            }
            .into_actor(self)
            .map(move |res, _, _| {
                if let Err(e) = &res {
                    // The tokens stay in memory and in use; the next save retries.
                    tracing::error!(account = %account.name, error = %e, "storing new tokens failed");
                }
                Ok(account)
            }),
        )
    }
}

/// A refresh succeeded: the new tokens, stored before anyone uses them.
#[derive(Message)]
#[rtype(result = "Result<Arc<Account>, RegistryError>")]
pub struct TokensRefreshed {
    pub account_id: String,
    pub tokens: TokenSet,
}

impl Handler<TokensRefreshed> for AccountRegistry {
    type Result = ResponseActFuture<Self, Result<Arc<Account>, RegistryError>>;

    fn handle(&mut self, msg: TokensRefreshed, _: &mut Self::Context) -> Self::Result {
        let Some(i) = self.index_of_id(&msg.account_id) else {
            return Box::pin(fut::ready(Err(RegistryError::NotFound(msg.account_id))));
        };
        self.update_durably(i, |a| apply_tokens(a, msg.tokens))
    }
}

/// A new sign-in for an existing account: new credentials, same id, stats and
/// settings; the re-authentication and refused-credential marks are cleared.
#[derive(Message)]
#[rtype(result = "Result<Arc<Account>, RegistryError>")]
pub struct Reauthenticated {
    pub id_or_name: String,
    pub credentials: NewCredentials,
}

impl Handler<Reauthenticated> for AccountRegistry {
    type Result = ResponseActFuture<Self, Result<Arc<Account>, RegistryError>>;

    fn handle(&mut self, msg: Reauthenticated, _: &mut Self::Context) -> Self::Result {
        let Some(i) = self.index(&msg.id_or_name) else {
            return Box::pin(fut::ready(Err(RegistryError::NotFound(msg.id_or_name))));
        };
        tracing::info!(account = %self.accounts[i].name, "account signed in again");
        self.update_durably(i, |a| {
            msg.credentials.apply(a);
            a.requires_reauth = false;
            a.auth_failed = false;
        })
    }
}

/// The refresh token was refused for good: the account needs a new sign-in.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequiresReauthMark {
    pub account_id: String,
}

impl Handler<RequiresReauthMark> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: RequiresReauthMark, _: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            let a = self.update(i, |a| a.requires_reauth = true);
            tracing::warn!(account = %a.name, "the refresh token was refused; the account needs a new sign-in");
            self.publish();
        }
    }
}

/// A refresh failed for a passing reason: skip the account until `until_ms`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RefreshFailedMark {
    pub account_id: String,
    pub until_ms: i64,
}

impl Handler<RefreshFailedMark> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: RefreshFailedMark, _: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            Arc::make_mut(&mut self.accounts[i]).refresh_backoff_until = Some(msg.until_ms);
            self.publish();
        }
    }
}

/// Zeroes every account's per-period request counter (stats reset); lifetime
/// totals stay.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResetCounters;

impl Handler<ResetCounters> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, _: ResetCounters, _: &mut Self::Context) {
        for i in 0..self.accounts.len() {
            if self.accounts[i].request_count != 0 {
                self.update(i, |a| a.request_count = 0);
            }
        }
    }
}

/// Writes every pending change now (at shutdown).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PersistNow;

impl Handler<PersistNow> for AccountRegistry {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, _: PersistNow, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.save_dirty())
    }
}
