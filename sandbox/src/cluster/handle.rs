//! Starting a simulated cluster, and the handle tests hold: fault
//! injection, the simulated engines' addresses, and shutdown.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, NodeCondition, Pod, Taint};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use modelfleet_core::fleet::Fleet;
use serde_json::json;
use tokio::task::JoinHandle;

use super::common::{Backoff, api_code, now, time};
use super::kubelet::{KubeletHandle, NotRunning};
use super::{ClusterOptions, deployment, kubelet, lws, nodes, scheduler, volumes};
use crate::engine::EngineAddresses;

const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("creating namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("installing the LeaderWorkerSet CRD: {0}")]
    Crd(#[source] kube::Error),
    #[error("creating node {node}: {source}")]
    Node {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating reserved pod {pod}: {source}")]
    ReservedPod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("changing the readiness of node {node}: {source}")]
    NodeFault {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    NotRunning(#[from] NotRunning),
}

impl ClusterError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            ClusterError::Namespace { .. } => "namespace",
            ClusterError::Crd(_) => "crd",
            ClusterError::Node { .. } => "node",
            ClusterError::ReservedPod { .. } => "reserved_pod",
            ClusterError::NodeFault { .. } => "node_fault",
            ClusterError::NotRunning(_) => "not_running",
        }
    }
}

/// A running simulated cluster. Dropping it stops its tasks too.
pub struct ClusterHandle {
    client: Client,
    kubelet: KubeletHandle,
    engines: EngineAddresses,
    nodes: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
    /// Held while the cluster runs (a loopback block is this process's).
    _pod_network: super::PodNetwork,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHandle")
            .field("nodes", &self.nodes.len())
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

/// Retries `call` with back-off on errors other than those `done` accepts,
/// so start-up survives an API server that fails some writes.
async fn retry<T>(
    mut call: impl AsyncFnMut() -> Result<T, kube::Error>,
    done: impl Fn(&kube::Error) -> bool,
) -> Result<Option<T>, kube::Error> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut attempts = 0;
    loop {
        match call().await {
            Ok(value) => return Ok(Some(value)),
            Err(e) if done(&e) => return Ok(None),
            Err(e) if attempts >= 8 => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "simulated cluster start-up retries");
                attempts += 1;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

fn exists(e: &kube::Error) -> bool {
    api_code(e) == Some(409)
}

pub(super) async fn start(
    client: Client,
    fleet: &Fleet,
    options: ClusterOptions,
) -> Result<ClusterHandle, ClusterError> {
    let ClusterOptions {
        timings,
        reserved_namespace,
        install_lws_crd,
        pod_logs,
        real_fetch,
        scoring,
        simulated_engines,
        pod_network,
    } = options;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(reserved_namespace.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    retry(
        async || namespaces.create(&PostParams::default(), &namespace).await,
        exists,
    )
    .await
    .map_err(|source| ClusterError::Namespace {
        namespace: reserved_namespace.clone(),
        source,
    })?;
    if install_lws_crd {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd = lws::crd::leaderworkerset_crd();
        retry(
            async || crds.create(&PostParams::default(), &crd).await,
            exists,
        )
        .await
        .map_err(ClusterError::Crd)?;
    }
    let built = nodes::fleet_nodes_on(fleet, &reserved_namespace, now(), &pod_network);
    let node_api: Api<Node> = Api::all(client.clone());
    for node in &built.nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let created = retry(
            async || node_api.create(&PostParams::default(), node).await,
            exists,
        )
        .await
        .map_err(|source| ClusterError::Node {
            node: name.clone(),
            source,
        })?;
        if created.is_some() {
            // A kubelet registers its node with status, but an API server
            // may drop status on create as it does for other resources
            // with a status subresource: write it through /status too.
            let patch = json!({"status": node.status});
            retry(
                async || {
                    node_api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                },
                |_| false,
            )
            .await
            .map_err(|source| ClusterError::Node {
                node: name.clone(),
                source,
            })?;
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &reserved_namespace);
    for pod in &built.reserved {
        retry(
            async || pods.create(&PostParams::default(), pod).await,
            exists,
        )
        .await
        .map_err(|source| ClusterError::ReservedPod {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
    }
    let (kubelet, kubelet_task) = kubelet::kubelet(
        client.clone(),
        timings.clone(),
        pod_logs,
        real_fetch,
        simulated_engines,
    );
    let engines = kubelet.engines();
    let tasks = vec![
        tokio::spawn(scheduler::run(client.clone(), scoring)),
        tokio::spawn(kubelet_task),
        tokio::spawn(deployment::run(client.clone(), timings.time_factor)),
        tokio::spawn(lws::run(client.clone())),
        tokio::spawn(volumes::run(client.clone())),
    ];
    Ok(ClusterHandle {
        client,
        kubelet,
        engines,
        nodes: built
            .nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect(),
        tasks,
        _pod_network: pod_network,
    })
}

impl ClusterHandle {
    /// The names of the nodes this cluster created, in fleet order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The node's kubelet stops reporting ready, as one whose container
    /// runtime died: `Ready=False` and the `not-ready` taints the node
    /// lifecycle controller adds. Its pods stop being ready, and after the
    /// grace period (`Timings::node_lost_grace`) fail with `NodeLost`.
    pub async fn node_not_ready(&self, name: &str) -> Result<(), ClusterError> {
        self.set_node_ready(name, false).await
    }

    /// Undoes `node_not_ready`. Pods already failed stay failed.
    pub async fn node_ready(&self, name: &str) -> Result<(), ClusterError> {
        self.set_node_ready(name, true).await
    }

    async fn set_node_ready(&self, name: &str, ready: bool) -> Result<(), ClusterError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let fault = |source| ClusterError::NodeFault {
            node: name.to_owned(),
            source,
        };
        let node = retry(async || api.get(name).await, |_| false)
            .await
            .map_err(fault)?
            .unwrap_or_default();
        let mut taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.key != NOT_READY_TAINT)
            .collect();
        if !ready {
            for effect in ["NoSchedule", "NoExecute"] {
                taints.push(Taint {
                    key: NOT_READY_TAINT.to_owned(),
                    value: None,
                    effect: effect.to_owned(),
                    time_added: Some(time(now())),
                });
            }
        }
        let mut conditions: Vec<NodeCondition> = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for c in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
            let (status, reason, message) = if ready {
                ("True", "KubeletReady", "kubelet is posting ready status")
            } else {
                ("False", "KubeletNotReady", "container runtime is down")
            };
            if c.status != status {
                c.last_transition_time = Some(time(now()));
            }
            c.status = status.to_owned();
            c.reason = Some(reason.to_owned());
            c.message = Some(message.to_owned());
            c.last_heartbeat_time = Some(time(now()));
        }
        // Status first: a pod scheduled between the two writes would land
        // on a node that is already not ready, which the scheduler refuses.
        let status = json!({"status": {"conditions": conditions}});
        retry(
            async || {
                api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
            },
            |_| false,
        )
        .await
        .map_err(fault)?;
        let spec = json!({"spec": {"taints": taints}});
        retry(
            async || {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&spec))
                    .await
            },
            |_| false,
        )
        .await
        .map_err(fault)?;
        Ok(())
    }

    /// Crashes the main container of a running pod (exit code 1). It
    /// restarts after a crash-loop back-off, or with `restartPolicy: Never`
    /// the pod fails.
    pub fn fail_pod(&self, namespace: &str, name: &str) -> Result<(), ClusterError> {
        Ok(self.kubelet.fail_pod(namespace, name)?)
    }

    /// Where the simulated engines of this cluster's pods listen: a pod's
    /// `status.podIP` and the engine's port (8000, the `http` port the
    /// operator's pods name) resolve to a loopback address while the
    /// pod's serving container is ready. This is the sandbox cluster's
    /// address for its engines: a gateway connects where
    /// [`EngineAddresses::resolve`] says, where in a real cluster it would
    /// connect to the pod address itself. Cheap to clone; clones follow
    /// the engines as pods come and go.
    pub fn engine_addresses(&self) -> EngineAddresses {
        self.engines.clone()
    }

    /// Stops the scheduler, kubelet, controllers and simulated engines.
    /// What they created stays in the API server.
    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.engines.stop_all();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.engines.stop_all();
    }
}
