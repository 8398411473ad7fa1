//! The hub's compliance report as documents: [`HubReportRenderer`] turns
//! [`modelfleet_api::compliance::ComplianceReport`] into the printable
//! HTML page and the PDF of [`crate::report`], and is what `serve` gives
//! the API to answer `?format=html|pdf`.

use modelfleet_api::ReportRenderer;
use modelfleet_api::compliance::{ComplianceReport, ItemStatus};

use crate::report::{self, FontSource, ReportDocument};

/// Renders with the fonts [`FontSource`] finds (a font with Chinese
/// glyphs, plus a Latin one if it lacks those).
#[derive(Debug, Clone)]
pub struct HubReportRenderer {
    font: FontSource,
}

impl HubReportRenderer {
    pub fn new(font: FontSource) -> Self {
        HubReportRenderer { font }
    }

    /// With the fonts installed on this machine (or `MODELFLEET_REPORT_FONT`).
    pub fn system() -> Self {
        HubReportRenderer::new(FontSource::system())
    }
}

/// The report as the document both renderers read.
pub fn document(r: &ComplianceReport) -> ReportDocument {
    ReportDocument {
        title_en: "MLPS 2.0 Level 3 Compliance Report".to_owned(),
        title_zh: "网络安全等级保护2.0 第三级 合规报告".to_owned(),
        generated_at: r.generated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        subject: format!("modelfleet hub — {}", r.standard),
        summary: vec![
            ("通过 Passed".to_owned(), r.passed.to_string()),
            ("不通过 Failed".to_owned(), r.failed.to_string()),
            (
                "需人工举证 Needs manual evidence".to_owned(),
                r.needs_manual_evidence.to_string(),
            ),
        ],
        items: r
            .items
            .iter()
            .map(|i| report::ReportItem {
                id: i.id.clone(),
                requirement_zh: i.requirement_zh.clone(),
                requirement_en: i.requirement_en.clone(),
                status: match i.status {
                    ItemStatus::Pass => report::ItemStatus::Pass,
                    ItemStatus::Fail => report::ItemStatus::Fail,
                    ItemStatus::NeedsManualEvidence => report::ItemStatus::ManualEvidence,
                },
                evidence: i.evidence.clone(),
            })
            .collect(),
    }
}

impl ReportRenderer for HubReportRenderer {
    fn html(&self, report: &ComplianceReport) -> String {
        report::render_html(&document(report))
    }

    fn pdf(&self, report: &ComplianceReport) -> Result<Vec<u8>, String> {
        report::render_pdf(&document(report), &self.font).map_err(|e| e.to_string())
    }
}
