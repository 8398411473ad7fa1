//! LeaderWorkerSets in the simulated cluster: a group spans nodes, gets
//! the LWS environment, and is ready when all its pods are; a restart in
//! the group recreates it whole.

mod cluster_support;

use std::collections::BTreeSet;

use cluster_support::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet"),
        "leaderworkersets",
    )
}

/// A two-node replica of 8 A100s per node, as the operator builds one for
/// a 175B-class model.
fn two_node_set(name: &str) -> DynamicObject {
    let template = json!({
        "metadata": {"labels": {"app": name}},
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "modelfleet.io/pool", "operator": "In", "values": ["p4de-a100-spot"]}
                ]}]
            }}},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "vllm",
                "image": "vllm/vllm-openai:v0.9.1",
                "resources": {"limits": {"nvidia.com/gpu": "8"}, "requests": {"nvidia.com/gpu": "8"}},
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}
            }]
        }
    });
    DynamicObject::new(name, &resource()).data(json!({
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {"size": 2, "workerTemplate": template}
        }
    }))
}

fn env(pod: &Pod, name: &str) -> Option<String> {
    pod.spec.as_ref()?.containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

async fn ready_set(sandbox: &Sandbox, name: &str) -> DynamicObject {
    let sets: Api<DynamicObject> =
        Api::default_namespaced_with(sandbox.client.clone(), &resource());
    eventually(
        &format!("leaderworkerset {name} is ready"),
        WAIT,
        || async {
            let set = sets.get(name).await.ok()?;
            let status = set.data.get("status")?;
            let available = status["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Available" && c["status"] == "True");
            (status["readyReplicas"] == 1 && available).then_some(set)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_two_spans_two_nodes_and_becomes_ready() {
    let sandbox = sandbox().await;
    let sets: Api<DynamicObject> =
        Api::default_namespaced_with(sandbox.client.clone(), &resource());
    // The LeaderWorkerSet CRD was installed by the cluster, so this is accepted.
    sets.create(&PostParams::default(), &two_node_set("gpt3"))
        .await
        .unwrap();
    let set = ready_set(&sandbox, "gpt3").await;
    assert_eq!(set.data["status"]["replicas"], 1);
    let pods: Api<Pod> = Api::default_namespaced(sandbox.client.clone());
    let leader = pods.get("gpt3-0").await.unwrap();
    let worker = pods.get("gpt3-0-1").await.unwrap();
    let nodes: BTreeSet<&str> = [node_of(&leader), node_of(&worker)].into();
    assert_eq!(
        nodes.len(),
        2,
        "a group of two whole-node pods needs two nodes"
    );
    assert!(nodes.iter().all(|n| n.starts_with("p4de-a100-spot-")));
    assert!(is_ready(&leader) && is_ready(&worker));
    for pod in [&leader, &worker] {
        assert_eq!(
            env(pod, "LWS_LEADER_ADDRESS").as_deref(),
            Some("gpt3-0.gpt3.default")
        );
        assert_eq!(env(pod, "LWS_GROUP_SIZE").as_deref(), Some("2"));
    }
    assert_eq!(env(&worker, "LWS_WORKER_INDEX").as_deref(), Some("1"));
    let labels = worker.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["leaderworkerset.sigs.k8s.io/name"], "gpt3");
    assert_eq!(labels["leaderworkerset.sigs.k8s.io/group-index"], "0");
    let services: Api<Service> = Api::default_namespaced(sandbox.client.clone());
    let headless = services.get("gpt3").await.unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_recreates_its_whole_group() {
    let sandbox = sandbox().await;
    let sets: Api<DynamicObject> =
        Api::default_namespaced_with(sandbox.client.clone(), &resource());
    sets.create(&PostParams::default(), &two_node_set("gpt3"))
        .await
        .unwrap();
    ready_set(&sandbox, "gpt3").await;
    let pods: Api<Pod> = Api::default_namespaced(sandbox.client.clone());
    let first_leader = pods.get("gpt3-0").await.unwrap().metadata.uid;
    sandbox.cluster.fail_pod("default", "gpt3-0-1").unwrap();
    eventually("the group is recreated with a new leader", WAIT, || async {
        let leader = pods.get("gpt3-0").await.ok()?;
        (leader.metadata.uid != first_leader).then_some(())
    })
    .await;
    ready_set(&sandbox, "gpt3").await;
    let worker = pods.get("gpt3-0-1").await.unwrap();
    // A fresh pod: the restart that caused the recreation is not carried over.
    assert_eq!(
        worker.status.unwrap().container_statuses.unwrap()[0].restart_count,
        0
    );
    sandbox.cluster.shutdown().await;
}
