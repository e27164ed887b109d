//! An incremental reader of the Messages SSE stream that pulls out model, usage, the
//! end-of-message marker and in-stream errors, while the bytes pass through untouched.
//!
//! It is fed the chunks exactly as they arrive: events may be split anywhere, several
//! may share a chunk, and lines may end in `\r\n`. Content deltas, the bulk of a
//! stream, are skipped without being buffered.

use super::usage::{ErrorBody, Usage};
use serde::Deserialize;

/// Largest event data buffered for parsing; a longer event is skipped.
const MAX_DATA_BYTES: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventName {
    /// No `event:` line yet: the data's `type` decides.
    Unnamed,
    /// An event whose data carries model, usage or an error.
    Wanted,
    /// A content delta: marks the first token; its data is skipped.
    ContentDelta,
    /// Anything else (ping, block start/stop): skipped.
    Other,
}

impl EventName {
    fn from(name: &[u8]) -> Self {
        match name {
            b"message_start" | b"message_delta" | b"message_stop" | b"error" => EventName::Wanted,
            b"content_block_delta" => EventName::ContentDelta,
            _ => EventName::Other,
        }
    }

    fn wants_data(self) -> bool {
        matches!(self, EventName::Unnamed | EventName::Wanted)
    }
}

/// The incremental parser; see the module docs.
#[derive(Debug)]
pub struct SseUsageParser {
    line: Vec<u8>,
    /// The rest of the current line is not needed (a skipped data line, or too long).
    skipping_line: bool,
    event: EventName,
    data: Vec<u8>,
    data_overflow: bool,
    model: Option<String>,
    usage: Usage,
    stop_reason: Option<String>,
    saw_message_start: bool,
    saw_message_stop: bool,
    saw_content: bool,
    error: Option<String>,
}

impl Default for SseUsageParser {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: Option<Kind>,
    message: Option<StartMessage>,
    usage: Option<Usage>,
    delta: Option<Delta>,
    error: Option<ErrorBody>,
}

/// An event's `type`, read without allocating.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    MessageStart,
    MessageDelta,
    MessageStop,
    ContentBlockDelta,
    Error,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartMessage {
    model: Option<String>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Delta {
    stop_reason: Option<String>,
}

impl SseUsageParser {
    pub fn new() -> Self {
        Self {
            line: Vec::with_capacity(256),
            skipping_line: false,
            event: EventName::Unnamed,
            data: Vec::new(),
            data_overflow: false,
            model: None,
            usage: Usage::default(),
            stop_reason: None,
            saw_message_start: false,
            saw_message_stop: false,
            saw_content: false,
            error: None,
        }
    }

    /// Reads one chunk of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let Some(i) = memchr::memchr(b'\n', chunk) else {
                if !self.skipping_line {
                    self.line.extend_from_slice(chunk);
                    self.decide_skip();
                }
                return;
            };
            let (part, rest) = (&chunk[..i], &chunk[i + 1..]);
            if self.skipping_line {
                self.line.clear();
            } else if self.line.is_empty() {
                // The whole line is in this chunk (the usual case): read in place.
                self.complete_line(part);
            } else {
                self.line.extend_from_slice(part);
                let line = std::mem::take(&mut self.line);
                self.complete_line(&line);
                self.line = line;
                self.line.clear();
            }
            self.skipping_line = false;
            chunk = rest;
        }
    }

    /// One whole line, with its `\r` if it had one: skipped when
    /// [`SseUsageParser::decide_skip`] would have skipped it, else read.
    fn complete_line(&mut self, line: &[u8]) {
        if line.starts_with(b"data:") && !self.event.wants_data() {
            return;
        }
        if line.len() > MAX_DATA_BYTES {
            self.data_overflow = true;
            return;
        }
        self.on_line(line.strip_suffix(b"\r").unwrap_or(line));
    }

    /// Starts skipping a line as soon as its prefix shows it is not needed.
    fn decide_skip(&mut self) {
        if self.line.len() >= 5 && self.line.starts_with(b"data:") && !self.event.wants_data() {
            self.skipping_line = true;
            self.line.clear();
        } else if self.line.len() > MAX_DATA_BYTES {
            self.skipping_line = true;
            self.data_overflow = true;
            self.line.clear();
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &line[line.len()..]),
        };
        match field {
            b"event" => {
                self.event = EventName::from(value);
                if self.event == EventName::ContentDelta {
                    self.saw_content = true;
                }
            }
            b"data" if self.event.wants_data() => {
                if self.data.len() + value.len() + 1 > MAX_DATA_BYTES {
                    self.data_overflow = true;
                } else {
                    if !self.data.is_empty() {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        if !self.data.is_empty() && !self.data_overflow {
            if let Ok(event) = serde_json::from_slice::<Event>(&self.data) {
                self.apply(event);
            }
        }
        self.data.clear();
        self.data_overflow = false;
        self.event = EventName::Unnamed;
    }

    fn apply(&mut self, event: Event) {
        match event.kind {
            Some(Kind::MessageStart) => {
                self.saw_message_start = true;
                if let Some(m) = event.message {
                    if m.model.is_some() {
                        self.model = m.model;
                    }
                    if let Some(u) = m.usage {
                        self.usage.merge(&u);
                    }
                }
            }
            Some(Kind::MessageDelta) => {
                if let Some(u) = event.usage {
                    self.usage.merge(&u);
                }
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
            }
            Some(Kind::MessageStop) => self.saw_message_stop = true,
            Some(Kind::ContentBlockDelta) => self.saw_content = true,
            Some(Kind::Error) => {
                self.error = Some(
                    event
                        .error
                        .map(|e| e.describe())
                        .unwrap_or_else(|| "error".to_string()),
                );
            }
            _ => {}
        }
    }

    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    /// Whether the first content delta has been seen (time to first token).
    pub fn saw_content(&self) -> bool {
        self.saw_content
    }

    /// Whether `message_stop` arrived: a stream without it is truncated.
    pub fn is_complete(&self) -> bool {
        self.saw_message_stop
    }

    /// An `error` event inside the stream: the request failed despite its 200.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A full stream in the upstream's form, with every block kind and a ping.
    pub(crate) fn sample_stream(crlf: bool) -> Vec<u8> {
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"usage":{"input_tokens":25,"cache_creation_input_tokens":4,"cache_read_input_tokens":9,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm: \"data: x\""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc=="}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu_1","name":"get","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\": 1"}}"#,
            ),
            (
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let nl = if crlf { "\r\n" } else { "\n" };
        events
            .iter()
            .map(|(name, data)| format!("event: {name}{nl}data: {data}{nl}{nl}"))
            .collect::<String>()
            .into_bytes()
    }

    fn check(parser: &SseUsageParser) {
        assert_eq!(parser.model(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(parser.usage().input_tokens, Some(25));
        assert_eq!(parser.usage().output_tokens, Some(42));
        assert_eq!(parser.usage().cache_read_input_tokens, Some(9));
        assert_eq!(parser.usage().cache_creation_input_tokens, Some(4));
        assert_eq!(parser.stop_reason(), Some("tool_use"));
        assert!(parser.saw_content());
        assert!(parser.is_complete());
        assert_eq!(parser.error(), None);
    }

    #[test]
    fn whole_stream_in_one_chunk() {
        let mut p = SseUsageParser::new();
        p.feed(&sample_stream(false));
        check(&p);
    }

    #[test]
    fn byte_by_byte_with_crlf() {
        let mut p = SseUsageParser::new();
        for b in sample_stream(true) {
            p.feed(&[b]);
        }
        check(&p);
    }

    #[test]
    fn truncated_stream_is_not_complete() {
        let full = sample_stream(false);
        let mut p = SseUsageParser::new();
        p.feed(&full[..full.len() / 2]);
        assert!(!p.is_complete());
        assert_eq!(p.usage().input_tokens, Some(25));
    }

    #[test]
    fn error_event_inside_a_200_stream() {
        let mut p = SseUsageParser::new();
        p.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        assert_eq!(p.error(), Some("overloaded_error: Overloaded"));
        assert!(!p.is_complete());
    }

    #[test]
    fn unnamed_events_are_read_by_their_type() {
        let mut p = SseUsageParser::new();
        p.feed(b"data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":3,\"input_tokens\":8}}\n\ndata: {\"type\":\"message_stop\"}\n\n");
        assert_eq!(p.usage().output_tokens, Some(3));
        assert_eq!(p.usage().input_tokens, Some(8));
        assert!(p.is_complete());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_result(
            cuts in proptest::collection::vec(0usize..2000, 0..40),
            crlf in any::<bool>(),
        ) {
            let stream = sample_stream(crlf);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut p = SseUsageParser::new();
            for w in points.windows(2) {
                p.feed(&stream[w[0]..w[1]]);
            }
            check(&p);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut p = SseUsageParser::new();
            p.feed(&bytes);
            let _ = (p.usage(), p.is_complete());
        }
    }
}
