//! Issue 16, finding 1: an `Idempotency-Key` must not replay one person's
//! response — a new API key's token, a TOTP secret — to another, nor hand
//! out a stored secret at all. Keys belong to one principal in one role, a
//! colleague's request with the same key runs (and is authorized) as its
//! own, and a response that carried a secret is kept with the secret
//! withheld.

mod support;

use axum::http::{Method, StatusCode};
use modelfleet_api::store::testing::TestDb;
use serde_json::{Value, json};
use support::{Hub, roomy};

async fn user(hub: &Hub, admin_key: &str, username: &str, role: &str) -> String {
    let password = "Correct-horse-2024!";
    let made = hub
        .post(
            "/api/v1/users",
            admin_key,
            json!({"username": username, "password": password, "role": role}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
    let session = hub
        .call(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{:#}", session.body);
    session.body["token"].as_str().unwrap().to_owned()
}

async fn an_idempotency_key_never_replays_a_secret_or_another_persons_response(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, admin_key) = hub.tenant("acme", roomy()).await;
    let viewer = user(&hub, &admin_key, "vera", "viewer").await;
    let body = json!({"name": "ci", "role": "developer"});

    // The tenant admin makes a key, with an idempotency key.
    let first = hub
        .post_with_key("/api/v1/api-keys", &admin_key, "k-1", &body)
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:#}", first.body);
    let token = first.body["token"].as_str().unwrap().to_owned();

    // A viewer repeating it gets no token: their request is their own, and
    // a viewer may not make keys.
    let theirs = hub
        .post_with_key("/api/v1/api-keys", &viewer, "k-1", &body)
        .await;
    assert!(
        !theirs.body.to_string().contains(&token),
        "a viewer got the admin's token: {:#}",
        theirs.body
    );
    theirs.problem(403);

    // The admin's own retry learns the outcome, without the secret.
    let again = hub
        .post_with_key("/api/v1/api-keys", &admin_key, "k-1", &body)
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{:#}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["key"]["id"], first.body["key"]["id"]);
    assert_ne!(
        again.body["token"],
        token.as_str(),
        "the token is shown once"
    );

    // Nothing kept for replay holds the token.
    let kept = hub.store.idempotency_bodies_for_tests().await.unwrap();
    assert!(
        kept.iter()
            .all(|b| !String::from_utf8_lossy(b).contains(&token)),
        "a token is stored in clear for replay"
    );

    // Two people's TOTP enrolments with the same key (the request has no
    // body, so it is identical for everyone) are each their own.
    let ana = user(&hub, &admin_key, "anna", "developer").await;
    let bo = user(&hub, &admin_key, "bob", "developer").await;
    let ana_totp = hub
        .post_with_key("/api/v1/users/me/totp", &ana, "t-1", &Value::Null)
        .await;
    assert_eq!(ana_totp.status, StatusCode::CREATED, "{:#}", ana_totp.body);
    let bo_totp = hub
        .post_with_key("/api/v1/users/me/totp", &bo, "t-1", &Value::Null)
        .await;
    assert_eq!(bo_totp.status, StatusCode::CREATED, "{:#}", bo_totp.body);
    assert!(bo_totp.headers.get("idempotent-replayed").is_none());
    assert_ne!(
        bo_totp.body["secret"], ana_totp.body["secret"],
        "one person's TOTP secret was replayed to another"
    );
}

modelfleet_api::store_tests!(an_idempotency_key_never_replays_a_secret_or_another_persons_response);
