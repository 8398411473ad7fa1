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
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_pod_template_gives_failed_create_and_replica_failure() {
    let sandbox = sandbox().await;
    let client = sandbox.client.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"metadata": {"name": "secure", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(ns).unwrap())
        .await
        .unwrap();
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

    let events: Api<Event> = Api::namespaced(client.clone(), "secure");
    let event = eventually("a FailedCreate event", Duration::from_secs(10), || {
        let events = events.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("FailedCreate"))
        }
    })
    .await;
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
