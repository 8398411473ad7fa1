//! What the simulated-engine tests share: an engine pod as the operator
//! builds one, reaching it through the cluster's engine addresses as a
//! gateway would, and reading its server-sent events and metrics.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use modelfleet_core::Fleet;
use modelfleet_sandbox::ApiServer;
use modelfleet_sandbox::cluster::{ClusterOptions, SimulatedCluster, Timings};
use modelfleet_sandbox::engine::metrics::sample;
use serde_json::{Value, json};

use crate::cluster_support::{Sandbox, WAIT, eventually, is_ready};

pub const MODEL: &str = "llama-3.1-8b";
pub const KEY: &str = "sk-engine-0123456789";
/// The Secret the operator writes when a hub manages the cluster.
pub const KEY_SECRET: &str = "modelfleet-engine-api-key";

/// A single-node engine pod as the operator builds one (`vllm serve` with
/// its flags, the model's size, the API key from the namespace's
/// Secret), bound to `node`; `extra` goes after the operator's flags.
pub fn engine_pod(name: &str, node: &str, extra: &[&str], api_key: bool) -> Pod {
    let mut args = vec![
        format!("/models/{MODEL}"),
        "--served-model-name".into(),
        MODEL.into(),
        "--port".into(),
        "8000".into(),
        "--tensor-parallel-size".into(),
        "1".into(),
        "--pipeline-parallel-size".into(),
        "1".into(),
        "--max-model-len".into(),
        "4096".into(),
        "--gpu-memory-utilization".into(),
        "0.90".into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut env = vec![json!({"name": "HF_HUB_OFFLINE", "value": "1"})];
    if api_key {
        env.push(json!({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef":
            {"name": KEY_SECRET, "key": "api-key", "optional": false}}}));
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
            "labels": {"modelfleet.io/role": "server"},
            "annotations": {"modelfleet.io/model-bytes": "16060522496"}},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "engine", "image": "vllm/vllm-openai:v0.13.0",
                "command": ["vllm", "serve"], "args": args, "env": env,
                "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
                "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}},
                "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}}
            }]
        }
    }))
    .expect("a valid pod")
}

pub async fn create_key_secret(client: &Client) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(KEY_SECRET.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "api-key".to_owned(),
            ByteString(KEY.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// Creates `pod` and waits until it is Ready and its address answers:
/// the pod, and the engine's base URL (`http://127.0.0.1:<port>`).
pub async fn ready_engine(sandbox: &Sandbox, pod: &Pod) -> (Pod, String) {
    let pods: Api<Pod> = Api::namespaced(sandbox.client.clone(), "default");
    pods.create(&PostParams::default(), pod).await.unwrap();
    let name = pod.metadata.name.clone().unwrap();
    let ready = eventually(&format!("pod {name} is ready"), WAIT, || async {
        let pod = pods.get(&name).await.ok()?;
        is_ready(&pod).then_some(pod)
    })
    .await;
    let base = engine_url(sandbox, &ready).expect("a ready engine pod has an engine");
    (ready, base)
}

/// Where the gateway would connect for `pod`: its podIP and port 8000,
/// through the cluster's engine addresses.
pub fn engine_url(sandbox: &Sandbox, pod: &Pod) -> Option<String> {
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    let addr = sandbox.cluster.engine_addresses().resolve(ip, 8000)?;
    Some(format!("http://{addr}"))
}

/// The example fleet's cluster in real time, but with containers that
/// start and load at once: engines as slow as the model makes them,
/// pods ready right away.
pub async fn real_time_sandbox() -> Sandbox {
    let server = ApiServer::new();
    let client = server.client();
    let mut options = ClusterOptions::default()
        .time_factor(1.0)
        .pod_logs(server.pod_logs());
    options.timings = Timings {
        container_start: Duration::ZERO,
        init_container: Duration::ZERO,
        load_base: Duration::ZERO,
        load_bytes_per_second: u64::MAX,
        ..options.timings
    };
    let cluster = SimulatedCluster::start(client.clone(), &Fleet::example(), options)
        .await
        .expect("the simulated cluster starts");
    Sandbox {
        server,
        client,
        cluster,
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// A chat request for the model.
pub fn chat(content: &str, extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": content}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

pub async fn post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{base}{path}"))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .expect("the engine answers")
}

/// Reads a response's server-sent events one `data:` payload at a time.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub fn new(response: reqwest::Response) -> Events {
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's data; `None` when the stream ends.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data = event.trim_end().strip_prefix("data: ")?.to_owned();
                return Some(data);
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        }
    }

    /// Every remaining event's data.
    pub async fn all(mut self) -> Vec<String> {
        let mut events = Vec::new();
        while let Some(data) = self.next().await {
            events.push(data);
        }
        events
    }
}

/// A metric of the engine at `base`.
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    sample(&text, name, &[("model_name", MODEL)]).unwrap_or_else(|| panic!("{name} in {text}"))
}

/// A metric of the engine at `base` that counts something.
pub async fn count(base: &str, name: &str) -> u64 {
    metric(base, name).await.round() as u64
}
