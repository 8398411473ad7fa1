//! The placement operation (`service::placement`) as its callers see it:
//! a cluster write that fails is undone — the quota is free again and the
//! name can be used at once — and a deployment is addressed by its name as
//! well as its id. Each test runs on SQLite and, when
//! `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use axum::http::{Method, StatusCode};
use modelfleet_api::identity::Scope;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::fleet::Cloud;
use serde_json::json;
use support::{CLUSTER, Hub, roomy};

/// Re-connects the test cluster through a client that answers every write
/// (POST, PUT, PATCH, DELETE) with 503, as an API server that is going
/// away does, and passes reads through.
fn break_writes(hub: &Hub) {
    let inner = hub.kube.clone();
    let failing = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let inner = inner.clone();
        async move {
            if request.method() == Method::GET {
                return inner.send(request).await;
            }
            let body = json!({
                "kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": "the server is shutting down", "reason": "ServiceUnavailable",
                "code": 503,
            });
            Ok(http::Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header("content-type", "application/json")
                .body(kube::client::Body::from(body.to_string().into_bytes()))
                .unwrap())
        }
    });
    hub.state.registry().attach(
        CLUSTER,
        Cloud::Aws,
        "us-east-1",
        kube::Client::new(failing, "default"),
    );
}

fn mend_writes(hub: &Hub) {
    hub.state
        .registry()
        .attach(CLUSTER, Cloud::Aws, "us-east-1", hub.kube.clone());
}

async fn a_failed_cluster_write_is_undone(db: TestDb) {
    let hub = Hub::start(db).await;
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    let tenant = tenant.parse().unwrap();

    break_writes(&hub);
    let body = json!({"name": "llama70", "model": "llama-3.1-70b"});
    let reply = hub.post("/api/v1/deployments", &key, body.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:#}",
        reply.body
    );
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("nothing was deployed and the quota is free again"),
        "{detail}"
    );
    // Nothing holds devices, nothing is listed.
    let usage = hub.store.usage(Scope::All, tenant).await.unwrap();
    assert_eq!(usage, Default::default(), "the quota still counts it");
    let list = hub.get("/api/v1/deployments", &key).await;
    assert_eq!(list.body["items"], json!([]), "{:#}", list.body);

    // Retrying once the cluster answers again places it, under the same name.
    mend_writes(&hub);
    let reply = hub.post("/api/v1/deployments", &key, body).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    let usage = hub.store.usage(Scope::All, tenant).await.unwrap();
    assert_ne!(usage, Default::default());
}

async fn a_deployment_is_addressed_by_name_or_id(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let (_, other) = hub.tenant("umbrella", roomy()).await;
    let created = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "small", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:#}", created.body);
    let id = created.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let by_name = hub.get("/api/v1/deployments/small", &key).await;
    assert_eq!(by_name.status, StatusCode::OK, "{:#}", by_name.body);
    assert_eq!(by_name.body["id"], id.as_str());
    let by_id = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
    assert_eq!(by_id.body, by_name.body);

    // Another tenant's name is not found, and neither is a name nobody has.
    let theirs = hub.get("/api/v1/deployments/small", &other).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{:#}", theirs.body);
    let none = hub.get("/api/v1/deployments/no-such-model", &key).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    // Platform staff have no tenant: they are told to use the id.
    let staff = hub.get("/api/v1/deployments/small", &hub.admin).await;
    assert_eq!(staff.status, StatusCode::NOT_FOUND);
    assert!(
        staff.body["detail"].as_str().unwrap().contains("by its id"),
        "{:#}",
        staff.body
    );

    let scaled = hub
        .call(
            Method::PATCH,
            "/api/v1/deployments/small",
            Some(&key),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:#}", scaled.body);
    assert_eq!(scaled.body["replicas"], 2);
    let refused = hub
        .call(
            Method::DELETE,
            "/api/v1/deployments/small",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let deleted = hub
        .call(
            Method::DELETE,
            "/api/v1/deployments/small",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{:#}", deleted.body);
    assert_eq!(deleted.body["phase"], "Deleting");
    // Deleted, its name no longer finds it; its id still does.
    let gone = hub.get("/api/v1/deployments/small", &key).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let kept = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
    assert_eq!(kept.status, StatusCode::OK);
    assert!(!kept.body["deletedAt"].is_null());
}

modelfleet_api::store_tests!(
    a_failed_cluster_write_is_undone,
    a_deployment_is_addressed_by_name_or_id,
);
