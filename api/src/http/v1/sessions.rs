//! `/api/v1/sessions`: signing in with a user name and password for a
//! short-lived bearer token. This is how platform staff, who belong to no
//! tenant and so hold no API keys, use the API; tenant users may too.
//!
//! Every failure (unknown user, wrong password, locked or expired account)
//! is the same 401; the store counts failures and locks the account after
//! too many. Accounts with a second factor need its code as well; a wrong
//! code counts toward the lockout as a wrong password does.
//!
//! Sign-ins are limited per client address, and failed ones per account
//! (`service::throttle`): over a limit, 429 with `Retry-After`. A user
//! name longer than 256 bytes is refused (401) before anything else.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::users::UserView;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::origin;
use crate::http::{ApiError, AppState, Caller};
pub use crate::service::access::Login;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(end))
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
#[utoipa::path(post, path = "/sessions", operation_id = "create_session", tag = "sessions",
    request_body = Login,
    responses(
        (status = 201, body = SessionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json",
            description = "Too many sign-ins from this client address, or too many failed \
                sign-ins to this account from addresses that never signed in to it; retry \
                after `Retry-After` seconds.",
            headers(("Retry-After" = u64, description = "Whole seconds to wait before trying again"))),
    ))]
pub async fn create(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(body): ApiJson<Login>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    let signed_in = state.hub().sign_in(&origin(&parts), body).await?;
    let created = signed_in.session;
    let user = signed_in.user;
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
#[utoipa::path(delete, path = "/sessions/current", operation_id = "end_session", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 204),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.hub().sign_out(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
