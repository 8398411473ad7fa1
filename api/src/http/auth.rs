//! Who is calling: `Authorization: Bearer <token>`, where the token is a
//! tenant API key (`mf_…`) or a session token (`mfs_…`) from
//! `POST /api/v1/sessions`, which is how platform staff (who have no
//! tenant, so no API keys) and people reach the API with a password.
//!
//! Every refusal is the same 401, whatever was wrong with the token; the
//! reason goes to the debug log only. Roles and tenants are checked by the
//! store on every read and write; [`Caller`] only says who acts.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use tracing::debug;

use super::AppState;
use super::error::ApiError;
use super::layers::audit::{RequestAudit, origin};
use crate::gateway::cache::KeyCache;
use crate::service::Pending;
use crate::service::throttle::Source;
use crate::store::{AuthenticatedKey, KeyAuthError, SESSION_TOKEN_PREFIX, SessionAuthError};

/// The authenticated caller of a request.
pub use crate::service::Caller;

/// Authenticates the bearer token of a request, and tells the audit layer
/// who it is.
pub(crate) async fn authenticate(state: &AppState, parts: &Parts) -> Result<Caller, ApiError> {
    let caller = authenticate_token(state, parts).await?;
    if let Some(tracking) = parts.extensions.get::<RequestAudit>() {
        tracking.authenticated(&caller.actor);
    }
    Ok(caller)
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)
}

async fn authenticate_token(state: &AppState, parts: &Parts) -> Result<Caller, ApiError> {
    let token = bearer_token(parts)?;
    throttled(state, parts, authenticate_with(state, parts, token)).await
}

/// Authenticates as [`authenticate`] does, but answers a tenant API key
/// that authenticated moments ago from `keys` without reading the
/// database: the inference gateway's path (see `gateway::cache`).
pub(crate) async fn authenticate_cached(
    state: &AppState,
    parts: &Parts,
    keys: &KeyCache,
) -> Result<Caller, ApiError> {
    let token = bearer_token(parts)?;
    if token.starts_with(SESSION_TOKEN_PREFIX) {
        return authenticate(state, parts).await;
    }
    let store = state.store();
    let key = match keys.get(store, token) {
        Some(key) => key,
        None => {
            let revocations = store.key_revocations();
            let key = throttled(state, parts, check_api_key(state, token)).await?;
            keys.put(store, token, key.clone(), revocations);
            key
        }
    };
    let caller = Caller {
        actor: key.actor(origin(parts)),
        session: None,
        pending: None,
    };
    if let Some(tracking) = parts.extensions.get::<RequestAudit>() {
        tracking.authenticated(&caller.actor);
    }
    Ok(caller)
}

async fn check_api_key(state: &AppState, token: &str) -> Result<AuthenticatedKey, ApiError> {
    match state.store().authenticate_api_key(token).await {
        Ok(key) => Ok(key),
        Err(KeyAuthError::Store(e)) => Err(e.into()),
        Err(e) => {
            debug!(reason = e.metric_label(), "API key refused");
            Err(ApiError::unauthorized())
        }
    }
}

/// Checks credentials within the failure budget of the request's source
/// (issue 16, finding 4): a source that spent it gets 429 before any
/// lookup; each refusal (401) spends it.
async fn throttled<T>(
    state: &AppState,
    parts: &Parts,
    check: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let source = Source::of(origin(parts).source_ip);
    let throttle = state.hub().throttle();
    throttle.admit_credentials(source)?;
    let checked = check.await;
    if matches!(&checked, Err(e) if e.status() == StatusCode::UNAUTHORIZED) {
        throttle.credentials_failed(source);
    }
    checked
}

impl Caller {
    /// The caller a console request acts as: the signed-in user of the
    /// session token its cookie carries, told to the audit layer as a bearer
    /// token's caller is. With the session, so the console can see when
    /// it was opened and when it ends.
    pub async fn from_session_cookie(
        state: &AppState,
        parts: &Parts,
        token: &str,
    ) -> Result<(Caller, crate::store::Session, crate::store::User), ApiError> {
        throttled(
            state,
            parts,
            Caller::check_session_cookie(state, parts, token),
        )
        .await
    }

    async fn check_session_cookie(
        state: &AppState,
        parts: &Parts,
        token: &str,
    ) -> Result<(Caller, crate::store::Session, crate::store::User), ApiError> {
        if !token.starts_with(SESSION_TOKEN_PREFIX) {
            return Err(ApiError::unauthorized());
        }
        match state.store().authenticate_session(token).await {
            Ok((session, user)) => {
                let caller = Caller {
                    actor: user.actor(origin(parts)),
                    session: Some(session.id),
                    pending: state.hub().pending(&user),
                };
                if let Some(tracking) = parts.extensions.get::<RequestAudit>() {
                    tracking.authenticated(&caller.actor);
                }
                Ok((caller, session, user))
            }
            Err(SessionAuthError::Store(e)) => Err(e.into()),
            Err(e) => {
                debug!(reason = e.metric_label(), "console session refused");
                Err(ApiError::unauthorized())
            }
        }
    }
}

async fn authenticate_with(
    state: &AppState,
    parts: &Parts,
    token: &str,
) -> Result<Caller, ApiError> {
    let origin = origin(parts);
    let store = state.store();
    if token.starts_with(SESSION_TOKEN_PREFIX) {
        match store.authenticate_session(token).await {
            Ok((session, user)) => Ok(Caller {
                actor: user.actor(origin),
                session: Some(session.id),
                pending: state.hub().pending(&user),
            }),
            Err(SessionAuthError::Store(e)) => Err(e.into()),
            Err(e) => {
                debug!(reason = e.metric_label(), "session token refused");
                Err(ApiError::unauthorized())
            }
        }
    } else {
        let key = check_api_key(state, token).await?;
        Ok(Caller {
            actor: key.actor(origin),
            session: None,
            pending: None,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The idempotency layer may have authenticated this request already.
        let caller = match parts.extensions.get::<Caller>() {
            Some(caller) => caller.clone(),
            None => {
                let caller = authenticate(state, parts).await?;
                parts.extensions.insert(caller.clone());
                caller
            }
        };
        if let Some(pending) = caller.pending
            && !allowed_while(pending, parts)
        {
            return Err(pending.refusal());
        }
        Ok(caller)
    }
}

/// The only requests a person may make before they have done what their
/// session waits for: look at their own account, change their password,
/// sign out — and, when a second factor is what they lack, enrol one.
fn allowed_while(pending: Pending, parts: &Parts) -> bool {
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path(), |u| u.0.path());
    let path = path.trim_end_matches('/');
    let always = matches!(
        (&parts.method, path),
        (&Method::GET, "/api/v1/users/me")
            | (&Method::POST, "/api/v1/users/me/password")
            | (&Method::DELETE, "/api/v1/sessions/current")
    );
    let enrolling = matches!(
        (&parts.method, path),
        (&Method::POST, "/api/v1/users/me/totp") | (&Method::POST, "/api/v1/users/me/totp/confirm")
    );
    always || (pending == Pending::SecondFactor && enrolling)
}
