//! `/api/v1/compliance/mlps-l3`: the MLPS 2.0 (等保2.0) level-3 report,
//! evaluated against the live system when asked, as JSON, or as HTML and
//! PDF through the hub's [`ReportRenderer`] (the console crate provides
//! it; this crate renders no HTML).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::compliance::ComplianceReport;
use crate::http::error::Problem;
use crate::http::extract::ApiQuery;
use crate::http::{ApiError, AppState, Caller};

/// Turns a report into documents people file.
pub trait ReportRenderer: Send + Sync {
    fn html(&self, report: &ComplianceReport) -> String;
    /// A PDF, or why it could not be made (e.g. no font with Chinese
    /// glyphs on this machine, and which package to install).
    fn pdf(&self, report: &ComplianceReport) -> Result<Vec<u8>, String>;
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mlps_l3))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// `json` (default), `html` or `pdf`.
    pub format: Option<String>,
}

/// Evaluates the MLPS 2.0 level-3 items against the live system. Auditors
/// and platform admins.
#[utoipa::path(get, path = "/compliance/mlps-l3", operation_id = "show_mlps_l3_report", tag = "audit", security(("bearer" = [])),
    params(ReportParams),
    responses(
        (status = 200, body = ComplianceReport,
            description = "JSON; with `format=html` a printable page, with `format=pdf` a PDF"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mlps_l3(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    // Who may read it is decided first: a refused caller learns nothing
    // else, not even that the format is wrong.
    let report = state.hub().compliance_report(&caller).await?;
    let format = params.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "html" | "pdf") {
        return Err(ApiError::invalid("format", "use json, html or pdf"));
    }
    if format == "json" {
        return Ok(Json(report).into_response());
    }
    let Some(renderer) = state.report_renderer() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "renderer-unavailable",
            "Renderer Unavailable",
            "this hub renders the report as JSON only; ask for format=json",
        ));
    };
    let (content_type, body) = if format == "html" {
        (
            "text/html; charset=utf-8",
            renderer.html(&report).into_bytes(),
        )
    } else {
        let pdf = renderer.pdf(&report).map_err(|reason| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "renderer-unavailable",
                "Renderer Unavailable",
                reason,
            )
        })?;
        ("application/pdf", pdf)
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if format == "pdf" {
        let name = format!(
            "attachment; filename=\"mlps-l3-{}.pdf\"",
            report.generated_at.format("%Y%m%d-%H%M%S")
        );
        if let Ok(value) = HeaderValue::from_str(&name) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}
