//! The TokenRefresher actor: hands out a usable credential for an account.
//!
//! API keys are used as they are. OAuth access tokens are handed out while they are
//! valid; refreshing them (one refresh per account at a time) belongs to this actor
//! too, so the proxy path asks here for every credential and never changes.

use crate::clock::now_ms;
use crate::domain::{Account, AccountKind, Credential};
use actix::prelude::*;
use std::sync::Arc;

/// Why no credential could be handed out; the proxy skips the account with this reason.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("the account has no credential stored")]
    Missing,
    #[error("the OAuth access token has expired and this build cannot refresh it")]
    Expired,
}

/// The refresher; see the module docs.
#[derive(Default)]
pub struct TokenRefresher;

impl TokenRefresher {
    /// The credential of `account` at `now`, when it has a usable one.
    pub fn credential_for(account: &Account, now: i64) -> Result<Credential, CredentialError> {
        match account.kind {
            AccountKind::ApiKey => account
                .api_key
                .clone()
                .map(Credential::ApiKey)
                .ok_or(CredentialError::Missing),
            AccountKind::Oauth => {
                let token = account
                    .access_token
                    .clone()
                    .ok_or(CredentialError::Missing)?;
                match account.expires_at {
                    Some(at) if at <= now => Err(CredentialError::Expired),
                    _ => Ok(Credential::Bearer(token)),
                }
            }
        }
    }
}

impl Actor for TokenRefresher {
    type Context = Context<Self>;
}

/// A usable credential for one account.
#[derive(Message)]
#[rtype(result = "Result<Credential, CredentialError>")]
pub struct GetCredential {
    pub account: Arc<Account>,
}

impl Handler<GetCredential> for TokenRefresher {
    type Result = Result<Credential, CredentialError>;

    fn handle(&mut self, msg: GetCredential, _: &mut Self::Context) -> Self::Result {
        Self::credential_for(&msg.account, now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;
    use crate::store::tests_support::account;

    #[test]
    fn api_keys_and_valid_tokens_are_handed_out() {
        let a = account("a", 1);
        assert!(matches!(
            TokenRefresher::credential_for(&a, 10),
            Ok(Credential::ApiKey(k)) if k.expose().starts_with("sk-ant-test-a")
        ));
        let mut o = account("o", 1);
        o.kind = AccountKind::Oauth;
        o.access_token = Some(Secret::new("tok"));
        o.expires_at = Some(100);
        assert!(matches!(
            TokenRefresher::credential_for(&o, 10),
            Ok(Credential::Bearer(_))
        ));
        assert_eq!(
            TokenRefresher::credential_for(&o, 100).err(),
            Some(CredentialError::Expired)
        );
    }
}
