//! The TokenRefresher actor: hands out a usable credential for an account, and keeps
//! OAuth access tokens fresh with exactly one refresh in flight per account.
//!
//! Every request that needs an account's token while its refresh runs waits for that
//! one result (a shared future per account); different accounts refresh in parallel.
//! New tokens are stored by the registry before they are handed out. A refused
//! refresh token marks the account for re-authentication; any other failure skips
//! the account for a backoff instead of hammering the endpoint.

use crate::clock::now_ms;
use crate::domain::{Account, AccountKind, Credential, Secret};
use crate::oauth::{self, OAuthEndpoints, TokenError, TokenSet};
use crate::registry::{AccountRegistry, RefreshFailedMark, RequiresReauthMark, TokensRefreshed};
use crate::store::{blocking, RefreshLock, Store};
use actix::prelude::*;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use std::collections::HashMap;
use std::sync::Arc;

/// Why no credential could be handed out; the proxy skips the account with this reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("the account has no credential stored")]
    Missing,
    #[error("token refresh failed: {0}")]
    RefreshFailed(String),
    #[error("the refresh token was refused; the account needs a new sign-in")]
    NeedsReauth,
}

/// When to refresh and how long to back off.
#[derive(Clone, Debug)]
pub struct RefreshSettings {
    pub endpoints: OAuthEndpoints,
    /// Refresh when the access token expires within this window.
    pub window_ms: i64,
    /// Skip an account this long after a failed refresh.
    pub failure_backoff_ms: i64,
}

type RefreshFuture = Shared<LocalBoxFuture<'static, Result<TokenSet, CredentialError>>>;

/// The refresher; see the module docs.
pub struct TokenRefresher {
    settings: Arc<RefreshSettings>,
    registry: Addr<AccountRegistry>,
    client: awc::Client,
    in_flight: HashMap<String, RefreshFuture>,
    /// The newest tokens this actor obtained, ahead of the pool snapshots that the
    /// proxy hands in (a snapshot may still carry an already-rotated refresh token).
    latest: HashMap<String, TokenSet>,
    /// A shared (PostgreSQL) store: refreshes take its per-account lock.
    cluster: Option<Store>,
}

impl TokenRefresher {
    pub fn new(settings: RefreshSettings, registry: Addr<AccountRegistry>) -> Self {
        Self {
            settings: Arc::new(settings),
            registry,
            client: awc::Client::builder().disable_redirects().finish(),
            in_flight: HashMap::new(),
            latest: HashMap::new(),
            cluster: None,
        }
    }

    /// With a store shared by several instances: each refresh takes the store's
    /// per-account lock and first re-reads the tokens, which another instance may
    /// have just refreshed. With the single flight inside each instance that makes
    /// one refresh per account cluster-wide.
    pub fn with_cluster_lock(mut self, store: Store) -> Self {
        if store.dialect() == crate::store::Dialect::Postgres {
            self.cluster = Some(store);
        }
        self
    }

    /// The account's tokens: the snapshot's, unless this actor has newer ones.
    fn current_tokens(&self, account: &Account) -> (Option<Secret>, Option<Secret>, Option<i64>) {
        let snapshot = (
            account.access_token.clone(),
            account.refresh_token.clone(),
            account.expires_at,
        );
        match self.latest.get(&account.id) {
            Some(t) if t.expires_at >= account.expires_at => (
                t.access_token.clone(),
                Some(t.refresh_token.clone()),
                t.expires_at,
            ),
            _ => snapshot,
        }
    }

    /// The credential of an API-key account, or of an OAuth account whose access
    /// token is good for longer than `window_ms` (no actor needed).
    pub fn ready_credential(account: &Account, now: i64, window_ms: i64) -> Option<Credential> {
        match account.kind {
            AccountKind::ApiKey => account.api_key.clone().map(Credential::ApiKey),
            AccountKind::Oauth => match (&account.access_token, account.expires_at) {
                (Some(token), Some(at)) if at - now > window_ms => {
                    Some(Credential::Bearer(token.clone()))
                }
                (Some(token), None) => Some(Credential::Bearer(token.clone())),
                _ => None,
            },
        }
    }

    fn start_refresh(
        &mut self,
        account: &Account,
        refresh_token: Secret,
        rejected: Option<Secret>,
        ctx: &mut Context<Self>,
    ) -> RefreshFuture {
        let settings = self.settings.clone();
        let registry = self.registry.clone();
        let client = self.client.clone();
        let cluster = self.cluster.clone();
        let id = account.id.clone();
        let name = account.name.clone();
        let backoff = self.settings.failure_backoff_ms;
        let refresh = async move {
            let mut refresh_token = refresh_token;
            let mut lock = None;
            if let Some(store) = cluster {
                match cluster_check(&store, &id, &settings, rejected.as_ref()).await {
                    ClusterCheck::Fresh(tokens) => {
                        tracing::info!(account = %name, "another instance refreshed the token; using it");
                        return store_tokens(&registry, &id, tokens).await;
                    }
                    ClusterCheck::Refresh { guard, stored } => {
                        lock = guard;
                        if let Some(stored) = stored {
                            // Rotated elsewhere: ours was spent.
                            refresh_token = stored;
                        }
                    }
                }
            }
            let outcome = refresh_once(&client, &settings, &registry, &id, &name, backoff, &refresh_token).await;
            if let Some(lock) = lock {
                // After the new tokens are stored, so the next instance reads them.
                let _ = blocking(move || {
                    lock.release();
                    Ok(())
                })
                .await;
            }
            outcome
        }
        .boxed_local()
        .shared();
        self.in_flight.insert(account.id.clone(), refresh.clone());

        let id = account.id.clone();
        ctx.spawn(refresh.clone().into_actor(self).map(move |result, act, _| {
            act.in_flight.remove(&id);
            if let Ok(tokens) = result {
                act.latest.insert(id, tokens);
            }
        }));
        refresh
    }
}

/// What the shared store says before a refresh.
enum ClusterCheck {
    /// Another instance refreshed moments ago: use its tokens.
    Fresh(TokenSet),
    /// Refresh under the lock (if it could be taken), with the stored refresh
    /// token when it differs from this instance's.
    Refresh {
        guard: Option<RefreshLock>,
        stored: Option<Secret>,
    },
}

/// Takes the account's cluster lock and re-reads its tokens. If the database is
/// away the refresh goes ahead without the lock: a request is worth more than the
/// small chance of a second refresh elsewhere.
async fn cluster_check(
    store: &Store,
    id: &str,
    settings: &RefreshSettings,
    rejected: Option<&Secret>,
) -> ClusterCheck {
    let (store, account_id) = (store.clone(), id.to_string());
    let read = blocking(move || {
        let guard = store.lock_refresh(&account_id)?;
        let stored = store.load_account(&account_id)?;
        Ok((guard, stored))
    })
    .await;
    let (guard, stored) = match read {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the cluster refresh lock; refreshing without it");
            return ClusterCheck::Refresh {
                guard: None,
                stored: None,
            };
        }
    };
    let Some(stored) = stored else {
        return ClusterCheck::Refresh {
            guard,
            stored: None,
        };
    };
    let now = now_ms();
    if let (Some(access), Some(refresh)) = (&stored.access_token, &stored.refresh_token) {
        let fresh = stored
            .expires_at
            .is_none_or(|at| at - now > settings.window_ms);
        if fresh && Some(access) != rejected {
            drop(guard);
            return ClusterCheck::Fresh(TokenSet {
                access_token: Some(access.clone()),
                refresh_token: refresh.clone(),
                expires_at: stored.expires_at,
                email: stored.email.clone(),
                organization: stored.organization.clone(),
            });
        }
    }
    ClusterCheck::Refresh {
        guard,
        stored: stored.refresh_token,
    }
}

/// One call to the token endpoint; marks the account on failure and stores the
/// new tokens (through the registry) on success, before anyone uses them.
async fn refresh_once(
    client: &awc::Client,
    settings: &RefreshSettings,
    registry: &Addr<AccountRegistry>,
    id: &str,
    name: &str,
    backoff: i64,
    refresh_token: &Secret,
) -> Result<TokenSet, CredentialError> {
    tracing::info!(account = %name, "refreshing the OAuth access token");
    let tokens = match oauth::refresh(client, &settings.endpoints, refresh_token).await {
        Ok(tokens) => tokens,
        Err(e) => {
            // Marked before anyone hears of the failure, so that no later request is
            // offered the account (or starts another refresh).
            let account_id = id.to_string();
            return Err(match e {
                TokenError::Refused { dead: true, .. } => {
                    let _ = registry.send(RequiresReauthMark { account_id }).await;
                    CredentialError::NeedsReauth
                }
                other => {
                    tracing::warn!(account = %name, error = %other, backoff_ms = backoff, "token refresh failed; skipping the account for a while");
                    let until_ms = now_ms() + backoff;
                    let _ = registry
                        .send(RefreshFailedMark {
                            account_id,
                            until_ms,
                        })
                        .await;
                    CredentialError::RefreshFailed(other.to_string())
                }
            });
        }
    };
    store_tokens(registry, id, tokens).await
}

/// Hands new tokens to the registry, which stores them before answering.
async fn store_tokens(
    registry: &Addr<AccountRegistry>,
    id: &str,
    tokens: TokenSet,
) -> Result<TokenSet, CredentialError> {
    registry
        .send(TokensRefreshed {
            account_id: id.to_string(),
            tokens: tokens.clone(),
        })
        .await
        .map_err(|e| CredentialError::RefreshFailed(e.to_string()))?
        .map_err(|e| CredentialError::RefreshFailed(e.to_string()))?;
    Ok(tokens)
}

impl Actor for TokenRefresher {
    type Context = Context<Self>;
}

/// A usable credential for one account. `force_refresh` after the upstream refused
/// the access token (401): refresh even though it looks valid.
#[derive(Message)]
#[rtype(result = "Result<Credential, CredentialError>")]
pub struct GetCredential {
    pub account: Arc<Account>,
    pub force_refresh: bool,
}

impl Handler<GetCredential> for TokenRefresher {
    type Result = ResponseFuture<Result<Credential, CredentialError>>;

    fn handle(&mut self, msg: GetCredential, ctx: &mut Self::Context) -> Self::Result {
        let account = msg.account;
        let now = now_ms();
        if account.kind == AccountKind::ApiKey {
            let key = account.api_key.clone().map(Credential::ApiKey);
            return Box::pin(async move { key.ok_or(CredentialError::Missing) });
        }
        let (access, refresh, expires_at) = self.current_tokens(&account);
        let rejected = msg
            .force_refresh
            .then(|| account.access_token.clone())
            .flatten();
        // Fresh enough, and not the token the upstream just refused?
        if let Some(token) = &access {
            let fresh = expires_at.is_none_or(|at| at - now > self.settings.window_ms);
            if fresh && rejected.as_ref() != Some(token) {
                let token = token.clone();
                return Box::pin(async move { Ok(Credential::Bearer(token)) });
            }
        }
        let refresh = match self.in_flight.get(&account.id) {
            Some(running) => running.clone(),
            None => {
                let Some(refresh_token) = refresh else {
                    return Box::pin(async { Err(CredentialError::Missing) });
                };
                self.start_refresh(&account, refresh_token, rejected, ctx)
            }
        };
        Box::pin(async move {
            let tokens = refresh.await?;
            tokens
                .access_token
                .map(Credential::Bearer)
                .ok_or(CredentialError::Missing)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::account;

    #[test]
    fn ready_credentials_need_no_refresh() {
        let a = account("a", 1);
        assert!(matches!(
            TokenRefresher::ready_credential(&a, 10, 0),
            Some(Credential::ApiKey(k)) if k.expose().starts_with("sk-ant-test-a")
        ));
        let mut o = account("o", 1);
        o.kind = AccountKind::Oauth;
        o.access_token = Some(Secret::new("tok"));
        o.expires_at = Some(1_000);
        assert!(TokenRefresher::ready_credential(&o, 10, 500).is_some());
        assert!(
            TokenRefresher::ready_credential(&o, 600, 500).is_none(),
            "inside the window"
        );
        assert!(
            TokenRefresher::ready_credential(&o, 1_000, 0).is_none(),
            "expired"
        );
    }
}
