//! "Try it" on a deployment's page: a message sent to the deployment
//! through the inference gateway, its answer streamed back as it comes.
//!
//! `POST /deployments/{id}/try` is a console form (its CSRF token checked
//! by [`super::csrf`] first) with one field, `message`. It builds an
//! OpenAI chat request — `model` the deployment's name, `stream: true`,
//! [`MAX_TOKENS`] at most — and hands it to the gateway's own router in
//! this process, as the signed-in person: `Authorization: Bearer` the
//! session token their cookie holds, with the console request's client
//! address, request id and audit record. So the gateway checks, limits,
//! screens, routes and meters it exactly as any call of theirs (tokens
//! under the user, no API key; billed like any other), and its answer —
//! server-sent events, or OpenAI's `{"error": …}` — goes back to the
//! browser as it arrives, unbuffered. `static/try.js` reads it.
//!
//! Only people who may call models (`Permission::Infer`: tenant admins and
//! developers) of a tenant see the box, and only they may post it.

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, OriginalUri, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelfleet_api::AppState;
use modelfleet_api::gateway::OpenAiError;
use modelfleet_api::identity::Permission;
use modelfleet_api::service::DeploymentRef;
use serde::Deserialize;
use tower::ServiceExt as _;

use super::cookie::cookie;
use super::deployments::TEXT;
use super::i18n::Lang;
use super::page::{SESSION_COOKIE, Viewer};

/// The longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// The most tokens an answer may have.
pub const MAX_TOKENS: u32 = 256;
/// The form is one message and the CSRF token.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Whether `viewer` is offered the box: they may call models, and belong
/// to a tenant (platform staff have no deployments to call).
pub fn may_try(viewer: &Viewer) -> bool {
    viewer.can(Permission::Infer) && viewer.user.tenant.is_some()
}

#[derive(Debug, Deserialize)]
struct TryForm {
    #[serde(default)]
    message: String,
}

fn refused(status: StatusCode, kind: &'static str, message: String) -> Response {
    OpenAiError {
        status,
        message,
        kind,
        code: None,
        param: Some("message"),
        retry_after: None,
    }
    .into_response()
}

/// Checks a message: its text to send, or what is wrong with it.
pub fn check_message(lang: Lang, message: &str) -> Result<String, String> {
    let text = message.trim();
    if text.is_empty() {
        return Err(lang.t(TEXT, "try.empty").to_owned());
    }
    let chars = text.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(format!(
            "{} {chars} / {MAX_MESSAGE_CHARS}",
            lang.t(TEXT, "try.too_long")
        ));
    }
    Ok(text.to_owned())
}

pub(super) async fn try_it(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let lang = viewer.lang;
    if !may_try(&viewer) {
        return refused(
            StatusCode::FORBIDDEN,
            "permission_error",
            lang.t(TEXT, "try.forbidden").to_owned(),
        );
    }
    let id = match super::deployments::parse_id(lang, &id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            lang.t(TEXT, "try.too_long").to_owned(),
        );
    };
    let Ok(form) = serde_urlencoded::from_bytes::<TryForm>(&bytes) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            lang.t(TEXT, "try.empty").to_owned(),
        );
    };
    let message = match check_message(lang, &form.message) {
        Ok(text) => text,
        Err(why) => return refused(StatusCode::BAD_REQUEST, "invalid_request_error", why),
    };
    let deployment = match state
        .hub()
        .deployment(&viewer.caller, &DeploymentRef::Id(id))
        .await
    {
        Ok(d) => d,
        Err(e) => return viewer.fail(e).into_response(),
    };
    if deployment.deleted_at.is_some() {
        return refused(
            StatusCode::CONFLICT,
            "invalid_request_error",
            lang.t(TEXT, "try.deleted").to_owned(),
        );
    }
    // The Viewer extractor found this cookie's session valid.
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            lang.t(TEXT, "try.signed_out").to_owned(),
        );
    };
    let chat = serde_json::json!({
        "model": deployment.name,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": message}],
    });
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            lang.t(TEXT, "try.signed_out").to_owned(),
        );
    };
    let mut call = axum::http::Request::new(Body::from(chat.to_string()));
    *call.method_mut() = Method::POST;
    *call.uri_mut() = axum::http::Uri::from_static("/v1/chat/completions");
    let headers = call.headers_mut();
    headers.insert(header::AUTHORIZATION, bearer);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(agent) = parts.headers.get(header::USER_AGENT) {
        headers.insert(header::USER_AGENT, agent.clone());
    }
    // Who and where from, as the console request: its client address,
    // request id and audit record (a refusal the gateway records is this
    // request's record). Not its route.
    let mut extensions = parts.extensions;
    extensions.remove::<MatchedPath>();
    extensions.remove::<OriginalUri>();
    *call.extensions_mut() = extensions;
    let gateway = modelfleet_api::gateway::router(state.settings().gateway_max_body_bytes)
        .with_state(state.clone());
    let answer = match gateway.oneshot(call).await {
        Ok(answer) => answer,
        Err(never) => match never {},
    };
    let (mut head, body) = answer.into_parts();
    // Nothing between here and the browser should hold the stream back.
    head.headers
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    head.headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Response::from_parts(head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_must_have_text_and_fit() {
        assert_eq!(
            check_message(Lang::En, "  Hello \n").as_deref(),
            Ok("Hello")
        );
        assert!(check_message(Lang::En, " \n\t ").is_err());
        let longest = "字".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(
            check_message(Lang::Zh, &longest).as_deref(),
            Ok(longest.as_str())
        );
        let too_long = check_message(Lang::En, &"a".repeat(MAX_MESSAGE_CHARS + 1)).unwrap_err();
        assert!(too_long.ends_with(" 4001 / 4000"), "{too_long}");
        assert_ne!(
            check_message(Lang::Zh, "").unwrap_err(),
            check_message(Lang::En, "").unwrap_err()
        );
    }
}
