//! What the proxy reads from a client's request body (never rewriting it).

use serde::Deserialize;

/// Fields of a Messages request that matter for routing and records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub model: Option<String>,
    pub stream: bool,
    /// `metadata.user_id`, where Claude Code embeds its session.
    pub user_id: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    model: Option<serde_json::Value>,
    stream: Option<serde_json::Value>,
    metadata: Option<serde_json::Value>,
}

impl RequestMeta {
    /// Reads the body leniently: a body that is not a JSON object, or fields of the
    /// wrong type, give defaults; the upstream judges the request, not the proxy.
    pub fn from_body(body: &[u8]) -> Self {
        let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
            return Self::default();
        };
        let text = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        RequestMeta {
            model: text(parsed.model),
            stream: matches!(parsed.stream, Some(serde_json::Value::Bool(true))),
            user_id: text(
                parsed
                    .metadata
                    .and_then(|mut m| m.get_mut("user_id").map(serde_json::Value::take)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_model_stream_and_user() {
        let m = RequestMeta::from_body(
            br#"{"model":"claude-opus-4-5","max_tokens":5,"stream":true,"metadata":{"user_id":"user_x_session_y"},"messages":[]}"#,
        );
        assert_eq!(m.model.as_deref(), Some("claude-opus-4-5"));
        assert!(m.stream);
        assert_eq!(m.user_id.as_deref(), Some("user_x_session_y"));
    }

    #[test]
    fn wrong_types_give_defaults() {
        let m = RequestMeta::from_body(br#"{"model":5,"stream":"yes","metadata":[]}"#);
        assert_eq!(m, RequestMeta::default());
        let m = RequestMeta::from_body(br#"{"model":"m","metadata":[1]}"#);
        assert_eq!(m.model.as_deref(), Some("m"));
        assert_eq!(RequestMeta::from_body(b"[1,2"), RequestMeta::default());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = RequestMeta::from_body(&bytes);
        }
    }
}
