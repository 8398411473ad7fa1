//! The web console: askama page structs and templates, forms and charts. It
//! calls the hub's services in-process and never runs SQL itself.
//!
//! The console's pages are not built yet (the issue "The web console").
//! What lives here so far is [`report`]: the MLPS 2.0 (等保2.0) level-3
//! compliance report, laid out from a plain [`report::ReportDocument`] as a
//! printable HTML page and as a PDF.

pub mod report;
