//! `kubectl logs` against the sandbox: what the simulated kubelet's
//! containers print, served as `pods/{name}/log` with the real server's
//! parameters and refusals, followed as it is written.

mod cluster_support;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use modelfleet_core::contract::fetch::parse_progress;
use modelfleet_core::contract::labels::MODEL_BYTES_ANNOTATION;
use serde_json::json;

use cluster_support::{Sandbox, eventually, is_ready, sandbox};
use modelfleet_sandbox::ServingHandle;
use support::kubectl::{KUBECTL, Kubectl, installed};

const NODE: &str = "p5-h100-1";

fn engine_pod() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "llama-0", "namespace": "default",
                     "annotations": {MODEL_BYTES_ANNOTATION: "600000000000"}},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "initContainers": [{"name": "fetch-weights", "image": "modelfleet:test",
                "command": ["modelfleet", "fetch", "--source", "s3://models/llama", "--dest", "/models/llama"]}],
            "containers": [{"name": "engine", "image": "vllm/vllm-openai:v0.9.1",
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}}}]
        }
    }))
    .unwrap()
}

/// The example fleet's sandbox on a loopback port, and kubectl for it.
async fn served() -> (Sandbox, ServingHandle, Kubectl) {
    let sandbox = sandbox().await;
    let serving = sandbox
        .server
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kubectl = Kubectl::new(&serving.kubeconfig_yaml("sandbox"));
    (sandbox, serving, kubectl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_shows_the_simulated_fetch_and_engine() {
    if !installed() {
        return;
    }
    let (sandbox, serving, kubectl) = served().await;
    let pods: Api<Pod> = Api::namespaced(sandbox.client.clone(), "default");

    // No such pod: the real NotFound.
    let missing = kubectl.run(&["logs", "nope"]).await;
    assert!(!missing.success);
    assert!(
        missing.stderr.contains("pods \"nope\" not found"),
        "{}",
        missing.stderr
    );

    pods.create(&PostParams::default(), &engine_pod())
        .await
        .unwrap();
    eventually("the pod is ready", Duration::from_secs(30), || async {
        pods.get("llama-0").await.ok().filter(is_ready)
    })
    .await;

    // The fetch prints progress the operator can read, and its end.
    let fetch = kubectl
        .run(&["logs", "llama-0", "-c", "fetch-weights"])
        .await;
    assert!(fetch.success, "{}", fetch.stderr);
    let progress: Vec<_> = fetch.stdout.lines().filter_map(parse_progress).collect();
    assert!(progress.len() >= 2, "{}", fetch.stdout);
    assert!(progress.iter().all(|p| p.total == 600_000_000_000));
    assert_eq!(progress.last().unwrap().done, 600_000_000_000);
    assert!(fetch.stdout.contains("fetch s3://models/llama: "));
    let last = kubectl
        .run(&["logs", "llama-0", "-c", "fetch-weights", "--tail=1"])
        .await;
    assert_eq!(last.stdout.lines().count(), 1, "{}", last.stdout);
    assert!(last.stdout.contains("simulated by the sandbox"));

    // One app container: kubectl needs no -c; --timestamps prefixes
    // each line with its time.
    let engine = kubectl.run(&["logs", "llama-0", "--timestamps"]).await;
    assert!(engine.success, "{}", engine.stderr);
    let lines: Vec<&str> = engine.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", engine.stdout);
    assert!(
        lines[0].contains(" sandbox: simulated container engine (vllm/vllm-openai:v0.9.1) started")
    );
    assert!(lines[1].contains("engine is ready"));
    let stamp = lines[0].split(' ').next().unwrap();
    assert!(
        stamp.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "{stamp} is a time"
    );
    let recent = kubectl
        .run(&["logs", "llama-0", "--since=1h", "--limit-bytes=7"])
        .await;
    assert_eq!(recent.stdout, "sandbox");

    // A container the pod does not have, and `--previous` of a container
    // that never restarted: the real server's refusals.
    let wrong = kubectl.run(&["logs", "llama-0", "-c", "sidecar"]).await;
    assert!(
        wrong
            .stderr
            .contains("container sidecar is not valid for pod llama-0"),
        "{}",
        wrong.stderr
    );
    // Reading logs is `get` on `pods/log`: someone without it is refused,
    // even one who may read the pod itself.
    let viewer = sandbox.server.issue_token("eve", &[]);
    let pods_only = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "eve-reads-pods", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": "eve", "apiGroup": "rbac.authorization.k8s.io"}]});
    for object in [pods_only, binding] {
        kubectl
            .ok(&["apply", "-f", &kubectl.file("rbac.yaml", &object)])
            .await;
    }
    let eve = Kubectl::new(&serving.kubeconfig_yaml_with_token("sandbox", &viewer));
    eve.ok(&["get", "pod", "llama-0"]).await;
    let refused = eve.fails(&["logs", "llama-0"]).await;
    assert!(
        refused.contains(
            "cannot get resource \"pods/log\" in API group \"\" in the namespace \"default\""
        ),
        "{refused}"
    );

    let previous = kubectl.run(&["logs", "llama-0", "--previous"]).await;
    assert!(
        previous
            .stderr
            .contains("previous terminated container \"engine\" in pod \"llama-0\" not found"),
        "{}",
        previous.stderr
    );

    // Follow: kubectl gets the lines so far, then what the engine prints
    // when it dies, and ends with it.
    let mut follower = Command::new(KUBECTL)
        .args(["logs", "-f", "llama-0"])
        .env("KUBECONFIG", kubectl.kubeconfig())
        .env("HOME", kubectl.home())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (seen_ready, ready) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        let mut seen_ready = Some(seen_ready);
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.contains("is ready")
                && let Some(tx) = seen_ready.take()
            {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("kubectl logs -f prints what was there")
        .unwrap();
    sandbox.cluster.fail_pod("default", "llama-0").unwrap();
    let followed = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the follow ends when the container exits")
        .unwrap();
    assert!(
        followed
            .last()
            .is_some_and(|l| l.contains("engine exited with code 1 (Error)")),
        "{followed:?}"
    );
    assert!(follower.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_has_not_started_is_waiting() {
    if !installed() {
        return;
    }
    let (sandbox, _serving, kubectl) = served().await;
    // Bound to a node that does not exist: no kubelet runs it.
    let mut pod = engine_pod();
    pod.spec.as_mut().unwrap().node_name = Some("no-such-node".into());
    Api::<Pod>::namespaced(sandbox.client.clone(), "default")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let waiting = kubectl.run(&["logs", "llama-0", "-c", "engine"]).await;
    assert!(!waiting.success);
    assert!(
        waiting.stderr.contains(
            "container \"engine\" in pod \"llama-0\" is waiting to start: ContainerCreating"
        ),
        "{}",
        waiting.stderr
    );
}
