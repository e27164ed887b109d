//! The AccountRegistry actor: owns the account set, applies every change to it, keeps
//! the store in step, and publishes immutable snapshots to the StrategySelector.

use crate::clock::{now_ms, LogThrottle};
use crate::domain::{Account, AccountKind, Secret};
use crate::metrics::{AccountLabel, Metrics};
use crate::oauth::TokenSet;
use crate::protocol::RateLimitInfo;
use crate::selector::{AccountServed, AccountsServed, PoolUpdated, StrategySelector};
use crate::store::{blocking, AccountDelta, Dialect, Store, StoreError};
use actix::prelude::*;
use std::collections::{HashMap, HashSet};
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
    /// Accounts changed in memory since their last write.
    dirty: HashSet<String>,
    /// Each account as the store holds it (as far as this instance knows): a save
    /// writes only what differs from it, and a sync keeps local changes that
    /// differ from it.
    stored: HashMap<String, Account>,
    /// A periodic save is on its way (one at a time, so `stored` stays exact).
    saving: bool,
    /// Serializes writes of account state so that a later save never loses to an
    /// earlier one that finished late.
    save_lock: Arc<tokio::sync::Mutex<()>>,
    /// Bumped when any write starts; a sync read that overlapped one is dropped.
    writes_started: u64,
    /// Other instances share the store: read it back this often.
    sync_every: Option<Duration>,
    syncing: bool,
    /// Failed writes are logged once a minute (the database may be away a while;
    /// the writes are retried every interval meanwhile).
    failure_log: LogThrottle,
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
            stored: accounts.iter().map(|a| (a.id.clone(), a.clone())).collect(),
            store,
            accounts: accounts.into_iter().map(Arc::new).collect(),
            selector,
            session_duration_ms,
            dirty: HashSet::new(),
            saving: false,
            save_lock: Arc::new(tokio::sync::Mutex::new(())),
            writes_started: 0,
            sync_every: None,
            syncing: false,
            failure_log: LogThrottle::per_minute(),
            metrics: None,
        }
    }

    /// With a shared (PostgreSQL) store: learn other instances' changes this often.
    pub fn with_cluster_sync(mut self, every: Duration) -> Self {
        if self.store.dialect() == Dialect::Postgres {
            self.sync_every = Some(every);
        }
        self
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
        // Every served request updates its account: the id is copied once per save.
        if !self.dirty.contains(&account.id) {
            self.dirty.insert(account.id.clone());
        }
        self.accounts[i].clone()
    }

    fn publish(&self) {
        self.selector
            .do_send(PoolUpdated(Arc::new(self.accounts.clone())));
    }

    /// Writes what changed in the dirty accounts; resolves once it is stored. On a
    /// failure the accounts stay dirty and `stored` unchanged, so the next save
    /// writes everything since the last success (the database may come back).
    fn save_dirty(&mut self) -> ResponseActFuture<Self, Result<(), StoreError>> {
        if self.saving || self.dirty.is_empty() {
            return Box::pin(fut::ready(Ok(())));
        }
        let changes: Vec<AccountDelta> = self
            .dirty
            .drain()
            .filter_map(|id| {
                let after = Account::clone(self.accounts.iter().find(|a| a.id == id)?);
                let before = self.stored.get(&id)?.clone();
                (before != after).then_some(AccountDelta { before, after })
            })
            .collect();
        if changes.is_empty() {
            return Box::pin(fut::ready(Ok(())));
        }
        self.saving = true;
        self.writes_started += 1;
        let store = self.store.clone();
        let lock = self.save_lock.clone();
        Box::pin(
            async move {
                let _guard = lock.lock().await;
                let result = blocking({
                    let changes = changes.clone();
                    move || store.save_account_changes(&changes)
                })
                .await;
                (changes, result)
            }
            .into_actor(self)
            .map(|(changes, result), act, _| {
                act.saving = false;
                for d in changes {
                    match &result {
                        Ok(()) => {
                            if act.stored.contains_key(&d.after.id) {
                                act.stored.insert(d.after.id.clone(), d.after);
                            }
                        }
                        Err(_) => {
                            if act.index_of_id(&d.after.id).is_some() {
                                act.dirty.insert(d.after.id);
                            }
                        }
                    }
                }
                result
            }),
        )
    }

    /// Takes in what the store holds now (other instances' changes): a field this
    /// instance changed and has not written yet keeps its local value; counters
    /// keep the local requests not yet written on top of the stored total.
    fn merge_stored(&mut self, rows: Vec<Account>) {
        let mut changed = false;
        let ids: HashSet<&str> = rows.iter().map(|a| a.id.as_str()).collect();
        let before = self.accounts.len();
        self.accounts.retain(|a| ids.contains(a.id.as_str()));
        self.stored.retain(|id, _| ids.contains(id.as_str()));
        self.dirty.retain(|id| ids.contains(id.as_str()));
        changed |= self.accounts.len() != before;
        for row in rows {
            let Some(i) = self.index_of_id(&row.id) else {
                tracing::info!(account = %row.name, "account added by another instance");
                self.stored.insert(row.id.clone(), row.clone());
                self.accounts.push(Arc::new(row));
                changed = true;
                continue;
            };
            let base = self
                .stored
                .get(&row.id)
                .cloned()
                .unwrap_or_else(|| row.clone());
            let local = &self.accounts[i];
            let merged = merge_account(&base, local, &row);
            self.stored.insert(row.id.clone(), row);
            if &merged != local.as_ref() {
                self.accounts[i] = Arc::new(merged);
                changed = true;
            }
        }
        if changed {
            self.publish();
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
            if act.dirty.is_empty() || act.saving {
                return;
            }
            ctx.spawn(act.save_dirty().map(|res, act, _| {
                if let Err(e) = res {
                    act.log_write_failure(&e);
                }
            }));
        });
        if let Some(every) = self.sync_every {
            ctx.run_interval(every, |act, ctx| act.sync(ctx));
        }
    }
}

impl AccountRegistry {
    fn log_write_failure(&mut self, e: &StoreError) {
        if self.failure_log.due() {
            tracing::error!(error = %e, "saving account state failed; keeping it and retrying");
        }
    }

    /// With other instances sharing the store, a change that decides where
    /// requests go (a bench, a pause, a session) is written now rather than at
    /// the next tick, so they learn of it within one sync interval.
    fn save_soon(&mut self, ctx: &mut Context<Self>) {
        if self.sync_every.is_some() && !self.saving {
            ctx.spawn(self.save_dirty().map(|res, act, _| {
                if let Err(e) = res {
                    act.log_write_failure(&e);
                }
            }));
        }
    }

    /// Reads the shared accounts back and merges them, unless a write of ours
    /// overlapped the read (the next round will see it).
    fn sync(&mut self, ctx: &mut Context<Self>) {
        if self.syncing || self.saving {
            return;
        }
        self.syncing = true;
        let started_at = self.writes_started;
        let store = self.store.clone();
        ctx.spawn(
            async move { blocking(move || store.load_accounts()).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.syncing = false;
                    match res {
                        Ok(rows) if act.writes_started == started_at && !act.saving => {
                            act.merge_stored(rows)
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "reading shared account state failed")
                        }
                    }
                }),
        );
    }
}

/// Three-way merge of one account: `base` as last stored, `local` with this
/// instance's unwritten changes, `stored` as the store holds it now.
fn merge_account(base: &Account, local: &Account, stored: &Account) -> Account {
    let mut m = local.clone();
    macro_rules! take {
        ($($f:ident),*) => { $( if local.$f == base.$f { m.$f = stored.$f.clone(); } )* };
    }
    take!(
        name,
        provider,
        kind,
        api_key,
        access_token,
        refresh_token,
        expires_at,
        tier,
        priority,
        paused,
        auth_failed,
        rate_limited_until,
        rate_limit_status,
        rate_limit_reset,
        rate_limit_remaining,
        utilization_5h,
        utilization_7d,
        session_start,
        last_used,
        requires_reauth,
        email,
        organization,
        base_url,
        model_map
    );
    let counter = |l: i64, b: i64, s: i64| s + (l - b).max(0);
    m.request_count = counter(
        local.request_count,
        base.request_count,
        stored.request_count,
    );
    m.total_requests = counter(
        local.total_requests,
        base.total_requests,
        stored.total_requests,
    );
    m.session_request_count = if local.session_start != base.session_start {
        local.session_request_count
    } else {
        counter(
            local.session_request_count,
            base.session_request_count,
            stored.session_request_count,
        )
    };
    m
}

impl AccountRegistry {}

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
        self.writes_started += 1;
        Box::pin(
            async move { blocking(move || store.insert_account(&row)).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    res?;
                    act.stored.insert(account.id.clone(), account.clone());
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
        let removed = self.accounts[i].clone();
        let store = self.store.clone();
        self.writes_started += 1;
        Box::pin(
            async move { blocking(move || store.delete_account(&id).map(|_| id)).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    let id = res?;
                    // A sync may already have dropped it (the row is gone).
                    let removed = match act.index_of_id(&id) {
                        Some(i) => act.accounts.remove(i),
                        None => removed,
                    };
                    act.dirty.remove(&id);
                    act.stored.remove(&id);
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

    fn handle(&mut self, msg: ChangeAccount, ctx: &mut Self::Context) -> Self::Result {
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
        self.save_soon(ctx);
        tracing::info!(account = %account.name, change = ?msg.change, "account changed");
        Ok(account)
    }
}

/// The limits a failed upstream answer reported, kept for display. A successful
/// answer's limits travel in its [`RecordUse`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct RateLimitObserved {
    pub account_id: String,
    pub info: RateLimitInfo,
}

impl Handler<RateLimitObserved> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: RateLimitObserved, _: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            self.observe(i, msg.info, false);
        }
    }
}

impl AccountRegistry {
    /// Keeps the limits an answer reported; a successful answer also clears a bench
    /// that has run out.
    fn observe(&mut self, i: usize, info: RateLimitInfo, success: bool) {
        let now = now_ms();
        let current = &self.accounts[i];
        let expired_mark = success && current.rate_limited_until.is_some_and(|u| u <= now);
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

    fn handle(&mut self, msg: RateLimitMark, ctx: &mut Self::Context) {
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
            self.save_soon(ctx);
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

    fn handle(&mut self, msg: AuthFailedMark, ctx: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            let a = self.update(i, |a| a.auth_failed = true);
            tracing::warn!(account = %a.name, "upstream refused the account's credential; it is out of rotation until resumed");
            self.publish();
            self.save_soon(ctx);
        }
    }
}

/// An account served a request: counters, last use, and the selector learns of it.
#[derive(Debug)]
pub struct RecordUse {
    pub account_id: String,
    /// The client's session key, for strategies that stick per client.
    pub session_key: Option<String>,
    pub at_ms: i64,
    /// The limits of the successful answer being served, here rather than in a
    /// message of their own: one message per successful request fewer.
    pub observed: Option<RateLimitInfo>,
}

/// The requests served since the last of these, oldest first: the logger passes on
/// what the proxy's workers queued in the intake ([`crate::intake`]), one message per
/// drain, and the selector gets them on as one message too.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordUses(pub Vec<RecordUse>);

impl Handler<RecordUses> for AccountRegistry {
    type Result = ();

    fn handle(&mut self, msg: RecordUses, _: &mut Self::Context) {
        let mut served = Vec::with_capacity(msg.0.len());
        for used in msg.0 {
            if let Some(i) = self.index_of_id(&used.account_id) {
                if let Some(info) = used.observed {
                    self.observe(i, info, true);
                }
                self.update(i, |a| {
                    a.request_count += 1;
                    a.total_requests += 1;
                    a.last_used = Some(used.at_ms);
                    if a.session_start.is_some() {
                        a.session_request_count += 1;
                    }
                });
            }
            served.push(AccountServed {
                account_id: used.account_id,
                session_key: used.session_key,
                at_ms: used.at_ms,
            });
        }
        if !served.is_empty() {
            self.selector.do_send(AccountsServed(served));
        }
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

    fn handle(&mut self, msg: SessionStarted, ctx: &mut Self::Context) {
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
        self.save_soon(ctx);
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
        self.publish();
        self.writes_started += 1;
        let store = self.store.clone();
        let lock = self.save_lock.clone();
        let row = Account::clone(&account);
        Box::pin(
            async move {
                let _guard = lock.lock().await;
                blocking(move || store.save_credentials(&row)).await
            }
            .into_actor(self)
            .map(move |res, act, _| {
                match &res {
                    // The periodic save need not write these columns again.
                    Ok(()) => {
                        if let Some(stored) = act.stored.get_mut(&account.id) {
                            copy_credentials(&account, stored);
                        }
                    }
                    // The tokens stay in memory and in use, and the account stays
                    // dirty: the next periodic save writes them.
                    Err(e) => {
                        tracing::error!(account = %account.name, error = %e, "storing new tokens failed")
                    }
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

    fn handle(&mut self, msg: RequiresReauthMark, ctx: &mut Self::Context) {
        if let Some(i) = self.index_of_id(&msg.account_id) {
            let a = self.update(i, |a| a.requires_reauth = true);
            tracing::warn!(account = %a.name, "the refresh token was refused; the account needs a new sign-in");
            self.publish();
            self.save_soon(ctx);
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
    type Result = ResponseActFuture<Self, Result<(), StoreError>>;

    fn handle(&mut self, _: PersistNow, _: &mut Self::Context) -> Self::Result {
        // A save already on its way holds the lock: wait for it, then write the rest.
        let lock = self.save_lock.clone();
        Box::pin(
            async move {
                drop(lock.lock().await);
            }
            .into_actor(self)
            .then(|_, act, _| act.save_dirty()),
        )
    }
}

/// The columns [`Store::save_credentials`] writes.
fn copy_credentials(from: &Account, to: &mut Account) {
    to.kind = from.kind;
    to.api_key.clone_from(&from.api_key);
    to.access_token.clone_from(&from.access_token);
    to.refresh_token.clone_from(&from.refresh_token);
    to.expires_at = from.expires_at;
    to.requires_reauth = from.requires_reauth;
    to.auth_failed = from.auth_failed;
    to.email.clone_from(&from.email);
    to.organization.clone_from(&from.organization);
}
