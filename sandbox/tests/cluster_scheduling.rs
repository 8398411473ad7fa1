//! The simulated cluster places and runs Deployments as a real cluster
//! would: on the nodes their affinity allows, within free devices, and
//! reports what cannot be placed in the real scheduler's words.

mod cluster_support;

use cluster_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_becomes_nodes_and_busy_devices_are_held() {
    let sandbox = sandbox().await;
    let nodes: Api<Node> = Api::all(sandbox.client.clone());
    let listed = nodes.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed.len(), 39);
    assert_eq!(sandbox.cluster.nodes().len(), 39);
    let h100 = nodes.get("p5-h100-2").await.unwrap();
    let status = h100.status.unwrap();
    assert_eq!(status.allocatable.unwrap()["nvidia.com/gpu"].0, "8");
    assert!(
        status
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    // The fleet's busy node is held by a pod the kubelet runs.
    let reserved: Api<Pod> = Api::namespaced(sandbox.client.clone(), "kube-system");
    eventually("the reserved pod runs", WAIT, || async {
        let pod = reserved.get("reserved-p5-h100-0").await.ok()?;
        (node_of(&pod) == "p5-h100-0" && is_ready(&pod)).then_some(())
    })
    .await;
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_deployment_lands_on_its_pool_and_becomes_ready() {
    let sandbox = sandbox().await;
    let api: Api<Deployment> = Api::default_namespaced(sandbox.client.clone());
    api.create(
        &PostParams::default(),
        &gpu_deployment("llama", 3, "p5-h100", 4, Some("workload")),
    )
    .await
    .unwrap();
    let deployment = ready_deployment(&sandbox.client, "llama", 3).await;
    let status = deployment.status.unwrap();
    assert_eq!(
        (status.replicas, status.updated_replicas),
        (Some(3), Some(3))
    );
    assert_eq!(status.observed_generation, deployment.metadata.generation);
    let available = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(available.status, "True");
    let pods = pods_of(&sandbox.client, "llama").await;
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        // Only the pool's nodes, and never the one the fleet says is busy.
        assert!(node_of(pod).starts_with("p5-h100-"), "{}", node_of(pod));
        assert_ne!(node_of(pod), "p5-h100-0");
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some() && status.host_ip.is_some());
        let fetch = &status.init_container_statuses.as_ref().unwrap()[0];
        let done = fetch.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(done.reason.as_deref(), Some("Completed"));
        let engine = &status.container_statuses.as_ref().unwrap()[0];
        assert!(engine.ready && engine.state.as_ref().unwrap().running.is_some());
        let name = pod.metadata.name.as_deref().unwrap();
        let hash = &pod.metadata.labels.as_ref().unwrap()["pod-template-hash"];
        assert!(name.starts_with(&format!("llama-{hash}-")), "{name}");
        assert_eq!(
            pod.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Deployment"
        );
    }
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_request_stays_pending_with_the_schedulers_message() {
    let sandbox = sandbox().await;
    let api: Api<Deployment> = Api::default_namespaced(sandbox.client.clone());
    api.create(
        &PostParams::default(),
        &gpu_deployment("huge", 1, "p5-h100", 16, Some("workload")),
    )
    .await
    .unwrap();
    let pod = eventually("the pod is marked unschedulable", WAIT, || async {
        let pods = pods_of(&sandbox.client, "huge").await;
        let pod = pods.into_iter().next()?;
        let scheduled = condition(&pod, "PodScheduled")?;
        (scheduled.reason.as_deref() == Some("Unschedulable")).then_some(pod)
    })
    .await;
    let scheduled = condition(&pod, "PodScheduled").unwrap();
    assert_eq!(scheduled.status, "False");
    assert_eq!(
        scheduled.message.as_deref(),
        Some(
            "0/39 nodes are available: 27 node(s) didn't match Pod's node affinity/selector, \
             4 Insufficient nvidia.com/gpu, 8 node(s) had untolerated taint {huawei.com/Ascend910: present}. \
             preemption: 0/39 nodes are available: 35 Preemption is not helpful for scheduling, \
             4 No preemption victims found for incoming pod."
        )
    );
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    assert_eq!(node_of(&pod), "");
    let deployment = api.get("huge").await.unwrap();
    let available = deployment
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("False", Some("MinimumReplicasUnavailable"))
    );
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_frees_its_devices_so_a_pending_pod_schedules() {
    let sandbox = sandbox().await;
    let api: Api<Deployment> = Api::default_namespaced(sandbox.client.clone());
    // p5en-h200 has two free nodes of 8 devices: two whole-node replicas fill it.
    api.create(
        &PostParams::default(),
        &gpu_deployment("first", 2, "p5en-h200", 8, None),
    )
    .await
    .unwrap();
    ready_deployment(&sandbox.client, "first", 2).await;
    api.create(
        &PostParams::default(),
        &gpu_deployment("second", 1, "p5en-h200", 8, None),
    )
    .await
    .unwrap();
    eventually(
        "the second deployment's pod waits for devices",
        WAIT,
        || async {
            let pod = pods_of(&sandbox.client, "second")
                .await
                .into_iter()
                .next()?;
            let message = condition(&pod, "PodScheduled")?.message.clone()?;
            message
                .contains("2 Insufficient nvidia.com/gpu")
                .then_some(())
        },
    )
    .await;
    api.delete("first", &DeleteParams::default()).await.unwrap();
    eventually("the first deployment's pods are gone", WAIT, || async {
        pods_of(&sandbox.client, "first")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    ready_deployment(&sandbox.client, "second", 1).await;
    let pod = pods_of(&sandbox.client, "second").await.remove(0);
    assert!(node_of(&pod).starts_with("p5en-h200-"));
    assert_eq!(condition(&pod, "PodScheduled").unwrap().status, "True");
    sandbox.cluster.shutdown().await;
}
