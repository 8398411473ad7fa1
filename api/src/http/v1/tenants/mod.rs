//! `/api/v1/tenants`: the organisations on the platform. Platform admins
//! create them and set their quotas; a tenant's own callers see only
//! their tenant. A tenant's billing settings are beside this module:
//! `budget`, `discounts`, `adjustments`; and the keys its deployments fetch
//! weights with, `source_credentials`; what the gateway refuses,
//! `input_screen`.

pub mod adjustments;
pub mod budget;
pub mod discounts;
pub mod input_screen;
pub mod second_factor;
pub mod source_credentials;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery, parse_id};
use crate::http::page::{PageParams, paginate};
use crate::http::v1::quota::{QuotaLimits, QuotaStatus};
use crate::http::{ApiError, AppState, Caller};
use crate::ids::TenantId;
pub use crate::service::tenants::CreateTenant;
use crate::store::Tenant;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show))
        .routes(routes!(show_quota, set_quota))
        .merge(budget::router())
        .merge(discounts::router())
        .merge(second_factor::router())
        .merge(adjustments::router())
        .merge(source_credentials::router())
        .merge(input_screen::router())
}

/// The tenant a path names.
fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    parse_id(id, "tenant")
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    #[schema(value_type = uuid::Uuid)]
    pub id: TenantId,
    /// A DNS label; the tenant's namespace in every cluster is `mf-<name>`.
    pub name: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        TenantView {
            id: t.id,
            name: t.name,
            display_name: t.display_name,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantList {
    pub items: Vec<TenantView>,
    pub next_cursor: Option<String>,
}

/// The tenants the caller can see.
#[utoipa::path(get, path = "/tenants", operation_id = "list_tenants", tag = "tenants", security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, body = TenantList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<TenantList>, ApiError> {
    let tenants = state.hub().tenants(&caller).await?;
    let (tenants, next_cursor) = paginate(tenants, |t| t.name.clone(), &page)?;
    Ok(Json(TenantList {
        items: tenants.into_iter().map(TenantView::from).collect(),
        next_cursor,
    }))
}

/// Creates a tenant (platform admins).
#[utoipa::path(post, path = "/tenants", operation_id = "create_tenant", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenant,
    responses(
        (status = 201, body = TenantView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = state.hub().create_tenant(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

/// One tenant.
#[utoipa::path(get, path = "/tenants/{id}", operation_id = "show_tenant", tag = "tenants", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = TenantView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let id: TenantId = parse_id(&id, "tenant")?;
    Ok(Json(state.hub().tenant(&caller, id).await?.into()))
}

/// A tenant's limits and what is in use.
#[utoipa::path(get, path = "/tenants/{id}/quota", operation_id = "show_tenant_quota", tag = "tenants", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = QuotaStatus),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_quota(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<QuotaStatus>, ApiError> {
    let id: TenantId = parse_id(&id, "tenant")?;
    Ok(Json(state.hub().quota(&caller, Some(id)).await?.into()))
}

/// Replaces a tenant's limits (platform admins). Lowering a limit below
/// what is in use stops new deployments; nothing running is stopped.
#[utoipa::path(put, path = "/tenants/{id}/quota", operation_id = "set_tenant_quota", tag = "tenants", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = QuotaLimits,
    responses(
        (status = 200, body = QuotaStatus),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_quota(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<QuotaLimits>,
) -> Result<Json<QuotaStatus>, ApiError> {
    let id: TenantId = parse_id(&id, "tenant")?;
    Ok(Json(state.hub().set_quota(&caller, id, body).await?.into()))
}
