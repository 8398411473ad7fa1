//! The quota holds under concurrency through the whole API path: 200
//! deployment requests at once against a quota of 16 devices admit exactly
//! as many as fit, on SQLite and on PostgreSQL, and the cluster holds
//! exactly the admitted ModelDeployments.

mod support;

use axum::http::StatusCode;
use futures::future::join_all;
use kube::api::{Api, ListParams};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::crd::ModelDeployment;
use serde_json::json;
use support::Hub;

const REQUESTS: usize = 200;
const DEVICES: u64 = 16;

async fn two_hundred_requests_never_exceed_sixteen_devices(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("racer", json!({"totalDevices": DEVICES})).await;

    // On these accelerators an 8B model takes one device, so exactly 16 fit.
    let request = |name: Option<String>| {
        let mut body = json!({
            "model": "llama-3.1-8b",
            "placement": {"accelerators": ["h200", "h100-80gb", "l40s"]},
        });
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        body
    };
    let plans = hub.post("/api/v1/plans", &key, request(None)).await;
    let plans = plans.body["plans"].as_array().unwrap();
    assert!(!plans.is_empty());
    assert!(
        plans.iter().all(|p| p["devicesPerReplica"] == 1),
        "{plans:#?}"
    );

    let requests = (0..REQUESTS).map(|i| {
        let hub = &hub;
        let key = &key;
        let body = request(Some(format!("m{i}")));
        async move { hub.post("/api/v1/deployments", key, body).await }
    });
    let replies = join_all(requests).await;

    let mut admitted = 0;
    for reply in &replies {
        match reply.status {
            StatusCode::ACCEPTED => admitted += 1,
            StatusCode::FORBIDDEN => {
                let detail = reply.problem(403);
                assert!(detail.contains("total devices"), "{detail}");
                assert_eq!(reply.body["allowed"], DEVICES.to_string());
            }
            other => panic!("unexpected {other}: {:#}", reply.body),
        }
    }
    assert_eq!(admitted, DEVICES);

    let quota = hub.get("/api/v1/quota", &key).await;
    assert_eq!(quota.status, StatusCode::OK, "{:#}", quota.body);
    let listed = hub.get("/api/v1/deployments?limit=500", &key).await;
    assert_eq!(
        listed.body["items"].as_array().unwrap().len() as u64,
        DEVICES,
        "{:#}",
        listed.body
    );
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-racer");
    let in_cluster = mds.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(in_cluster.len() as u64, DEVICES);
}

modelfleet_api::store_tests!(two_hundred_requests_never_exceed_sixteen_devices);
