//! ModelDeployments applied straight into a cluster (as `kubectl apply`
//! would, through a kube client) in a tenant's namespace count against
//! that tenant's quota: within it one is admitted, runs and is listed by
//! the API; over it one is marked rejected with the quota's reason and
//! runs nothing; deleting the first frees its quota, and the second is then
//! admitted. One in a namespace of no tenant is not admitted. Each test
//! runs on SQLite and, when `MODELFLEET_TEST_DATABASE_URL` is set, on
//! PostgreSQL.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::contract::admission::{ANNOTATION, MESSAGE_ANNOTATION, REASON_ANNOTATION};
use modelfleet_core::contract::condition;
use modelfleet_core::crd::{ModelDeployment, Phase};
use serde_json::json;
use support::{Hub, eventually, l40s_hub};

const CLUSTER: &str = "aws-a";

fn md(name: &str, namespace: &str) -> ModelDeployment {
    serde_json::from_value(json!({
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b"}
    }))
    .unwrap()
}

async fn apply(hub: &Hub, namespace: &str, name: &str) {
    let namespaces: Api<Namespace> = Api::all(hub.kube.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    if namespaces.get_opt(namespace).await.unwrap().is_none() {
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), namespace);
    mds.create(&PostParams::default(), &md(name, namespace))
        .await
        .unwrap();
}

async fn annotation(hub: &Hub, namespace: &str, name: &str) -> Option<ModelDeployment> {
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), namespace);
    mds.get_opt(name).await.unwrap().filter(|md| {
        md.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ANNOTATION))
    })
}

async fn listed(hub: &Hub, key: &str) -> Vec<serde_json::Value> {
    let reply = hub.get("/api/v1/deployments", key).await;
    reply.body["items"].as_array().unwrap().clone()
}

async fn applied_deployments_count_against_the_tenants_quota(db: TestDb) {
    let hub = l40s_hub(db).await;
    let background = hub.background();
    // Room for one single-device replica.
    let (_, key) = hub
        .tenant("acme", json!({"totalDevices": 1, "deployments": 5}))
        .await;

    apply(&hub, "mf-acme", "first").await;
    let first = eventually("the first is admitted", || {
        annotation(&hub, "mf-acme", "first")
    })
    .await;
    assert_eq!(first.metadata.annotations.unwrap()[ANNOTATION], "admitted");
    let item = eventually("it runs and the API shows it Ready", || async {
        listed(&hub, &key)
            .await
            .into_iter()
            .find(|d| d["name"] == "first" && d["phase"] == "Ready")
    })
    .await;
    assert_eq!(item["source"], "cluster", "{item:#}");
    assert_eq!(item["cluster"], CLUSTER, "{item:#}");
    assert_eq!(item["readyReplicas"], 1, "{item:#}");

    apply(&hub, "mf-acme", "second").await;
    let second = eventually("the second is rejected", || {
        annotation(&hub, "mf-acme", "second")
    })
    .await;
    let annotations = second.metadata.annotations.unwrap();
    assert_eq!(annotations[ANNOTATION], "rejected");
    assert_eq!(annotations[REASON_ANNOTATION], "QuotaExceeded");
    assert!(
        annotations[MESSAGE_ANNOTATION].contains("total devices"),
        "{annotations:#?}"
    );
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let status = eventually("the operator says why in its status", || async {
        let md = mds.get("second").await.unwrap();
        // (Admitted=Unknown while the operator waited for the hub.)
        md.status.filter(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == condition::ADMITTED && c.status == "False")
        })
    })
    .await;
    assert_eq!(status.phase, Some(Phase::Failed));
    let admitted = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::ADMITTED)
        .unwrap();
    assert_eq!(
        (admitted.status.as_str(), admitted.reason.as_str()),
        ("False", "QuotaExceeded")
    );
    assert!(
        admitted.message.contains("total devices"),
        "{}",
        admitted.message
    );
    let pods: Api<Pod> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let of_second = ListParams::default().labels("modelfleet.io/deployment=second");
    assert!(pods.list(&of_second).await.unwrap().items.is_empty());
    let workloads: Api<Deployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    assert!(workloads.get_opt("second").await.unwrap().is_none());
    assert!(
        !listed(&hub, &key)
            .await
            .iter()
            .any(|d| d["name"] == "second"),
        "a rejected one is not the tenant's deployment"
    );

    // Deleting the first frees its quota: the second is admitted and runs.
    mds.delete("first", &DeleteParams::default()).await.unwrap();
    eventually("the second runs once the first is gone", || async {
        listed(&hub, &key)
            .await
            .into_iter()
            .find(|d| d["name"] == "second" && d["phase"] == "Ready")
    })
    .await;
    let names: Vec<String> = listed(&hub, &key)
        .await
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["second"]);
    background.stop().await;
}

async fn a_namespace_of_no_tenant_is_not_admitted(db: TestDb) {
    let hub = l40s_hub(db).await;
    let background = hub.background();
    apply(&hub, "team-x", "stray").await;
    let md = eventually("it is marked", || annotation(&hub, "team-x", "stray")).await;
    let annotations = md.metadata.annotations.unwrap();
    assert_eq!(annotations[ANNOTATION], "rejected");
    assert_eq!(annotations[REASON_ANNOTATION], "NoTenant");
    assert!(annotations[MESSAGE_ANNOTATION].contains("mf-<tenant>"));
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "team-x");
    eventually("the operator runs nothing for it", || async {
        let md = mds.get("stray").await.unwrap();
        (md.status.and_then(|s| s.phase) == Some(Phase::Failed)).then_some(())
    })
    .await;
    let workloads: Api<Deployment> = Api::namespaced(hub.kube.clone(), "team-x");
    assert!(workloads.get_opt("stray").await.unwrap().is_none());
    background.stop().await;
}

modelfleet_api::store_tests!(
    applied_deployments_count_against_the_tenants_quota,
    a_namespace_of_no_tenant_is_not_admitted,
);
