//! The proxy: every `/v1/*` request, forwarded to an account chosen by the strategy.
//!
//! One request goes through named phases, each a small function over one
//! [`RequestContext`]: read the body, select candidates, and for each candidate get a
//! credential, send upstream and judge the answer (deliver, or next account); then
//! stream the chosen answer through a [`recording::RecordingBody`], which records the
//! request exactly once however it ends. Failover happens only before the first byte
//! goes to the client.

pub mod recording;

use crate::error::anthropic_error;
use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use claudeflare_actors::clock::{iso, now_ms};
use claudeflare_actors::domain::{Account, AccountKind, Credential};
use claudeflare_actors::protocol::headers::{self as rules, connection_listed};
use claudeflare_actors::protocol::{ratelimit, RateLimitInfo, RequestMeta, Verdict};
use claudeflare_actors::providers;
use claudeflare_actors::refresher::{GetCredential, TokenRefresher};
use claudeflare_actors::registry::{
    AuthFailedMark, CooldownMark, RateLimitMark, RateLimitObserved, RecordUse,
};
use claudeflare_actors::selector::Skipped;
use claudeflare_actors::store::Blob;
use claudeflare_actors::Engine;
use futures_util::StreamExt;
use recording::{PayloadDraft, RecordDraft, Recorder, RecordingBody, StoredHeaders};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The account name recorded when no account served a request.
pub const NO_ACCOUNT: &str = "no_account";
pub const REQUEST_ID_HEADER: &str = "x-claudeflare-request-id";
pub const ACCOUNT_HEADER: &str = "x-claudeflare-account";
/// The proxy's own time for this request in milliseconds (3 decimals): everything from
/// the request's arrival to our response being built, minus the time spent waiting for
/// the upstream's response headers.
pub const OVERHEAD_HEADER: &str = "x-claudeflare-overhead-ms";

/// The three names above, parsed once: every answer carries them.
static REQUEST_ID_NAME: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
static ACCOUNT_NAME: HeaderName = HeaderName::from_static(ACCOUNT_HEADER);
static OVERHEAD_NAME: HeaderName = HeaderName::from_static(OVERHEAD_HEADER);

/// The proxy's settings, fixed at start.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// The upstream base URL without a trailing slash.
    pub upstream_base: String,
    pub max_body_bytes: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub retry_attempts: u32,
    pub retry_delay_ms: u64,
    pub retry_backoff: f64,
    pub retry_max_delay_ms: u64,
    pub overload_cooldown_ms: u64,
    pub store_payloads: bool,
    pub payload_max_bytes: usize,
    /// OAuth tokens expiring within this window go through the refresher.
    pub refresh_window_ms: i64,
}

/// What every proxy request shares.
pub struct ProxyState {
    pub engine: Engine,
    pub settings: ProxySettings,
    /// One permit per proxied request in flight, held until its body ends.
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

/// One request as it moves through the phases.
struct RequestContext {
    id: String,
    started: Instant,
    timestamp_ms: i64,
    method: String,
    path: String,
    client_ip: Option<String>,
    body: Bytes,
    meta: RequestMeta,
    /// `x-claude-code-session-id`, else `metadata.user_id`: the client's session.
    session_key: Option<String>,
    failover_attempts: i32,
    /// Time spent waiting for upstream response headers, over every attempt.
    upstream_wait: Duration,
    /// Accounts left out or given up on, for the `pool_exhausted` answer.
    skipped: Vec<Skipped>,
    /// The access key the request came with (access control on).
    api_key_name: Option<String>,
    /// The model actually sent, when the account's model map replaced the client's.
    sent_model: Option<String>,
    /// This request's place under the concurrency cap.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The rate-limit headers of the successful answer, for the `RecordUse`.
    observed: Option<RateLimitInfo>,
}

impl RequestContext {
    fn new(req: &HttpRequest) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            started: Instant::now(),
            timestamp_ms: now_ms(),
            method: req.method().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| req.path().to_string()),
            client_ip: req.peer_addr().map(|a| a.ip().to_string()),
            body: Bytes::new(),
            meta: RequestMeta::default(),
            session_key: None,
            failover_attempts: 0,
            upstream_wait: Duration::ZERO,
            skipped: Vec::new(),
            api_key_name: req
                .extensions()
                .get::<claudeflare_actors::keys::Caller>()
                .map(|c| c.name.clone()),
            sent_model: None,
            permit: None,
            observed: None,
        }
    }

    /// The record's request half, at the request's last use of its context: the
    /// strings move into the record instead of being copied.
    fn into_draft(self, account: Option<&Account>, status: u16) -> RecordDraft {
        RecordDraft {
            id: self.id,
            timestamp_ms: self.timestamp_ms,
            started: self.started,
            method: self.method,
            path: self.path,
            account_id: account.map(|a| a.id.clone()),
            account_name: account.map_or_else(|| NO_ACCOUNT.to_string(), |a| a.name.clone()),
            status,
            failover_attempts: self.failover_attempts,
            stream: self.meta.stream,
            client_ip: self.client_ip,
            requested_model: self.meta.model,
            sent_model: self.sent_model,
            provider: account.map(|a| a.provider.clone()),
            api_key_name: self.api_key_name,
        }
    }

    /// The request half of a stored payload, when capture is on.
    fn payload_draft(
        &self,
        settings: &ProxySettings,
        request_headers: impl FnOnce() -> StoredHeaders,
        response_headers: impl FnOnce() -> StoredHeaders,
    ) -> Option<PayloadDraft> {
        if !settings.store_payloads {
            return None;
        }
        let limit = settings.payload_max_bytes;
        let truncated = self.body.len() > limit;
        Some(PayloadDraft {
            request_headers: request_headers(),
            request_body: Some(Blob(within(&self.body, limit))),
            response_headers: response_headers(),
            truncated,
        })
    }
}

/// The first `limit` bytes of a body to be stored: shared when it is all of it,
/// copied when cut, so that a stored prefix does not hold the whole body's buffer
/// while the record waits for its batch.
fn within(body: &Bytes, limit: usize) -> Bytes {
    if body.len() <= limit {
        body.clone()
    } else {
        Bytes::copy_from_slice(&body[..limit])
    }
}

/// Headers as a JSON object, with every credential-bearing header removed; a repeated
/// header's values joined with ", ". Written straight into one buffer in the map's
/// order (the API's reader sorts the names): two of these per request.
fn storable_headers(headers: &HeaderMap) -> String {
    let mut out = Vec::with_capacity(2 + 48 * headers.len());
    out.push(b'{');
    // actix's map yields a repeated header's values one after another.
    let mut pairs = headers
        .iter()
        .filter(|(name, _)| rules::storable(name.as_str()))
        .peekable();
    while let Some((name, first)) = pairs.next() {
        if out.len() > 1 {
            out.push(b',');
        }
        // A header name is a lowercase token: nothing in it needs escaping.
        out.push(b'"');
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b"\":");
        if pairs.peek().is_some_and(|(next, _)| *next == name) {
            let mut joined = String::from_utf8_lossy(first.as_bytes()).into_owned();
            while let Some((_, value)) = pairs.next_if(|(next, _)| *next == name) {
                joined.push_str(", ");
                joined.push_str(&String::from_utf8_lossy(value.as_bytes()));
            }
            json_string(&mut out, &joined);
        } else {
            json_value(&mut out, first.as_bytes());
        }
    }
    out.push(b'}');
    // Only valid UTF-8 was written.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends a header value as a JSON string literal: printable ASCII without `"` or
/// `\` (nearly every value) as it is, anything else through [`json_string`], with
/// bytes that are not UTF-8 replaced.
fn json_value(out: &mut Vec<u8>, value: &[u8]) {
    if value
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(value);
        out.push(b'"');
    } else {
        json_string(out, &String::from_utf8_lossy(value));
    }
}

/// The outcome of one upstream attempt.
enum Attempt {
    Deliver(awc::ClientResponse),
    Failed {
        skip: Skipped,
        /// A transient failure: the last candidate may be retried with backoff.
        retryable: bool,
        retry_after_ms: Option<i64>,
    },
}

/// `/v1/{tail}`: the proxy handler.
pub async fn proxy(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let mut ctx = RequestContext::new(&req);
    match state.in_flight.clone().try_acquire_owned() {
        Ok(permit) => ctx.permit = Some(permit),
        Err(_) => {
            let message = "the proxy is at its limit of concurrent requests; retry shortly";
            let body =
                json!({"type": "error", "error": {"type": "overloaded_error", "message": message}});
            return local_answer(
                &state,
                &req,
                ctx,
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded_error",
                message,
                Some((body, 1)),
            );
        }
    }
    match read_body(payload, &req, state.settings.max_body_bytes).await {
        Ok(body) => {
            ctx.meta = RequestMeta::from_body(&body);
            ctx.body = body;
            let live = &state.engine.live;
            if live.has_subscribers() {
                live.started(claudeflare_actors::stats::RequestStart {
                    id: ctx.id.clone(),
                    timestamp: claudeflare_actors::clock::iso(ctx.timestamp_ms),
                    method: ctx.method.clone(),
                    path: ctx.path.clone(),
                    model: ctx.meta.model.clone(),
                    stream: ctx.meta.stream,
                });
            }
        }
        Err(BodyError::TooLarge) => {
            let message = format!(
                "request body is larger than the proxy's limit of {} bytes",
                state.settings.max_body_bytes
            );
            return local_answer(
                &state,
                &req,
                ctx,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &message,
                None,
            );
        }
        Err(BodyError::Read(e)) => {
            let message = format!("could not read the request body: {e}");
            return local_answer(
                &state,
                &req,
                ctx,
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &message,
                None,
            );
        }
    }

    ctx.session_key = req
        .headers()
        .get("x-claude-code-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| ctx.meta.user_id.clone());
    let selection = state.engine.select.select(
        ctx.session_key.as_deref(),
        claudeflare_actors::clock::now_ms(),
    );

    if selection.configured == 0 {
        return forward_unauthenticated(req, ctx, state, client).await;
    }

    ctx.skipped = selection.skipped();
    let total = selection.candidates.len();
    for (i, account) in selection.candidates.into_iter().enumerate() {
        let last = i + 1 == total;
        let mut retries = 0u32;
        loop {
            match attempt(&req, &client, &state, &mut ctx, &account).await {
                Attempt::Deliver(response) => {
                    return deliver(&req, ctx, state, response, Some(account));
                }
                Attempt::Failed {
                    skip,
                    retryable,
                    retry_after_ms,
                } => {
                    tracing::info!(account = %account.name, reason = %skip.reason, "upstream attempt failed");
                    if retryable && last && retries < state.settings.retry_attempts {
                        if let Some(delay) = retry_delay(&state.settings, retries, retry_after_ms) {
                            retries += 1;
                            ctx.failover_attempts += 1;
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                    ctx.skipped.push(skip);
                    break;
                }
            }
        }
        if !last {
            ctx.failover_attempts += 1;
        }
    }
    pool_exhausted(&state, &req, ctx)
}

enum BodyError {
    TooLarge,
    Read(String),
}

/// Reads the whole request body once, refusing it as soon as it passes the limit.
async fn read_body(
    mut payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Builds the upstream request: same method, path and query; the client's headers
/// minus hop-by-hop ones; the account's credential in place of the client's.
fn upstream_request(
    client: &awc::Client,
    req: &HttpRequest,
    settings: &ProxySettings,
    target: Option<(&Account, &Credential)>,
) -> awc::ClientRequest {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = match target {
        Some((account, _)) => {
            providers::for_account(account).upstream_url(account, &settings.upstream_base, path)
        }
        None => format!("{}{}", settings.upstream_base, path),
    };
    let mut up = client
        .request(req.method().clone(), url)
        .no_decompress()
        .timeout(settings.header_timeout);
    let listed = connection_listed(
        req.headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok()),
    );
    let headers = up.headers_mut();
    for (name, value) in req.headers() {
        let keep = if target.is_some() {
            rules::forward_to_account(name.as_str(), &listed)
        } else {
            rules::forward_unauthenticated(name.as_str(), &listed)
        };
        if keep {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some((account, credential)) = target {
        providers::for_account(account).apply_credential(headers, credential);
    }
    up
}

/// The body for one account: the client's bytes, or (when the account's model map
/// names another model for the requested one) the same bytes with only `model`
/// replaced. Also returns the model sent when it was replaced.
fn body_for(ctx: &RequestContext, account: &Account) -> (Bytes, Option<String>) {
    let mapped = match (&account.model_map, &ctx.meta.model) {
        (Some(map), Some(requested)) => providers::mapped_model(map, requested),
        _ => None,
    };
    match mapped.and_then(|m| providers::rewrite_model(&ctx.body, &m).map(|b| (b, m))) {
        Some((body, model)) => (Bytes::from(body), Some(model)),
        None => (ctx.body.clone(), None),
    }
}

/// The account's credential: at once when it is a key or a token good for a while,
/// else from the TokenRefresher (which refreshes, one refresh per account at a time).
async fn credential(
    state: &ProxyState,
    account: &Arc<Account>,
    force_refresh: bool,
) -> Result<Credential, String> {
    if !force_refresh {
        let window = state.settings.refresh_window_ms;
        if let Some(c) = TokenRefresher::ready_credential(account, now_ms(), window) {
            return Ok(c);
        }
    }
    let ask = GetCredential {
        account: account.clone(),
        force_refresh,
    };
    match state.engine.refresher.send(ask).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// One try on one account: credential, send, and the verdict on the answer. An
/// OAuth account whose token the upstream refuses gets one forced refresh and one
/// more try before it counts as failed.
async fn attempt(
    req: &HttpRequest,
    client: &awc::Client,
    state: &ProxyState,
    ctx: &mut RequestContext,
    account: &Arc<Account>,
) -> Attempt {
    let engine = &state.engine;
    let failed = |reason: String, available_at: Option<i64>, retryable: bool, retry_after_ms| {
        Attempt::Failed {
            skip: Skipped {
                name: account.name.clone(),
                reason,
                available_at,
            },
            retryable,
            retry_after_ms,
        }
    };
    let mut forced = false;
    loop {
        let credential = match credential(state, account, forced).await {
            Ok(c) => c,
            Err(e) => return failed(format!("credential: {e}"), None, false, None),
        };
        let request = upstream_request(client, req, &state.settings, Some((account, &credential)));
        let (body, sent_model) = body_for(ctx, account);
        ctx.sent_model = sent_model;
        let sent = Instant::now();
        let sending = request.send_body(body).await;
        ctx.upstream_wait += sent.elapsed();
        let response = match sending {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(account = %account.name, error = %e, "upstream request failed");
                return failed(format!("upstream unreachable: {e}"), None, true, None);
            }
        };
        let now = now_ms();
        let status = response.status().as_u16();
        // The parser asks for ~20 names; most answers carry none of them.
        let limits: Vec<(&str, &str)> = response
            .headers()
            .iter()
            .filter(|(name, _)| ratelimit::is_limit_header(name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let info = providers::for_account(account).rate_limits(
            &|name| limits.iter().find(|(n, _)| *n == name).map(|(_, v)| *v),
            now,
        );
        let success = response.status().is_success();
        let verdict = ratelimit::classify(status, &info, now);
        let retry_after_ms = info.retry_after_ms;
        if success {
            // Goes to the registry with the request's RecordUse (one message fewer).
            ctx.observed = Some(info);
        } else if info.has_limit_headers {
            engine.registry.do_send(RateLimitObserved {
                account_id: account.id.clone(),
                info,
            });
        }
        return match verdict {
            Verdict::Deliver => Attempt::Deliver(response),
            Verdict::RateLimited { until_ms } => {
                // Awaited: the registry has updated the selector before this request moves
                // on, so no later request is offered the account it just took out.
                let _ = engine
                    .registry
                    .send(RateLimitMark {
                        account_id: account.id.clone(),
                        until_ms,
                    })
                    .await;
                failed("rate_limited".into(), Some(until_ms), false, None)
            }
            Verdict::Windowless => failed("rate_limited_windowless".into(), None, false, None),
            Verdict::Overloaded => {
                let until_ms = now + state.settings.overload_cooldown_ms as i64;
                // Awaited: the registry has updated the selector before this request moves
                // on, so no later request is offered the account it just took out.
                let _ = engine
                    .registry
                    .send(CooldownMark {
                        account_id: account.id.clone(),
                        until_ms,
                    })
                    .await;
                failed("overloaded".into(), Some(until_ms), true, retry_after_ms)
            }
            Verdict::Transient => failed(
                format!("upstream status {status}"),
                None,
                true,
                retry_after_ms,
            ),
            Verdict::AuthFailed
                if account.kind == AccountKind::Oauth && !forced && status == 401 =>
            {
                tracing::info!(account = %account.name, "upstream refused the access token; refreshing once");
                forced = true;
                continue;
            }
            Verdict::AuthFailed => {
                // Awaited: the registry has updated the selector before this request moves
                // on, so no later request is offered the account it just took out.
                let _ = engine
                    .registry
                    .send(AuthFailedMark {
                        account_id: account.id.clone(),
                    })
                    .await;
                failed("auth_failed".into(), None, false, None)
            }
        };
    }
}

/// The wait before retrying the last candidate: exponential backoff with jitter, at
/// least what `retry-after` asks; `None` when that is longer than we are willing to wait.
fn retry_delay(
    settings: &ProxySettings,
    retries: u32,
    retry_after_ms: Option<i64>,
) -> Option<Duration> {
    let base = settings.retry_delay_ms as f64 * settings.retry_backoff.powi(retries as i32);
    let jittered = base * (0.5 + fastrand::f64() * 0.5);
    let asked = retry_after_ms
        .map(|at| (at - now_ms()).max(0) as f64)
        .unwrap_or(0.0);
    let wait = jittered.max(asked);
    (wait <= settings.retry_max_delay_ms as f64).then(|| Duration::from_millis(wait as u64))
}

/// Sends the chosen upstream answer to the client as it arrives.
fn deliver(
    req: &HttpRequest,
    mut ctx: RequestContext,
    state: web::Data<ProxyState>,
    response: awc::ClientResponse,
    account: Option<Arc<Account>>,
) -> HttpResponse {
    let status = response.status();
    // The upstream's headers, taken out of the response (only its body is read from
    // here on), so that a stored payload can keep them and write their JSON later.
    let mut upstream_headers = HeaderMap::new();
    let response = response.map_body(|head, payload| {
        upstream_headers = std::mem::take(&mut head.headers);
        payload
    });
    let mut builder = HttpResponse::build(status);
    for (name, value) in &upstream_headers {
        if rules::forward_to_client(name.as_str()) {
            builder.append_header((name.clone(), value.clone()));
        }
    }
    let account_name = account.as_ref().map_or(NO_ACCOUNT, |a| a.name.as_str());
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        builder.insert_header((REQUEST_ID_NAME.clone(), v));
    }
    if let Ok(v) = HeaderValue::from_str(account_name) {
        builder.insert_header((ACCOUNT_NAME.clone(), v));
    }
    if let Some(a) = &account {
        let used = RecordUse {
            account_id: a.id.clone(),
            session_key: ctx.session_key.clone(),
            at_ms: now_ms(),
            observed: ctx.observed.take(),
        };
        recording::record_use(&state, used, ctx.failover_attempts > 0);
    }
    let header_text = |name| upstream_headers.get(name).and_then(|v| v.to_str().ok());
    // A shared-bytes handle, not a copy: the map moves into the payload below.
    let content_type = upstream_headers.get(header::CONTENT_TYPE).cloned();
    let length = header_text(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let encoding = recording::Encoding::from_header(header_text(header::CONTENT_ENCODING));
    let idle = state.settings.idle_timeout;
    let capture = ctx.payload_draft(
        &state.settings,
        || StoredHeaders::Request(req.clone()),
        || StoredHeaders::Map(upstream_headers),
    );
    builder.insert_header((
        OVERHEAD_NAME.clone(),
        overhead_value(&ctx, &state.engine.metrics),
    ));
    let permit = ctx.permit.take();
    let draft = ctx.into_draft(account.as_deref(), status.as_u16());
    let content_type = content_type.as_ref().and_then(|v| v.to_str().ok());
    let recorder = Recorder::new(state, draft, content_type.unwrap_or(""), encoding, capture);
    let body = RecordingBody::new(response, length, recorder, idle).holding(permit);
    match length {
        Some(n) => builder.body(SizedStream::new(n, body)),
        None => builder.streaming(body),
    }
}

/// `x-claudeflare-overhead-ms`: the time since the request arrived, minus the upstream
/// waits, as milliseconds with 3 decimals.
fn overhead_value(
    ctx: &RequestContext,
    metrics: &claudeflare_actors::metrics::Metrics,
) -> HeaderValue {
    let overhead = ctx.started.elapsed().saturating_sub(ctx.upstream_wait);
    metrics.overhead_seconds.observe(overhead.as_secs_f64());
    let micros = overhead.as_micros();
    let text = format!("{}.{:03}", micros / 1000, micros % 1000);
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0.000"))
}

/// No account is configured: the client's request goes upstream with its own
/// credential, so the daemon is useful before any account is added.
async fn forward_unauthenticated(
    req: HttpRequest,
    mut ctx: RequestContext,
    state: web::Data<ProxyState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let request = upstream_request(&client, &req, &state.settings, None);
    let sent = Instant::now();
    let sending = request.send_body(ctx.body.clone()).await;
    ctx.upstream_wait += sent.elapsed();
    match sending {
        Ok(response) => deliver(&req, ctx, state, response, None),
        Err(e) => {
            let message = format!("upstream unreachable: {e}");
            local_answer(
                &state,
                &req,
                ctx,
                StatusCode::BAD_GATEWAY,
                "api_error",
                &message,
                None,
            )
        }
    }
}

/// 503 when no account can take the request: who was skipped and when the first
/// comes back, in the body and as `Retry-After`.
fn pool_exhausted(state: &ProxyState, req: &HttpRequest, ctx: RequestContext) -> HttpResponse {
    let now = now_ms();
    let next = ctx
        .skipped
        .iter()
        .filter_map(|s| s.available_at)
        .filter(|t| *t > now)
        .min();
    let retry_after = next
        .map_or(60, |t| ((t - now) as f64 / 1000.0).ceil() as i64)
        .clamp(1, 3600);
    let accounts: Vec<serde_json::Value> = ctx
        .skipped
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "reason": s.reason,
                "available_at": s.available_at.map(iso),
            })
        })
        .collect();
    let message = format!(
        "no account can take this request: {} configured, none available",
        ctx.skipped.len()
    );
    let body = json!({
        "type": "error",
        "error": {
            "type": "pool_exhausted",
            "message": message,
            "next_available_at": next.map(iso),
            "accounts": accounts,
        }
    });
    local_answer(
        state,
        req,
        ctx,
        StatusCode::SERVICE_UNAVAILABLE,
        "pool_exhausted",
        &message,
        Some((body, retry_after)),
    )
}

/// An answer the proxy makes itself, in Anthropic's error shape, recorded like any
/// other request. `custom` replaces the body and sets `Retry-After`.
fn local_answer(
    state: &ProxyState,
    req: &HttpRequest,
    ctx: RequestContext,
    status: StatusCode,
    kind: &str,
    message: &str,
    custom: Option<(serde_json::Value, i64)>,
) -> HttpResponse {
    let mut response = match &custom {
        Some((body, _)) => HttpResponse::build(status).json(body),
        None => anthropic_error(status, kind, message),
    };
    let headers = response.headers_mut();
    if let Some((_, retry_after)) = custom {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    headers.insert(
        HeaderName::from_static(ACCOUNT_HEADER),
        HeaderValue::from_static(NO_ACCOUNT),
    );
    let body_text = match &custom {
        Some((body, _)) => body.to_string(),
        None => json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
    };
    let capture = ctx
        .payload_draft(
            &state.settings,
            || StoredHeaders::Json(storable_headers(req.headers())),
            || StoredHeaders::Json(storable_headers(response.headers())),
        )
        .map(|d| (d, Bytes::from(body_text)));
    recording::record_local_answer(
        state,
        ctx.into_draft(None, status.as_u16()),
        message,
        capture,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn a_stored_body_shares_its_buffer_unless_cut() {
        let body = Bytes::from(vec![7u8; 100]);
        let whole = within(&body, 100);
        assert_eq!(whole.as_ptr(), body.as_ptr());
        let cut = within(&body, 10);
        assert_eq!(cut.len(), 10);
        assert_ne!(cut.as_ptr(), body.as_ptr());
    }

    #[test]
    fn stored_headers_are_joined_escaped_and_without_secrets() {
        let mut headers = HeaderMap::new();
        let mut add = |name: &'static str, value: &[u8]| {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_bytes(value).expect("value"),
            );
        };
        add("x-b", b"two");
        add("anthropic-beta", b"a");
        add("x-api-key", b"sk-ant-secret");
        add("authorization", b"Bearer secret");
        add("anthropic-beta", b"b");
        add("x-quote", br#"say "hi" \ ok"#);
        add("x-latin1", &[0x63, 0x61, 0x66, 0xe9]);
        add("x-tab", b"a\tb");
        let stored = storable_headers(&headers);
        let parsed: serde_json::Value = serde_json::from_str(&stored).expect("JSON");
        assert_eq!(
            parsed,
            json!({
                "anthropic-beta": "a, b",
                "x-b": "two",
                "x-latin1": "caf\u{fffd}",
                "x-quote": r#"say "hi" \ ok"#,
                "x-tab": "a\tb",
            })
        );
        assert!(
            stored.contains(r#""x-quote":"say \"hi\" \\ ok""#),
            "{stored}"
        );
        assert!(stored.contains(r#""x-tab":"a\tb""#), "{stored}");
        assert!(!stored.contains("secret"));
        assert_eq!(storable_headers(&HeaderMap::new()), "{}");
    }
}
