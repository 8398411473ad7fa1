//! `/api/v1/tenants/{id}/second-factor`: the roles of a tenant's people
//! who must sign in with a second factor because the tenant asks it, on
//! top of what the platform asks (`--second-factor-roles`). Set by the
//! tenant's admins or platform admins.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenant_id;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
use crate::identity::Role;
pub use crate::service::accounts::SecondFactorPolicy;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_second_factor, set_second_factor))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecondFactorView {
    /// The tenant's roles that must sign in with a second factor.
    #[schema(value_type = Vec<crate::http::schema::RoleSchema>)]
    pub roles: Vec<Role>,
}

/// Which of a tenant's roles must sign in with a second factor, because
/// the tenant asks it.
#[utoipa::path(get, path = "/tenants/{id}/second-factor", operation_id = "show_tenant_second_factor", tag = "tenants", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = SecondFactorView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_second_factor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SecondFactorView>, ApiError> {
    let tenant = tenant_id(&id)?;
    let roles = state
        .hub()
        .second_factor_policy(&caller, Some(tenant))
        .await?;
    Ok(Json(SecondFactorView { roles }))
}

/// Sets them: from their next request on, people of those roles who have
/// no second factor may only enrol one (or change their password, or
/// sign out).
#[utoipa::path(put, path = "/tenants/{id}/second-factor", operation_id = "set_tenant_second_factor", tag = "tenants", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = SecondFactorPolicy,
    responses(
        (status = 200, body = SecondFactorView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_second_factor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SecondFactorPolicy>,
) -> Result<Json<SecondFactorView>, ApiError> {
    let tenant = tenant_id(&id)?;
    let roles = state
        .hub()
        .set_second_factor_policy(&caller, Some(tenant), body)
        .await?;
    Ok(Json(SecondFactorView { roles }))
}
