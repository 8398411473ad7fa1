//! What goes back to the client once a replica answers: a plain answer
//! read whole (bounded) and passed on, or a streamed one passed event by
//! event as it arrives, with the usage chunk the client did not ask for
//! taken out; and either way, when the answer ends however it ends, its
//! metrics and its [`Bill`] — the tokens metered under the request's id
//! and spent from the key's and the tenant's tokens per minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;

use super::error::AnswerAsIs;
use super::limits::TokenRate;
use super::meter::Metering;
use super::stream::{Events, Usage};
use super::{MAX_ANSWER_BYTES, Slot, balance, metrics};
use crate::ids::{ApiKeyId, RequestId, TenantId};
use crate::store::TokenRecord;

/// The headers of an engine's answer that go to the client, and the
/// request's id (what its metered tokens are recorded under).
pub(super) fn answer_headers(answer: &reqwest::Response, request: RequestId) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = answer.status();
    response.extensions_mut().insert(AnswerAsIs);
    if let Ok(id) = HeaderValue::from_str(&request.to_string()) {
        response.headers_mut().insert("x-request-id", id);
    }
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(value) = answer.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// Why a plain answer could not be read whole.
pub(super) enum Whole {
    /// The replica's connection broke before its end.
    CutOff,
    TooLarge,
}

/// A plain answer's body, whole.
pub(super) async fn read_whole(answer: reqwest::Response) -> Result<Vec<u8>, Whole> {
    let mut body = Vec::new();
    let mut chunks = answer.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| Whole::CutOff)?;
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Whole::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(super) fn pass_whole(
    mut response: Response,
    status: StatusCode,
    body: Vec<u8>,
    lease: (balance::Lease, Slot),
    (labels, bill): (metrics::Labels, Bill),
    started: Instant,
) -> Response {
    drop(lease);
    let usage = super::stream::usage_of_answer(&body);
    let took = started.elapsed();
    labels.answered(status.as_u16(), usage, took, None, None);
    bill.settle(status.as_u16(), usage, took, None);
    *response.body_mut() = Body::from(body);
    response
}

/// A streamed answer's record, made once when the stream ends, however
/// it ends: the engine finished (its status), the engine's stream broke
/// (502), or the client went away (499, as nginx counts it).
struct StreamEnd {
    labels: metrics::Labels,
    bill: Option<Bill>,
    started: Instant,
    first_byte: Option<Duration>,
    /// When the first event carrying choices passed.
    first_token: Option<Duration>,
    usage: Option<Usage>,
    /// Events with choices passed so far.
    choice_events: u64,
    status: u16,
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        self.labels.answered(
            self.status,
            self.usage,
            took,
            self.first_byte,
            self.first_token,
        );
        if let Some(bill) = self.bill.take() {
            // A stream cut before its usage chunk (the client left, the
            // engine broke) is metered by what passed: one output token
            // per event, and the prompt at four bytes a token.
            let usage = self.usage.or_else(|| {
                (self.choice_events > 0).then(|| Usage {
                    prompt_tokens: bill.prompt_bytes.div_ceil(4) as u64,
                    completion_tokens: self.choice_events,
                })
            });
            bill.settle(self.status, usage, took, self.first_token);
        }
    }
}

/// What a request's metered tokens are recorded as, once its answer ends.
pub(super) struct Bill {
    pub(super) metering: Metering,
    /// The key's and the tenant's tokens per minute.
    pub(super) rates: (Arc<TokenRate<ApiKeyId>>, Arc<TokenRate<TenantId>>),
    pub(super) record: TokenRecord,
    /// The bytes of its prompt text.
    pub(super) prompt_bytes: usize,
}

impl Bill {
    /// Records the request's tokens, if it used any, with how long it
    /// took and (streamed) when its first token passed.
    fn settle(
        mut self,
        status: u16,
        usage: Option<Usage>,
        took: Duration,
        first_token: Option<Duration>,
    ) {
        let Some(usage) = usage else { return };
        if usage.prompt_tokens == 0 && usage.completion_tokens == 0 {
            return;
        }
        self.record.status = status;
        self.record.input_tokens = usage.prompt_tokens;
        self.record.output_tokens = usage.completion_tokens;
        self.record.at = crate::store::now();
        let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        self.record.duration_ms = Some(millis(took));
        self.record.first_token_ms = first_token.map(millis);
        let used = usage.prompt_tokens.saturating_add(usage.completion_tokens);
        let now = Instant::now();
        if let Some(key) = &self.record.api_key {
            self.rates.0.spend(key, used, now);
        }
        self.rates.1.spend(&self.record.tenant, used, now);
        self.metering.record(self.record);
    }
}

/// The bytes of a request's prompt text: its messages' contents, its
/// prompt or its input.
pub(super) fn prompt_bytes(request: &serde_json::Map<String, serde_json::Value>) -> usize {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    if let Some(messages) = request.get("messages").and_then(|m| m.as_array()) {
        messages
            .iter()
            .filter_map(|m| m.get("content"))
            .map(text)
            .sum()
    } else {
        request
            .get("prompt")
            .or_else(|| request.get("input"))
            .map(text)
            .unwrap_or(0)
    }
}

/// What a streamed answer carries from one chunk to the next.
struct Passing<S> {
    upstream: S,
    events: Events,
    end: StreamEnd,
    /// Dropped with the stream: the replica's request ends.
    _lease: (balance::Lease, Slot),
}

pub(super) fn pass_stream<S>(
    mut response: Response,
    status: u16,
    upstream: S,
    lease: (balance::Lease, Slot),
    client_wants_usage: bool,
    (labels, bill): (metrics::Labels, Bill),
    started: Instant,
) -> Response
where
    S: futures::Stream<Item = reqwest::Result<Bytes>> + Unpin + Send + 'static,
{
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let passing = Passing {
        upstream,
        events: Events::new(client_wants_usage),
        end: StreamEnd {
            labels,
            bill: Some(bill),
            started,
            choice_events: 0,
            first_byte: None,
            first_token: None,
            usage: None,
            status: 499,
        },
        _lease: lease,
    };
    // Ends when the engine's stream does, or when the client goes away
    // (axum drops it, and with it the engine's connection and the lease).
    let stream = futures::stream::unfold(Some(passing), move |passing| async move {
        let mut passing = passing?;
        loop {
            match passing.upstream.next().await {
                Some(Ok(chunk)) => {
                    let out = passing.events.push(&chunk);
                    passing.end.usage = passing.events.usage;
                    passing.end.choice_events = passing.events.choice_events;
                    if passing.end.choice_events > 0 && passing.end.first_token.is_none() {
                        passing.end.first_token = Some(started.elapsed());
                    }
                    if !out.is_empty() {
                        passing
                            .end
                            .first_byte
                            .get_or_insert_with(|| started.elapsed());
                        return Some((Ok::<Bytes, std::io::Error>(out), Some(passing)));
                    }
                }
                end => {
                    let tail = passing.events.finish();
                    passing.end.usage = passing.events.usage;
                    passing.end.choice_events = passing.events.choice_events;
                    passing.end.status = if matches!(end, Some(Err(_))) {
                        502
                    } else {
                        status
                    };
                    drop(passing);
                    return (!tail.is_empty()).then_some((Ok(tail), None));
                }
            }
        }
    });
    *response.body_mut() = Body::from_stream(stream);
    response
}
