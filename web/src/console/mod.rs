//! The console: server-rendered pages at the root of the hub's listener,
//! next to `/api/v1`. Every page and form calls the API's own handlers
//! in-process (`modelfleet_api::http::v1`) with the caller its session
//! cookie names, so a form obeys exactly the rules, roles and quotas the
//! REST API does, and is audited the same way.
//!
//! What keeps it safe, all in this module and [`session`]:
//! - the session token lives in a `Secure; HttpOnly; SameSite=Strict`
//!   cookie, expires after [`page::IDLE_MINUTES`] without a page, and
//!   platform admins and auditors must enrol a second factor first;
//! - every form carries a CSRF token that must equal the `mf_csrf`
//!   cookie's ([`csrf`]), checked before any handler runs;
//! - every answer carries a Content-Security-Policy without inline
//!   scripts or styles, frame denial and `nosniff` ([`security_headers`]);
//! - scripts (htmx) and styles are served from the binary: the console
//!   needs nothing from the internet.
//!
//! Where things are: each page module renders the templates at its own
//! path under `templates/console/` (`compliance.rs`: `compliance.html`; a
//! module with several pages, or a folder of modules, keeps them in a
//! folder of its name: `deploy/model.html`, `billing/usage.html`,
//! `admin/fleet/prices.html`), and keeps its text, in English and
//! Chinese, in a `TEXT` table beside its pages ([`i18n`] only chooses the
//! language and looks keys up). The layout (`page/base.html`), the error
//! page and the words every page shares are [`page`]'s.

pub mod admin;
pub mod audit;
pub mod billing;
mod chart;
pub mod compliance;
mod cookie;
pub mod credentials;
mod csrf;
pub mod deploy;
mod deploy_source;
mod deployment_logs;
mod deployment_traffic;
pub mod deployments;
pub mod i18n;
mod page;
pub mod session;
#[cfg(test)]
mod tests;
mod try_it;

use axum::Router;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use modelfleet_api::AppState;

pub use csrf::CSRF_FIELD;
pub use page::{Chrome, PageError, Viewer};

/// The console's pages, to pass to `modelfleet_api::router_with_console`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/{file}", get(asset))
        .merge(session::routes())
        .merge(deploy::routes())
        .merge(deployments::routes())
        .merge(billing::routes())
        .merge(credentials::routes())
        .merge(audit::routes())
        .merge(compliance::routes())
        .merge(admin::routes())
        .fallback(not_found)
        .layer(from_fn(csrf::check))
        .layer(from_fn(security_headers))
}

async fn home(viewer: Result<Viewer, Response>) -> Response {
    match viewer {
        Ok(_) => Redirect::to("/deployments").into_response(),
        Err(to_sign_in) => to_sign_in,
    }
}

/// An unknown path: a page saying so, but a bare 404 under `/api/` (the
/// API's problem layer answers it as a problem document).
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let lang = i18n::Lang::of(&headers);
    page::error_page(
        lang,
        StatusCode::NOT_FOUND,
        lang.t(page::TEXT, "error.no_page"),
    )
}

/// The Content-Security-Policy of every console answer: scripts, styles
/// and images only from the console itself, no inline script or style, no
/// framing, forms only back to the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages show a tenant's data: never kept by a shared cache or the
    // browser's disk. The static files below set their own.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The files the pages load, compiled into the binary.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/console.css"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/htmx.min.js"),
    ),
    (
        "try.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/try.js"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
