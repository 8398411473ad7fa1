//! Middleware every request passes, outermost first: a request id, the
//! boundary where errors become finished problem documents and are logged,
//! once; then, around the API's routes, the audit layer (`audit`: one
//! record per write or refused request) and the idempotency layer
//! (`idempotency`: `Idempotency-Key` replays).

pub mod audit;
pub mod idempotency;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{debug, error};

use crate::http::error::{ApiError, PROBLEM_JSON, ProblemReport};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one request: the caller's `X-Request-Id` if it is sane, else a
/// fresh UUID. Sent back, put in problems and in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| sane(id))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Finishes problems: stamps each with the request's path and id, turns
/// bare error statuses from outside the handlers (unknown route, wrong
/// method) into problems, and logs each failure once.
pub(crate) async fn problems(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let report = match response.extensions().get::<Arc<ProblemReport>>() {
        Some(report) => ProblemReport::clone(report),
        None => {
            let content_type = response.headers().get(header::CONTENT_TYPE);
            let is_problem = content_type.is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
            // The console's error pages are finished already.
            let is_page = content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
            if is_problem || is_page {
                return response;
            }
            ProblemReport {
                problem: crate::http::error::problem(&ApiError::for_status(status)),
                internal: None,
            }
        }
    };
    let ProblemReport {
        mut problem,
        internal,
    } = report;
    problem.instance = Some(path);
    problem.request_id = request_id.clone();
    let route = route.as_deref().unwrap_or("unmatched");
    if status.is_server_error() {
        error!(
            %method, route, status = status.as_u16(), request_id = request_id.as_deref(),
            detail = %problem.detail, cause = internal.as_deref(), "request failed"
        );
    } else {
        debug!(
            %method, route, status = status.as_u16(), request_id = request_id.as_deref(),
            detail = %problem.detail, "request refused"
        );
    }
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, Body::from(body))
}
