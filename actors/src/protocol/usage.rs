//! Token usage as the Messages API reports it, in JSON answers and in SSE events.

use serde::Deserialize;

/// Token counts of one request. Every field is optional: a stream may be cut before
/// the counts arrive, and some providers omit fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_input_tokens: Option<i64>,
    pub cache_creation_input_tokens: Option<i64>,
    /// Cache writes split by lifetime, priced differently.
    pub cache_creation: Option<CacheCreation>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct CacheCreation {
    pub ephemeral_5m_input_tokens: Option<i64>,
    pub ephemeral_1h_input_tokens: Option<i64>,
}

impl Usage {
    /// Takes every field `newer` carries; keeps the rest (a `message_delta` repeats only
    /// some counts).
    pub fn merge(&mut self, newer: &Usage) {
        fn take(into: &mut Option<i64>, from: Option<i64>) {
            if from.is_some() {
                *into = from;
            }
        }
        take(&mut self.input_tokens, newer.input_tokens);
        take(&mut self.output_tokens, newer.output_tokens);
        take(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
        take(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        if newer.cache_creation.is_some() {
            self.cache_creation = newer.cache_creation;
        }
    }

    /// All tokens counted, for totals.
    pub fn total(&self) -> i64 {
        self.input_tokens.unwrap_or(0)
            + self.output_tokens.unwrap_or(0)
            + self.cache_read_input_tokens.unwrap_or(0)
            + self.cache_creation_input_tokens.unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// What a finished response says about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseUsage {
    pub model: Option<String>,
    pub usage: Usage,
    /// The upstream's error type and message, when the answer is an error.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct JsonAnswer {
    model: Option<String>,
    usage: Option<Usage>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub message: Option<String>,
}

impl ErrorBody {
    pub(crate) fn describe(&self) -> String {
        match (&self.kind, &self.message) {
            (Some(k), Some(m)) => format!("{k}: {m}"),
            (Some(k), None) => k.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "error".to_string(),
        }
    }
}

/// Reads model, usage and error from a non-streaming JSON answer. Anything that is not
/// such JSON gives an empty result.
pub fn from_json_body(body: &[u8]) -> ResponseUsage {
    match serde_json::from_slice::<JsonAnswer>(body) {
        Ok(a) => ResponseUsage {
            model: a.model,
            usage: a.usage.unwrap_or_default(),
            error: a.error.map(|e| e.describe()),
        },
        Err(_) => ResponseUsage::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_messages_answer() {
        let body = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
            "content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":11,"cache_creation_input_tokens":3,"cache_read_input_tokens":5,"output_tokens":7,
            "cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0},"service_tier":"standard"}}"#;
        let r = from_json_body(body);
        assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(r.usage.input_tokens, Some(11));
        assert_eq!(r.usage.output_tokens, Some(7));
        assert_eq!(r.usage.cache_read_input_tokens, Some(5));
        assert_eq!(r.usage.cache_creation_input_tokens, Some(3));
        assert_eq!(
            r.usage
                .cache_creation
                .and_then(|c| c.ephemeral_5m_input_tokens),
            Some(3)
        );
        assert_eq!(r.usage.total(), 26);
    }

    #[test]
    fn reads_an_error_answer_and_ignores_garbage() {
        let r = from_json_body(
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"},"request_id":"req_1"}"#,
        );
        assert_eq!(r.error.as_deref(), Some("invalid_request_error: bad"));
        assert_eq!(from_json_body(b"\xff not json"), ResponseUsage::default());
    }
}
