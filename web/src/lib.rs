//! The web console: askama page structs and templates, forms and charts. It
//! calls the hub's services in-process and never runs SQL itself.
//!
//! [`console`] is the web console's pages, mounted at the root of the hub's
//! listener. The MLPS 2.0 (等保2.0) level-3 compliance report is rendered
//! as a printable HTML page and as a PDF: [`report`] lays out a plain
//! [`report::ReportDocument`], and [`compliance`] makes one from the hub's
//! report and renders it for the API.

pub mod compliance;
pub mod console;
pub mod report;
