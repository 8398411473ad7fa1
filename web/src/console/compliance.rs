//! The console's compliance page: the MLPS 2.0 (等保2.0) level-3 report
//! with pass/fail per item, and its PDF. Calls the API's
//! `GET /compliance/mlps-l3` handler, so who may read it (platform admins
//! and platform-wide auditors) is the API's decision.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::body::to_bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use modelfleet_api::AppState;
use modelfleet_api::http::extract::ApiQuery;
use modelfleet_api::http::v1::compliance;
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

fn report_params(format: &str) -> compliance::ReportParams {
    compliance::ReportParams {
        format: Some(format.to_owned()),
    }
}

async fn compliance_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<CompliancePage, PageError> {
    let response = compliance::mlps_l3(
        State(state),
        viewer.caller.clone(),
        ApiQuery(report_params("json")),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let failed =
        |reason: String| PageError::new(viewer.lang, StatusCode::INTERNAL_SERVER_ERROR, reason);
    let bytes = to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| failed(e.to_string()))?;
    Ok(CompliancePage {
        c: viewer.chrome("compliance", TEXT),
        generated: report
            .generated_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        report,
    })
}

/// The report as a PDF, from the API's own handler.
async fn compliance_pdf(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let response = compliance::mlps_l3(
        State(state),
        viewer.caller.clone(),
        ApiQuery(report_params("pdf")),
    )
    .await
    .map_err(|e| viewer.fail(e))?;
    let mut response = response;
    response
        .headers_mut()
        .entry(header::CONTENT_DISPOSITION)
        .or_insert(HeaderValue::from_static(
            "attachment; filename=\"mlps-l3.pdf\"",
        ));
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
