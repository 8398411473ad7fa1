//! `/api/v1/quota`: a tenant's limits and what its live deployments hold
//! against each. Also the quota view `tenants` answers with.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::Problem;
use crate::http::extract::ApiQuery;
use crate::http::{ApiError, AppState, Caller};
use crate::ids::TenantId;
use crate::service;
pub use crate::service::tenants::QuotaLimits;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// One limit and what is in use against it, in words.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitUse {
    /// `h100-80gb devices`, `total devices`, `concurrent deployments`,
    /// `model size`, `hourly spend in USD`.
    pub limit: String,
    pub in_use: String,
    pub allowed: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    #[schema(value_type = uuid::Uuid)]
    pub tenant: TenantId,
    pub limits: QuotaLimits,
    /// Every limit that is set, with what is in use.
    pub usage: Vec<LimitUse>,
}

impl From<service::tenants::QuotaStatus> for QuotaStatus {
    fn from(status: service::tenants::QuotaStatus) -> Self {
        QuotaStatus {
            tenant: status.tenant,
            usage: status
                .limits_in_use()
                .into_iter()
                .map(|u| LimitUse {
                    limit: u.limit.to_string(),
                    in_use: u.in_use.to_string(),
                    allowed: u.allowed.to_string(),
                })
                .collect(),
            limits: status.quota.into(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuotaParams {
    /// The tenant; platform admins must name it.
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// The caller's tenant's limits and what is in use against each.
#[utoipa::path(get, path = "/quota", operation_id = "show_quota", tag = "quota", security(("bearer" = [])),
    params(QuotaParams),
    responses(
        (status = 200, body = QuotaStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<QuotaParams>,
) -> Result<Json<QuotaStatus>, ApiError> {
    Ok(Json(
        state.hub().quota(&caller, params.tenant).await?.into(),
    ))
}
