//! Issue 16, finding 6: a budget that refuses at its limit refuses every
//! path that adds spend, not only `POST /deployments`: scaling a
//! deployment up through the API, and a ModelDeployment applied with
//! kubectl. (Failover goes through the same placement operation and its
//! budget gate, `Hub::place`.) Scaling down, which adds nothing, is still
//! allowed.

mod support;

use axum::http::{Method, StatusCode};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::contract::admission::{ANNOTATION, REASON_ANNOTATION};
use modelfleet_core::crd::ModelDeployment;
use serde_json::json;
use support::{Hub, eventually, l40s_hub, roomy};

const POOL: &str = "aws-a/l40s";

async fn apply(hub: &Hub, namespace: &str, name: &str) {
    let namespaces: Api<Namespace> = Api::all(hub.kube.clone());
    if namespaces.get_opt(namespace).await.unwrap().is_none() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let md: ModelDeployment = serde_json::from_value(json!({
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b"}
    }))
    .unwrap();
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), namespace);
    mds.create(&PostParams::default(), &md).await.unwrap();
}

async fn a_spent_budget_refuses_every_path_that_adds_spend(db: TestDb) {
    let hub = l40s_hub(db).await;
    let background = hub.background();
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    let priced = hub
        .post(
            "/api/v1/prices",
            &hub.admin,
            json!({"cloud": "aws", "region": "us-east-1", "accelerator": "l40s",
                "pricePerDeviceHour": "3.60 USD"}),
        )
        .await;
    assert_eq!(priced.status, StatusCode::CREATED, "{:#}", priced.body);

    // One running replica: its first minute is billed at once.
    let created = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "chat", "model": "llama-3.1-8b", "placement": {"pool": POOL}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:#}", created.body);
    let id = created.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let budget = format!("/api/v1/tenants/{tenant}/budget");
    let set = hub
        .call(
            Method::PUT,
            &budget,
            Some(&key),
            Some(json!({"amount": "0.01 USD", "refuseAtLimit": true})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:#}", set.body);
    eventually("this month's spend to reach the budget", || async {
        let b = hub.get(&budget, &key).await;
        (b.body["percentUsed"].as_i64()? >= 100).then_some(())
    })
    .await;

    // Scaling up adds spend: refused with the budget's problem type, and
    // the replica count stays.
    let path = format!("/api/v1/deployments/{id}");
    let up = hub
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"replicas": 2})),
        )
        .await;
    let detail = up.problem(403);
    assert_eq!(
        up.body["type"], "https://modelfleet.io/problems/budget-exhausted",
        "{detail}"
    );
    assert!(detail.contains("budget of 0.01 USD is spent"), "{detail}");
    let now = hub.get(&path, &key).await;
    assert_eq!(now.body["replicas"], 1, "{:#}", now.body);

    // A ModelDeployment applied with kubectl is not admitted either.
    apply(&hub, "mf-acme", "sideways").await;
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let rejected = eventually("the applied one is decided", || async {
        mds.get_opt("sideways").await.unwrap().filter(|md| {
            md.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ANNOTATION))
        })
    })
    .await;
    let annotations = rejected.metadata.annotations.unwrap();
    assert_eq!(annotations[ANNOTATION], "rejected", "{annotations:?}");
    assert_eq!(annotations[REASON_ANNOTATION], "BudgetExhausted");

    // Scaling down adds nothing: allowed.
    let down = hub
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"replicas": 0})),
        )
        .await;
    assert_eq!(down.status, StatusCode::OK, "{:#}", down.body);
    background.stop().await;
}

modelfleet_api::store_tests!(a_spent_budget_refuses_every_path_that_adds_spend);
