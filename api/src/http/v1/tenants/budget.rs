//! `/api/v1/tenants/{id}/budget`: a tenant's monthly budget (set by its
//! tenant admins and platform admins) and the alerts it raised.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenant_id;
use crate::billing::BudgetStatus;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
pub use crate::service::billing::SetBudget;
use crate::store::BudgetAlert;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_budget, set_budget, delete_budget))
        .routes(routes!(budget_alerts))
}

/// A tenant's budget and this month's spend against it.
#[utoipa::path(get, path = "/tenants/{id}/budget", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = Object),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BudgetStatus>, ApiError> {
    let tenant = tenant_id(&id)?;
    Ok(Json(state.hub().budget(&caller, tenant).await?))
}

/// Sets a tenant's monthly budget. Tenant admins and platform admins.
#[utoipa::path(put, path = "/tenants/{id}/budget", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = SetBudget,
    responses(
        (status = 200, body = Object),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetBudget>,
) -> Result<Json<BudgetStatus>, ApiError> {
    let tenant = tenant_id(&id)?;
    Ok(Json(state.hub().set_budget(&caller, tenant, body).await?))
}

/// Removes a tenant's budget: no more alerts or refusals.
#[utoipa::path(delete, path = "/tenants/{id}/budget", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 204),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant_id(&id)?;
    state.hub().delete_budget(&caller, tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<BudgetAlert>,
}

/// The budget alerts raised for a tenant, newest first, with their
/// webhook delivery state.
#[utoipa::path(get, path = "/tenants/{id}/budget/alerts", operation_id = "list_budget_alerts", tag = "billing", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = AlertList),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn budget_alerts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertList>, ApiError> {
    let tenant = tenant_id(&id)?;
    let items = state.hub().budget_alerts(&caller, tenant).await?;
    Ok(Json(AlertList { items }))
}
