//! The console for page tests: the API crate's test hub (a real router
//! over a throwaway database, sandbox clusters in-process) with the console
//! mounted at the root as `serve` mounts it, and a [`Browser`] that keeps
//! cookies and sends forms with their CSRF token as a browser does, without
//! a socket. Pages come back parsed ([`Page`]) for CSS-selector checks.

#![allow(dead_code)]

#[path = "../../../api/tests/support/mod.rs"]
pub mod hub;

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use modelfleet_api::identity::password::PasswordHash;
use modelfleet_api::identity::totp;
use modelfleet_api::ids::TenantId;
use modelfleet_api::store::testing::{TestDb, run};
use modelfleet_api::store::{Backend, NewUser};
use modelfleet_api::{Actor, AppState, Role, Secret};
use scraper::{Html, Selector};
use tower::ServiceExt;

pub use hub::Hub;

/// The password every test user gets.
pub const PASSWORD: &str = "Console-user-42!";

/// Runs a console test on a fresh SQLite database (the store's own tests
/// cover both backends; the console adds nothing backend-specific).
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    run(Backend::Sqlite, test).await;
}

/// The hub's whole listener over `state`: API and console.
pub fn app(state: &AppState) -> Router {
    modelfleet_api::router_with_console(state.clone(), modelfleet_web::console::router())
}

/// A person with a password: `(tenant id, username)`.
pub async fn user(hub: &Hub, tenant: Option<TenantId>, username: &str, role: Role) {
    let password = Secret::new(PASSWORD);
    let mut tx = hub.store.begin(&Actor::system("test")).await.unwrap();
    tx.create_user(NewUser {
        tenant,
        username: username.into(),
        display_name: format!("User {username}"),
        password: PasswordHash::new(username, &password).await.unwrap(),
        role,
        expires_at: None,
        must_change_password: false,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// A tenant with a roomy quota and a tenant admin `<name>-admin`: its id.
pub async fn tenant_with_admin(hub: &Hub, name: &str) -> TenantId {
    let (id, _key) = hub.tenant(name, hub::roomy()).await;
    let id: TenantId = id.parse().unwrap();
    user(hub, Some(id), &format!("{name}-admin"), Role::TenantAdmin).await;
    id
}

/// One answer, with the page parsed.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub html: Html,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Where a redirect goes.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The text of every element `selector` matches, whitespace collapsed.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let selector = Selector::parse(selector).unwrap();
        self.html
            .select(&selector)
            .map(|e| e.text().collect::<Vec<_>>().join(" "))
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The text of the one element `selector` matches.
    pub fn one(&self, selector: &str) -> String {
        let found = self.texts(selector);
        assert_eq!(
            found.len(),
            1,
            "{selector} matched {found:?} in\n{}",
            self.text()
        );
        found.into_iter().next().unwrap()
    }

    /// The attribute `attr` of every element `selector` matches.
    pub fn attrs(&self, selector: &str, attr: &str) -> Vec<String> {
        let selector = Selector::parse(selector).unwrap();
        self.html
            .select(&selector)
            .filter_map(|e| e.value().attr(attr).map(str::to_owned))
            .collect()
    }

    pub fn has(&self, selector: &str) -> bool {
        !self.texts(selector).is_empty()
    }
}

/// A browser without a screen: keeps cookies, follows nothing by itself.
/// A clone is another tab of the same browser (same cookies, at first).
#[derive(Clone)]
pub struct Browser {
    app: Router,
    pub cookies: BTreeMap<String, String>,
    /// Sent as `User-Agent` when set.
    pub user_agent: Option<String>,
}

impl Browser {
    pub fn new(hub: &Hub) -> Browser {
        Browser::for_state(&hub.state)
    }

    /// A browser on a hub whose state differs from the test hub's (a
    /// report renderer, an export target).
    pub fn for_state(state: &AppState) -> Browser {
        Browser {
            app: app(state),
            cookies: BTreeMap::new(),
            user_agent: None,
        }
    }

    pub async fn send(&mut self, mut request: Request<Body>) -> Page {
        if let Some(agent) = &self.user_agent {
            request
                .headers_mut()
                .insert(header::USER_AGENT, agent.parse().unwrap());
        }
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        for value in parts.headers.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, v) = pair.split_once('=').unwrap();
            if value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), v.to_owned());
            }
        }
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        let html = Html::parse_document(&String::from_utf8_lossy(&body));
        Page {
            status: parts.status,
            headers: parts.headers,
            body,
            html,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = Request::builder()
            .uri(path)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    /// Posts `fields` as a form, with the CSRF token the browser's cookie
    /// holds (as the console's own forms do).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        if !self.cookies.contains_key("mf_csrf") {
            self.get("/sign-in").await;
        }
        let token = self.cookies["mf_csrf"].clone();
        let mut all: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly `fields`, with no token added.
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(request).await
    }

    /// Signs in with a password; panics unless the console lets them in.
    pub async fn sign_in(&mut self, username: &str) {
        let page = self
            .post(
                "/sign-in",
                &[
                    ("username", username),
                    ("password", PASSWORD),
                    ("next", "/deployments"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert!(self.cookies.contains_key("mf_session"));
    }
}

/// Platform staff `name` with `role` on a hub with `state`, signed in with
/// a second factor enrolled (the console makes platform admins and
/// auditors enrol one before anything else).
pub async fn enrolled_staff(hub: &Hub, state: &AppState, name: &str, role: Role) -> Browser {
    user(hub, None, name, role).await;
    let mut browser = Browser::for_state(state);
    browser.sign_in(name).await;
    let page = browser.post("/account/totp", &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let raw = totp::from_base32(&page.one("#totp-secret")).unwrap();
    let code = totp::code_at(&raw, chrono::Utc::now().timestamp());
    let page = browser
        .post("/account/totp/confirm", &[("code", &code)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    browser
}
