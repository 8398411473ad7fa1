//! Issue 16, finding 3: the second factor is enforced by the API, not only
//! by a console redirect. With the platform's default settings a platform
//! admin or auditor who has not enrolled TOTP gets a session that can only
//! enrol and sign out: everything else — reading, creating tenants, making
//! API keys — answers 403 with the `second-factor-required` problem type.
//! Once enrolled, the same session works; roles the setting does not name
//! are not asked.

mod support;

use axum::http::{Method, StatusCode};
use modelfleet_api::ApiSettings;
use modelfleet_api::store::testing::TestDb;
use serde_json::json;
use support::{Hub, enrol_totp, test_settings};

const REQUIRED: &str = "https://modelfleet.io/problems/second-factor-required";

async fn start(db: TestDb) -> Hub {
    let settings = ApiSettings {
        // The platform's default: platform admins and auditors.
        second_factor_roles: ApiSettings::default().second_factor_roles,
        ..test_settings()
    };
    Hub::start_with_settings(db, settings).await
}

async fn a_session_without_the_required_factor_can_only_enrol(db: TestDb) {
    let hub = start(db).await;
    let root = hub.admin.clone();
    let tenant_id = hub
        .store
        .tenants(modelfleet_api::identity::Scope::All)
        .await
        .unwrap()
        .first()
        .map(|t| t.id.to_string());

    // Not enrolled: reading, changing and making keys are all refused.
    for (method, path, body) in [
        (Method::GET, "/api/v1/tenants".to_owned(), None),
        (Method::GET, "/api/v1/clusters".to_owned(), None),
        (
            Method::POST,
            "/api/v1/tenants".to_owned(),
            Some(json!({"name": "early", "quota": {"totalDevices": 8}})),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".to_owned(),
            Some(json!({"name": "k", "role": "developer", "tenant": tenant_id})),
        ),
    ] {
        let reply = hub.call(method.clone(), &path, Some(&root), body).await;
        let detail = reply.problem(403);
        assert_eq!(reply.body["type"], REQUIRED, "{method} {path}: {detail}");
    }
    let tenants = hub
        .store
        .tenants(modelfleet_api::identity::Scope::All)
        .await
        .unwrap();
    assert!(tenants.iter().all(|t| t.name != "early"), "nothing changed");

    // Enrolling is allowed, and then the same session works.
    enrol_totp(&hub, &root).await;
    let created = hub
        .post(
            "/api/v1/tenants",
            &root,
            json!({"name": "acme", "quota": {"totalDevices": 8}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let acme = created.body["id"].as_str().unwrap().to_owned();

    // An auditor is asked too; a developer, whom the setting does not
    // name, is not.
    for (username, role, tenant) in [
        ("audrey", "auditor", None),
        ("dev", "developer", Some(acme.clone())),
    ] {
        let made = hub
            .post(
                "/api/v1/users",
                &root,
                json!({"username": username, "password": "Correct-horse-2024!",
                    "role": role, "tenant": tenant}),
            )
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
    }
    let audrey = hub.sign_in("audrey", "Correct-horse-2024!").await;
    let refused = hub.get("/api/v1/audit", &audrey).await;
    refused.problem(403);
    assert_eq!(refused.body["type"], REQUIRED);
    let dev = hub.sign_in("dev", "Correct-horse-2024!").await;
    assert_eq!(hub.get("/api/v1/quota", &dev).await.status, StatusCode::OK);

    // Signing out is always allowed.
    let out = hub
        .call(
            Method::DELETE,
            "/api/v1/sessions/current",
            Some(&audrey),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{:#}", out.body);
}

modelfleet_api::store_tests!(a_session_without_the_required_factor_can_only_enrol);
