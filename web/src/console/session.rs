//! Signing in and out, the second factor, and the language switch.
//!
//! Sign-in calls the API's `POST /sessions` handler: the same password
//! check, TOTP check, lockout and audit record. The session token it
//! returns goes into the `mf_session` cookie and nowhere else.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_api::AppState;
use modelfleet_api::http::origin;
use modelfleet_api::service::Pending;
use modelfleet_api::service::access::{Login, TotpCode};
use modelfleet_api::service::accounts::ChangePassword;
use serde::Deserialize;

use super::cookie::set_cookie;
use super::csrf::{CSRF_COOKIE, new_token};
use super::i18n::{LANG_COOKIE, Lang, Table};
use super::page::{Chrome, CsrfToken, PageError, SESSION_COOKIE, Viewer, idle_expiry};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route(
            "/account/password",
            get(password_page).post(password_change),
        )
        .route("/account/totp", get(totp_page).post(totp_begin))
        .route("/account/totp/confirm", post(totp_confirm))
        .route("/language/{lang}", get(language))
}

/// Where to go after signing in: a path of this console, nothing else.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/deployments",
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/session/sign_in.html")]
struct SignInPage {
    c: Chrome,
    next: String,
    username: String,
    error: Option<&'static str>,
}

async fn sign_in_page(
    headers: HeaderMap,
    csrf: axum::Extension<CsrfToken>,
    Query(query): Query<SignInQuery>,
) -> SignInPage {
    SignInPage {
        c: Chrome::anonymous(Lang::of(&headers), csrf.0.0.clone(), TEXT),
        next: safe_next(query.next.as_deref()).to_owned(),
        username: String::new(),
        error: None,
    }
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    totp_code: String,
    #[serde(default)]
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<SignInForm>,
) -> Response {
    let lang = Lang::of(&parts.headers);
    let csrf = parts
        .extensions
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let code = form.totp_code.trim();
    let login = Login {
        username: form.username.trim().to_owned(),
        password: form.password,
        totp_code: (!code.is_empty()).then(|| code.to_owned()),
    };
    let next = safe_next(form.next.as_deref()).to_owned();
    match state.hub().sign_in(&origin(&parts), login).await {
        Ok(signed_in) => {
            let created = signed_in.session;
            let token = created.token.expose();
            // The console's sessions end after IDLE_MINUTES without a page.
            let lifetime = TimeDelta::minutes(i64::from(state.settings().session_minutes));
            let now = DateTime::<Utc>::from(modelfleet_clock::now());
            let ends = idle_expiry(now, lifetime, now);
            if let Err(e) = state.hub().extend_session(created.session.id, ends).await {
                tracing::warn!(error = %e, "could not set a console session's idle expiry");
            }
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            for value in [
                set_cookie(SESSION_COOKIE, token, None),
                // A new CSRF token for the new session.
                set_cookie(CSRF_COOKIE, &new_token(), None),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.append(header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            let page = SignInPage {
                c: Chrome::anonymous(lang, csrf, TEXT),
                next,
                username: form.username,
                error: Some(lang.t(TEXT, "sign_in.refused")),
            };
            (StatusCode::UNAUTHORIZED, page).into_response()
        }
        Err(e) => PageError::from_api(lang, e).into_response(),
    }
}

fn clear_cookies(response: &mut Response) {
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", Some(0))) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

async fn sign_out(State(state): State<AppState>, viewer: Result<Viewer, Response>) -> Response {
    if let Ok(viewer) = viewer
        && let Err(e) = state.hub().sign_out(&viewer.caller).await
    {
        return viewer.fail(e).into_response();
    }
    let mut response = Redirect::to("/sign-in").into_response();
    clear_cookies(&mut response);
    response
}

#[derive(Template, WebTemplate)]
#[template(path = "console/session/totp.html")]
struct TotpPage {
    c: Chrome,
    enabled: bool,
    required: bool,
    /// Shown once, right after enrolment starts.
    secret: Option<String>,
    otpauth_uri: Option<String>,
    error: Option<String>,
}

impl TotpPage {
    fn new(viewer: &Viewer) -> TotpPage {
        TotpPage {
            c: viewer.chrome("account", TEXT),
            enabled: viewer.user.totp_enabled,
            required: viewer.caller.pending.is_some(),
            secret: None,
            otpauth_uri: None,
            error: None,
        }
    }
}

async fn totp_page(viewer: Viewer) -> TotpPage {
    TotpPage::new(&viewer)
}

async fn totp_begin(State(state): State<AppState>, viewer: Viewer) -> Result<TotpPage, PageError> {
    let enrolment = state
        .hub()
        .begin_totp(&viewer.caller)
        .await
        .map_err(|e| viewer.fail(e))?;
    Ok(TotpPage {
        secret: Some(enrolment.secret_base32.expose().to_owned()),
        otpauth_uri: Some(enrolment.otpauth_uri.expose().to_owned()),
        ..TotpPage::new(&viewer)
    })
}

#[derive(Debug, Deserialize)]
pub struct TotpForm {
    code: String,
}

async fn totp_confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<TotpForm>,
) -> Response {
    let code = TotpCode {
        code: form.code.trim().to_owned(),
    };
    match state.hub().confirm_totp(&viewer.caller, &code).await {
        Ok(_) => Redirect::to("/deployments").into_response(),
        Err(e) if e.status().is_client_error() => {
            let page = TotpPage {
                error: Some(e.detail().to_owned()),
                ..TotpPage::new(&viewer)
            };
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
        Err(e) => viewer.fail(e).into_response(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/session/password.html")]
struct PasswordPage {
    c: Chrome,
    /// The session waits for this change before anything else.
    required: bool,
    changed: bool,
    error: Option<String>,
}

impl PasswordPage {
    fn new(viewer: &Viewer) -> PasswordPage {
        PasswordPage {
            c: viewer.chrome("account", TEXT),
            required: viewer.caller.pending == Some(Pending::PasswordChange),
            changed: false,
            error: None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    repeat_password: String,
}

async fn password_page(viewer: Viewer) -> PasswordPage {
    PasswordPage::new(&viewer)
}

/// Changes the signed-in person's own password through the API's
/// operation; the two new ones must match. After a change the first-start
/// admin goes on to the second factor (or their work).
async fn password_change(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(form): Form<PasswordForm>,
) -> Response {
    if form.new_password != form.repeat_password {
        let page = PasswordPage {
            error: Some(viewer.lang.t(TEXT, "password.mismatch").to_owned()),
            ..PasswordPage::new(&viewer)
        };
        return (StatusCode::UNPROCESSABLE_ENTITY, page).into_response();
    }
    let change = ChangePassword {
        current_password: form.current_password,
        new_password: form.new_password,
    };
    match state.hub().change_password(&viewer.caller, change).await {
        Ok(user) => {
            if viewer.caller.pending == Some(Pending::PasswordChange) {
                // What the session waited for is done; the next page
                // sends them on to a second factor if they still need one.
                let next = if state.hub().pending(&user).is_some() {
                    "/account/totp"
                } else {
                    "/deployments"
                };
                return Redirect::to(next).into_response();
            }
            PasswordPage {
                changed: true,
                ..PasswordPage::new(&viewer)
            }
            .into_response()
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::FORBIDDEN => {
            let page = PasswordPage {
                error: Some(e.detail().to_owned()),
                ..PasswordPage::new(&viewer)
            };
            (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
        }
        Err(e) => viewer.fail(e).into_response(),
    }
}

/// Switches the UI language (a cookie) and goes back to the page.
async fn language(
    Path(lang): Path<String>,
    Query(query): Query<SignInQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(lang) = Lang::from_code(&lang) else {
        let current = Lang::of(&headers);
        return PageError::new(
            current,
            StatusCode::NOT_FOUND,
            current.t(TEXT, "error.language"),
        )
        .into_response();
    };
    let mut response = Redirect::to(safe_next(query.next.as_deref())).into_response();
    let one_year = 365 * 24 * 3600;
    if let Ok(value) = HeaderValue::from_str(&set_cookie(LANG_COOKIE, lang.code(), Some(one_year)))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The text of signing in, the second factor and the language switch.
pub(crate) const TEXT: Table = &[
    ("sign_in.title", "Sign in", "登录"),
    ("sign_in.username", "User name", "用户名"),
    ("sign_in.password", "Password", "密码"),
    (
        "sign_in.totp",
        "Authenticator code (if your account has one)",
        "动态验证码（如已启用）",
    ),
    ("sign_in.submit", "Sign in", "登录"),
    (
        "sign_in.refused",
        "Sign-in refused: the user name, password or authenticator code is wrong, or the account is locked after too many failures.",
        "登录被拒绝：用户名、密码或动态验证码错误，或账户因多次失败已被锁定。",
    ),
    ("totp.title", "Second factor", "双因素认证"),
    (
        "totp.required",
        "Your role must sign in with a second factor (the platform or your tenant asks it): turn one on before using the console.",
        "您的角色必须使用双因素认证登录（平台或您的租户要求）：请先启用后再使用控制台。",
    ),
    ("password.title", "Change password", "修改密码"),
    (
        "password.required",
        "Choose your own password before using the console: the one you signed in with was given to you.",
        "使用控制台前请设置您自己的密码：您登录所用的密码是他人提供的。",
    ),
    (
        "password.changed",
        "Password changed. Your other sessions have ended.",
        "密码已修改。您的其他会话已结束。",
    ),
    ("password.current", "Current password", "当前密码"),
    ("password.new", "New password", "新密码"),
    ("password.repeat", "New password again", "再次输入新密码"),
    (
        "password.hint",
        "At least 12 characters of three kinds (lower, upper, digits, other); not a common password; not containing your user name.",
        "至少 12 个字符，包含三类字符（小写、大写、数字、其他）；不能是常见密码；不能包含用户名。",
    ),
    ("password.submit", "Change password", "修改密码"),
    (
        "password.mismatch",
        "The two new passwords differ: type the same one twice.",
        "两次输入的新密码不一致：请输入相同的密码。",
    ),
    ("password.totp_link", "Second factor", "双因素认证"),
    (
        "totp.enabled",
        "A second factor is on for this account: signing in asks for a code from your authenticator app.",
        "此账户已启用双因素认证：登录时需要输入动态验证码。",
    ),
    (
        "totp.off",
        "No second factor yet. Turn one on to protect this account.",
        "尚未启用双因素认证。启用后可保护此账户。",
    ),
    (
        "totp.start",
        "Set up an authenticator app",
        "设置身份验证器应用",
    ),
    (
        "totp.secret",
        "Secret key (type it into your authenticator app)",
        "密钥（输入到身份验证器应用中）",
    ),
    (
        "totp.uri",
        "Or add this otpauth URI",
        "或添加此 otpauth URI",
    ),
    (
        "totp.shown_once",
        "Shown once: it is not displayed again.",
        "仅显示一次，之后不再显示。",
    ),
    ("totp.code", "Code from the app", "应用中的验证码"),
    ("totp.confirm", "Turn on", "启用"),
    (
        "error.language",
        "Unknown language: use en or zh.",
        "未知语言：请使用 en 或 zh。",
    ),
];

#[cfg(test)]
mod tests {
    use super::super::cookie::cookie;
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/billing?month=2026-11")),
            "/billing?month=2026-11"
        );
        for hostile in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil.example",
            "evil",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/deployments", "{hostile}");
        }
        assert_eq!(safe_next(None), "/deployments");
    }

    #[test]
    fn cookies_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; mf_session=mfs_x"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("mf_lang=zh"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("mfs_x"));
        assert_eq!(cookie(&headers, "mf_lang").as_deref(), Some("zh"));
        assert_eq!(cookie(&headers, "mf_csrf"), None);
    }
}
