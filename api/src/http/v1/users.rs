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
use crate::store::User;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show))
        .routes(routes!(begin_totp))
        .routes(routes!(confirm_totp))
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
