//! Errors as the REST API answers them: the hub's one error type
//! ([`crate::service::Error`], named `ApiError` here) becomes an RFC 9457
//! problem document (`application/problem+json`); a database or cluster
//! error is logged with its source chain and the client gets only the
//! request id to quote.
//!
//! Handlers return `Result<_, ApiError>`; nothing below them logs a failure
//! it passes up. [`super::layers::problems`] logs each error once, at the
//! boundary, and stamps the problem with the request's path and id.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";
pub use crate::service::Error as ApiError;
pub use crate::service::error::PROBLEM_BASE;

/// An RFC 9457 problem document. Some problems carry more members, named in
/// their `detail`: `field` for invalid input, `limit`, `inUse`, `allowed`
/// and `needs` for quota rejections, `rejections` when no pool fits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Identifies the kind of problem; stable, for programs to match on.
    #[serde(rename = "type")]
    #[schema(example = "https://modelfleet.io/problems/quota-exceeded")]
    pub type_: String,
    /// A short summary of the kind of problem.
    pub title: String,
    pub status: u16,
    /// What went wrong this time, and what to change.
    pub detail: String,
    /// The request path this problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Quote this to the operators of the hub.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extensions: Map<String, Value>,
}

/// What the boundary logs about an error: the problem as sent and the
/// internal cause the client never sees.
#[derive(Debug, Clone)]
pub(crate) struct ProblemReport {
    pub problem: Problem,
    pub internal: Option<String>,
}

pub(crate) fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let mut response = (status, Json(problem)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// The problem document an error answers.
pub fn problem(e: &ApiError) -> Problem {
    Problem {
        type_: format!("{PROBLEM_BASE}{}", e.slug()),
        title: e.title().to_owned(),
        status: e.status().as_u16(),
        detail: e.detail().to_owned(),
        instance: None,
        request_id: None,
        extensions: e.extensions().clone(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = problem(&self);
        let mut response = problem_response(self.status(), &problem);
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(Arc::new(ProblemReport {
            problem,
            internal: self.internal_cause().map(str::to_owned),
        }));
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let (slug, title) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Payload Too Large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported-media-type", "Unsupported Media Type")
            }
            StatusCode::UNPROCESSABLE_ENTITY => ("invalid", "Invalid Request"),
            _ => ("bad-request", "Bad Request"),
        };
        // serde's messages name the field and the expected type; they can
        // echo a rejected value, which for every body here is harmless.
        ApiError::new(status, slug, title, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}
