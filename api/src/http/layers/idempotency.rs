//! `Idempotency-Key` on POST: the first request with a key runs and its
//! response is kept (for a day); a retry with the same key and the same
//! request gets that response again, marked `Idempotent-Replayed: true`,
//! without running anything. The same key with a different request is
//! refused (422), and so is a retry while the first is still running (409).
//!
//! Keys belong to one principal (a person or an API key) in one role: a
//! colleague's retry with the same key runs as a request of its own, and
//! is authorized as one. A response that carries a secret (a new API key's
//! token, a TOTP secret) is kept with the secret withheld: the retry learns
//! the outcome, and the secret exists only in the first response.
//!
//! Responses of 5xx are not kept: the request may not have happened, so a
//! retry runs it again. Requests without the header are not affected.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use sha2::{Digest, Sha256};

use crate::http::AppState;
use crate::http::auth::authenticate;
use crate::http::error::ApiError;
use crate::store::{IdempotencyClaim, StoredResponse};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The longest `Idempotency-Key` accepted.
pub(crate) const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;
/// A claimed key whose request has not finished in this long is taken to
/// belong to a request that died, and the next retry runs.
const STALE_AFTER: TimeDelta = TimeDelta::minutes(5);
/// Responses kept for replay are small JSON documents; a bigger one is
/// passed through and not kept.
const MAX_KEPT_RESPONSE: usize = 4 * 1024 * 1024;

enum ReadError {
    TooLarge,
    Failed,
}

async fn read(body: Body, limit: usize) -> Result<Bytes, ReadError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Failed),
    }
}

pub(crate) async fn idempotency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(k)
            if !k.is_empty()
                && k.len() <= IDEMPOTENCY_KEY_MAX_LEN
                && k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            k.to_owned()
        }
        _ => {
            return ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} visible ASCII characters"
            ))
            .into_response();
        }
    };
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let caller = match authenticate(&state, &parts).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    parts.extensions.insert(caller.clone());
    let limit = state.settings().max_body_bytes;
    let bytes = match read(body, limit).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => return ApiError::payload_too_large(limit).into_response(),
        Err(ReadError::Failed) => {
            return ApiError::bad_request("the request body could not be read").into_response();
        }
    };
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update([0]);
    hash.update(parts.uri.path());
    hash.update([0]);
    hash.update(&bytes);
    let hash = hash.finalize();

    let store = state.store();
    let ttl = TimeDelta::hours(i64::from(state.settings().idempotency_hours));
    let claim = store
        .claim_idempotency_key(&caller.actor, &key, &hash, ttl, STALE_AFTER)
        .await;
    match claim {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(IdempotencyClaim::Mismatch) => {
            return ApiError::invalid(
                "Idempotency-Key",
                "this key was used for a different request; use a new key for a new request",
            )
            .into_response();
        }
        Ok(IdempotencyClaim::InProgress) => {
            return ApiError::conflict(
                "a request with this Idempotency-Key is still being handled; retry shortly",
            )
            .into_response();
        }
        Ok(IdempotencyClaim::Replay(stored)) => return replay(stored),
        Ok(IdempotencyClaim::Fresh) => {}
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if status.is_server_error() {
        release(&state, &caller.actor, &key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = read(body, MAX_KEPT_RESPONSE).await else {
        release(&state, &caller.actor, &key).await;
        return ApiError::internal(&std::io::Error::other(
            "response too large to keep for replay",
        ))
        .into_response();
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: withhold_secrets(&path, &body),
    };
    if let Err(e) = store
        .complete_idempotency_key(&caller.actor, &key, &stored)
        .await
    {
        // The work is done; a retry would repeat it, but failing this
        // response would hide that it happened.
        tracing::warn!(error = %e, "could not keep an idempotent response");
    }
    Response::from_parts(parts, Body::from(body))
}

/// What a replay says in place of a secret that only the first response
/// carried.
pub const WITHHELD: &str =
    "(withheld: shown only in the first response; revoke it and make a new one if it was lost)";

/// The members of a response to `path` that carry a secret.
fn secret_members(path: &str) -> &'static [&'static str] {
    match path.trim_end_matches('/') {
        "/api/v1/api-keys" => &["token"],
        "/api/v1/users/me/totp" => &["secret", "otpauthUri"],
        "/api/v1/sessions" => &["token"],
        _ => &[],
    }
}

/// The response body as it is kept for replay: secrets replaced by
/// [`WITHHELD`]. A body that is not a JSON object is kept as it is (no
/// secret-bearing response is one).
fn withhold_secrets(path: &str, body: &[u8]) -> Vec<u8> {
    let members = secret_members(path);
    if members.is_empty() {
        return body.to_vec();
    }
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(body) else {
        // Not the document the secret would be in (e.g. a problem
        // document): nothing to withhold, but keep nothing unexpected.
        return body.to_vec();
    };
    for member in members {
        if let Some(value) = object.get_mut(*member) {
            *value = serde_json::Value::String(WITHHELD.to_owned());
        }
    }
    serde_json::to_vec(&object).unwrap_or_default()
}

async fn release(state: &AppState, actor: &crate::Actor, key: &str) {
    if let Err(e) = state.store().release_idempotency_key(actor, key).await {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    if let Some(ct) = stored
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
