//! Bad input to every write endpoint: malformed JSON, wrong types, unknown
//! fields, oversized bodies, unknown models and impossible sizes each get a
//! 4xx problem document, and nothing changes in the store or the cluster.

mod support;

use axum::http::{Method, Request};
use kube::api::{Api, ListParams};
use modelfleet_api::Scope;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::crd::ModelDeployment;
use serde_json::{Value, json};
use support::{Hub, roomy};

/// Everything a bad request could have changed.
async fn fingerprint(hub: &Hub) -> String {
    let store = &hub.store;
    let tenants = store.tenants(Scope::All).await.unwrap();
    let mut text = format!(
        "{tenants:?}\n{:?}\n",
        store.users(Scope::All).await.unwrap()
    );
    for t in &tenants {
        let keys: Vec<_> = store
            .api_keys(Scope::All, t.id)
            .await
            .unwrap()
            .into_iter()
            .map(|k| (k.id, k.name, k.revoked_at))
            .collect();
        text += &format!(
            "{keys:?}\n{:?}\n",
            store.quota(Scope::All, t.id).await.unwrap()
        );
    }
    text += &format!("{:?}\n", store.deployments(Scope::All, true).await.unwrap());
    text += &format!(
        "{:?}\n{:?}\n",
        store.clusters().await.unwrap(),
        store.pool_prices().await.unwrap()
    );
    let mds: Api<ModelDeployment> = Api::all(hub.kube.clone());
    let names: Vec<_> = mds
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| (m.metadata.name, m.spec.replicas))
        .collect();
    text + &format!("{names:?}")
}

async fn bad_input_gets_a_problem_and_changes_nothing(db: TestDb) {
    let hub = Hub::start(db).await;
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    let created = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "llama8", "model": "llama-3.1-8b"}),
        )
        .await;
    let deployment = created.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let clusters = hub.get("/api/v1/clusters", &hub.admin).await;
    let cluster = clusters.body["items"][0]["id"].as_str().unwrap().to_owned();
    let before = fingerprint(&hub).await;

    let admin = hub.admin.clone();
    // (method, path, token, a valid body to break in generic ways)
    let endpoints: Vec<(Method, String, &str, Value)> = vec![
        (
            Method::POST,
            "/api/v1/tenants".into(),
            &admin,
            json!({"name": "new-tenant"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{tenant}/quota"),
            &admin,
            json!({"totalDevices": 8}),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &key,
            json!({"username": "bob", "password": "Bob-password-42", "role": "viewer"}),
        ),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            &key,
            json!({"name": "k", "role": "viewer"}),
        ),
        (
            Method::POST,
            "/api/v1/clusters".into(),
            &admin,
            json!({"name": "c2", "cloud": "aws", "region": "us-west-2", "kubeconfig": "not: [a kubeconfig"}),
        ),
        (
            Method::PUT,
            format!("/api/v1/clusters/{cluster}/pools/p5-h100/price"),
            &admin,
            json!({"pricePerDeviceHour": "6.88 USD"}),
        ),
        (
            Method::POST,
            "/api/v1/plans".into(),
            &key,
            json!({"model": "llama-3.1-8b"}),
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "other", "model": "llama-3.1-8b"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/deployments/{deployment}"),
            &key,
            json!({"replicas": 2}),
        ),
        (
            Method::POST,
            "/api/v1/sessions".into(),
            "",
            json!({"username": "root", "password": "x"}),
        ),
    ];
    let oversized = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    for (method, path, token, valid) in &endpoints {
        let malformed = hub.raw(method.clone(), path, token, "{,").await;
        malformed.problem(400);
        let not_an_object = hub.raw(method.clone(), path, token, "[1, 2]").await;
        not_an_object.problem(422);
        let mut unknown = valid.clone();
        unknown["surprise"] = json!(true);
        let reply = hub
            .raw(method.clone(), path, token, unknown.to_string())
            .await;
        let detail = reply.problem(422);
        assert!(detail.contains("surprise"), "{method} {path}: {detail}");
        let mut wrong_type = valid.clone();
        let first = wrong_type
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        wrong_type[&first] = json!({"nested": [1]});
        hub.raw(method.clone(), path, token, wrong_type.to_string())
            .await
            .problem(422);
        let reply = hub
            .raw(method.clone(), path, token, oversized.clone())
            .await;
        reply.problem(413);
        let no_type = hub
            .send(
                Request::builder()
                    .method(method.clone())
                    .uri(path)
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::from(valid.to_string()))
                    .unwrap(),
            )
            .await;
        no_type.problem(415);
    }

    // Well-formed requests the domain refuses, each naming what is wrong.
    let refused: Vec<(Method, String, &str, Value, u16, &str)> = vec![
        (
            Method::POST,
            "/api/v1/tenants".into(),
            &admin,
            json!({"name": "Not A Label"}),
            422,
            "name",
        ),
        (
            Method::POST,
            "/api/v1/tenants".into(),
            &admin,
            json!({"name": "t2", "quota": {"devicesPerAccelerator": {"h1000": 8}}}),
            422,
            "unknown accelerator",
        ),
        (
            Method::POST,
            "/api/v1/tenants".into(),
            &admin,
            json!({"name": "acme"}),
            409,
            "already exists",
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{tenant}/quota"),
            &admin,
            json!({"spendPerHour": ["1 USD", "2 USD"]}),
            422,
            "USD is given twice",
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            &key,
            json!({"username": "bob", "password": "short", "role": "viewer"}),
            422,
            "password",
        ),
        (
            Method::POST,
            "/api/v1/api-keys".into(),
            &key,
            json!({"name": "k", "role": "platform-admin"}),
            422,
            "role",
        ),
        (
            Method::POST,
            "/api/v1/clusters".into(),
            &admin,
            json!({"name": "c2", "cloud": "aws", "region": "us-west-2", "kubeconfig": "not: [a kubeconfig"}),
            422,
            "kubeconfig",
        ),
        (
            Method::POST,
            "/api/v1/clusters".into(),
            &admin,
            json!({"name": "c2", "cloud": "aws", "region": "us-west-2"}),
            422,
            "either a kubeconfig",
        ),
        (
            Method::POST,
            "/api/v1/clusters".into(),
            &admin,
            json!({"name": "c2", "cloud": "gcp", "region": "us-west-2", "sandbox": true}),
            422,
            "gcp",
        ),
        (
            Method::PUT,
            format!("/api/v1/clusters/{cluster}/pools/p5-h100/price"),
            &admin,
            json!({"pricePerDeviceHour": "-1 USD"}),
            422,
            "negative",
        ),
        (
            Method::PUT,
            format!("/api/v1/clusters/{cluster}/pools/p5-h100/price"),
            &admin,
            json!({"pricePerDeviceHour": 6.88}),
            422,
            "money",
        ),
        (
            Method::POST,
            "/api/v1/plans".into(),
            &key,
            json!({"model": "gpt-17"}),
            422,
            "unknown model",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "gpt-17"}),
            422,
            "unknown model",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "llama-3.1-8b", "replicas": 100000}),
            422,
            "replicas",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "llama-3.1-8b", "replicas": -1}),
            422,
            "replicas",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "llama-3.1-8b", "serving": {"maxModelLen": 1000000000}}),
            422,
            "context",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "llama-3.1-8b", "serving": {"gpuMemoryUtilization": 7}}),
            422,
            "gpuMemoryUtilization",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "gpt3-175b", "placement": {"accelerators": ["a10"]}}),
            422,
            "no pool",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "llama-3.1-8b", "placement": {"pool": "nowhere/none"}}),
            422,
            "nowhere/none",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "Bad_Name", "model": "llama-3.1-8b"}),
            422,
            "name",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "llama-3.1-8b", "sourceSecret": "Not A Secret"}),
            422,
            "sourceSecret",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "x1", "model": "llama-3.1-8b",
                   "sourceSecret": "modelfleet-engine-api-key"}),
            422,
            "engines' API key",
        ),
        (
            Method::POST,
            "/api/v1/deployments".into(),
            &key,
            json!({"name": "llama8", "model": "llama-3.1-8b"}),
            409,
            "already exists",
        ),
        (
            Method::PATCH,
            format!("/api/v1/deployments/{deployment}"),
            &key,
            json!({"replicas": 5000}),
            422,
            "replicas",
        ),
        (
            Method::PATCH,
            format!("/api/v1/deployments/{deployment}"),
            &key,
            json!({"replicas": 1000}),
            403,
            "quota exceeded",
        ),
    ];
    for (method, path, token, body, status, needle) in refused {
        let reply = hub
            .raw(method.clone(), &path, token, body.to_string())
            .await;
        let detail = reply.problem(status);
        assert!(
            detail.to_lowercase().contains(&needle.to_lowercase()),
            "{method} {path} {body}: {detail:?} lacks {needle:?}"
        );
    }

    assert_eq!(
        fingerprint(&hub).await,
        before,
        "a refused request changed something"
    );
}

modelfleet_api::store_tests!(bad_input_gets_a_problem_and_changes_nothing);
