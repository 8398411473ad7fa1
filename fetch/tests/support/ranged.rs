//! A file's bytes as an HTTP server answers a GET with or without
//! `Range: bytes=a-b` (for the tests of the sources fetched over HTTP).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// 206 with the range asked for, or 200 with everything.
pub fn answer(bytes: &[u8], headers: &HeaderMap) -> Response {
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
    let Some((start, end)) = range else {
        return (StatusCode::OK, bytes.to_vec()).into_response();
    };
    if start >= bytes.len() {
        return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    }
    let end = end.min(bytes.len() - 1);
    (
        StatusCode::PARTIAL_CONTENT,
        [(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{}", bytes.len()),
        )],
        bytes[start..=end].to_vec(),
    )
        .into_response()
}
