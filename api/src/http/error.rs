//! The API's one error type. It decides the status code, the words the
//! client sees (an RFC 9457 problem document, `application/problem+json`)
//! and what stays internal: a database or cluster error is logged with its
//! source chain and the client gets only the request id to quote.
//!
//! Handlers return `Result<_, ApiError>`; nothing below them logs a failure
//! it passes up. [`super::layers::problems`] logs each error once, at the
//! boundary, and stamps the problem with the request's path and id.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelfleet_core::crd::SpecError;
use modelfleet_core::planner::RequestError;
use modelfleet_core::quota::QuotaExceeded;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::clusters::ClusterError;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";
/// Problem types are `PROBLEM_BASE` + a stable slug such as `quota-exceeded`.
pub const PROBLEM_BASE: &str = "https://modelfleet.io/problems/";

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

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    /// The cause, with its source chain: logged, never sent.
    internal: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            internal: None,
        }
    }

    pub fn with(mut self, member: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.extensions.insert(member.to_owned(), value);
        self
    }

    fn with_internal(mut self, error: &dyn std::error::Error) -> Self {
        self.internal = Some(chain(error));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Every failed authentication looks the same, whatever failed.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send a valid API key or session token as `Authorization: Bearer <token>`",
        )
    }

    pub fn forbidden() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "your role does not allow this",
        )
    }

    /// Absent, or another tenant's: the caller cannot tell which.
    pub fn not_found(what: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            detail,
        )
    }

    /// A well-formed request whose `field` cannot be accepted.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid Request",
            format!("{field}: {reason}"),
        )
        .with("field", field)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload Too Large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn quota(e: &QuotaExceeded) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "quota-exceeded",
            "Quota Exceeded",
            e.to_string(),
        )
        .with("limit", e.limit.to_string())
        .with("inUse", e.in_use.to_string())
        .with("allowed", e.allowed.to_string())
        .with("needs", e.needs.to_string())
    }

    /// Something the hub depends on failed; the client may retry.
    pub fn unavailable(detail: impl Into<String>, cause: &dyn std::error::Error) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service Unavailable",
            detail,
        )
        .with_internal(cause)
    }

    pub fn internal(cause: &dyn std::error::Error) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
            "the hub failed to handle this request; quote the request id to its operators",
        )
        .with_internal(cause)
    }

    /// A generic problem for a status produced outside the handlers (an
    /// unknown route, a method the route lacks).
    pub(crate) fn for_status(status: StatusCode) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        let detail = match status {
            StatusCode::NOT_FOUND => "no such resource".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => "this resource does not allow that method".to_owned(),
            _ => title.to_lowercase(),
        };
        let mut e = ApiError::new(status, "http", "", detail);
        e.title = title;
        e.slug = match status {
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            _ => "http",
        };
        e
    }

    pub fn problem(&self) -> Problem {
        Problem {
            type_: format!("{PROBLEM_BASE}{}", self.slug),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            instance: None,
            request_id: None,
            extensions: self.extensions.clone(),
        }
    }
}

/// `error: source: source…`, for the log line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

pub(crate) fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let mut response = (status, Json(problem)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut response = problem_response(self.status, &problem);
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(Arc::new(ProblemReport {
            problem,
            internal: self.internal,
        }));
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Forbidden => ApiError::forbidden(),
            StoreError::Conflict { .. } => ApiError::conflict(e.to_string()),
            StoreError::Invalid { field, reason } => ApiError::invalid(field, reason.clone()),
            StoreError::Quota(q) => ApiError::quota(q),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                ApiError::unavailable("the database is busy; retry shortly", &e)
            }
            StoreError::Secret(_)
            | StoreError::UnsupportedUrl
            | StoreError::Connect(_)
            | StoreError::Migrate(_)
            | StoreError::Database(_)
            | StoreError::Corrupt(_) => ApiError::internal(&e),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match &e {
            ClusterError::Kubeconfig(_) => ApiError::invalid("kubeconfig", e.to_string()),
            ClusterError::NotConnected(_)
            | ClusterError::Timeout { .. }
            | ClusterError::Kube { .. } => ApiError::unavailable(e.to_string(), &e),
        }
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        // The core names fields as in the ModelDeployment (`spec.serving…`);
        // the request body has the same fields without the `spec.` prefix.
        let text = e.to_string().replace("spec.", "");
        let field = match &e {
            SpecError::Model(_) | SpecError::ArchitectureIdMismatch { .. } => "model",
            SpecError::GpuMemoryUtilization(_) => "serving.gpuMemoryUtilization",
            SpecError::RuntimeExcludesAccelerators { .. } => "serving.runtime",
            SpecError::Source(_) => "source",
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid Request",
            text,
        )
        .with("field", field)
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let field = match &e {
            RequestError::ZeroContext | RequestError::ContextTooLong { .. } => {
                "serving.maxModelLen"
            }
            RequestError::ZeroConcurrency => "serving.concurrency",
            RequestError::ZeroReplicas => "replicas",
            RequestError::ZeroTensorParallel => "serving.tensorParallelSize",
            RequestError::ZeroPipelineParallel => "serving.pipelineParallelSize",
            RequestError::UnknownAccelerator(_) => "placement.accelerators",
            RequestError::UnknownPool(_) => "placement.pool",
        };
        ApiError::invalid(field, e.to_string())
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
