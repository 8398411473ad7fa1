//! A Deployment whose pod template violates its namespace's enforced Pod
//! Security level: the API refuses every pod, and the Deployment
//! controller says so as the real one does (a `FailedCreate` event and a
//! `ReplicaFailure` condition), leaving no pods.

mod cluster_support;

use std::time::Duration;

use cluster_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::json;

async fn failed_create_about(client: &kube::Client, namespace: &str, kind: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    eventually("a FailedCreate event", Duration::from_secs(10), || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("FailedCreate")
                        && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some(kind)
                })
        }
    })
    .await
}

async fn enforcing_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(ns).unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_leader_worker_set_group_gives_failed_create() {
    let sandbox = sandbox().await;
    let client = sandbox.client.clone();
    enforcing_namespace(&client, "secure").await;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet"),
        "leaderworkersets",
    );
    let template = json!({"metadata": {"labels": {"app": "group"}},
        "spec": {"hostPID": true, "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.9.1"}]}});
    let set = DynamicObject::new("group", &resource).data(json!({"spec": {
        "replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": template}}}));
    let sets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "secure", &resource);
    sets.create(&PostParams::default(), &set).await.unwrap();
    let event = failed_create_about(&client, "secure", "LeaderWorkerSet").await;
    let note = event.note.unwrap();
    assert!(
        note.starts_with("Error creating: pods \"group-0\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostPID=true)"),
        "{note}"
    );
    let pods: Api<Pod> = Api::namespaced(client, "secure");
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pod_template_gives_failed_create_and_replica_failure() {
    let sandbox = sandbox().await;
    let client = sandbox.client.clone();
    enforcing_namespace(&client, "secure").await;
    let deployment = json!({"metadata": {"name": "hostnet"}, "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "hostnet"}},
        "template": {"metadata": {"labels": {"app": "hostnet"}},
                     "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox:1.36"}]}}}});
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "secure");
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment).unwrap(),
        )
        .await
        .unwrap();

    let event = failed_create_about(&client, "secure", "Deployment").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let regarding = event.regarding.unwrap();
    assert_eq!(
        (regarding.kind.as_deref(), regarding.name.as_deref()),
        (Some("Deployment"), Some("hostnet"))
    );
    let note = event.note.unwrap();
    assert!(
        note.starts_with("Error creating: pods \"hostnet-"),
        "{note}"
    );
    assert!(
        note.ends_with("\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"),
        "{note}"
    );

    let failure = eventually(
        "a ReplicaFailure condition",
        Duration::from_secs(10),
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("hostnet").await.ok()?;
                d.status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "ReplicaFailure")
            }
        },
    )
    .await;
    assert_eq!(failure.status, "True");
    assert_eq!(failure.reason.as_deref(), Some("FailedCreate"));
    assert!(
        failure
            .message
            .as_deref()
            .unwrap_or("")
            .contains("violates PodSecurity \"baseline:latest\""),
        "{failure:?}"
    );
    let pods: Api<Pod> = Api::namespaced(client, "secure");
    assert!(
        pods.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    sandbox.cluster.shutdown().await;
}
