//! The account pool's vocabulary: accounts, credentials and why an account cannot serve.

use crate::clock::iso;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A credential or token. Its `Debug` never prints the value, so a secret cannot reach a
/// log line by accident; [`Secret::expose`] is the one deliberate way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked hint that tells keys apart without revealing them: the last four
    /// characters of a long key, nothing of a short one.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 16 {
            return "****".to_string();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("****{tail}")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// How an account authenticates upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A Console API key, sent as `x-api-key`.
    ApiKey,
    /// A Pro/Max subscription signed in with OAuth, sent as `Authorization: Bearer`.
    Oauth,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::ApiKey => "api_key",
            AccountKind::Oauth => "oauth",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "api_key" => Some(AccountKind::ApiKey),
            "oauth" => Some(AccountKind::Oauth),
            _ => None,
        }
    }
}

/// The credential the proxy puts on one upstream request.
#[derive(Clone, Debug)]
pub enum Credential {
    ApiKey(Secret),
    Bearer(Secret),
}

/// One upstream account as the engine holds it. Owned by the AccountRegistry; everyone
/// else sees immutable `Arc<Account>` snapshots.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub kind: AccountKind,
    pub api_key: Option<Secret>,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<i64>,
    pub tier: i32,
    pub priority: i32,
    pub paused: bool,
    /// The upstream refused the credential (401/403); out of rotation until resumed.
    pub auth_failed: bool,
    /// Benched by a rate limit until this time (unix ms).
    pub rate_limited_until: Option<i64>,
    /// In memory only: a short pause after a 529 overloaded answer.
    pub cooldown_until: Option<i64>,
    pub rate_limit_status: Option<String>,
    pub rate_limit_reset: Option<i64>,
    pub rate_limit_remaining: Option<i64>,
    pub utilization_5h: Option<f64>,
    pub utilization_7d: Option<f64>,
    pub session_start: Option<i64>,
    pub session_request_count: i64,
    /// Requests since the counters were last reset.
    pub request_count: i64,
    /// Requests over the account's whole life.
    pub total_requests: i64,
    pub last_used: Option<i64>,
    pub created_at: i64,
    /// The refresh token was refused for good: out of rotation until signed in again.
    pub requires_reauth: bool,
    /// In memory only: a refresh failed; skip the account until then.
    pub refresh_backoff_until: Option<i64>,
    /// Who the account is, when the sign-in said.
    pub email: Option<String>,
    pub organization: Option<String>,
    /// Where this account's requests go (`None`: the provider's default).
    pub base_url: Option<String>,
    /// Requested model (exact id or family: `opus`, `sonnet`, `haiku`) → model sent.
    pub model_map: Option<std::collections::BTreeMap<String, String>>,
}

/// Why an account is not offered to a request right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    Paused,
    RequiresReauth,
    AuthFailed,
    RateLimited,
    Overloaded,
    RefreshFailed,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::Paused => "paused",
            Unavailable::RequiresReauth => "requires_reauth",
            Unavailable::AuthFailed => "auth_failed",
            Unavailable::RateLimited => "rate_limited",
            Unavailable::Overloaded => "overloaded",
            Unavailable::RefreshFailed => "refresh_failed",
        }
    }
}

impl Account {
    /// A new account with nothing stored yet but its identity.
    pub fn new(id: String, name: String, kind: AccountKind, created_at: i64) -> Account {
        Account {
            id,
            name,
            provider: "anthropic".to_string(),
            kind,
            api_key: None,
            access_token: None,
            refresh_token: None,
            expires_at: None,
            tier: 1,
            priority: 0,
            paused: false,
            auth_failed: false,
            rate_limited_until: None,
            cooldown_until: None,
            rate_limit_status: None,
            rate_limit_reset: None,
            rate_limit_remaining: None,
            utilization_5h: None,
            utilization_7d: None,
            session_start: None,
            session_request_count: 0,
            request_count: 0,
            total_requests: 0,
            last_used: None,
            created_at,
            requires_reauth: false,
            refresh_backoff_until: None,
            email: None,
            organization: None,
            base_url: None,
            model_map: None,
        }
    }

    /// `None` when the account may serve at `now_ms`; otherwise why not and, when it
    /// will come back by itself, when.
    pub fn unavailable(&self, now_ms: i64) -> Option<(Unavailable, Option<i64>)> {
        if self.paused {
            return Some((Unavailable::Paused, None));
        }
        if self.requires_reauth {
            return Some((Unavailable::RequiresReauth, None));
        }
        if self.auth_failed {
            return Some((Unavailable::AuthFailed, None));
        }
        if let Some(until) = self.rate_limited_until.filter(|u| *u > now_ms) {
            return Some((Unavailable::RateLimited, Some(until)));
        }
        if let Some(until) = self.cooldown_until.filter(|u| *u > now_ms) {
            return Some((Unavailable::Overloaded, Some(until)));
        }
        if let Some(until) = self.refresh_backoff_until.filter(|u| *u > now_ms) {
            return Some((Unavailable::RefreshFailed, Some(until)));
        }
        None
    }

    pub fn is_available(&self, now_ms: i64) -> bool {
        self.unavailable(now_ms).is_none()
    }

    /// The OAuth access token's state, for display (`None` for API keys).
    pub fn token_status(&self, now_ms: i64) -> Option<&'static str> {
        if self.kind != AccountKind::Oauth {
            return None;
        }
        Some(match (&self.access_token, self.expires_at) {
            (None, _) => "missing",
            (Some(_), Some(at)) if at <= now_ms => "expired",
            (Some(_), _) => "valid",
        })
    }

    /// The credential's masked hint, for display.
    pub fn credential_hint(&self) -> String {
        match self.kind {
            AccountKind::ApiKey => self.api_key.as_ref(),
            AccountKind::Oauth => self.refresh_token.as_ref().or(self.access_token.as_ref()),
        }
        .map(Secret::hint)
        .unwrap_or_default()
    }

    /// The API's view of the account: everything but the secrets.
    pub fn summary(&self, now_ms: i64, active_session: bool) -> AccountSummary {
        let unavailable = self.unavailable(now_ms);
        AccountSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            provider: self.provider.clone(),
            kind: self.kind,
            tier: self.tier,
            priority: self.priority,
            paused: self.paused,
            auth_failed: self.auth_failed,
            available: unavailable.is_none(),
            unavailable_reason: unavailable.map(|(why, _)| why.as_str()),
            request_count: self.request_count,
            total_requests: self.total_requests,
            last_used: self.last_used.map(iso),
            created_at: iso(self.created_at),
            token_status: self.token_status(now_ms),
            token_expires_at: self.expires_at.map(iso),
            requires_reauth: self.requires_reauth,
            email: self.email.clone(),
            organization: self.organization.clone(),
            base_url: self.base_url.clone(),
            model_map: self.model_map.clone(),
            rate_limit_status: self.rate_limit_status.clone(),
            rate_limit_reset: self.rate_limit_reset.map(iso),
            rate_limit_remaining: self.rate_limit_remaining,
            utilization_5h: self.utilization_5h,
            utilization_7d: self.utilization_7d,
            rate_limited_until: self.rate_limited_until.filter(|u| *u > now_ms).map(iso),
            session_info: SessionInfo {
                active: active_session,
                started_at: self.session_start.map(iso),
                request_count: self.session_request_count,
            },
            credential_hint: self.credential_hint(),
        }
    }
}

/// One account as `/api/accounts` shows it. Never carries a secret.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub kind: AccountKind,
    pub tier: i32,
    pub priority: i32,
    pub paused: bool,
    pub auth_failed: bool,
    pub available: bool,
    pub unavailable_reason: Option<&'static str>,
    pub request_count: i64,
    pub total_requests: i64,
    pub last_used: Option<String>,
    pub created_at: String,
    /// OAuth accounts: `valid`, `expired` (refreshed on next use) or `missing`.
    pub token_status: Option<&'static str>,
    pub token_expires_at: Option<String>,
    pub requires_reauth: bool,
    pub email: Option<String>,
    pub organization: Option<String>,
    pub base_url: Option<String>,
    pub model_map: Option<std::collections::BTreeMap<String, String>>,
    pub rate_limit_status: Option<String>,
    pub rate_limit_reset: Option<String>,
    pub rate_limit_remaining: Option<i64>,
    #[serde(rename = "utilization5h")]
    pub utilization_5h: Option<f64>,
    #[serde(rename = "utilization7d")]
    pub utilization_7d: Option<f64>,
    pub rate_limited_until: Option<String>,
    pub session_info: SessionInfo,
    pub credential_hint: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub active: bool,
    pub started_at: Option<String>,
    pub request_count: i64,
}

/// The valid subscription tiers: Pro (1), Max 5x (5), Max 20x (20).
pub const TIERS: [i32; 3] = [1, 5, 20];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_hint_hide_the_value() {
        let s = Secret::new("sk-ant-api03-abcdefghijklmnopWXYZ");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(s.hint(), "****WXYZ");
        assert_eq!(Secret::new("short").hint(), "****");
    }
}
