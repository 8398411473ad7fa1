//! A simulated engine lives and queues as its pod and plan say: at most
//! `--max-num-seqs` requests run and the rest wait (as `/metrics` shows),
//! a client that goes away frees its place, and the engine stops with its
//! container — deleted, crashed, on a NotReady node — while a multi-node
//! group serves from its leader only.

mod cluster_support;
mod engine_support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use cluster_support::{WAIT, eventually, is_ready, sandbox};
use engine_support::*;

/// Generous: only a broken engine takes this long.
const LIMIT: Duration = Duration::from_secs(60);

async fn first_event(events: &mut Events) -> String {
    tokio::time::timeout(LIMIT, events.next())
        .await
        .expect("the stream sends its first event")
        .expect("an event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_num_seqs_wait_until_a_running_one_goes_away() {
    // Real time, so that a long answer streams for a while (about 9 ms a
    // token for 16 GB on an H100); held streams are dropped long before.
    let sandbox = real_time_sandbox().await;
    let pod = engine_pod("llama-0", "p5-h100-1", &["--max-num-seqs", "2"], false);
    let (_, base) = ready_engine(&sandbox, &pod).await;
    let long = chat(
        "Write a long story.",
        json!({"stream": true, "max_tokens": 3000, "ignore_eos": true}),
    );
    let mut first = Events::new(post(&base, "/v1/chat/completions", &long).await);
    let mut second = Events::new(post(&base, "/v1/chat/completions", &long).await);
    first_event(&mut first).await;
    first_event(&mut second).await;
    // The third is accepted (its stream has begun) but waits for a slot.
    let third = post(&base, "/v1/chat/completions", &long).await;
    assert_eq!(third.status(), 200);
    let mut third = Events::new(third);
    eventually("the third request waits", WAIT, || async {
        (count(&base, "vllm:num_requests_waiting").await == 1).then_some(())
    })
    .await;
    assert_eq!(count(&base, "vllm:num_requests_running").await, 2);
    let usage = metric(&base, "vllm:kv_cache_usage_perc").await;
    assert!(usage > 0.0 && usage < 1.0, "{usage}");
    // A client that gives up while waiting leaves the queue.
    let fourth = post(&base, "/v1/chat/completions", &long).await;
    eventually("the fourth request waits too", WAIT, || async {
        (count(&base, "vllm:num_requests_waiting").await == 2).then_some(())
    })
    .await;
    drop(fourth);
    eventually("the fourth request left the queue", WAIT, || async {
        (count(&base, "vllm:num_requests_waiting").await == 1).then_some(())
    })
    .await;

    // The first client goes away: its slot goes to the third.
    drop(first);
    first_event(&mut third).await;
    assert_eq!(count(&base, "vllm:num_requests_waiting").await, 0);
    assert_eq!(count(&base, "vllm:num_requests_running").await, 2);
    drop((second, third));
    eventually("nothing runs once every client is gone", WAIT, || async {
        (count(&base, "vllm:num_requests_running").await == 0).then_some(())
    })
    .await;
    let usage = metric(&base, "vllm:kv_cache_usage_perc").await;
    assert!(usage.abs() < 1e-12, "{usage}");
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stops_with_its_container() {
    let sandbox = sandbox().await;
    let addresses = sandbox.cluster.engine_addresses();
    let (pod, base) = ready_engine(&sandbox, &engine_pod("llama-0", "p5-h100-1", &[], false)).await;
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert_eq!(
        addresses.resolve(&ip, 9000),
        None,
        "only the engine's port answers"
    );
    let answer = post(&base, "/v1/chat/completions", &chat("hello", json!({}))).await;
    assert_eq!(answer.status(), 200);
    let engine = addresses.engine("default", "llama-0").unwrap();
    assert_eq!(
        (engine.model.as_str(), engine.port, engine.requests_served),
        (MODEL, 8000, 1)
    );

    // A crash stops it at once; the restarted container serves again.
    sandbox.cluster.fail_pod("default", "llama-0").unwrap();
    assert_eq!(addresses.engine("default", "llama-0"), None);
    eventually("the crashed engine's port closes", WAIT, || async {
        http()
            .get(format!("{base}/health"))
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let restarted = eventually("the restarted engine serves", WAIT, || async {
        addresses.resolve(&ip, 8000)
    })
    .await;
    let health = http()
        .get(format!("http://{restarted}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Deleted, its address answers no more.
    let pods: Api<Pod> = Api::namespaced(sandbox.client.clone(), "default");
    pods.delete("llama-0", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the deleted pod's engine stops", WAIT, || async {
        addresses.resolve(&ip, 8000).is_none().then_some(())
    })
    .await;
    eventually("the deleted engine's port closes", WAIT, || async {
        let health = http()
            .get(format!("http://{restarted}/health"))
            .send()
            .await;
        health.is_err().then_some(())
    })
    .await;

    // A NotReady node's pods are unreachable.
    let (other, _) = ready_engine(&sandbox, &engine_pod("llama-1", "p5-h100-2", &[], false)).await;
    let other_ip = other.status.unwrap().pod_ip.unwrap();
    sandbox.cluster.node_not_ready("p5-h100-2").await.unwrap();
    eventually("the engine on the NotReady node stops", WAIT, || async {
        addresses.resolve(&other_ip, 8000).is_none().then_some(())
    })
    .await;
    sandbox.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_node_group_serves_from_its_leader_only() {
    let sandbox = sandbox().await;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet"),
        "leaderworkersets",
    );
    let template = |command: serde_json::Value, args: serde_json::Value| {
        json!({
            "metadata": {"annotations": {"modelfleet.io/model-bytes": "141107412992"}},
            "spec": {
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "modelfleet.io/pool", "operator": "In", "values": ["p4de-a100-spot"]}
                    ]}]
                }}},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{
                    "name": "engine", "image": "vllm/vllm-openai:v0.13.0",
                    "command": command, "args": args,
                    "resources": {"limits": {"nvidia.com/gpu": "8"}, "requests": {"nvidia.com/gpu": "8"}},
                    "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}
                }]
            }
        })
    };
    let leader = template(
        json!([
            "/bin/sh",
            "-c",
            "set -eu\nray start --head --port=6379\nexec vllm serve \"$@\"",
            "leader"
        ]),
        json!([
            "/models/llama-3.1-70b",
            "--served-model-name",
            "llama-3.1-70b",
            "--tensor-parallel-size",
            "8",
            "--pipeline-parallel-size",
            "2",
            "--max-model-len",
            "8192",
            "--distributed-executor-backend",
            "ray"
        ]),
    );
    let worker = template(
        json!([
            "/bin/sh",
            "-c",
            "exec ray start --address=\"$LWS_LEADER_ADDRESS:6379\" --block"
        ]),
        json!(null),
    );
    let set = DynamicObject::new("llama", &resource).data(json!({
        "spec": {"replicas": 1, "leaderWorkerTemplate": {
            "size": 2, "leaderTemplate": leader, "workerTemplate": worker}}
    }));
    let sets: Api<DynamicObject> = Api::default_namespaced_with(sandbox.client.clone(), &resource);
    sets.create(&PostParams::default(), &set).await.unwrap();
    let pods: Api<Pod> = Api::default_namespaced(sandbox.client.clone());
    let (leader, worker) = eventually("the group is ready", WAIT, || async {
        let leader = pods.get("llama-0").await.ok()?;
        let worker = pods.get("llama-0-1").await.ok()?;
        (is_ready(&leader) && is_ready(&worker)).then_some((leader, worker))
    })
    .await;
    let addresses = sandbox.cluster.engine_addresses();
    let engines = addresses.engines();
    assert_eq!(engines.len(), 1, "{engines:?}");
    assert_eq!(engines[0].pod, "llama-0");
    assert_eq!(engines[0].model, "llama-3.1-70b");
    let worker_ip = worker.status.unwrap().pod_ip.unwrap();
    assert_eq!(addresses.resolve(&worker_ip, 8000), None);
    let base = engine_url(&sandbox, &leader).unwrap();
    let models: serde_json::Value = http()
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "llama-3.1-70b");
    sandbox.cluster.shutdown().await;
}
