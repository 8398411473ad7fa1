//! Reading and setting the console's cookies.

use axum::http::{HeaderMap, header};

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value for the console: `Secure` (browsers accept it on
/// `http://localhost` and `127.0.0.1` too), `HttpOnly`, `SameSite=Strict`.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_seconds: Option<i64>) -> String {
    let age = max_age_seconds.map_or_else(String::new, |s| format!("; Max-Age={s}"));
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}")
}
