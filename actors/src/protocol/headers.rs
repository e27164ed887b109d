//! Header rules for forwarding between the client and the upstream.

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus `host` and `content-length`, which the
/// client library sets for the upstream connection itself.
const NOT_FORWARDED: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Client headers that carry a credential: replaced by the account's own.
const CLIENT_CREDENTIALS: [&str; 2] = ["x-api-key", "authorization"];

/// Headers removed from stored payloads (lower case).
pub const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// The beta flag OAuth (subscription) requests must carry.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

/// Whether a header (lower-case name) is for this connection only.
pub fn is_hop_by_hop(name: &str) -> bool {
    NOT_FORWARDED.contains(&name)
}

/// Whether a client request header goes upstream when the proxy uses an account.
/// `connection_listed` holds the names the client's `Connection` header named.
pub fn forward_to_account(name: &str, connection_listed: &[String]) -> bool {
    !is_hop_by_hop(name)
        && !CLIENT_CREDENTIALS.contains(&name)
        && !connection_listed.iter().any(|n| n == name)
}

/// Whether a client request header goes upstream when no account is configured (the
/// client's own credential passes through).
pub fn forward_unauthenticated(name: &str, connection_listed: &[String]) -> bool {
    !is_hop_by_hop(name) && !connection_listed.iter().any(|n| n == name)
}

/// Whether an upstream response header goes back to the client.
pub fn forward_to_client(name: &str) -> bool {
    !is_hop_by_hop(name)
}

/// The names listed in a `Connection` header value, lower-cased.
pub fn connection_listed(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The `anthropic-beta` value for an OAuth request: the client's flags in order, with
/// the OAuth flag appended when missing.
pub fn beta_with_oauth(client_value: Option<&str>) -> String {
    match client_value.map(str::trim).filter(|v| !v.is_empty()) {
        None => OAUTH_BETA.to_string(),
        Some(v) if v.split(',').any(|f| f.trim() == OAUTH_BETA) => v.to_string(),
        Some(v) => format!("{v},{OAUTH_BETA}"),
    }
}

/// Whether a header may be kept in a stored payload.
pub fn storable(name: &str) -> bool {
    !SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_beta_is_appended_once() {
        assert_eq!(beta_with_oauth(None), "oauth-2025-04-20");
        assert_eq!(beta_with_oauth(Some("a,b")), "a,b,oauth-2025-04-20");
        assert_eq!(
            beta_with_oauth(Some("a, oauth-2025-04-20")),
            "a, oauth-2025-04-20"
        );
    }

    #[test]
    fn credentials_and_hop_headers_are_not_forwarded() {
        let listed = connection_listed(Some("keep-alive, X-Custom"));
        assert!(!forward_to_account("x-api-key", &listed));
        assert!(!forward_to_account("authorization", &listed));
        assert!(!forward_to_account("host", &listed));
        assert!(!forward_to_account("x-custom", &listed));
        assert!(forward_to_account("anthropic-version", &listed));
        assert!(forward_unauthenticated("x-api-key", &listed));
        assert!(!storable("Set-Cookie"));
    }
}
