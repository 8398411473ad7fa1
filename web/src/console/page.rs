//! What every page shares: who is looking ([`Viewer`], from the session
//! cookie), the layout's data ([`Chrome`]) and text ([`TEXT`]), and errors
//! as pages ([`PageError`]).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_api::http::Caller;
use modelfleet_api::identity::Permission;
use modelfleet_api::service::{Error as ApiError, Pending};
use modelfleet_api::store::User;
use modelfleet_api::{AppState, Role};

use super::cookie::cookie;
use super::i18n::{Lang, Table};

/// The cookie that carries the session token.
pub const SESSION_COOKIE: &str = "mf_session";
/// A console session ends this long after its last page.
pub const IDLE_MINUTES: i64 = 30;

/// The CSRF token this request's pages put in their forms (set by
/// `csrf::check`).
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(pub String);

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

    /// The layout's data, with `active` the navigation entry to highlight
    /// and `text` the page's own text table.
    pub fn chrome(&self, active: &'static str, text: Table) -> Chrome {
        Chrome {
            lang: self.lang,
            text,
            csrf: self.csrf.clone(),
            signed_in: Some(SignedIn {
                username: self.user.username.clone(),
                display_name: self.user.display_name.clone(),
                role: self.user.role.name(),
                platform_admin: self.user.role == Role::PlatformAdmin,
                can_deploy: self.can(Permission::Deploy),
                can_audit: self.can(Permission::ReadAudit),
                can_manage_team: self.can(Permission::ManageTenant),
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
            && let Err(e) = state.hub().extend_session(session.id, wanted).await
        {
            tracing::warn!(error = %e, "could not extend a console session");
        }
        let here = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        // Until they have chosen their own password, and then enrolled
        // the second factor they need, people may only do that or sign out.
        let path = parts.uri.path();
        match caller.pending {
            Some(Pending::PasswordChange) if path != "/account/password" && path != "/sign-out" => {
                return Err(Redirect::to("/account/password").into_response());
            }
            Some(Pending::SecondFactor)
                if !path.starts_with("/account/") && path != "/sign-out" =>
            {
                return Err(Redirect::to("/account/totp").into_response());
            }
            _ => {}
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
    pub can_manage_team: bool,
    pub has_tenant: bool,
}

/// What the layout (`console/page/base.html`) needs of every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub lang: Lang,
    /// The page's text; [`TEXT`] (the layout's) is looked in after it.
    pub text: Table,
    pub csrf: String,
    pub signed_in: Option<SignedIn>,
    pub active: &'static str,
    pub here: String,
}

impl Chrome {
    /// The layout for a page nobody is signed in to.
    pub fn anonymous(lang: Lang, csrf: String, text: Table) -> Chrome {
        Chrome {
            lang,
            text,
            csrf,
            signed_in: None,
            active: "",
            here: "/".to_owned(),
        }
    }

    /// UI text in the viewer's language: the page's, else the layout's.
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t_in(&[self.text, TEXT], key)
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
    /// `Retry-After`, in seconds, of a 429.
    retry_after: Option<u32>,
}

impl PageError {
    pub fn from_api(lang: Lang, error: ApiError) -> PageError {
        PageError {
            lang,
            status: error.status(),
            message: error.detail().to_owned(),
            retry_after: error.retry_after(),
        }
    }

    pub fn new(lang: Lang, status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            lang,
            status,
            message: message.into(),
            retry_after: None,
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
        let mut response = error_page(self.lang, self.status, &self.message);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/page/error.html")]
struct ErrorPage<'a> {
    c: Chrome,
    status: u16,
    title: &'static str,
    message: &'a str,
}

/// A page saying what went wrong, answered with `status`.
pub(crate) fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::FORBIDDEN => lang.t(TEXT, "error.forbidden"),
        StatusCode::NOT_FOUND => lang.t(TEXT, "error.not_found"),
        s if s.is_server_error() => lang.t(TEXT, "error.server"),
        _ => lang.t(TEXT, "error.refused"),
    };
    let page = ErrorPage {
        c: Chrome::anonymous(lang, String::new(), TEXT),
        status: status.as_u16(),
        title,
        message,
    };
    (status, page).into_response()
}

/// The layout's text (the navigation), the error pages', and words every
/// page uses.
pub const TEXT: Table = &[
    ("brand", "modelfleet", "modelfleet"),
    ("nav.deploy", "Deploy", "部署模型"),
    ("nav.deployments", "Deployments", "部署列表"),
    ("nav.quotas", "Quotas", "配额"),
    ("nav.credentials", "Source credentials", "来源凭证"),
    ("nav.billing", "Billing", "账单"),
    ("nav.audit", "Audit", "审计"),
    ("nav.compliance", "Compliance", "合规"),
    ("nav.admin", "Admin", "平台管理"),
    ("nav.team", "Team", "团队"),
    ("nav.account", "Account", "账户"),
    ("nav.main", "Main navigation", "主导航"),
    ("nav.language", "Language", "语言"),
    ("sign_out", "Sign out", "退出登录"),
    ("error.title", "Something went wrong", "出错了"),
    ("error.forbidden", "Not allowed", "无权访问"),
    ("error.not_found", "Not found", "未找到"),
    (
        "error.server",
        "The hub could not do this",
        "服务暂时无法完成此操作",
    ),
    ("error.refused", "Refused", "请求被拒绝"),
    (
        "error.csrf",
        "This form is out of date or did not come from this console. Go back, reload the page and send it again.",
        "此表单已过期或并非来自本控制台。请返回、刷新页面后重新提交。",
    ),
    (
        "error.too_large",
        "The form is too large.",
        "表单内容过大。",
    ),
    ("error.no_page", "There is no such page.", "没有这个页面。"),
    ("error.back", "Back to deployments", "返回部署列表"),
    ("common.cancel", "Cancel", "取消"),
    ("common.confirm", "Confirm", "确认"),
    ("common.save", "Save", "保存"),
    ("common.none", "None", "无"),
    ("common.yes", "Yes", "是"),
    ("common.no", "No", "否"),
    ("common.next", "Next page", "下一页"),
    ("common.download", "Download", "下载"),
];
