//! The console's defences, as an attacker or a careless browser meets them:
//! CSRF tokens, cookie attributes, security headers, sign-in lockout,
//! forced second-factor enrolment, tenant isolation and admin pages.

mod support;

use axum::http::StatusCode;
use modelfleet_api::Role;
use modelfleet_api::identity::totp;
use support::{Browser, Hub, PASSWORD, on_sqlite, tenant_with_admin, user};

#[tokio::test]
async fn pages_carry_security_headers_and_cookies_are_locked_down() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);

        let page = browser.get("/sign-in").await;
        assert_eq!(page.status, StatusCode::OK);
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["x-content-type-options"], "nosniff");
        assert_eq!(page.headers["cache-control"], "no-store");
        // No inline script anywhere: every <script> has a src.
        let scripts = page.texts("script");
        assert!(scripts.iter().all(String::is_empty), "{scripts:?}");
        assert!(
            page.attrs("script", "src")
                .iter()
                .all(|s| s.starts_with("/static/"))
        );
        assert!(
            !page.text().contains(" style="),
            "inline style in\n{}",
            page.text()
        );

        let csrf_cookie = page.headers["set-cookie"].to_str().unwrap().to_owned();
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(csrf_cookie.contains(attribute), "{csrf_cookie}");
        }

        let page = browser
            .post(
                "/sign-in",
                &[("username", "acme-admin"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let set: Vec<_> = page
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let session = set.iter().find(|c| c.starts_with("mf_session=")).unwrap();
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(session.contains(attribute), "{session}");
        }
        // Signing in gives a new CSRF token (no fixation).
        assert!(set.iter().any(|c| c.starts_with("mf_csrf=")), "{set:?}");
    })
    .await;
}

#[tokio::test]
async fn a_form_without_the_csrf_token_is_refused_and_changes_nothing() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        // A cross-site form post: the browser sends the cookies (in this
        // test), but the page could not know the token.
        for fields in [
            vec![],
            vec![("csrf", "forged-token-forged-token-forged-token-xyz")],
        ] {
            let page = browser.post_raw("/sign-out", &fields).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
            assert!(page.one("#error-message").contains("reload the page"));
        }
        // Still signed in: the forged sign-out did nothing.
        let page = browser.get("/deployments").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        // A forged source credential is refused before it is read, and
        // neither stored nor echoed.
        let credential = [
            ("name", "planted"),
            ("kind", "hugging-face"),
            ("hf_token", "hf_forged0000token"),
        ];
        let page = browser.post_raw("/credentials", &credential).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        assert!(!page.text().contains("hf_forged0000token"));
        let page = browser.get("/credentials").await;
        assert!(page.has("#no-credentials"), "{}", page.text());

        // With the token, signing out works and the session is gone.
        let page = browser.post("/sign-out", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(!browser.cookies.contains_key("mf_session"));
        let page = browser.get("/deployments").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().unwrap().starts_with("/sign-in?next="));
    })
    .await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        for _ in 0..5 {
            let page = browser
                .post(
                    "/sign-in",
                    &[("username", "acme-admin"), ("password", "wrong")],
                )
                .await;
            assert_eq!(page.status, StatusCode::UNAUTHORIZED);
            assert!(page.has("#sign-in-error"));
            // What was typed comes back, escaped; the password does not.
            assert_eq!(page.attrs("#username", "value"), ["acme-admin"]);
        }
        // Locked: even the right password is refused now.
        let page = browser
            .post(
                "/sign-in",
                &[("username", "acme-admin"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(!browser.cookies.contains_key("mf_session"));
    })
    .await;
}

#[tokio::test]
async fn platform_admins_must_enrol_a_second_factor_and_then_sign_in_with_it() {
    on_sqlite(|db| async move {
        // The platform's default: platform admins must use a second factor.
        let settings = modelfleet_api::ApiSettings {
            second_factor_roles: modelfleet_api::ApiSettings::default().second_factor_roles,
            ..support::hub::test_settings()
        };
        let hub = Hub::start_with_settings(db, settings).await;
        user(&hub, None, "ops", Role::PlatformAdmin).await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("ops").await;

        // Every page sends them to enrolment first.
        for path in ["/deployments", "/admin", "/billing"] {
            let page = browser.get(path).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(page.location(), Some("/account/totp"));
        }
        let page = browser.get("/account/totp").await;
        assert!(page.has("#totp-required"));
        // Signing out before enrolling ends the session for real.
        let mut tab = browser.clone();
        let token = tab.cookies["mf_session"].clone();
        let page = tab.post("/sign-out", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(hub.store.authenticate_session(&token).await.is_err());
        browser.sign_in("ops").await;
        let page = browser.post("/account/totp", &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let secret = page.one("#totp-secret");
        let raw = totp::from_base32(&secret).unwrap();
        let now = chrono::Utc::now().timestamp();

        let page = browser
            .post("/account/totp/confirm", &[("code", "000000")])
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        let code = totp::code_at(&raw, now);
        let page = browser
            .post("/account/totp/confirm", &[("code", &code)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = browser.get("/deployments").await;
        assert_eq!(page.status, StatusCode::OK);

        // A new sign-in needs a fresh code: the password alone is refused.
        let mut other = Browser::new(&hub);
        let page = other
            .post("/sign-in", &[("username", "ops"), ("password", PASSWORD)])
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        let next = totp::code_at(&raw, now + 30);
        let page = other
            .post(
                "/sign-in",
                &[
                    ("username", "ops"),
                    ("password", PASSWORD),
                    ("totp_code", &next),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
    })
    .await;
}

#[tokio::test]
async fn wrong_second_factor_codes_lock_the_account_too() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let tenant = tenant_with_admin(&hub, "acme").await;
        user(&hub, Some(tenant), "dev", Role::Developer).await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("dev").await;
        let page = browser.post("/account/totp", &[]).await;
        let raw = totp::from_base32(&page.one("#totp-secret")).unwrap();
        let now = chrono::Utc::now().timestamp();
        let page = browser
            .post(
                "/account/totp/confirm",
                &[("code", &totp::code_at(&raw, now))],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);

        let mut attacker = Browser::new(&hub);
        for _ in 0..5 {
            let page = attacker
                .post(
                    "/sign-in",
                    &[
                        ("username", "dev"),
                        ("password", PASSWORD),
                        ("totp_code", "123456"),
                    ],
                )
                .await;
            assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        }
        let good = totp::code_at(&raw, now + 30);
        let page = attacker
            .post(
                "/sign-in",
                &[
                    ("username", "dev"),
                    ("password", PASSWORD),
                    ("totp_code", &good),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "locked after five wrong codes"
        );
    })
    .await;
}

#[tokio::test]
async fn tenants_cannot_reach_each_other_or_the_admin_pages() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        tenant_with_admin(&hub, "acme").await;
        let (other, other_key) = hub.tenant("globex", support::hub::roomy()).await;
        let reply = hub
            .post(
                "/api/v1/deployments",
                &other_key,
                serde_json::json!({"name": "globex-chat", "model": "llama-3.1-8b"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
        let theirs = reply.body["deployment"]["id"].as_str().unwrap().to_owned();
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        // Another tenant's deployment is not there for them, in any form.
        for path in [
            format!("/deployments/{theirs}"),
            format!("/deployments/{theirs}/live"),
            format!("/deployments/{theirs}/logs"),
            format!("/deployments/{theirs}/delete"),
        ] {
            let page = browser.get(&path).await;
            assert_eq!(
                page.status,
                StatusCode::NOT_FOUND,
                "{path}: {}",
                page.text()
            );
        }
        let page = browser
            .post(&format!("/deployments/{theirs}/delete"), &[])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        let page = browser.get("/deployments").await;
        assert!(!page.text().contains("globex-chat"));
        let still = hub
            .get(&format!("/api/v1/deployments/{theirs}"), &other_key)
            .await;
        assert!(still.body["deletedAt"].is_null(), "{:#}", still.body);

        let page = browser.get("/admin").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        let page = browser.get("/admin/tenants").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        // Another tenant's billing and quota pages do not exist for them.
        let page = browser.get(&format!("/billing?tenant={other}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        let page = browser.get(&format!("/quotas?tenant={other}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        // So are its source credentials, to read, add or remove.
        let page = browser.get(&format!("/credentials?tenant={other}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        let page = browser
            .post(
                "/credentials",
                &[
                    ("tenant", other.as_str()),
                    ("name", "theirs"),
                    ("kind", "hugging-face"),
                    ("hf_token", "hf_planted0000token"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        let page = browser
            .post("/credentials/theirs/delete", &[("tenant", other.as_str())])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());
        let kept = hub
            .get(
                &format!("/api/v1/tenants/{other}/source-credentials"),
                &other_key,
            )
            .await;
        assert_eq!(kept.body["items"], serde_json::json!([]), "{:#}", kept.body);
        // The navigation offers no admin entry.
        let page = browser.get("/deployments").await;
        assert!(!page.attrs("nav a", "href").contains(&"/admin".to_owned()));
    })
    .await;
}

#[tokio::test]
async fn a_session_ends_after_the_idle_time_and_at_sign_out() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;
        let token = browser.cookies["mf_session"].clone();
        let (session, _) = hub.store.authenticate_session(&token).await.unwrap();
        let idle = session.expires_at - chrono::Utc::now();
        // The console's session ends 30 minutes after the last page, not
        // at the API session's full hour.
        assert!(
            idle <= chrono::TimeDelta::minutes(30) && idle > chrono::TimeDelta::minutes(29),
            "{idle}"
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_paths_are_pages_for_people_and_problems_for_the_api() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let mut browser = Browser::new(&hub);
        let page = browser.get("/no-such-page").await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(page.one("#error-message").contains("no such page"));
        let page = browser.get("/api/v1/no-such-thing").await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert_eq!(page.headers["content-type"], "application/problem+json");
        // The API itself is not touched by the console's cookies: no
        // session cookie, no access.
        let page = browser.get("/api/v1/deployments").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    })
    .await;
}
