//! A simulated cluster started again against an API server loaded from a
//! snapshot, as `modelfleet serve` restarts: its running pods are adopted
//! as they were (same pods, still ready, not restarted), and what it
//! places next counts the devices and addresses they hold.

mod cluster_support;

use std::collections::{BTreeMap, BTreeSet};

use cluster_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use modelfleet_sandbox::{ApiServer, ApiServerOptions};

fn gpus(pod: &Pod) -> i64 {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .filter_map(|c| {
            c.resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("nvidia.com/gpu")
        })
        .map(|q| q.0.parse::<i64>().unwrap())
        .sum()
}

fn running(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restarted_from_a_snapshot_adopts_its_running_pods() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    let before = sandbox().await;
    let deployments: Api<Deployment> = Api::default_namespaced(before.client.clone());
    deployments
        .create(
            &PostParams::default(),
            &gpu_deployment("llama", 2, "p5-h100", 8, Some("workload")),
        )
        .await
        .unwrap();
    ready_deployment(&before.client, "llama", 2).await;
    let pods_before: BTreeMap<String, Pod> = pods_of(&before.client, "llama")
        .await
        .into_iter()
        .map(|p| (p.uid().unwrap(), p))
        .collect();
    assert_eq!(pods_before.len(), 2);
    before.cluster.shutdown().await;
    before.server.write_snapshot(&path).unwrap();

    let server = ApiServer::load(ApiServerOptions::default(), &path)
        .unwrap()
        .expect("the snapshot is there");
    let after = sandbox_on(server).await;
    // The same pods, still ready, never restarted; the Deployment still
    // has both replicas.
    let deployment = ready_deployment(&after.client, "llama", 2).await;
    assert_eq!(deployment.status.unwrap().replicas, Some(2));
    let adopted = eventually("the kubelet reports the adopted pods", WAIT, || async {
        let pods = pods_of(&after.client, "llama").await;
        pods.iter().all(is_ready).then_some(pods)
    })
    .await;
    let uids: BTreeSet<String> = adopted.iter().map(|p| p.uid().unwrap()).collect();
    assert_eq!(uids, pods_before.keys().cloned().collect());
    for pod in &adopted {
        let old = &pods_before[&pod.uid().unwrap()];
        assert_eq!(node_of(pod), node_of(old));
        let (status, old_status) = (pod.status.as_ref().unwrap(), old.status.as_ref().unwrap());
        assert_eq!(status.pod_ip, old_status.pod_ip);
        assert_eq!(status.start_time, old_status.start_time);
        let engine = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(engine.restart_count, 0, "{engine:?}");
    }

    // Three more 8-device replicas on a pool with 8 devices left: one is
    // placed, two wait. A scheduler that forgot the adopted pods would
    // place all three on their nodes.
    let deployments: Api<Deployment> = Api::default_namespaced(after.client.clone());
    deployments
        .create(
            &PostParams::default(),
            &gpu_deployment("fill", 3, "p5-h100", 8, Some("workload")),
        )
        .await
        .unwrap();
    let fill = eventually(
        "every new pod is placed or found unschedulable",
        WAIT,
        || async {
            let pods = pods_of(&after.client, "fill").await;
            let decided = pods.len() == 3
                && pods.iter().all(|p| {
                    condition(p, "PodScheduled").is_some()
                        && (node_of(p).is_empty()
                            || p.status.as_ref().is_some_and(|s| s.pod_ip.is_some()))
                });
            decided.then_some(pods)
        },
    )
    .await;
    let placed = fill.iter().filter(|p| !node_of(p).is_empty()).count();
    assert_eq!(placed, 1, "{fill:#?}");

    // No node holds more devices than it has, and no two pods on a node
    // share an address.
    let nodes: Api<Node> = Api::all(after.client.clone());
    let all: Vec<Pod> = Api::<Pod>::all(after.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    for node in nodes.list(&ListParams::default()).await.unwrap().items {
        let name = node.name_any();
        let on_node: Vec<&Pod> = all
            .iter()
            .filter(|p| node_of(p) == name && running(p))
            .collect();
        let allocatable: i64 = node
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref()?.get("nvidia.com/gpu"))
            .map_or(0, |q| q.0.parse().unwrap());
        let held: i64 = on_node.iter().map(|p| gpus(p)).sum();
        assert!(held <= allocatable, "{name}: {held} > {allocatable}");
        let ips: Vec<&str> = on_node
            .iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.as_deref())
            .collect();
        let distinct: BTreeSet<&str> = ips.iter().copied().collect();
        assert_eq!(distinct.len(), ips.len(), "{name}: {ips:?}");
    }
    after.cluster.shutdown().await;
}
