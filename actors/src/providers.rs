//! Where an account's requests go and how they are authenticated: Anthropic itself,
//! any Anthropic-compatible endpoint, and presets for well-known ones. The proxy
//! reaches upstreams only through [`Provider`], so no provider is a special case in
//! the request path.

use crate::domain::{Account, Credential};
use crate::protocol::headers::beta_with_oauth;
use crate::protocol::{ratelimit, RateLimitInfo};
use awc::http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde::Serialize;
use std::collections::BTreeMap;

/// How a provider expects the credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthPlacement {
    /// `x-api-key: KEY` (Anthropic's API keys and most compatible gateways).
    XApiKey,
    /// `Authorization: Bearer KEY` (what Claude Code sends with ANTHROPIC_AUTH_TOKEN).
    Bearer,
}

/// One provider's facts, as data.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preset {
    pub id: &'static str,
    pub name: &'static str,
    /// `None`: the account must give one (or, for Anthropic, the daemon's
    /// `upstream_url`).
    pub default_base_url: Option<&'static str>,
    /// Where API keys go (OAuth tokens always go as Bearer).
    pub auth: AuthPlacement,
}

/// The providers this build knows. Base URLs and auth placement from each service's
/// documentation for Claude Code (ANTHROPIC_BASE_URL + ANTHROPIC_AUTH_TOKEN).
pub const PRESETS: [Preset; 4] = [
    Preset {
        id: "anthropic",
        name: "Anthropic",
        default_base_url: None,
        auth: AuthPlacement::XApiKey,
    },
    Preset {
        id: "anthropic-compatible",
        name: "Any Anthropic-compatible endpoint",
        default_base_url: None,
        auth: AuthPlacement::XApiKey,
    },
    Preset {
        id: "zai",
        name: "Z.ai (GLM)",
        default_base_url: Some("https://api.z.ai/api/anthropic"),
        auth: AuthPlacement::Bearer,
    },
    Preset {
        id: "minimax",
        name: "MiniMax",
        default_base_url: Some("https://api.minimax.io/anthropic"),
        auth: AuthPlacement::Bearer,
    },
];

pub fn preset(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}

/// What the proxy asks of a provider.
pub trait Provider: Send + Sync {
    fn id(&self) -> &'static str;

    /// Whether this provider takes requests on this path (all of `/v1/*` here).
    fn handles(&self, path: &str) -> bool {
        path.starts_with("/v1/")
    }

    /// The upstream URL for a path and query; `anthropic_base` is the daemon's
    /// `upstream_url` (no trailing slash).
    fn upstream_url(&self, account: &Account, anthropic_base: &str, path_and_query: &str)
        -> String;

    /// Puts the credential in the request headers (the client's own were removed).
    fn apply_credential(&self, headers: &mut HeaderMap, credential: &Credential);

    /// Reads rate-limit state from a response.
    fn rate_limits<'a>(&self, get: &dyn Fn(&str) -> Option<&'a str>, now_ms: i64) -> RateLimitInfo {
        ratelimit::parse(get, now_ms)
    }

    /// Reads model, usage and error from a non-streaming answer.
    fn json_usage(&self, body: &[u8]) -> crate::protocol::ResponseUsage {
        crate::protocol::usage::from_json_body(body)
    }

    /// A reader for the provider's event stream (every provider here speaks the
    /// Messages SSE format).
    fn stream_usage(&self) -> crate::protocol::SseUsageParser {
        crate::protocol::SseUsageParser::new()
    }

    /// The plan tier a response reveals, when it does.
    fn tier_from_response(&self, _get: &dyn Fn(&str) -> Option<&str>) -> Option<i32> {
        None
    }
}

struct Configured(&'static Preset);

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

impl Provider for Configured {
    fn id(&self) -> &'static str {
        self.0.id
    }

    fn upstream_url(
        &self,
        account: &Account,
        anthropic_base: &str,
        path_and_query: &str,
    ) -> String {
        let base = account
            .base_url
            .as_deref()
            .or(self.0.default_base_url)
            .unwrap_or(anthropic_base)
            .trim_end_matches('/');
        format!("{base}{path_and_query}")
    }

    fn apply_credential(&self, headers: &mut HeaderMap, credential: &Credential) {
        match credential {
            Credential::ApiKey(key) => match self.0.auth {
                AuthPlacement::XApiKey => {
                    set(headers, HeaderName::from_static("x-api-key"), key.expose())
                }
                AuthPlacement::Bearer => {
                    set(headers, AUTHORIZATION, &format!("Bearer {}", key.expose()))
                }
            },
            Credential::Bearer(token) => {
                set(
                    headers,
                    AUTHORIZATION,
                    &format!("Bearer {}", token.expose()),
                );
                let beta = headers.get("anthropic-beta").and_then(|v| v.to_str().ok());
                let beta = beta_with_oauth(beta);
                set(headers, HeaderName::from_static("anthropic-beta"), &beta);
            }
        }
    }
}

static CONFIGURED: [Configured; 4] = [
    Configured(&PRESETS[0]),
    Configured(&PRESETS[1]),
    Configured(&PRESETS[2]),
    Configured(&PRESETS[3]),
];

/// The provider of an account (Anthropic for an unknown id, which validation
/// prevents).
pub fn for_account(account: &Account) -> &'static dyn Provider {
    by_id(&account.provider)
}

/// A provider by id; Anthropic for an unknown one (and for requests with no account).
pub fn by_id(id: &str) -> &'static dyn Provider {
    CONFIGURED
        .iter()
        .find(|p| p.0.id == id)
        .map_or(&CONFIGURED[0] as &dyn Provider, |p| p as &dyn Provider)
}

/// Why a base URL was refused (one line for the API).
pub fn validate_base_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let uri: awc::http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err("must be an http:// or https:// URL".into());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry credentials".into());
    }
    if url.contains('#') {
        return Err("must not have a fragment".into());
    }
    if uri.query().is_some() {
        return Err("must not have a query".into());
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The model to send for a requested model: an exact id first, else its family
/// (`opus`, `sonnet`, `haiku`, matched anywhere in the id).
pub fn mapped_model(map: &BTreeMap<String, String>, requested: &str) -> Option<String> {
    if let Some(m) = map.get(requested) {
        return Some(m.clone());
    }
    ["opus", "sonnet", "haiku"]
        .iter()
        .find(|family| requested.contains(*family))
        .and_then(|family| map.get(*family).cloned())
}

/// The body with only its top-level `model` value replaced; every other byte is
/// kept. `None` when the body is not a JSON object with a string `model`.
pub fn rewrite_model(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let fields: BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(body).ok()?;
    let raw = fields.get("model")?.get();
    if !raw.starts_with('"') {
        return None;
    }
    let start = (raw.as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start + raw.len();
    if end > body.len() {
        return None;
    }
    let replacement = serde_json::to_string(model).ok()?;
    let mut out = Vec::with_capacity(body.len() + replacement.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(replacement.as_bytes());
    out.extend_from_slice(&body[end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_model_bytes_change() {
        let body = br#"{ "max_tokens" : 5,"model":  "claude-opus-4-5-20251101" ,"messages":[{"content":"\u00e9 model"}]}"#;
        let out = rewrite_model(body, "glm-4.6").expect("rewritten");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            r#"{ "max_tokens" : 5,"model":  "glm-4.6" ,"messages":[{"content":"\u00e9 model"}]}"#
        );
        assert!(rewrite_model(b"[1]", "x").is_none());
        // Found by fuzzing: a number serde_json cannot hold does not stop the
        // rewrite, and its bytes are kept as they were.
        let odd = br#"{"model":"c5.0-4","n":2e73377}"#;
        assert_eq!(
            rewrite_model(odd, "glm-4.6").as_deref(),
            Some(&br#"{"model":"glm-4.6","n":2e73377}"#[..])
        );
        assert!(rewrite_model(br#"{"model":5}"#, "x").is_none());
    }

    #[test]
    fn models_map_by_exact_id_then_family() {
        let mut map = BTreeMap::new();
        map.insert("opus".to_string(), "glm-4.6".to_string());
        map.insert("haiku".to_string(), "glm-4.5-air".to_string());
        map.insert("claude-sonnet-4-5".to_string(), "glm-4.6-x".to_string());
        assert_eq!(
            mapped_model(&map, "claude-opus-4-5-20251101").as_deref(),
            Some("glm-4.6")
        );
        assert_eq!(
            mapped_model(&map, "claude-3-5-haiku-20241022").as_deref(),
            Some("glm-4.5-air")
        );
        assert_eq!(
            mapped_model(&map, "claude-sonnet-4-5").as_deref(),
            Some("glm-4.6-x")
        );
        assert_eq!(mapped_model(&map, "claude-sonnet-4-6"), None);
    }

    #[test]
    fn base_urls_are_validated() {
        assert_eq!(
            validate_base_url("https://api.z.ai/api/anthropic/").as_deref(),
            Ok("https://api.z.ai/api/anthropic")
        );
        for bad in [
            "ftp://x",
            "https://user:pw@host",
            "https://h/#frag",
            "not a url",
            "https://h/?q=1",
        ] {
            assert!(validate_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_go_where_each_provider_wants_them() {
        use crate::domain::{AccountKind, Secret};
        let mut a = Account::new("i".into(), "n".into(), AccountKind::ApiKey, 0);
        a.provider = "zai".into();
        let p = for_account(&a);
        let mut h = HeaderMap::new();
        p.apply_credential(&mut h, &Credential::ApiKey(Secret::new("k")));
        assert_eq!(
            h.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer k")
        );
        assert_eq!(
            p.upstream_url(&a, "https://api.anthropic.com", "/v1/messages"),
            "https://api.z.ai/api/anthropic/v1/messages"
        );
        a.provider = "anthropic".into();
        let mut h = HeaderMap::new();
        for_account(&a).apply_credential(&mut h, &Credential::ApiKey(Secret::new("k")));
        assert_eq!(h.get("x-api-key").and_then(|v| v.to_str().ok()), Some("k"));
        assert_eq!(
            for_account(&a).upstream_url(&a, "http://mock", "/v1/x?y=1"),
            "http://mock/v1/x?y=1"
        );
    }
}
