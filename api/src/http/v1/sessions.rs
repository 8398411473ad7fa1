//! `/api/v1/sessions`: signing in with a user name and password for a
//! short-lived bearer token. This is how platform staff, who belong to no
//! tenant and so hold no API keys, use the API; tenant users may too.
//!
//! Every failure (unknown user, wrong password, locked or expired account)
//! is the same 401; the store counts failures and locks the account after
//! too many. Accounts with a second factor need its code as well; a wrong
//! code counts toward the lockout as a wrong password does.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::UserView;
use crate::http::auth::origin;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::secret::Secret;
use crate::store::{AuditEntry, LoginError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(end))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
    /// The six digits of the account's authenticator app, when it has a
    /// second factor.
    pub totp_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Send as `Authorization: Bearer <token>` until `expiresAt`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

/// Signs in with a password and returns a session token.
#[utoipa::path(post, path = "/sessions", tag = "sessions",
    request_body = Login,
    responses(
        (status = 201, body = SessionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(body): ApiJson<Login>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let Login {
        username,
        password,
        totp_code,
    } = body;
    let password = Secret::new(password);
    let origin = origin(&parts);
    let (user, mut tx) = match state
        .store()
        .begin_login(&origin, &username, &password)
        .await
    {
        Ok(signed_in) => signed_in,
        Err(LoginError::Store(e)) => return Err(e.into()),
        Err(e) => {
            tracing::debug!(reason = %e, "sign-in refused");
            return Err(ApiError::unauthorized());
        }
    };
    if user.totp_enabled {
        let accepted = match totp_code.as_deref() {
            Some(code) => tx.check_totp(state.keyring(), user.id, code, false).await?,
            None => false,
        };
        if !accepted {
            tracing::debug!(user = %user.username, "sign-in refused: second factor missing or wrong");
            tx.audit_as(AuditEntry {
                verb: "login-refused".to_owned(),
                resource: "users".to_owned(),
                tenant: user.tenant,
                name: Some(user.username.clone()),
                uid: Some(user.id.to_string()),
                message: Some("the second factor was missing, wrong or used before".to_owned()),
                ..AuditEntry::default()
            });
            // A wrong code counts toward the lockout as a wrong password
            // does; a missing one (the first step of a two-step form) not.
            if totp_code.is_some() {
                tx.count_failed_login(&user, state.store().login_policy())
                    .await?;
            }
            tx.commit_with(StatusCode::UNAUTHORIZED).await?;
            return Err(ApiError::unauthorized());
        }
    }
    let ttl = TimeDelta::minutes(i64::from(state.settings().session_minutes));
    let created = tx.create_session(&user, ttl).await?;
    tx.commit_with(StatusCode::CREATED).await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionView {
            token: created.token.expose().to_owned(),
            expires_at: created.session.expires_at,
            user: user.into(),
        }),
    ))
}

/// Signs out: the session token of this request stops working.
#[utoipa::path(delete, path = "/sessions/current", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 204),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let Some(session) = caller.session else {
        return Err(ApiError::not_found("session"));
    };
    let mut tx = state.store().begin(&caller.actor).await?;
    tx.end_session(session).await?;
    tx.commit_with(StatusCode::NO_CONTENT).await?;
    Ok(StatusCode::NO_CONTENT)
}
