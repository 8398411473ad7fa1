//! The MLPS 2.0 (等保2.0) level-3 compliance report as a document.
//!
//! [`ReportDocument`] is a plain, already-formatted description of a report:
//! the hub decides what the checks found, this module only presents it. Two
//! renderers read it:
//!
//! - [`render_html`]: a standalone, printable HTML page (askama template
//!   `templates/report.html`, auto-escaped).
//! - [`render_pdf`]: a multi-page A4 PDF laid out by hand, with the fonts
//!   embedded as subsets so that the Chinese text shows and can be
//!   extracted everywhere (see [`pdf`] for how).

mod error;
mod font;
mod html;
mod layout;
pub mod pdf;

use serde::Serialize;

pub use error::ReportError;
pub use font::{FONT_ENV, FontSource};
pub use html::render_html;
pub use pdf::render_pdf;

/// A compliance report, ready to render.
///
/// Every string is shown as it is (escaped in HTML): formatting dates and
/// numbers is the caller's job, so both renderers agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportDocument {
    /// English title, e.g. "MLPS 2.0 Level 3 Compliance Report".
    pub title_en: String,
    /// Chinese title, e.g. "等保2.0 三级合规报告".
    pub title_zh: String,
    /// When the report was generated, already formatted
    /// (e.g. "2026-11-29 09:12:03 UTC").
    pub generated_at: String,
    /// What was checked, e.g. "modelfleet hub at https://…". It can come
    /// from configuration an operator typed, so it is treated as untrusted.
    pub subject: String,
    /// Label/value lines, e.g. ("Passed", "7"), ("Failed", "2").
    pub summary: Vec<(String, String)>,
    /// One entry per checked requirement, in the order to show them.
    pub items: Vec<ReportItem>,
}

/// One requirement of the standard and what the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportItem {
    /// The requirement's id, e.g. "L3-CES1-04".
    pub id: String,
    /// The requirement in the standard's own (Chinese) words.
    pub requirement_zh: String,
    /// An English rendering of the requirement.
    pub requirement_en: String,
    /// The outcome of the check.
    pub status: ItemStatus,
    /// What the check saw, one finding per entry, e.g.
    /// "2 of 3 admins lack TOTP"; may contain Chinese.
    pub evidence: Vec<String>,
}

/// The outcome of checking one requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ItemStatus {
    /// The hub's configuration meets the requirement.
    Pass,
    /// The hub's configuration does not meet the requirement.
    Fail,
    /// The hub cannot tell by itself: an auditor needs evidence from outside
    /// (a procedure, a contract, a room's access log).
    ManualEvidence,
}

impl ItemStatus {
    /// The English label shown in reports.
    pub fn label_en(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::ManualEvidence => "needs manual evidence",
        }
    }

    /// The Chinese label shown in reports.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Pass => "通过",
            Self::Fail => "不通过",
            Self::ManualEvidence => "需人工举证",
        }
    }

    /// A stable, ASCII-only name for styling (the HTML CSS class suffix).
    pub fn css_class(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::ManualEvidence => "manual",
        }
    }
}
