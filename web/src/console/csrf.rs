//! CSRF: every form the console renders carries the value of the
//! `mf_csrf` cookie in a hidden field, and every POST must send both,
//! equal. A page on another site can make a browser post a form here, but
//! it can neither read that cookie nor (the cookie being `SameSite=Strict`)
//! have the browser send it, so its post is refused before any handler
//! runs. The cookie is set on the first page a browser gets and replaced
//! at every sign-in.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

use super::cookie::{cookie, set_cookie};
use super::i18n::Lang;
use super::page::{CsrfToken, TEXT, error_page};

/// The hidden form field that carries the token.
pub const CSRF_FIELD: &str = "csrf";
pub(crate) const CSRF_COOKIE: &str = "mf_csrf";
/// Forms are small; anything bigger is not one of ours.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A fresh token: 32 random bytes.
pub(crate) fn new_token() -> String {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).expect("the operating system has randomness");
    URL_SAFE_NO_PAD.encode(random)
}

/// The token a request's forms must carry: the cookie's, when it has a
/// well-formed one.
pub(crate) fn token_of(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, CSRF_COOKIE).filter(|t| t.len() == 43 && URL_SAFE_NO_PAD.decode(t).is_ok())
}

/// Refuses a POST whose form does not carry the cookie's token; gives a
/// browser without the cookie one.
pub(crate) async fn check(mut request: Request, next: Next) -> Response {
    let expected = token_of(request.headers());
    if request.method() != Method::POST {
        let (token, fresh) = match expected {
            Some(token) => (token, false),
            None => (new_token(), true),
        };
        request.extensions_mut().insert(CsrfToken(token.clone()));
        let mut response = next.run(request).await;
        if fresh && let Ok(value) = set_cookie(CSRF_COOKIE, &token, None).parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        return response;
    }
    let lang = Lang::of(request.headers());
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return error_page(
            lang,
            StatusCode::PAYLOAD_TOO_LARGE,
            lang.t(TEXT, "error.too_large"),
        )
        .into_response();
    };
    let sent = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| {
            fields
                .into_iter()
                .find(|(name, _)| name == CSRF_FIELD)
                .map(|(_, value)| value)
        });
    let valid = match (expected, sent) {
        (Some(expected), Some(sent)) => bool::from(expected.as_bytes().ct_eq(sent.as_bytes())),
        _ => false,
    };
    if !valid {
        tracing::debug!(path = %parts.uri.path(), "console form refused: CSRF token missing or wrong");
        return error_page(lang, StatusCode::FORBIDDEN, lang.t(TEXT, "error.csrf")).into_response();
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    if let Some(token) = token_of(request.headers()) {
        request.extensions_mut().insert(CsrfToken(token));
    }
    next.run(request).await
}
