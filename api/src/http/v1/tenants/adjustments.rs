//! `/api/v1/tenants/{id}/adjustments`: credits and corrections to a month
//! that is still open (added by platform admins).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenant_id;
use crate::http::error::Problem;
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::{ApiError, AppState, Caller};
pub use crate::service::billing::CreateAdjustment;
use crate::store::StoredAdjustment;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_adjustments, create_adjustment))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<StoredAdjustment>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdjustmentParams {
    /// The month, like `2026-11`; default this month.
    pub period: Option<String>,
}

/// A tenant's credits and corrections for a month.
#[utoipa::path(get, path = "/tenants/{id}/adjustments", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id"), AdjustmentParams),
    responses(
        (status = 200, body = AdjustmentList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_adjustments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(params): ApiQuery<AdjustmentParams>,
) -> Result<Json<AdjustmentList>, ApiError> {
    let tenant = tenant_id(&id)?;
    let items = state
        .hub()
        .adjustments(&caller, tenant, params.period.as_deref())
        .await?;
    Ok(Json(AdjustmentList { items }))
}

/// Adds a credit or correction to a month that is still open; it becomes
/// a line of that month's invoice. Platform admins.
#[utoipa::path(post, path = "/tenants/{id}/adjustments", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = CreateAdjustment,
    responses(
        (status = 201, body = Object),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_adjustment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateAdjustment>,
) -> Result<(StatusCode, Json<StoredAdjustment>), ApiError> {
    let tenant = tenant_id(&id)?;
    let stored = state.hub().add_adjustment(&caller, tenant, body).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}
