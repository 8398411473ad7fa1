//! The resources of `/api/v1`, one module per URL segment (`tenants/` holds
//! what lives under `/tenants/{id}/…`).
//!
//! Each handler extracts and validates the request, calls one operation of
//! the hub's service layer (`crate::service`), and maps what it returns to
//! JSON, a download or a problem document. The console calls the same
//! operations, not these handlers.

pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod clusters;
pub mod compliance;
pub mod deployments;
pub mod invoices;
pub mod models;
pub mod plans;
pub mod prices;
pub mod quota;
pub mod sessions;
pub mod tenants;
pub mod usage;
pub mod users;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::service::billing::CsvFile;

/// A CSV file as a download.
fn csv_download(file: CsvFile) -> Response {
    file.into_response()
}

impl IntoResponse for CsvFile {
    fn into_response(self) -> Response {
        let file = self;
        let mut response = (StatusCode::OK, file.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.name))
        {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        response
    }
}
