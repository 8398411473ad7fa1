//! `/api/v1/usage`: device time and its cost, as a report or a month's CSV.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::csv_download;
use crate::billing::UsageReport;
use crate::http::error::Problem;
use crate::http::extract::ApiQuery;
use crate::http::{ApiError, AppState, Caller};
use crate::ids::TenantId;
pub use crate::service::billing::UsageParams;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage))
        .routes(routes!(usage_export))
}

/// Device time and its cost over a time range, grouped. Each group is
/// summed exactly and rounded once, half up, to the cent or fen.
#[utoipa::path(get, path = "/usage", operation_id = "show_usage", tag = "billing", security(("bearer" = [])),
    params(UsageParams),
    responses(
        (status = 200, body = Object),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    Ok(Json(state.hub().usage(&caller, params).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageExportParams {
    /// The month, like `2026-11`; default this month.
    pub period: Option<String>,
    /// The tenant (platform staff; everyone else gets their own).
    #[param(value_type = Option<uuid::Uuid>)]
    pub tenant: Option<TenantId>,
}

/// A month's usage, one row per replica interval, as CSV: devices, when
/// they were held, and what is billed with the 60-second minimum.
#[utoipa::path(get, path = "/usage/export", operation_id = "export_usage", tag = "billing", security(("bearer" = [])),
    params(UsageExportParams),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn usage_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<UsageExportParams>,
) -> Result<Response, ApiError> {
    let file = state
        .hub()
        .usage_csv(&caller, params.tenant, params.period.as_deref())
        .await?;
    Ok(csv_download(file))
}
