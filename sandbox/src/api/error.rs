//! The one error type of the API server. Every failure a client sees is a
//! `meta/v1` `Status` with the reason, code and message shape the real API
//! server uses, so kube-rs and kubectl react to it as they would in a cluster.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use super::registry::GroupResource;

/// One entry of `details.causes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldManagerConflict`, …
    pub reason: &'static str,
    /// The message without the field, e.g. `Required value`.
    pub message: String,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
}

impl Cause {
    pub fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }

    /// `spec.replicas: Invalid value: -1: …`, as the server joins them.
    pub fn joined(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// A failed request, rendered as a `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `pods` for the core group, `modeldeployments.modelfleet.io` otherwise:
/// how the server names a resource in messages.
pub fn qualified(gr: &GroupResource) -> String {
    if gr.group.is_empty() {
        gr.resource.clone()
    } else {
        format!("{}.{}", gr.resource, gr.group)
    }
}

fn details(gr: &GroupResource, name: &str) -> Value {
    json!({"name": name, "group": gr.group, "kind": gr.resource})
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        ApiError {
            details: Some(details(gr, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", qualified(gr)),
            )
        }
    }

    /// A path no resource answers to, worded as the real server words it.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        ApiError {
            details: Some(details(gr, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(gr)),
            )
        }
    }

    /// 409 Conflict: `Operation cannot be fulfilled on pods "x": <why>`.
    pub fn conflict(gr: &GroupResource, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(details(gr, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    qualified(gr)
                ),
            )
        }
    }

    /// The stale-`resourceVersion` conflict.
    pub fn stale(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 Invalid: `Kind.group "name" is invalid: field: message`, with
    /// every cause in `details.causes`.
    pub fn invalid(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let joined: Vec<String> = causes.iter().map(Cause::joined).collect();
        let summary = match joined.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        ApiError {
            details: Some(json!({
                "name": name,
                "group": group,
                "kind": kind,
                "causes": causes_json(&causes),
            })),
            ..Self::new(
                422,
                "Invalid",
                format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
            )
        }
    }

    /// A server-side apply conflict with other field managers.
    pub fn apply_conflict(gr: &GroupResource, name: &str, causes: Vec<Cause>) -> Self {
        let lines: Vec<String> = causes
            .iter()
            .map(|c| format!("- {}: {}", c.message, c.field))
            .collect();
        let message = if causes.len() == 1 {
            format!(
                "Apply failed with 1 conflict: {}: {}",
                causes[0].message, causes[0].field
            )
        } else {
            format!(
                "Apply failed with {} conflicts: {}",
                causes.len(),
                lines.join("\n")
            )
        };
        let mut detail = details(gr, name);
        detail["causes"] = causes_json(&causes);
        ApiError {
            details: Some(detail),
            ..Self::new(409, "Conflict", message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(gr: &GroupResource, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(details(gr, name)),
            ..Self::new(
                403,
                "Forbidden",
                format!("{} \"{name}\" is forbidden: {why}", qualified(gr)),
            )
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    /// The `Status` object a client receives.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect()
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_joins_one_cause_without_brackets_and_many_with() {
        let one = ApiError::invalid(
            "ModelDeployment",
            "modelfleet.io",
            "x",
            vec![Cause::new(
                "FieldValueInvalid",
                "spec.replicas",
                "Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            )],
        );
        assert_eq!(
            one.message,
            "ModelDeployment.modelfleet.io \"x\" is invalid: spec.replicas: Invalid value: -1: \
             spec.replicas in body should be greater than or equal to 0"
        );
        let two = ApiError::invalid(
            "Pod",
            "",
            "p",
            vec![
                Cause::new("FieldValueRequired", "spec.a", "Required value"),
                Cause::new("FieldValueRequired", "spec.b", "Required value"),
            ],
        );
        assert_eq!(
            two.message,
            "Pod \"p\" is invalid: [spec.a: Required value, spec.b: Required value]"
        );
        assert_eq!(two.to_status()["details"]["causes"][1]["field"], "spec.b");
    }
}
