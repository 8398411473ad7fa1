//! A TOTP second factor through the API: a signed-in person enrols, a code
//! from the app confirms it, and from then on signing in takes a code, each
//! code once. API keys cannot enrol. Each test runs on SQLite and, when
//! `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use axum::http::{Method, StatusCode};
use modelfleet_api::identity::totp::{STEP_SECONDS, code_at, from_base32};
use modelfleet_api::store::testing::TestDb;
use serde_json::json;
use support::{ADMIN_PASSWORD, Hub, roomy};

async fn sign_in(hub: &Hub, code: Option<&str>) -> support::Reply {
    let mut body = json!({"username": "root", "password": ADMIN_PASSWORD});
    if let Some(code) = code {
        body["totpCode"] = json!(code);
    }
    hub.call(Method::POST, "/api/v1/sessions", None, Some(body))
        .await
}

async fn an_enrolled_factor_is_required_and_each_code_works_once(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    hub.post("/api/v1/users/me/totp", &key, json!(null))
        .await
        .problem(422);

    let session = sign_in(&hub, None).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let enrolled = hub
        .post("/api/v1/users/me/totp", &session, json!(null))
        .await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{:#}", enrolled.body);
    let secret = enrolled.body["secret"].as_str().unwrap().to_owned();
    assert!(
        enrolled.body["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/modelfleet:root?secret=")
    );
    let raw = from_base32(&secret).unwrap();
    let now = chrono::Utc::now().timestamp();

    // Not enforced until confirmed; a wrong code confirms nothing.
    assert_eq!(sign_in(&hub, None).await.status, StatusCode::CREATED);
    let wrong = format!(
        "{:06}",
        (code_at(&raw, now).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let detail = hub
        .post(
            "/api/v1/users/me/totp/confirm",
            &session,
            json!({"code": wrong}),
        )
        .await
        .problem(422);
    assert!(detail.contains("does not match"), "{detail}");
    assert_eq!(sign_in(&hub, None).await.status, StatusCode::CREATED);

    let confirmed = hub
        .post(
            "/api/v1/users/me/totp/confirm",
            &session,
            json!({"code": code_at(&raw, now)}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{:#}", confirmed.body);
    assert_eq!(confirmed.body["enabled"], true);
    // A second enrolment would replace the factor: refused.
    hub.post("/api/v1/users/me/totp", &session, json!(null))
        .await
        .problem(409);

    // Now a code is needed, and the one used to confirm is spent.
    assert_eq!(sign_in(&hub, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        sign_in(&hub, Some(&code_at(&raw, now))).await.status,
        StatusCode::UNAUTHORIZED,
        "a code works once"
    );
    let next = code_at(&raw, now + STEP_SECONDS);
    let reply = sign_in(&hub, Some(&next)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    assert_eq!(
        sign_in(&hub, Some(&next)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let records = hub.store.audit_records_after(0, 100_000).await.unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.event.verb == "login-refused" && r.event.response_status.code == Some(401))
    );
    assert!(
        !serde_json::to_string(&records).unwrap().contains(&secret),
        "the secret never reaches the trail"
    );
}

modelfleet_api::store_tests!(an_enrolled_factor_is_required_and_each_code_works_once);
