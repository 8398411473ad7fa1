//! `/api/v1/billing/exports`: a month's invoices and usage written to
//! object storage (platform admins).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::billing::BillingExport;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
pub use crate::service::billing::CreateBillingExport;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_export))
}

/// Writes a month's invoices (CSV and FOCUS) and usage to the object store
/// audit exports go to, under `billing/<month>/<tenant id>/`. Platform admins.
#[utoipa::path(post, path = "/billing/exports", operation_id = "create_billing_export", tag = "billing", security(("bearer" = [])),
    request_body = CreateBillingExport,
    responses(
        (status = 201, body = Object),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_export(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateBillingExport>,
) -> Result<(StatusCode, Json<BillingExport>), ApiError> {
    let export = state.hub().export_billing(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(export)))
}
