//! The OAuth side of Claude subscriptions: PKCE, the authorize URL, and the token
//! endpoint (code exchange, refresh with rotating refresh tokens, API-key minting).

use crate::clock::now_ms;
use crate::domain::Secret;
use crate::secrets::random_token;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a call to the token endpoint may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom to sign in. Every value is a setting: Anthropic has moved them.
#[derive(Clone, Debug)]
pub struct OAuthEndpoints {
    pub client_id: String,
    pub token_url: String,
    pub authorize_url_max: String,
    pub authorize_url_console: String,
    pub redirect_uri: String,
    /// Space-separated.
    pub scopes: String,
    pub api_key_url: String,
}

/// Tokens from the token endpoint.
#[derive(Clone, Debug)]
pub struct TokenSet {
    pub access_token: Option<Secret>,
    pub refresh_token: Secret,
    pub expires_at: Option<i64>,
    pub email: Option<String>,
    pub organization: Option<String>,
}

/// A failed call to the token endpoint.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint answered with an error. `dead` when it says the grant (refresh
    /// token or code) is no longer valid.
    #[error("the token endpoint refused ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        dead: bool,
    },
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token endpoint's answer could not be read: {0}")]
    Malformed(String),
}

/// A PKCE pair: the verifier stays here, the challenge goes into the authorize URL.
#[derive(Clone)]
pub struct Pkce {
    pub verifier: Secret,
    pub challenge: String,
}

impl Pkce {
    /// 32 random bytes, base64url without padding; the challenge is
    /// base64url(SHA-256(verifier)), method S256.
    pub fn new() -> Pkce {
        let verifier = random_token(32);
        let challenge = challenge_of(&verifier);
        Pkce {
            verifier: Secret::new(verifier),
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// The S256 challenge of a verifier.
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The URL the user opens to approve the sign-in.
pub fn authorize_url(
    base: &str,
    endpoints: &OAuthEndpoints,
    challenge: &str,
    state: &str,
) -> String {
    let query = [
        ("code", "true"),
        ("client_id", endpoints.client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", endpoints.redirect_uri.as_str()),
        ("scope", endpoints.scopes.as_str()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", state),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", percent_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}")
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    account: Option<AccountInfo>,
    organization: Option<OrganizationInfo>,
}

#[derive(Deserialize)]
struct AccountInfo {
    email_address: Option<String>,
}

#[derive(Deserialize)]
struct OrganizationInfo {
    name: Option<String>,
    uuid: Option<String>,
}

/// Reads an error answer of the token endpoint into a one-line message that quotes
/// it, never echoing a token.
fn refusal(status: u16, body: &[u8]) -> TokenError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let (code, description) = match &parsed {
        Some(v) => (
            field(v, "error").or_else(|| v.get("error").and_then(|e| field(e, "type"))),
            field(v, "error_description")
                .or_else(|| v.get("error").and_then(|e| field(e, "message"))),
        ),
        None => (None, None),
    };
    let dead = matches!(code.as_deref(), Some("invalid_grant"));
    let message = match (code, description) {
        (Some(c), Some(d)) => format!("{c}: {d}"),
        (Some(c), None) => c,
        (None, Some(d)) => d,
        (None, None) => format!("HTTP {status}"),
    };
    TokenError::Refused {
        status,
        message: message.chars().take(300).collect(),
        dead,
    }
}

async fn post_json(
    client: &awc::Client,
    url: &str,
    bearer: Option<&Secret>,
    body: serde_json::Value,
) -> Result<bytes::Bytes, TokenError> {
    let mut request = client
        .post(url)
        .timeout(TOKEN_TIMEOUT)
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json"));
    if let Some(token) = bearer {
        request = request.insert_header(("authorization", format!("Bearer {}", token.expose())));
    }
    let mut response = request
        .send_body(body.to_string())
        .await
        .map_err(|e| TokenError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| TokenError::Unreachable(e.to_string()))?;
    if !(200..300).contains(&status) {
        return Err(refusal(status, &body));
    }
    Ok(body)
}

fn token_set(body: &[u8], previous_refresh: Option<&Secret>) -> Result<TokenSet, TokenError> {
    let answer: TokenAnswer =
        serde_json::from_slice(body).map_err(|e| TokenError::Malformed(e.to_string()))?;
    let access = answer
        .access_token
        .ok_or_else(|| TokenError::Malformed("no access_token".into()))?;
    let refresh = answer
        .refresh_token
        .map(Secret::new)
        .or_else(|| previous_refresh.cloned())
        .ok_or_else(|| TokenError::Malformed("no refresh_token".into()))?;
    Ok(TokenSet {
        access_token: Some(Secret::new(access)),
        refresh_token: refresh,
        expires_at: answer.expires_in.map(|s| now_ms() + s.max(0) * 1000),
        email: answer.account.and_then(|a| a.email_address),
        organization: answer.organization.and_then(|o| o.name.or(o.uuid)),
    })
}

/// Exchanges an authorization code (the part before `#` of what the user pasted).
pub async fn exchange_code(
    client: &awc::Client,
    endpoints: &OAuthEndpoints,
    code: &str,
    state: &str,
    verifier: &Secret,
) -> Result<TokenSet, TokenError> {
    let body = json!({
        "grant_type": "authorization_code",
        "code": code,
        "state": state,
        "client_id": endpoints.client_id,
        "redirect_uri": endpoints.redirect_uri,
        "code_verifier": verifier.expose(),
    });
    let answer = post_json(client, &endpoints.token_url, None, body).await?;
    token_set(&answer, None)
}

/// Trades a refresh token for new tokens. Refresh tokens rotate: the old one is
/// dead once this succeeds, so the caller must keep the new one.
pub async fn refresh(
    client: &awc::Client,
    endpoints: &OAuthEndpoints,
    refresh_token: &Secret,
) -> Result<TokenSet, TokenError> {
    let body = json!({
        "grant_type": "refresh_token",
        "refresh_token": refresh_token.expose(),
        "client_id": endpoints.client_id,
    });
    let answer = post_json(client, &endpoints.token_url, None, body).await?;
    token_set(&answer, Some(refresh_token))
}

/// Mints a permanent API key with a Console sign-in's access token.
pub async fn create_api_key(
    client: &awc::Client,
    endpoints: &OAuthEndpoints,
    access_token: &Secret,
) -> Result<Secret, TokenError> {
    let answer = post_json(
        client,
        &endpoints.api_key_url,
        Some(access_token),
        json!({}),
    )
    .await?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|e| TokenError::Malformed(e.to_string()))?;
    parsed
        .get("raw_key")
        .or_else(|| parsed.get("api_key"))
        .and_then(|k| k.as_str())
        .map(Secret::new)
        .ok_or_else(|| TokenError::Malformed("no raw_key in the answer".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> OAuthEndpoints {
        OAuthEndpoints {
            client_id: "9d1c250a-e61b-44d9-88ed-5944d1962f5e".into(),
            token_url: "http://t/token".into(),
            authorize_url_max: "https://claude.ai/oauth/authorize".into(),
            authorize_url_console: "https://console.anthropic.com/oauth/authorize".into(),
            redirect_uri: "https://console.anthropic.com/oauth/code/callback".into(),
            scopes: "org:create_api_key user:profile user:inference".into(),
            api_key_url: "http://t/key".into(),
        }
    }

    #[test]
    fn pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::new();
        assert_eq!(p.verifier.expose().len(), 43);
        assert_eq!(challenge_of(p.verifier.expose()), p.challenge);
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let e = endpoints();
        let url = authorize_url(&e.authorize_url_max, &e, "CH", "ST");
        assert!(url.starts_with("https://claude.ai/oauth/authorize?code=true&client_id=9d1c250a"));
        assert!(url.contains("&response_type=code"));
        assert!(url.contains(
            "&redirect_uri=https%3A%2F%2Fconsole.anthropic.com%2Foauth%2Fcode%2Fcallback"
        ));
        assert!(url.contains("&scope=org%3Acreate_api_key%20user%3Aprofile%20user%3Ainference"));
        assert!(url.contains("&code_challenge=CH&code_challenge_method=S256&state=ST"));
    }

    #[test]
    fn refusals_are_quoted_and_invalid_grant_is_dead() {
        match refusal(400, br#"{"error":"invalid_grant","error_description":"Refresh token not found or invalid"}"#) {
            TokenError::Refused { status, message, dead } => {
                assert_eq!(status, 400);
                assert_eq!(message, "invalid_grant: Refresh token not found or invalid");
                assert!(dead);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            refusal(500, b"oops"),
            TokenError::Refused { dead: false, .. }
        ));
    }
}
