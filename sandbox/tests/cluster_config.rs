//! A container whose Secret is missing does not start, as on a real node:
//! it waits with `CreateContainerConfigError` and the kubelet's message,
//! and starts once the Secret (with the key it names) exists.

mod cluster_support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use cluster_support::{eventually, is_ready, sandbox};

fn pod() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "fetching", "namespace": "default"},
        "spec": {
            "nodeName": "p5-h100-1",
            "initContainers": [{"name": "fetch-weights", "image": "modelfleet:test",
                "envFrom": [{"secretRef": {"name": "store-keys"}}]}],
            "containers": [{"name": "engine", "image": "vllm/vllm-openai:v0.9.1",
                "env": [{"name": "VLLM_API_KEY", "valueFrom":
                    {"secretKeyRef": {"name": "engine-key", "key": "api-key"}}},
                        {"name": "EXTRA", "valueFrom":
                    {"secretKeyRef": {"name": "absent", "key": "x", "optional": true}}}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}}]
        }
    }))
    .unwrap()
}

fn waiting(pod: &Pod) -> Option<(String, String, String)> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            (w.reason.as_deref() == Some("CreateContainerConfigError")).then(|| {
                (
                    c.name.clone(),
                    w.message.clone().unwrap_or_default(),
                    status.phase.clone().unwrap_or_default(),
                )
            })
        })
}

fn secret(name: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(b"0123456789".to_vec()),
        )])),
        ..Secret::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_waits_for_its_secret_and_starts_once_it_exists() {
    let sandbox = sandbox().await;
    let pods: Api<Pod> = Api::namespaced(sandbox.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(sandbox.client.clone(), "default");
    pods.create(&PostParams::default(), &pod()).await.unwrap();

    let wait = Duration::from_secs(30);
    let first = eventually("the fetch waits for its Secret", wait, || async {
        waiting(&pods.get("fetching").await.unwrap())
    })
    .await;
    assert_eq!(
        first,
        (
            "fetch-weights".to_owned(),
            "secret \"store-keys\" not found".to_owned(),
            "Pending".to_owned()
        )
    );
    let shown = pods.get("fetching").await.unwrap();
    assert!(shown.status.unwrap().pod_ip.is_none(), "nothing started");

    // The engine's Secret exists without the key it names.
    secrets
        .create(
            &PostParams::default(),
            &secret("store-keys", "AWS_ACCESS_KEY_ID"),
        )
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("engine-key", "other"))
        .await
        .unwrap();
    let second = eventually("the engine waits for its key", wait, || async {
        waiting(&pods.get("fetching").await.unwrap()).filter(|(c, ..)| c == "engine")
    })
    .await;
    assert_eq!(
        second.1,
        "couldn't find key api-key in Secret default/engine-key"
    );

    // With the key, everything starts (the optional Secret stays absent).
    secrets
        .patch(
            "engine-key",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"api-key": "c2VjcmV0"}})),
        )
        .await
        .unwrap();
    eventually("the pod is ready", wait, || async {
        pods.get("fetching").await.ok().filter(is_ready)
    })
    .await;
}
