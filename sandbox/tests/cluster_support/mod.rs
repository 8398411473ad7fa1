//! What the simulated-cluster tests share: a sandbox API server with the
//! example fleet's cluster behind it, workload builders, and waiting.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    Pod, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::api::{Api, ListParams};
use modelfleet_core::Fleet;
use modelfleet_sandbox::ApiServer;
use modelfleet_sandbox::cluster::{ClusterHandle, ClusterOptions, SimulatedCluster};

/// Seconds of simulated time per real second, inverted: a 70-second model
/// load takes 70 ms.
pub const TIME_FACTOR: f64 = 0.001;

pub struct Sandbox {
    pub server: ApiServer,
    pub client: Client,
    pub cluster: ClusterHandle,
}

/// An API server with the example fleet (39 nodes on four clouds) behind it.
pub async fn sandbox() -> Sandbox {
    sandbox_on(ApiServer::new()).await
}

/// The example fleet's cluster behind `server` (which may inject faults).
pub async fn sandbox_on(server: ApiServer) -> Sandbox {
    let client = server.client();
    let options = ClusterOptions::default()
        .time_factor(TIME_FACTOR)
        .pod_logs(server.pod_logs());
    let cluster = SimulatedCluster::start(client.clone(), &Fleet::example(), options)
        .await
        .expect("the simulated cluster starts");
    Sandbox {
        server,
        client,
        cluster,
    }
}

/// Polls `check` until it yields a value, failing the test with `what`
/// after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const WAIT: Duration = Duration::from_secs(20);

/// A model-serving Deployment as the operator builds one: `gpus` devices
/// per pod, pinned to `pool` by node affinity, tolerating the device taint
/// and `extra_toleration`, fetching weights in an init container and
/// ready once the engine answers its probe.
pub fn gpu_deployment(
    name: &str,
    replicas: i32,
    pool: &str,
    gpus: u32,
    extra_toleration: Option<&str>,
) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    let devices = BTreeMap::from([("nvidia.com/gpu".to_owned(), Quantity(gpus.to_string()))]);
    let toleration = |key: &str| Toleration {
        key: Some(key.to_owned()),
        operator: Some("Exists".to_owned()),
        effect: Some("NoSchedule".to_owned()),
        ..Default::default()
    };
    let mut tolerations = vec![toleration("nvidia.com/gpu")];
    tolerations.extend(extra_toleration.map(toleration));
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    affinity: Some(Affinity {
                        node_affinity: Some(NodeAffinity {
                            required_during_scheduling_ignored_during_execution: Some(
                                NodeSelector {
                                    node_selector_terms: vec![NodeSelectorTerm {
                                        match_expressions: Some(vec![NodeSelectorRequirement {
                                            key: "modelfleet.io/pool".to_owned(),
                                            operator: "In".to_owned(),
                                            values: Some(vec![pool.to_owned()]),
                                        }]),
                                        match_fields: None,
                                    }],
                                },
                            ),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    tolerations: Some(tolerations),
                    init_containers: Some(vec![Container {
                        name: "fetch".to_owned(),
                        image: Some("ghcr.io/modelfleet/modelfleet:latest".to_owned()),
                        ..Default::default()
                    }]),
                    containers: vec![Container {
                        name: "vllm".to_owned(),
                        image: Some("vllm/vllm-openai:v0.9.1".to_owned()),
                        resources: Some(ResourceRequirements {
                            requests: Some(devices.clone()),
                            limits: Some(devices),
                            ..Default::default()
                        }),
                        readiness_probe: Some(Probe::default()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The pods of the Deployment `app` in `default`.
pub async fn pods_of(client: &Client, app: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

pub fn condition<'a>(
    pod: &'a Pod,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// The Deployment once `ready` of its replicas are ready.
pub async fn ready_deployment(client: &Client, name: &str, ready: i32) -> Deployment {
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    eventually(
        &format!("deployment {name} has {ready} ready replicas"),
        WAIT,
        || async {
            let d = api.get(name).await.ok()?;
            let status = d.status.as_ref()?;
            (status.ready_replicas == Some(ready) && status.available_replicas == Some(ready))
                .then_some(d)
        },
    )
    .await
}
