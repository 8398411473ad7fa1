//! What every page shares: who is looking ([`Viewer`], from the session
//! cookie), the layout's data ([`Chrome`]), and errors as pages
//! ([`PageError`]).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_api::http::ApiError;
use modelfleet_api::http::Caller;
use modelfleet_api::identity::Permission;
use modelfleet_api::store::User;
use modelfleet_api::{AppState, Role};

use super::csrf::CsrfToken;
use super::i18n::Lang;
use super::session::{IDLE_MINUTES, SESSION_COOKIE, must_enrol};

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

/// A signed-in person looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub user: User,
    pub lang: Lang,
    pub csrf: String,
    /// Path and query of the page, to come back to (language switch).
    pub here: String,
}

impl Viewer {
    pub fn can(&self, permission: Permission) -> bool {
        self.caller.actor.check_role(permission).is_ok()
    }

    /// The layout's data, with `active` the navigation entry to highlight.
    pub fn chrome(&self, active: &'static str) -> Chrome {
        Chrome {
            lang: self.lang,
            csrf: self.csrf.clone(),
            signed_in: Some(SignedIn {
                username: self.user.username.clone(),
                display_name: self.user.display_name.clone(),
                role: self.user.role.name(),
                platform_admin: self.user.role == Role::PlatformAdmin,
                can_deploy: self.can(Permission::Deploy),
                can_audit: self.can(Permission::ReadAudit),
                has_tenant: self.user.tenant.is_some(),
            }),
            active,
            here: self.here.clone(),
        }
    }

    /// An API error as this viewer's page.
    pub fn fail(&self, error: ApiError) -> PageError {
        PageError::from_api(self.lang, error)
    }
}

fn to_sign_in(parts: &Parts) -> Response {
    let here = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let next: String = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
    Redirect::to(&format!("/sign-in?{next}")).into_response()
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = Lang::of(&parts.headers);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_sign_in(parts));
        };
        let (caller, session, user) = match Caller::from_session_cookie(state, parts, &token).await
        {
            Ok(found) => found,
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => return Err(to_sign_in(parts)),
            Err(e) => return Err(PageError::from_api(lang, e).into_response()),
        };
        // Idle expiry: each page moves the end a little further, never
        // past the session's lifetime; written at most once a minute.
        let lifetime = TimeDelta::minutes(i64::from(state.settings().session_minutes));
        let now = DateTime::<Utc>::from(modelfleet_clock::now());
        let wanted = idle_expiry(session.created_at, lifetime, now);
        if wanted - session.expires_at >= TimeDelta::minutes(1)
            && let Err(e) = state.store().touch_session(session.id, wanted).await
        {
            tracing::warn!(error = %e, "could not extend a console session");
        }
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        // Until they enrol, platform admins and auditors may only enrol
        // or sign out.
        let path = parts.uri.path();
        if must_enrol(&user) && !path.starts_with("/account/") && path != "/sign-out" {
            return Err(Redirect::to("/account/totp").into_response());
        }
        let csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        Ok(Viewer {
            caller,
            user,
            lang,
            csrf,
            here,
        })
    }
}

/// When a session used at `now` ends: [`IDLE_MINUTES`] later, but never
/// past its lifetime from sign-in.
pub(crate) fn idle_expiry(
    created_at: DateTime<Utc>,
    lifetime: TimeDelta,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    (now + TimeDelta::minutes(IDLE_MINUTES)).min(created_at + lifetime)
}

/// The signed-in part of the layout.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub username: String,
    pub display_name: String,
    pub role: &'static str,
    pub platform_admin: bool,
    pub can_deploy: bool,
    pub can_audit: bool,
    pub has_tenant: bool,
}

/// What the layout (`console/base.html`) needs of every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub lang: Lang,
    pub csrf: String,
    pub signed_in: Option<SignedIn>,
    pub active: &'static str,
    pub here: String,
}

impl Chrome {
    /// The layout for a page nobody is signed in to.
    pub fn anonymous(lang: Lang, csrf: String) -> Chrome {
        Chrome {
            lang,
            csrf,
            signed_in: None,
            active: "",
            here: "/".to_owned(),
        }
    }

    /// UI text in the viewer's language.
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    /// The URL that shows this page in `lang`.
    pub fn switch_to(&self, lang: &str) -> String {
        let next = serde_urlencoded::to_string([("next", self.here.as_str())]).unwrap_or_default();
        format!("/language/{lang}?{next}")
    }
}

/// A page that could not be shown, or a form refused: the status and what
/// went wrong, as the API said it.
#[derive(Debug)]
pub struct PageError {
    lang: Lang,
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn from_api(lang: Lang, error: ApiError) -> PageError {
        PageError {
            lang,
            status: error.status(),
            message: error.detail().to_owned(),
        }
    }

    pub fn new(lang: Lang, status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            lang,
            status,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/sign-in").into_response();
        }
        error_page(self.lang, self.status, &self.message)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    c: Chrome,
    status: u16,
    title: &'static str,
    message: &'a str,
}

/// A page saying what went wrong, answered with `status`.
pub(crate) fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => lang.t("error.forbidden"),
        StatusCode::NOT_FOUND => lang.t("error.not_found"),
        s if s.is_server_error() => lang.t("error.server"),
        _ => lang.t("error.refused"),
    };
    let page = ErrorPage {
        c: Chrome::anonymous(lang, String::new()),
        status: status.as_u16(),
        title,
        message,
    };
    (status, page).into_response()
}
