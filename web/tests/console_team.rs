//! The console's `/team` page (issue 16, finding 5): a tenant admin runs
//! their own team's accounts and keys, through the same operations as the
//! API, refused the same way; nobody else gets the page. And the account
//! page where a person changes their password — where someone whose
//! password an admin reset is sent before anything else.

mod support;

use axum::http::StatusCode;
use modelfleet_api::Role;
use support::{Browser, Hub, PASSWORD, on_sqlite, tenant_with_admin, user};

#[tokio::test]
async fn a_tenant_admin_runs_their_team_from_the_console() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        let globex = tenant_with_admin(&hub, "globex").await;
        user(&hub, Some(acme), "dev", Role::Developer).await;
        user(&hub, Some(globex), "rival", Role::Developer).await;
        let mut admin = Browser::new(&hub);
        admin.sign_in("acme-admin").await;

        // Their own team only; no actions on their own row.
        let page = admin.get("/team").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let names = page.attrs("#members tr", "data-user");
        assert_eq!(names, ["acme-admin", "dev"]);
        assert!(!page.has("tr[data-user=\"acme-admin\"] button"));
        // No role beyond their own is offered.
        let roles = page.attrs("#member-role option", "value");
        assert!(!roles.contains(&"platform-admin".to_owned()), "{roles:?}");

        // Add a person; a weak password is refused with the API's reason.
        let page = admin
            .post(
                "/team/users",
                &[
                    ("username", "nia"),
                    ("password", "password123"),
                    ("role", "viewer"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            page.one("#form-error").contains("password"),
            "{}",
            page.text()
        );
        let page = admin
            .post(
                "/team/users",
                &[
                    ("username", "nia"),
                    ("password", PASSWORD),
                    ("role", "viewer"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = admin.get("/team").await;
        let id = page
            .attrs("tr[data-user=\"nia\"] form.role-form", "action")
            .first()
            .unwrap()
            .trim_start_matches("/team/users/")
            .trim_end_matches("/role")
            .to_owned();
        let mut nia = Browser::new(&hub);
        nia.sign_in("nia").await;

        // Disable: her console session ends at once.
        let page = admin.post(&format!("/team/users/{id}/disable"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = admin.get("/team").await;
        assert!(page.has("tr[data-user=\"nia\"] .disabled"));
        let page = nia.get("/deployments").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(page.location().unwrap().starts_with("/sign-in"));
        admin.post(&format!("/team/users/{id}/enable"), &[]).await;

        // A temporary password: she must choose her own before anything else.
        admin
            .post(
                &format!("/team/users/{id}/password"),
                &[("new_password", "Temporary-horse-77")],
            )
            .await;
        let page = admin.get("/team").await;
        assert!(page.has("tr[data-user=\"nia\"] .must-change"));
        let page = nia
            .post(
                "/sign-in",
                &[("username", "nia"), ("password", "Temporary-horse-77")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let page = nia.get("/deployments").await;
        assert_eq!(page.location(), Some("/account/password"));
        let page = nia.get("/account/password").await;
        assert!(page.has("#password-required"));
        let change = |new: &'static str, repeat: &'static str| {
            [
                ("current_password", "Temporary-horse-77"),
                ("new_password", new),
                ("repeat_password", repeat),
            ]
        };
        let page = nia
            .post(
                "/account/password",
                &change("Her-own-choice-26", "Her-own-choice-27"),
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.has("#password-error"));
        let page = nia
            .post(
                "/account/password",
                &change("Her-own-choice-26", "Her-own-choice-26"),
            )
            .await;
        assert_eq!(page.location(), Some("/deployments"), "{}", page.text());
        assert_eq!(nia.get("/deployments").await.status, StatusCode::OK);

        // Another tenant's user is not there to act on.
        let rival = hub
            .store
            .users(modelfleet_api::identity::Scope::Tenant(globex))
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.username == "rival")
            .unwrap()
            .id;
        let page = admin
            .post(&format!("/team/users/{rival}/delete"), &[])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.text());

        // A key made here shows its token once; the tenant asks its admins
        // for a second factor.
        let page = admin
            .post("/team/keys", &[("name", "ci"), ("role", "developer")])
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "{}", page.text());
        assert!(page.one("#key-token").starts_with("mf_"));
        let page = admin
            .post("/team/second-factor", &[("roles", "developer")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let roles = hub
            .store
            .second_factor_roles(modelfleet_api::identity::Scope::All, acme);
        assert_eq!(roles.await.unwrap(), [Role::Developer]);
        // Dev, a developer without a factor, must now enrol first.
        let mut dev = Browser::new(&hub);
        dev.sign_in("dev").await;
        let page = dev.get("/deployments").await;
        assert_eq!(page.location(), Some("/account/totp"));

        // Deleting ends it.
        let page = admin.post(&format!("/team/users/{id}/delete"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert!(!admin.get("/team").await.has("tr[data-user=\"nia\"]"));
    })
    .await;
}

#[tokio::test]
async fn only_admins_get_the_team_page() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        user(&hub, Some(acme), "dev", Role::Developer).await;
        let mut dev = Browser::new(&hub);
        dev.sign_in("dev").await;
        let page = dev.get("/team").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(!page.attrs("nav a", "href").contains(&"/team".to_owned()));
        let page = dev
            .post(
                "/team/users",
                &[
                    ("username", "sneaky"),
                    ("password", PASSWORD),
                    ("role", "tenant-admin"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let users = hub
            .store
            .users(modelfleet_api::identity::Scope::Tenant(acme))
            .await
            .unwrap();
        assert!(users.iter().all(|u| u.username != "sneaky"));
    })
    .await;
}
