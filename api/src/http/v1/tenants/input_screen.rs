//! `/api/v1/tenants/{id}/input-screen`: what the inference gateway refuses
//! before a prompt reaches one of the tenant's models — a prompt size,
//! deny patterns, a classifier — and whether refused prompts are kept in
//! the audit trail. Read by anyone of the tenant; set by its tenant admins
//! and platform admins.

use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenant_id;
use crate::http::error::Problem;
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState, Caller};
pub use crate::service::input_screen::{InputScreenView, SetInputScreen};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_input_screen, set_input_screen))
}

/// A tenant's input screen for the inference gateway (one that screens
/// nothing when none was set).
#[utoipa::path(get, path = "/tenants/{id}/input-screen", tag = "tenants", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = InputScreenView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn show_input_screen(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InputScreenView>, ApiError> {
    let tenant = tenant_id(&id)?;
    Ok(Json(state.hub().input_screen(&caller, tenant).await?))
}

/// Replaces a tenant's input screen. Tenant admins and platform admins.
/// This hub's gateway applies it at once, other gateways within 5 s.
#[utoipa::path(put, path = "/tenants/{id}/input-screen", tag = "tenants", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = SetInputScreen,
    responses(
        (status = 200, body = InputScreenView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_input_screen(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetInputScreen>,
) -> Result<Json<InputScreenView>, ApiError> {
    let tenant = tenant_id(&id)?;
    let screen = state.hub().set_input_screen(&caller, tenant, body).await?;
    state.gateway().forget_screen(tenant);
    Ok(Json(screen))
}
