//! Injected faults in the simulated cluster: a node that stops being ready
//! takes its pods with it and the workload moves; a crashing engine
//! restarts and loads again.

mod cluster_support;

use std::time::Duration;

use cluster_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use modelfleet_sandbox::ApiServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_going_not_ready_fails_its_pods_and_the_deployment_moves() {
    let sandbox = sandbox().await;
    let api: Api<Deployment> = Api::default_namespaced(sandbox.client.clone());
    api.create(
        &PostParams::default(),
        &gpu_deployment("a10", 1, "g5-a10g", 4, None),
    )
    .await
    .unwrap();
    ready_deployment(&sandbox.client, "a10", 1).await;
    let first = pods_of(&sandbox.client, "a10").await.remove(0);
    let lost_node = node_of(&first).to_owned();
    sandbox.cluster.node_not_ready(&lost_node).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(sandbox.client.clone());
    let name = first.metadata.name.clone().unwrap();
    // Not ready at once, lost after the (scaled) grace period.
    let lost = eventually("the pod fails with NodeLost", WAIT, || async {
        let pod = pods.get(&name).await.ok()?;
        (pod.status.as_ref()?.reason.as_deref() == Some("NodeLost")).then_some(pod)
    })
    .await;
    assert_eq!(
        lost.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    assert!(!is_ready(&lost));
    // The Deployment replaces it on a node that is still ready.
    ready_deployment(&sandbox.client, "a10", 1).await;
    let replacement = pods_of(&sandbox.client, "a10")
        .await
        .into_iter()
        .find(|p| p.metadata.name.as_deref() != Some(name.as_str()))
        .unwrap();
    assert!(node_of(&replacement).starts_with("g5-a10g-"));
    assert_ne!(node_of(&replacement), lost_node);
    sandbox.cluster.node_ready(&lost_node).await.unwrap();
    let failed = pods.get(&name).await.unwrap();
    assert_eq!(
        failed.status.unwrap().phase.as_deref(),
        Some("Failed"),
        "a lost pod stays failed"
    );
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_engine_restarts_and_serves_again() {
    let sandbox = sandbox().await;
    let api: Api<Deployment> = Api::default_namespaced(sandbox.client.clone());
    api.create(
        &PostParams::default(),
        &gpu_deployment("crashy", 1, "g6e-l40s", 2, None),
    )
    .await
    .unwrap();
    ready_deployment(&sandbox.client, "crashy", 1).await;
    let pod = pods_of(&sandbox.client, "crashy").await.remove(0);
    let name = pod.metadata.name.clone().unwrap();
    sandbox.cluster.fail_pod("default", &name).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(sandbox.client.clone());
    let restarted = eventually("the engine restarted and is ready again", WAIT, || async {
        let pod = pods.get(&name).await.ok()?;
        let engine = pod
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        (engine.restart_count == 1 && engine.ready).then_some(engine)
    })
    .await;
    let last = restarted.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    // The same pod came back: no replacement was needed.
    assert_eq!(pods_of(&sandbox.client, "crashy").await.len(), 1);
    assert!(sandbox.cluster.fail_pod("default", "no-such-pod").is_err());
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_converge_through_failing_writes_and_dropped_watches_without_duplicates() {
    let server = ApiServer::new();
    server
        .faults()
        .seed(42)
        .write_error_rate(0.05)
        .drop_watches_every(Some(Duration::from_millis(300)));
    // Start-up itself retries the writes that fail.
    let sandbox = sandbox_on(server).await;
    let api: Api<Deployment> = Api::default_namespaced(sandbox.client.clone());
    let wanted = [
        ("h100", 2, "p5-h100", 4, Some("workload")),
        ("h200", 2, "p5en-h200", 8, None),
        ("a10g", 3, "g5-a10g", 2, None),
        ("l40s", 2, "g6e-l40s", 4, None),
    ];
    for (name, replicas, pool, gpus, toleration) in wanted {
        let deployment = gpu_deployment(name, replicas, pool, gpus, toleration);
        eventually(&format!("deployment {name} is created"), WAIT, || async {
            api.create(&PostParams::default(), &deployment).await.ok()
        })
        .await;
    }
    for (name, replicas, pool, ..) in wanted {
        ready_deployment(&sandbox.client, name, replicas).await;
        let live: Vec<Pod> = pods_of(&sandbox.client, name)
            .await
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        assert_eq!(
            live.len(),
            replicas as usize,
            "{name} has exactly its replicas"
        );
        assert!(live.iter().all(|p| node_of(p).starts_with(pool)));
    }
    sandbox.server.faults().clear();
    sandbox.cluster.shutdown().await;
}
