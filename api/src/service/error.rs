//! The hub's one error type: every service operation returns it, and every
//! caller maps it — the REST API to an RFC 9457 problem document
//! (`http::error`), the console to an HTML page. It decides the kind of
//! failure (as an HTTP status, the vocabulary problem documents share),
//! the words the caller sees, and what stays internal: a database or
//! cluster error keeps its source chain for the log and shows the caller
//! only that something failed.

use std::fmt::Write as _;

use http::StatusCode;
use modelfleet_core::crd::SpecError;
use modelfleet_core::planner::RequestError;
use modelfleet_core::quota::QuotaExceeded;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::billing::BillingServiceError;
use crate::clusters::ClusterError;
use crate::store::StoreError;

/// Problem types are `PROBLEM_BASE` + a stable slug such as `quota-exceeded`.
pub const PROBLEM_BASE: &str = "https://modelfleet.io/problems/";

#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    /// The cause, with its source chain: logged, never sent.
    internal: Option<String>,
    /// Whole seconds to wait before trying again (`Retry-After`).
    retry_after: Option<u32>,
}

impl Error {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Error {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            internal: None,
            retry_after: None,
        }
    }

    pub fn with(mut self, member: &str, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.extensions.insert(member.to_owned(), value);
        self
    }

    pub(crate) fn with_internal(mut self, error: &dyn std::error::Error) -> Self {
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
        Error::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send a valid API key or session token as `Authorization: Bearer <token>`",
        )
    }

    pub fn forbidden() -> Self {
        Error::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "your role does not allow this",
        )
    }

    /// Absent, or another tenant's: the caller cannot tell which.
    pub fn not_found(what: &str) -> Self {
        Error::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not Found",
            format!("{what} not found"),
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Error::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            detail,
        )
    }

    /// A well-formed request whose `field` cannot be accepted.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid Request",
            format!("{field}: {reason}"),
        )
        .with("field", field)
    }

    /// A person who must use a second factor has not enrolled one: their
    /// session may only enrol (`POST /users/me/totp`, then `…/confirm`) and
    /// sign out.
    pub fn second_factor_required() -> Self {
        Error::new(
            StatusCode::FORBIDDEN,
            "second-factor-required",
            "Second Factor Required",
            "your role must sign in with a second factor: enrol an authenticator app first \
             (POST /api/v1/users/me/totp, then /api/v1/users/me/totp/confirm, or the console's \
             account page); until then this session can only enrol and sign out",
        )
    }

    pub fn password_change_required() -> Self {
        Error::new(
            StatusCode::FORBIDDEN,
            "password-change-required",
            "Password Change Required",
            "this account must choose a new password before anything else: change it \
             (POST /api/v1/users/me/password with currentPassword and newPassword, or the \
             console's account page); until then this session can only change the password \
             and sign out",
        )
    }

    /// The tenant's budget refuses new spend (it refuses at its limit,
    /// and the limit is reached); `reason` says by how much and what to do.
    pub fn budget_exhausted(reason: impl Into<String>) -> Self {
        Error::new(
            StatusCode::FORBIDDEN,
            "budget-exhausted",
            "Budget Exhausted",
            reason,
        )
    }

    /// Over a rate limit (`service::throttle`): try again after
    /// `retry_after` seconds, which the answer's `Retry-After` says.
    pub fn too_many_requests(detail: impl Into<String>, retry_after: u32) -> Self {
        let mut e = Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too Many Requests",
            detail,
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// Whole seconds to wait before trying again, when the error says.
    pub fn retry_after(&self) -> Option<u32> {
        self.retry_after
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Error::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload Too Large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn quota(e: &QuotaExceeded) -> Self {
        Error::new(
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
        Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service Unavailable",
            detail,
        )
        .with_internal(cause)
    }

    pub fn internal(cause: &dyn std::error::Error) -> Self {
        Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error",
            "the hub failed to handle this request; quote the request id to its operators",
        )
        .with_internal(cause)
    }

    /// A generic problem for a status produced outside the handlers (an
    /// unknown route, a method the route lacks).
    pub fn for_status(status: StatusCode) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        let detail = match status {
            StatusCode::NOT_FOUND => "no such resource".to_owned(),
            StatusCode::METHOD_NOT_ALLOWED => "this resource does not allow that method".to_owned(),
            _ => title.to_lowercase(),
        };
        let mut e = Error::new(status, "http", "", detail);
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

    /// The stable slug of the problem type (`quota-exceeded`, …).
    pub fn slug(&self) -> &'static str {
        self.slug
    }

    pub fn title(&self) -> &'static str {
        self.title
    }

    /// Further members the problem document carries (`field`, `limit`, …).
    pub fn extensions(&self) -> &Map<String, Value> {
        &self.extensions
    }

    /// The cause, with its source chain, for the log; never shown.
    pub fn internal_cause(&self) -> Option<&str> {
        self.internal.as_deref()
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

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound(what) => Error::not_found(what),
            StoreError::Forbidden => Error::forbidden(),
            StoreError::Conflict { .. } | StoreError::InUse { .. } => {
                Error::conflict(e.to_string())
            }
            StoreError::Invalid { field, reason } => Error::invalid(field, reason.clone()),
            StoreError::Quota(q) => Error::quota(q),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                Error::unavailable("the database is busy; retry shortly", &e)
            }
            StoreError::Secret(_)
            | StoreError::UnsupportedUrl
            | StoreError::Connect(_)
            | StoreError::Migrate(_)
            | StoreError::Database(_)
            | StoreError::Corrupt(_) => Error::internal(&e),
        }
    }
}

impl From<ClusterError> for Error {
    fn from(e: ClusterError) -> Self {
        match &e {
            ClusterError::Kubeconfig(_) => Error::invalid("kubeconfig", e.to_string()),
            ClusterError::KubeconfigRefused(refused) => Error::invalid(
                &format!("kubeconfig.{}", refused.field),
                refused.reason.clone(),
            ),
            ClusterError::NotConnected(_)
            | ClusterError::Unusable { .. }
            | ClusterError::Timeout { .. }
            | ClusterError::Kube { .. } => Error::unavailable(e.to_string(), &e),
        }
    }
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        // The core names fields as in the ModelDeployment (`spec.serving…`);
        // the request body has the same fields without the `spec.` prefix.
        let text = e.to_string().replace("spec.", "");
        let field = match &e {
            SpecError::Model(_) | SpecError::ArchitectureIdMismatch { .. } => "model",
            SpecError::GpuMemoryUtilization(_) => "serving.gpuMemoryUtilization",
            SpecError::RuntimeExcludesAccelerators { .. } => "serving.runtime",
            SpecError::Source(_) | SpecError::SourceForm { .. } => "source",
            SpecError::SourceSecret(_) => "sourceSecret",
        };
        Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "Invalid Request",
            text,
        )
        .with("field", field)
    }
}

impl From<RequestError> for Error {
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
        Error::invalid(field, e.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Error {}

/// What every service operation returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<BillingServiceError> for Error {
    fn from(e: BillingServiceError) -> Self {
        match e {
            BillingServiceError::Store(e) => e.into(),
            BillingServiceError::Rating(
                e @ modelfleet_core::billing::BillingError::Unpriced { .. },
            ) => Error::conflict(format!("the usage cannot be rated: {e}")),
            BillingServiceError::Rating(e) => Error::internal(&e),
        }
    }
}
