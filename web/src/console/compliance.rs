//! The console's compliance page: the MLPS 2.0 (等保2.0) level-3 report
//! with pass/fail per item, and its PDF. The report comes from
//! `Hub::compliance_report`, the operation `GET /compliance/mlps-l3` calls,
//! so who may read it (platform admins and platform-wide auditors) is the
//! service layer's decision.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use modelfleet_api::AppState;
use serde::Deserialize;

use super::i18n::Table;
use super::page::{Chrome, PageError, Viewer};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/compliance", get(compliance_page))
        .route("/compliance/report.pdf", get(compliance_pdf))
}

/// The report as the API answers it in JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    standard: String,
    generated_at: DateTime<Utc>,
    passed: usize,
    failed: usize,
    needs_manual_evidence: usize,
    items: Vec<Item>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    requirement_zh: String,
    requirement_en: String,
    /// `pass`, `fail` or `needs-manual-evidence`.
    status: String,
    evidence: Vec<String>,
}

impl Item {
    fn status_key(&self) -> &'static str {
        match self.status.as_str() {
            "pass" => "compliance.pass",
            "fail" => "compliance.fail",
            _ => "compliance.manual",
        }
    }

    fn status_class(&self) -> &'static str {
        match self.status.as_str() {
            "pass" => "ok",
            "fail" => "bad",
            _ => "warn",
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/compliance.html")]
struct CompliancePage {
    c: Chrome,
    report: Report,
    generated: String,
}

async fn compliance_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<CompliancePage, PageError> {
    let report = state
        .hub()
        .compliance_report(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))?;
    let failed =
        |reason: String| PageError::new(viewer.lang, StatusCode::INTERNAL_SERVER_ERROR, reason);
    // The page reads the report as the API's JSON carries it.
    let report: Report = serde_json::to_value(&report)
        .and_then(serde_json::from_value)
        .map_err(|e| failed(e.to_string()))?;
    Ok(CompliancePage {
        c: viewer.chrome("compliance", TEXT),
        generated: report
            .generated_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        report,
    })
}

/// The report as a PDF, made by the hub's renderer.
async fn compliance_pdf(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let report = state
        .hub()
        .compliance_report(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))?;
    let unavailable =
        |reason: String| PageError::new(viewer.lang, StatusCode::SERVICE_UNAVAILABLE, reason);
    let renderer = state.report_renderer().ok_or_else(|| {
        unavailable("this hub renders the report as JSON only; ask for format=json".to_owned())
    })?;
    let pdf = renderer.pdf(&report).map_err(unavailable)?;
    let name = format!(
        "attachment; filename=\"mlps-l3-{}.pdf\"",
        report.generated_at.format("%Y%m%d-%H%M%S")
    );
    let mut response = (StatusCode::OK, pdf).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

pub(crate) const TEXT: Table = &[
    ("compliance.standard", "Standard", "标准"),
    ("compliance.generated", "Evaluated at", "评估时间"),
    ("compliance.summary", "Summary", "汇总"),
    ("compliance.passed", "Passed", "通过"),
    ("compliance.failed", "Failed", "不通过"),
    ("compliance.items", "Items", "检查项"),
    ("compliance.id", "Item", "编号"),
    ("compliance.requirement", "Requirement", "要求"),
    ("compliance.status", "Status", "状态"),
    ("compliance.evidence", "Evidence", "证据"),
    ("compliance.pass", "Pass", "通过"),
    ("compliance.fail", "Fail", "不通过"),
    ("compliance.manual", "Manual evidence", "需人工举证"),
    ("compliance.pdf", "Download as PDF", "下载 PDF"),
    (
        "compliance.title",
        "MLPS 2.0 level 3 compliance",
        "等保 2.0 第三级合规报告",
    ),
    (
        "compliance.manual_count",
        "Need manual evidence",
        "需人工举证",
    ),
];
