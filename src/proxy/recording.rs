//! The response body the client receives: the upstream's bytes passed through as they
//! arrive, watched on the way for usage, the end of the message and a stalled stream,
//! and turned into one request record when the body ends, breaks, or is dropped.

use super::ProxyState;
use actix_web::web::{self, Bytes, BytesMut};
use claudeflare_actors::logger::IntakeWaiting;
use claudeflare_actors::protocol::{usage, SseUsageParser};
use claudeflare_actors::registry::RecordUse;
use claudeflare_actors::store::{Blob, LogEntry, RequestPayload, RequestRecord};
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// Largest JSON answer kept for reading its usage (a Messages answer is far smaller).
const JSON_USAGE_LIMIT: usize = 16 * 1024 * 1024;

/// How a response body ended.
#[derive(Debug)]
pub enum BodyEnd {
    /// The upstream finished sending.
    Complete,
    /// The upstream connection broke mid-body.
    UpstreamBroke(String),
    /// No bytes for longer than the stream idle timeout.
    IdleTimeout,
    /// The client went away before the end.
    ClientGone,
}

/// What is known of a request before its response body flows.
#[derive(Debug)]
pub struct RecordDraft {
    pub id: String,
    pub timestamp_ms: i64,
    pub started: Instant,
    pub method: String,
    pub path: String,
    pub account_id: Option<String>,
    pub account_name: String,
    pub status: u16,
    pub failover_attempts: i32,
    pub stream: bool,
    pub client_ip: Option<String>,
    pub requested_model: Option<String>,
    /// The model sent upstream, when an account's model map replaced the client's.
    pub sent_model: Option<String>,
    pub provider: Option<String>,
    pub api_key_name: Option<String>,
}

/// How a request turned out, for its record.
struct Outcome {
    success: bool,
    error_message: Option<String>,
    ended: Instant,
    first_token_ms: Option<i64>,
    /// The model the answer named, if it did.
    model: Option<String>,
    usage: claudeflare_actors::protocol::Usage,
    cost_usd: Option<f64>,
    tokens_per_second: Option<f64>,
    /// The answer was an event stream.
    streamed: bool,
}

impl RecordDraft {
    /// The one place a request record is put together.
    fn into_record(self, o: Outcome) -> RequestRecord {
        let model = o
            .model
            .or_else(|| self.sent_model.clone())
            .or_else(|| self.requested_model.clone());
        RequestRecord {
            id: self.id,
            timestamp: self.timestamp_ms,
            method: self.method,
            path: self.path,
            account_id: self.account_id,
            account_name: self.account_name,
            status_code: Some(i32::from(self.status)),
            success: o.success,
            error_message: o.error_message,
            response_time_ms: (o.ended - self.started).as_millis() as i64,
            time_to_first_token_ms: o.first_token_ms,
            failover_attempts: self.failover_attempts,
            model,
            input_tokens: o.usage.input_tokens,
            output_tokens: o.usage.output_tokens,
            cache_read_input_tokens: o.usage.cache_read_input_tokens,
            cache_creation_input_tokens: o.usage.cache_creation_input_tokens,
            cost_usd: o.cost_usd,
            output_tokens_per_second: o.tokens_per_second,
            stream: self.stream || o.streamed,
            client_ip: self.client_ip,
            requested_model: self.requested_model,
            provider: self.provider,
            api_key_name: self.api_key_name,
            // The logger stamps its own.
            instance_id: None,
        }
    }
}

/// The request side of a stored payload, ready before the response starts.
#[derive(Debug)]
pub struct PayloadDraft {
    pub request_headers: StoredHeaders,
    pub request_body: Option<Blob>,
    pub response_headers: StoredHeaders,
    pub truncated: bool,
}

/// Headers for a stored payload: as JSON already, or as they came, turned into JSON
/// when the record is built, after the answer went out (see [`after_flush`]): at c=1
/// the two header maps' JSON was ~1 µs of the client's wait.
#[derive(Debug)]
pub enum StoredHeaders {
    Json(String),
    /// The client's request (a reference count), whose headers these are.
    Request(actix_web::HttpRequest),
    Map(actix_web::http::header::HeaderMap),
}

impl StoredHeaders {
    fn into_json(self) -> String {
        match self {
            StoredHeaders::Json(json) => json,
            StoredHeaders::Request(req) => super::storable_headers(req.headers()),
            StoredHeaders::Map(map) => super::storable_headers(&map),
        }
    }
}

enum Watch {
    Sse(Box<SseUsageParser>),
    /// Any other body; `is_json` when its content type says JSON.
    Json {
        len: usize,
        overflow: bool,
        is_json: bool,
        encoding: Encoding,
    },
}

/// How the upstream encoded a body (it passes to the client as it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// br, zstd, deflate...: usage is not read from such a body.
    Other,
}

impl Encoding {
    pub fn from_header(value: Option<&str>) -> Encoding {
        let value = value.map_or("", str::trim);
        let is = |name: &str| value.eq_ignore_ascii_case(name);
        if value.is_empty() || is("identity") {
            Encoding::Identity
        } else if is("gzip") || is("x-gzip") {
            Encoding::Gzip
        } else {
            Encoding::Other
        }
    }
}

/// A media type's prefix test; media types are case-insensitive (RFC 9110, 8.3.1).
fn starts_with_ignoring_case(value: &str, prefix: &str) -> bool {
    value
        .as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// The decoded copy of a kept body, for reading its usage (`None`: cannot decode).
fn decoded(body: &[u8], encoding: Encoding) -> Option<std::borrow::Cow<'_, [u8]>> {
    match encoding {
        Encoding::Identity => Some(std::borrow::Cow::Borrowed(body)),
        Encoding::Gzip => {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(JSON_USAGE_LIMIT as u64)
                .read_to_end(&mut out)
                .ok()?;
            Some(std::borrow::Cow::Owned(out))
        }
        Encoding::Other => None,
    }
}

/// Collects what the record needs while the body passes; finishes exactly once.
pub struct Recorder {
    state: web::Data<ProxyState>,
    draft: RecordDraft,
    watch: Watch,
    /// Body chunks kept for the JSON usage and/or the payload capture (refcounted, not copied).
    kept: Vec<Bytes>,
    kept_len: usize,
    capture: Option<PayloadDraft>,
    first_token_at: Option<Instant>,
}

impl Recorder {
    pub fn new(
        state: web::Data<ProxyState>,
        draft: RecordDraft,
        content_type: &str,
        encoding: Encoding,
        capture: Option<PayloadDraft>,
    ) -> Self {
        state.engine.metrics.in_flight_streams.inc();
        let provider =
            claudeflare_actors::providers::by_id(draft.provider.as_deref().unwrap_or("anthropic"));
        let watch = if starts_with_ignoring_case(content_type, "text/event-stream") {
            Watch::Sse(Box::new(provider.stream_usage()))
        } else {
            Watch::Json {
                len: 0,
                overflow: false,
                is_json: starts_with_ignoring_case(content_type, "application/json"),
                encoding,
            }
        };
        Self {
            state,
            draft,
            watch,
            kept: Vec::new(),
            kept_len: 0,
            capture,
            first_token_at: None,
        }
    }

    fn on_chunk(&mut self, chunk: &Bytes) {
        let capture_limit = if self.capture.is_some() {
            self.state.settings.payload_max_bytes
        } else {
            0
        };
        match &mut self.watch {
            Watch::Sse(parser) => {
                parser.feed(chunk);
                if self.first_token_at.is_none() && parser.saw_content() {
                    self.first_token_at = Some(Instant::now());
                }
                if self.kept_len < capture_limit {
                    self.kept.push(chunk.clone());
                    self.kept_len += chunk.len();
                }
            }
            Watch::Json { len, overflow, .. } => {
                if self.first_token_at.is_none() {
                    self.first_token_at = Some(Instant::now());
                }
                *len += chunk.len();
                if *len > JSON_USAGE_LIMIT {
                    *overflow = true;
                }
                if !*overflow || self.kept_len < capture_limit {
                    self.kept.push(chunk.clone());
                    self.kept_len += chunk.len();
                }
            }
        }
    }

    /// Builds the record (and payload) and hands them to the logger and the stats.
    fn finish(self, end: BodyEnd) {
        let Recorder {
            state,
            draft,
            watch,
            kept,
            kept_len,
            capture,
            first_token_at,
        } = self;
        state.engine.metrics.in_flight_streams.dec();
        let ended = Instant::now();
        // One chunk (a JSON answer usually is) is shared; to be stored, it is
        // copied when it is much smaller than the buffer it was read into (see
        // [`SHARED_FROM`]). Without a payload it is only parsed, and dropped here.
        let storing = capture.is_some();
        let body_joined = || -> Bytes {
            if let [only] = kept.as_slice() {
                return if storing {
                    stored_chunk(only)
                } else {
                    only.clone()
                };
            }
            let mut all = BytesMut::with_capacity(kept_len);
            for c in &kept {
                all.extend_from_slice(c);
            }
            all.freeze()
        };
        let ok_status = (200..300).contains(&draft.status);

        let (model, usage, upstream_error, complete, joined) = match &watch {
            Watch::Sse(p) => (
                p.model().map(str::to_string),
                *p.usage(),
                p.error().map(str::to_string),
                p.is_complete(),
                None,
            ),
            Watch::Json {
                overflow,
                is_json,
                encoding,
                ..
            } => {
                let joined = body_joined();
                let plain = if *overflow {
                    None
                } else {
                    decoded(&joined, *encoding)
                };
                let provider = claudeflare_actors::providers::by_id(
                    draft.provider.as_deref().unwrap_or("anthropic"),
                );
                let parsed = plain
                    .as_deref()
                    .map(|b| provider.json_usage(b))
                    .unwrap_or_default();
                // A JSON answer cut short no longer parses (the client library reports
                // a cut chunked body as a normal end). A body this build cannot
                // decode is not judged.
                let complete = match &plain {
                    None => true,
                    Some(p) => {
                        p.is_empty()
                            || !is_json
                            || parsed != usage::ResponseUsage::default()
                            || serde_json::from_slice::<serde::de::IgnoredAny>(p).is_ok()
                    }
                };
                (
                    parsed.model,
                    parsed.usage,
                    parsed.error,
                    complete,
                    Some(joined),
                )
            }
        };
        let is_sse = matches!(watch, Watch::Sse(_));

        let error_message = match &end {
            BodyEnd::UpstreamBroke(e) => Some(format!("upstream stream broke: {e}")),
            BodyEnd::IdleTimeout => Some("upstream stream idle timeout".to_string()),
            BodyEnd::ClientGone => Some("client disconnected before the end".to_string()),
            BodyEnd::Complete => match upstream_error {
                Some(e) => Some(e),
                None if is_sse && !complete && ok_status => {
                    Some("stream truncated: ended without message_stop".to_string())
                }
                None if !complete && ok_status => {
                    Some("upstream body is not complete JSON: cut short".to_string())
                }
                None if !ok_status => Some(format!("upstream status {}", draft.status)),
                None => None,
            },
        };
        let success = ok_status && error_message.is_none();

        let model = model
            .or_else(|| draft.sent_model.clone())
            .or_else(|| draft.requested_model.clone());
        let cost = match (&model, usage.is_empty()) {
            (Some(m), false) => state.engine.prices.cost(m, &usage),
            _ => None,
        };
        let ttft = first_token_at.map(|t| (t - draft.started).as_millis() as i64);
        let tps = match (is_sse, first_token_at, usage.output_tokens) {
            (true, Some(first), Some(out)) if out > 0 => {
                let secs = (ended - first).as_secs_f64();
                (secs > 0.0).then(|| out as f64 / secs)
            }
            _ => None,
        };

        let record = draft.into_record(Outcome {
            success,
            error_message,
            ended,
            first_token_ms: ttft,
            model,
            usage,
            cost_usd: cost,
            tokens_per_second: tps,
            streamed: is_sse,
        });
        let payload = capture.map(|c| {
            let limit = state.settings.payload_max_bytes;
            let body = joined.unwrap_or_else(body_joined);
            let truncated = c.truncated || body.len() > limit;
            RequestPayload {
                request_id: record.id.clone(),
                request_headers: c.request_headers.into_json(),
                request_body: c.request_body,
                response_headers: c.response_headers.into_json(),
                response_body: Some(Blob(super::within(&body, limit))),
                truncated,
            }
        });
        submit(&state, record, payload);
    }
}

/// Hands a finished record to the logger (stored), which passes it on to the stats
/// (live), through the engine's intake (see `claudeflare_actors::intake`).
pub fn submit(state: &ProxyState, record: RequestRecord, payload: Option<RequestPayload>) {
    let entry = LogEntry {
        record: Arc::new(record),
        payload: payload.map(Arc::new),
    };
    if state.engine.intake.record(entry) {
        state.engine.logger.do_send(IntakeWaiting);
    }
}

/// Tells the registry (and through it the selector) that an account served a
/// request, through the engine's intake. A use after a failover is drained at once
/// (behind everything queued before it): it moves a client's session to the account
/// that answered, and the next request should find it moved.
pub fn record_use(state: &ProxyState, used: RecordUse, after_failover: bool) {
    if state.engine.intake.used(used) || after_failover {
        state.engine.logger.do_send(IntakeWaiting);
    }
}

/// A record for a request the proxy answered itself (no upstream body).
pub fn record_local_answer(
    state: &ProxyState,
    draft: RecordDraft,
    error: &str,
    capture: Option<(PayloadDraft, Bytes)>,
) {
    let record = draft.into_record(Outcome {
        success: false,
        error_message: Some(error.to_string()),
        ended: Instant::now(),
        first_token_ms: None,
        model: None,
        usage: Default::default(),
        cost_usd: None,
        tokens_per_second: None,
        streamed: false,
    });
    let payload = capture.map(|(c, body)| RequestPayload {
        request_id: record.id.clone(),
        request_headers: c.request_headers.into_json(),
        request_body: c.request_body,
        response_headers: c.response_headers.into_json(),
        response_body: Some(Blob(body)),
        truncated: c.truncated,
    });
    submit(state, record, payload);
}

/// From this size an upstream chunk is stored as it came, sharing its buffer; a
/// smaller one is copied for the record. awc reads a connection into buffers of
/// 8 KiB (actix-codec's `Framed`), and a chunk split off one keeps the whole
/// buffer alive, so a JSON answer of a few hundred bytes held ~8 KiB until its
/// record was written, and the connection allocated a fresh buffer for the next
/// answer. At c=64 the records waiting for their batch held ~25 MB that way
/// (docs/performance.md, thirteenth round).
const SHARED_FROM: usize = 8 * 1024;

/// A whole answer that came in one chunk, as the record keeps it (see [`SHARED_FROM`]).
fn stored_chunk(chunk: &Bytes) -> Bytes {
    if chunk.len() >= SHARED_FROM {
        chunk.clone()
    } else {
        Bytes::copy_from_slice(chunk)
    }
}

/// Errors the client's body stream can end with (the connection is then cut).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("upstream stream broke: {0}")]
    Upstream(String),
    #[error("upstream stream idle for longer than {0:?}")]
    Idle(Duration),
}

/// The body stream; see the module docs.
pub struct RecordingBody<S> {
    upstream: S,
    /// The upstream's Content-Length: a body that ends short of it was cut.
    expected_len: Option<u64>,
    received: u64,
    /// Fires at the latest possible idle deadline; re-armed from `last_chunk` when it
    /// fires early, so a chunk costs a clock read, not a timer update, and a body
    /// that is whole before it ever waits (a JSON answer) never arms a timer.
    idle: Pin<Box<Sleep>>,
    last_chunk: tokio::time::Instant,
    idle_timeout: Duration,
    /// Taken when the body ends, so `None` also means ended.
    recorder: Option<Recorder>,
    /// The request's place under the concurrency cap, released with the body.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<S> RecordingBody<S> {
    pub fn new(
        upstream: S,
        expected_len: Option<u64>,
        recorder: Recorder,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            upstream,
            expected_len,
            received: 0,
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            last_chunk: tokio::time::Instant::now(),
            idle_timeout,
            recorder: Some(recorder),
            _permit: None,
        }
    }

    /// Keeps the concurrency permit until the body is dropped.
    pub fn holding(mut self, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        self._permit = permit;
        self
    }

    /// Ends the body from `poll_next`: the record is built once the dispatcher has
    /// written the end to the client.
    fn finish(&mut self, end: BodyEnd) {
        if let Some(r) = self.recorder.take() {
            after_flush(move || r.finish(end));
        }
    }
}

/// Work waiting for the worker's current task to yield.
type Deferred = Vec<Box<dyn FnOnce()>>;

thread_local! {
    /// This worker's deferred work, run by one task for all of it: a spawned task per
    /// item (two per request) cost more than the work it deferred.
    static DEFERRED: std::cell::RefCell<Deferred> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `work` after the current task yields, when it is on a worker: the HTTP
/// dispatcher writes what it has to the socket before it yields, so bookkeeping
/// done here is not part of the client's wait (docs/performance.md). Elsewhere it
/// runs at once.
pub fn after_flush(work: impl FnOnce() + 'static) {
    if actix::Arbiter::try_current().is_none() {
        work();
        return;
    }
    let first = DEFERRED.with(|q| {
        let mut q = q.borrow_mut();
        q.push(Box::new(work));
        q.len() == 1
    });
    // The task is spawned by the first item of a round; it runs once this task yields,
    // and takes whatever the worker's other tasks queued by then as well.
    if first {
        actix::spawn(async { run_deferred() });
    }
}

/// Runs the worker's deferred work until none is left (work may defer more).
fn run_deferred() {
    let mut round = Deferred::new();
    loop {
        DEFERRED.with(|q| std::mem::swap(&mut *q.borrow_mut(), &mut round));
        if round.is_empty() {
            return;
        }
        for work in round.drain(..) {
            work();
        }
    }
}

impl<S, E> Stream for RecordingBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, StreamError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.recorder.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.upstream).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                if let Some(r) = this.recorder.as_mut() {
                    r.on_chunk(&chunk);
                }
                this.last_chunk = tokio::time::Instant::now();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let reason = e.to_string();
                this.finish(BodyEnd::UpstreamBroke(reason.clone()));
                Poll::Ready(Some(Err(StreamError::Upstream(reason))))
            }
            Poll::Ready(None) => match this.expected_len {
                // The client library reports a connection cut as the end of the body;
                // the declared length tells them apart.
                Some(expected) if expected != this.received => {
                    let reason = format!("body ended after {} of {expected} bytes", this.received);
                    this.finish(BodyEnd::UpstreamBroke(reason.clone()));
                    Poll::Ready(Some(Err(StreamError::Upstream(reason))))
                }
                _ => {
                    this.finish(BodyEnd::Complete);
                    Poll::Ready(None)
                }
            },
            Poll::Pending => loop {
                if this.idle.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let due = this.last_chunk + this.idle_timeout;
                if due <= tokio::time::Instant::now() {
                    this.finish(BodyEnd::IdleTimeout);
                    return Poll::Ready(Some(Err(StreamError::Idle(this.idle_timeout))));
                }
                // Chunks came since it was armed: wait out the rest of the quiet time.
                this.idle.as_mut().reset(due);
            },
        }
    }
}

impl<S> Drop for RecordingBody<S> {
    fn drop(&mut self) {
        // At once: a body dropped while the worker shuts down would not see a
        // spawned task run.
        if let Some(r) = self.recorder.take() {
            r.finish(BodyEnd::ClientGone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_answer_is_copied_and_a_large_one_shared() {
        // As awc hands them over: split off the connection's read buffer.
        let mut read = BytesMut::with_capacity(64 * 1024);
        read.extend_from_slice(&[b'x'; 40 * 1024]);
        let small = read.split_to(300).freeze();
        let large = read.split_to(SHARED_FROM).freeze();

        let stored = stored_chunk(&small);
        assert_eq!(stored, small);
        assert_ne!(stored.as_ptr(), small.as_ptr(), "its own bytes");
        assert!(stored.is_unique(), "nothing else holds its buffer");

        let stored = stored_chunk(&large);
        assert_eq!(stored.as_ptr(), large.as_ptr(), "shared, not copied");
    }

    #[test]
    fn media_types_and_encodings_match_in_any_case() {
        assert!(starts_with_ignoring_case(
            "Text/Event-Stream; charset=utf-8",
            "text/event-stream"
        ));
        assert!(starts_with_ignoring_case(
            "application/json",
            "application/json"
        ));
        assert!(!starts_with_ignoring_case(
            "text/event",
            "text/event-stream"
        ));
        assert!(!starts_with_ignoring_case("", "application/json"));
        assert_eq!(Encoding::from_header(None), Encoding::Identity);
        assert_eq!(
            Encoding::from_header(Some(" Identity ")),
            Encoding::Identity
        );
        assert_eq!(Encoding::from_header(Some("GZIP")), Encoding::Gzip);
        assert_eq!(Encoding::from_header(Some("x-gzip")), Encoding::Gzip);
        assert_eq!(Encoding::from_header(Some("br")), Encoding::Other);
        assert!(!starts_with_ignoring_case(
            "application/jsonl",
            "text/event-stream"
        ));
    }

    #[actix_web::test]
    async fn deferred_work_runs_once_the_task_yields_and_in_order() {
        let done = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        for i in 0..3 {
            let done = done.clone();
            after_flush(move || done.borrow_mut().push(i));
        }
        // Work deferred by deferred work runs in the same round.
        let inner = done.clone();
        after_flush(move || {
            let again = inner.clone();
            after_flush(move || again.borrow_mut().push(9));
        });
        assert!(
            done.borrow().is_empty(),
            "nothing runs before the task yields"
        );
        actix_web::rt::task::yield_now().await;
        actix_web::rt::task::yield_now().await;
        assert_eq!(*done.borrow(), vec![0, 1, 2, 9]);
    }
}
