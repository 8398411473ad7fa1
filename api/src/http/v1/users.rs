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
use crate::identity::password::{PasswordError, PasswordHash};
use crate::identity::{Permission, Role};
use crate::ids::{TenantId, UserId};
use crate::secret::Secret;
use crate::store::{NewUser, User};

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    /// 3 to 64 lower-case letters, digits or `. _ - @`; unique.
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    /// At least 12 characters of three kinds (lower, upper, digits, other),
    /// not containing the user name.
    pub password: String,
    #[schema(value_type = crate::http::schema::RoleSchema)]
    pub role: Role,
    /// The user's tenant. Tenant admins leave it out (their own); platform
    /// admins leave it out only for platform staff.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
    pub expires_at: Option<DateTime<Utc>>,
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
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
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
    caller.require(Permission::ManageTenant)?;
    let mut users = state.store().users(caller.scope()).await?;
    if let Some(tenant) = params.tenant {
        let tenant = caller.tenant(Some(tenant))?;
        users.retain(|u| u.tenant == Some(tenant));
    }
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
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])),
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
    let CreateUser {
        username,
        display_name,
        password,
        role,
        tenant,
        expires_at,
    } = body;
    caller.require(Permission::ManageTenant)?;
    let tenant = match caller.actor.tenant {
        Some(_) => Some(caller.tenant(tenant)?),
        None => tenant,
    };
    let password = Secret::new(password);
    let hash = PasswordHash::new(&username, &password)
        .await
        .map_err(|e| match e {
            PasswordError::Hash => ApiError::internal(&e),
            e => ApiError::invalid("password", e.to_string()),
        })?;
    let mut tx = state.store().begin(&caller.actor).await?;
    let user = tx
        .create_user(NewUser {
            tenant,
            display_name: if display_name.trim().is_empty() {
                username.clone()
            } else {
                display_name
            },
            username,
            password: hash,
            role,
            expires_at,
        })
        .await?;
    tx.commit_with(StatusCode::CREATED).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    caller.require(Permission::ManageTenant)?;
    let id: UserId = parse_id(&id, "user")?;
    let user = state.store().user(caller.scope(), id).await?;
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
    let mut tx = state.store().begin(&caller.actor).await?;
    let enrolment = tx.begin_totp(state.keyring()).await?;
    tx.commit_with(StatusCode::CREATED).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolmentView {
            secret: enrolment.secret_base32.expose().to_owned(),
            otpauth_uri: enrolment.otpauth_uri.expose().to_owned(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TotpCode {
    /// The six digits the authenticator app shows now.
    pub code: String,
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
    let crate::identity::Principal::User { id, .. } = caller.actor.principal else {
        return Err(ApiError::invalid(
            "user",
            "a second factor belongs to a person: sign in with a password, not an API key",
        ));
    };
    let mut tx = state.store().begin(&caller.actor).await?;
    if !tx.check_totp(state.keyring(), id, &body.code, true).await? {
        tx.rollback().await?;
        return Err(ApiError::invalid(
            "code",
            "it does not match the secret; check the app's clock and enter the code it shows now",
        ));
    }
    tx.commit_with(StatusCode::OK).await?;
    Ok(Json(TotpStatus { enabled: true }))
}
