//! `/api/v1/users`: a tenant's people, managed by its tenant admins (and
//! platform admins, who also create platform staff). Passwords are hashed
//! with argon2id before the transaction opens and never leave the hub.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::page::{PageParams, paginate};
use crate::http::{ApiError, AppState, Caller};
use crate::identity::Role;
use crate::ids::{TenantId, UserId};
pub use crate::service::access::{CreateUser, TotpCode};
pub use crate::service::accounts::{ChangePassword, ResetPassword, UpdateUser};
use crate::store::User;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, delete))
        .routes(routes!(show_own))
        .routes(routes!(change_own_password))
        .routes(routes!(begin_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(unlock))
        .routes(routes!(reset_password))
        .routes(routes!(reset_totp))
        .routes(routes!(end_sessions))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[schema(value_type = uuid::Uuid)]
    pub id: UserId,
    /// Absent for platform staff.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
    pub username: String,
    pub display_name: String,
    #[schema(value_type = crate::http::schema::RoleSchema)]
    pub role: Role,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// When the account was disabled; absent while it may sign in.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Whether signing in asks for a code from an authenticator app.
    pub totp_enabled: bool,
    /// The user must choose a new password before anything else.
    pub must_change_password: bool,
    pub password_changed_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            tenant: u.tenant,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
            locked_until: u.locked_until,
            last_login_at: u.last_login_at,
            expires_at: u.expires_at,
            created_at: u.created_at,
            disabled_at: u.disabled_at,
            totp_enabled: u.totp_enabled,
            must_change_password: u.must_change_password,
            password_changed_at: u.password_changed_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this tenant's users (platform admins).
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The users the caller administers.
#[utoipa::path(get, path = "/users", operation_id = "list_users", tag = "users", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, body = UserList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<UserList>, ApiError> {
    let users = state.hub().users(&caller, params.tenant).await?;
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let (users, next_cursor) = paginate(users, |u| u.username.clone(), &page)?;
    Ok(Json(UserList {
        items: users.into_iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

/// Creates a user with a password.
#[utoipa::path(post, path = "/users", operation_id = "create_user", tag = "users", security(("bearer" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, body = UserView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state.hub().create_user(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", operation_id = "show_user", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let id: UserId = parse_id(&id, "user")?;
    let user = state.hub().user(&caller, id).await?;
    Ok(Json(user.into()))
}

/// A new TOTP secret for the signed-in user's authenticator app. Shown
/// once; the factor is enforced only after a code from it is confirmed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrolmentView {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/…`, for scanning as a QR code.
    pub otpauth_uri: String,
}

/// Starts enrolling a TOTP second factor for the signed-in user (a
/// password session, not an API key). Refused while one is on.
#[utoipa::path(post, path = "/users/me/totp", tag = "users", security(("bearer" = [])),
    responses(
        (status = 201, body = TotpEnrolmentView),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn begin_totp(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<TotpEnrolmentView>), ApiError> {
    let enrolment = state.hub().begin_totp(&caller).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolmentView {
            secret: enrolment.secret_base32.expose().to_owned(),
            otpauth_uri: enrolment.otpauth_uri.expose().to_owned(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpStatus {
    pub enabled: bool,
}

/// Confirms enrolment with a code from the app: from now on signing in
/// takes a code too.
#[utoipa::path(post, path = "/users/me/totp/confirm", tag = "users", security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 200, body = TotpStatus),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TotpCode>,
) -> Result<Json<TotpStatus>, ApiError> {
    state.hub().confirm_totp(&caller, &body).await?;
    Ok(Json(TotpStatus { enabled: true }))
}

/// The signed-in person's own account (a password session, not an API
/// key). Answered even while the session waits for a password change or
/// a second factor, so a client can see which.
#[utoipa::path(get, path = "/users/me", operation_id = "show_own_user", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, body = UserView),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_own(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(state.hub().me(&caller).await?.into()))
}

/// Changes the signed-in person's password, given the current one. Their
/// other sessions end; this one goes on (and may do everything again
/// when a password change was what it waited for). A wrong current
/// password counts toward the account's lockout.
#[utoipa::path(post, path = "/users/me/password", operation_id = "change_own_password", tag = "users", security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_own_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        state.hub().change_password(&caller, body).await?.into(),
    ))
}

/// Changes a user's display name, role or whether the account is
/// disabled (which ends its sessions at once). Not your own role or
/// account; never a role with more rights than yours.
#[utoipa::path(patch, path = "/users/{id}", operation_id = "update_user", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    request_body = UpdateUser,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let id: UserId = parse_id(&id, "user")?;
    Ok(Json(
        state.hub().update_user(&caller, id, body).await?.into(),
    ))
}

/// Deletes a user and ends their sessions; what they did stays in the
/// audit trail. Not your own account.
#[utoipa::path(delete, path = "/users/{id}", operation_id = "delete_user", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: UserId = parse_id(&id, "user")?;
    state.hub().delete_user(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a lockout after too many failed sign-ins.
#[utoipa::path(post, path = "/users/{id}/unlock", operation_id = "unlock_user", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let id: UserId = parse_id(&id, "user")?;
    Ok(Json(state.hub().unlock_user(&caller, id).await?.into()))
}

/// Gives another user a temporary password (they forgot theirs): their
/// sessions end, a lockout lifts, and they must choose their own password
/// at their next sign-in.
#[utoipa::path(put, path = "/users/{id}/password", operation_id = "reset_user_password", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    request_body = ResetPassword,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResetPassword>,
) -> Result<Json<UserView>, ApiError> {
    let id: UserId = parse_id(&id, "user")?;
    Ok(Json(
        state.hub().reset_password(&caller, id, body).await?.into(),
    ))
}

/// Turns another person's second factor off (a lost phone) and ends
/// their sessions; they enrol again at next sign-in. Takes your own
/// second factor: `code` is what YOUR authenticator app shows now, and a
/// wrong one counts toward your own lockout.
#[utoipa::path(post, path = "/users/{id}/totp/reset", operation_id = "reset_user_totp", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    request_body = TotpCode,
    responses(
        (status = 200, body = UserView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset_totp(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TotpCode>,
) -> Result<Json<UserView>, ApiError> {
    let id: UserId = parse_id(&id, "user")?;
    Ok(Json(
        state.hub().reset_totp(&caller, id, &body).await?.into(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionsEnded {
    /// How many live sessions ended.
    pub ended: u64,
}

/// Ends every session of a user at once (yours, or one you administer):
/// their tokens and console cookies stop working. API keys are the
/// tenant's and stay; revoke them separately.
#[utoipa::path(delete, path = "/users/{id}/sessions", operation_id = "end_user_sessions", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = SessionsEnded),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionsEnded>, ApiError> {
    let id: UserId = parse_id(&id, "user")?;
    let ended = state.hub().end_sessions(&caller, id).await?;
    Ok(Json(SessionsEnded { ended }))
}
