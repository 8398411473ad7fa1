//! Errors as OpenAI's API answers them, which its client libraries read:
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Marks a response the hub's problem layer leaves as it is: the
/// gateway's errors and the engines' own answers, in OpenAI's shape.
#[derive(Debug, Clone, Copy)]
pub struct AnswerAsIs;

/// One refusal of an inference request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, …
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u32>,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        OpenAiError {
            status,
            message: message.into(),
            kind,
            code: None,
            param: None,
            retry_after: None,
        }
    }

    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        OpenAiError {
            param: Some(param),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    pub fn unauthorized() -> Self {
        OpenAiError {
            code: Some("invalid_api_key"),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "Incorrect API key provided: give a tenant API key as `Authorization: Bearer mf_…`",
            )
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }

    pub fn model_not_found(model: &str) -> Self {
        OpenAiError {
            code: Some("model_not_found"),
            param: Some("model"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "The model `{model}` does not exist: name one of your deployments \
                     (GET /v1/models lists them)"
                ),
            )
        }
    }

    pub fn unavailable(message: impl Into<String>, retry_after: u32) -> Self {
        OpenAiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
    }

    pub fn too_many(message: impl Into<String>, retry_after: u32) -> Self {
        OpenAiError {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
        }
    }

    /// The tenant's budget is spent and set to refuse at its limit: what
    /// OpenAI answers an account out of credit, so clients stop retrying.
    pub fn insufficient_quota(message: impl Into<String>) -> Self {
        OpenAiError {
            code: Some("insufficient_quota"),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", message)
        }
    }

    pub fn too_large(limit: usize) -> Self {
        OpenAiError {
            param: Some("body"),
            ..Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("the request body is larger than {limit} bytes"),
            )
        }
    }

    /// A prompt the tenant's input screen refuses (`gateway::screen`):
    /// the message names the rule, never the prompt.
    pub fn input_refused(param: &'static str, message: impl Into<String>) -> Self {
        OpenAiError {
            code: Some("input_refused"),
            param: Some(param),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    /// The tenant's input classifier did not answer and its screen fails
    /// closed.
    pub fn screen_unavailable(message: impl Into<String>) -> Self {
        OpenAiError {
            code: Some("input_screen_unavailable"),
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
    }

    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "server_error", message)
    }

    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "server_error", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the gateway failed; the request was not sent to the model",
        )
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(AnswerAsIs);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
