//! Tenant isolation: a tenant admin of tenant B walks every endpoint with
//! tenant A's ids and gets 404s and no data; unauthenticated calls all get
//! the same 401; tenant roles cannot reach platform endpoints.

mod support;

use axum::http::{Method, StatusCode};
use modelfleet_api::store::testing::TestDb;
use serde_json::json;
use support::{Hub, roomy};

async fn another_tenant_sees_nothing(db: TestDb) {
    let hub = Hub::start(db).await;
    let (a, key_a) = hub.tenant("tenant-a", roomy()).await;
    let (b, key_b) = hub.tenant("tenant-b", roomy()).await;

    let deployment = hub
        .post(
            "/api/v1/deployments",
            &key_a,
            json!({"name": "secret-model", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(
        deployment.status,
        StatusCode::ACCEPTED,
        "{:#}",
        deployment.body
    );
    let d = deployment.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = hub
        .post(
            "/api/v1/api-keys",
            &key_a,
            json!({"name": "ci", "role": "developer"}),
        )
        .await;
    let k = key.body["key"]["id"].as_str().unwrap().to_owned();
    let user = hub
        .post(
            "/api/v1/users",
            &key_a,
            json!({"username": "alice", "password": "Correct-horse-2024!", "role": "developer"}),
        )
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{:#}", user.body);
    let u = user.body["id"].as_str().unwrap().to_owned();

    // Every endpoint that takes an id, with A's ids and B's key.
    let not_found = [
        (Method::GET, format!("/api/v1/tenants/{a}"), None),
        (Method::GET, format!("/api/v1/tenants/{a}/quota"), None),
        (
            Method::PUT,
            format!("/api/v1/tenants/{a}/quota"),
            Some(json!({"totalDevices": 1000})),
        ),
        (Method::GET, format!("/api/v1/quota?tenant={a}"), None),
        (Method::GET, format!("/api/v1/deployments/{d}"), None),
        (
            Method::PATCH,
            format!("/api/v1/deployments/{d}"),
            Some(json!({"replicas": 3})),
        ),
        (Method::DELETE, format!("/api/v1/deployments/{d}"), None),
        (Method::GET, format!("/api/v1/deployments?tenant={a}"), None),
        (Method::GET, format!("/api/v1/api-keys/{k}"), None),
        (Method::DELETE, format!("/api/v1/api-keys/{k}"), None),
        (Method::GET, format!("/api/v1/api-keys?tenant={a}"), None),
        (Method::GET, format!("/api/v1/users/{u}"), None),
        (Method::GET, format!("/api/v1/users?tenant={a}"), None),
        (
            Method::POST,
            "/api/v1/api-keys".to_owned(),
            Some(json!({"name": "x", "role": "viewer", "tenant": a})),
        ),
        (
            Method::POST,
            "/api/v1/users".to_owned(),
            Some(
                json!({"username": "mallory", "password": "Mallory-pass-24!", "role": "viewer", "tenant": a}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/deployments".to_owned(),
            Some(json!({"name": "intruder", "model": "llama-3.1-8b", "tenant": a})),
        ),
        (
            Method::POST,
            "/api/v1/plans".to_owned(),
            Some(json!({"model": "llama-3.1-8b", "tenant": a})),
        ),
    ];
    for (method, path, body) in not_found {
        let reply = hub.call(method.clone(), &path, Some(&key_b), body).await;
        let detail = reply.problem(404);
        let text = reply.body.to_string();
        for leak in ["secret-model", "alice", "tenant-a"] {
            assert!(
                !text.contains(leak),
                "{method} {path} leaked {leak}: {text}"
            );
        }
        assert!(detail.ends_with("not found"), "{method} {path}: {detail}");
    }

    // Lists hold only B's own things.
    for path in [
        "/api/v1/deployments",
        "/api/v1/api-keys",
        "/api/v1/users",
        "/api/v1/tenants",
    ] {
        let reply = hub.get(path, &key_b).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:#}", reply.body);
        let text = reply.body.to_string();
        assert!(
            !text.contains(&a) && !text.contains("secret-model"),
            "{path}: {text}"
        );
    }
    let tenants = hub.get("/api/v1/tenants", &key_b).await;
    assert_eq!(tenants.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(tenants.body["items"][0]["id"], b);

    // A's things are intact.
    let shown = hub.get(&format!("/api/v1/deployments/{d}"), &key_a).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body["replicas"], 1);
    let key = hub.get(&format!("/api/v1/api-keys/{k}"), &key_a).await;
    assert!(key.body["revokedAt"].is_null());

    // Platform endpoints are refused to tenant roles, without detail.
    for (method, path, body) in [
        (Method::GET, "/api/v1/clusters".to_owned(), None),
        (
            Method::POST,
            "/api/v1/tenants".to_owned(),
            Some(json!({"name": "evil"})),
        ),
        (
            Method::POST,
            "/api/v1/clusters".to_owned(),
            Some(json!({"name": "evil", "cloud": "aws", "region": "us-east-1", "sandbox": true})),
        ),
    ] {
        let reply = hub.call(method, &path, Some(&key_b), body).await;
        reply.problem(403);
    }
}

async fn every_refused_token_gets_the_same_401(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let revoked = hub
        .post(
            "/api/v1/api-keys",
            &key,
            json!({"name": "old", "role": "viewer"}),
        )
        .await;
    let revoked_token = revoked.body["token"].as_str().unwrap().to_owned();
    let id = revoked.body["key"]["id"].as_str().unwrap();
    let reply = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let mut bodies = Vec::new();
    for token in [
        None,
        Some("nonsense"),
        Some("mf_abcdefgh_0123456789abcdef0123456789ABCDEF"),
        Some(revoked_token.as_str()),
        Some("mfs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let reply = hub
            .call(Method::GET, "/api/v1/deployments", token, None)
            .await;
        reply.problem(401);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        let mut body = reply.body.clone();
        body.as_object_mut().unwrap().remove("requestId");
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:#?}");

    let wrong = hub
        .call(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "root", "password": "wrong-Password-1"})),
        )
        .await;
    wrong.problem(401);

    // Signing out ends the session.
    let session = hub
        .call(
            Method::POST,
            "/api/v1/sessions",
            None,
            Some(json!({"username": "root", "password": support::ADMIN_PASSWORD})),
        )
        .await;
    let token = session.body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        hub.get("/api/v1/clusters", &token).await.status,
        StatusCode::OK
    );
    let out = hub
        .call(
            Method::DELETE,
            "/api/v1/sessions/current",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    hub.get("/api/v1/clusters", &token).await.problem(401);
}

modelfleet_api::store_tests!(
    another_tenant_sees_nothing,
    every_refused_token_gets_the_same_401
);
