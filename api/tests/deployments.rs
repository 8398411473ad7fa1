//! Deploying through the REST API into a sandbox cluster: the
//! ModelDeployment lands in the tenant's namespace with the planned pool
//! pinned; replicas change; delete removes it; quota rejections say which
//! limit, what is in use and what was needed. Each test runs on SQLite and,
//! when `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use axum::http::{Method, StatusCode};
use kube::api::Api;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::crd::ModelDeployment;
use serde_json::json;
use support::{CLUSTER, Hub, roomy};

async fn deploys_onto_the_planned_pool(db: TestDb) {
    let hub = Hub::start(db).await;
    let (tenant, key) = hub.tenant("acme", roomy()).await;

    let plans = hub
        .post("/api/v1/plans", &key, json!({"model": "llama-3.1-70b"}))
        .await;
    assert_eq!(plans.status, StatusCode::OK, "{:#}", plans.body);
    let best = &plans.body["plans"][0];
    assert_eq!(best["quota"]["allowed"], true, "{:#}", plans.body);
    assert!(plans.body["rejections"].is_array(), "{:#}", plans.body);
    // A model too large for some pools says why each of them was passed over.
    let big = hub
        .post("/api/v1/plans", &key, json!({"model": "deepseek-v3"}))
        .await;
    assert_eq!(big.status, StatusCode::OK, "{:#}", big.body);
    let rejections = big.body["rejections"].as_array().unwrap();
    assert!(!rejections.is_empty(), "{:#}", big.body);
    assert!(
        rejections.iter().all(|r| r.to_string().len() > 20),
        "{:#}",
        big.body
    );

    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "llama70", "model": "llama-3.1-70b"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    assert_eq!(reply.body["plan"]["pool"], best["pool"]);
    let id = reply.body["deployment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["deployment"]["namespace"], "mf-acme");
    assert_eq!(reply.body["deployment"]["tenant"], tenant);

    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let md = mds.get("llama70").await.expect("written into the cluster");
    assert_eq!(md.spec.model, "llama-3.1-70b");
    assert_eq!(md.spec.source, "s3://models/llama-3.1-70b");
    assert_eq!(
        md.spec.placement.pool.as_deref(),
        best["pool"].as_str(),
        "the planned pool is pinned"
    );
    assert!(
        best["pool"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{CLUSTER}/"))
    );
    let managers: Vec<_> = md
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "modelfleet-hub"),
        "{managers:?}"
    );

    let shown = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body["phase"], "Pending");
    let listed = hub.get("/api/v1/deployments", &key).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);

    let path = format!("/api/v1/deployments/{id}");
    let scaled = hub
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"replicas": 2})),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{:#}", scaled.body);
    assert_eq!(scaled.body["replicas"], 2);
    assert_eq!(mds.get("llama70").await.unwrap().spec.replicas, 2);

    let quota = hub.get("/api/v1/quota", &key).await;
    assert_eq!(quota.status, StatusCode::OK, "{:#}", quota.body);
    let devices = best["devicesPerReplica"].as_u64().unwrap() * 2;
    let total = quota.body["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["limit"] == "total devices")
        .unwrap();
    assert_eq!(total["inUse"], devices.to_string());

    let deleted = hub.call(Method::DELETE, &path, Some(&key), None).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{:#}", deleted.body);
    assert_eq!(deleted.body["phase"], "Deleting");
    let gone = mds.get_opt("llama70").await.unwrap();
    assert!(
        gone.is_none_or(|md| md.metadata.deletion_timestamp.is_some()),
        "deleted from the cluster"
    );
    let again = hub.call(Method::DELETE, &path, Some(&key), None).await;
    again.problem(404);
}

async fn quota_rejections_name_the_limit(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("small", json!({"totalDevices": 1})).await;
    // In bf16 a 70B model needs at least two devices of any pool.
    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "llama70", "model": "llama-3.1-70b", "serving": {"precision": "bf16"}}),
        )
        .await;
    let detail = reply.problem(403);
    assert!(
        detail.starts_with("quota exceeded: total devices — 0 of 1 in use"),
        "{detail}"
    );
    assert_eq!(reply.body["limit"], "total devices");
    assert_eq!(reply.body["inUse"], "0");
    assert_eq!(reply.body["allowed"], "1");
    assert!(
        reply.body["needs"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 2
    );
    assert!(
        reply.body["type"]
            .as_str()
            .unwrap()
            .ends_with("/quota-exceeded")
    );

    let (_, key) = hub
        .tenant("tiny", json!({"maxModelParams": "8B", "totalDevices": 64}))
        .await;
    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "big", "model": "llama-3.1-70b"}),
        )
        .await;
    let detail = reply.problem(403);
    assert!(
        detail.contains("model size — the largest allowed is 8.00B parameters"),
        "{detail}"
    );

    // A new tenant without a quota can deploy nothing, and is told so.
    let (_, key) = hub.tenant("fresh", serde_json::Value::Null).await;
    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "small", "model": "llama-3.2-1b"}),
        )
        .await;
    let detail = reply.problem(403);
    assert!(
        detail.contains("concurrent deployments — 0 of 0 in use"),
        "{detail}"
    );

    // The plan view says the same before anything is tried.
    let (_, key) = hub.tenant("planner", json!({"totalDevices": 1})).await;
    let plans = hub
        .post(
            "/api/v1/plans",
            &key,
            json!({"model": "llama-3.1-70b", "serving": {"precision": "bf16"}}),
        )
        .await;
    assert_eq!(plans.status, StatusCode::OK);
    let check = &plans.body["plans"][0]["quota"];
    assert_eq!(check["allowed"], false);
    assert!(check["detail"].as_str().unwrap().contains("total devices"));
    assert!(
        hub.store
            .deployments(modelfleet_api::Scope::All, true)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_second_deployment_takes_the_next_plan_the_quota_allows(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let plans = hub
        .post("/api/v1/plans", &key, json!({"model": "llama-3.1-8b"}))
        .await;
    let plans = plans.body["plans"].as_array().unwrap().clone();
    assert!(plans.len() > 1, "several pools hold an 8B model");
    // Cap the best plan's accelerator at what it needs once.
    let accelerator = plans[0]["accelerator"].as_str().unwrap().to_owned();
    let devices = plans[0]["devicesPerReplica"].as_u64().unwrap();
    let tenant_id = hub.get("/api/v1/quota", &key).await.body["tenant"].clone();
    let reply = hub
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{}/quota", tenant_id.as_str().unwrap()),
            Some(&hub.admin),
            Some(
                json!({"devicesPerAccelerator": {accelerator.clone(): devices}, "deployments": 5}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    let first = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "one", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:#}", first.body);
    assert_eq!(first.body["plan"]["accelerator"], accelerator);
    let second = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "two", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{:#}", second.body);
    assert_ne!(
        second.body["plan"]["accelerator"], accelerator,
        "the quota moved it"
    );
}

modelfleet_api::store_tests!(
    deploys_onto_the_planned_pool,
    quota_rejections_name_the_limit,
    a_second_deployment_takes_the_next_plan_the_quota_allows,
);
