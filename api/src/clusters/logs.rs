//! Replicas' logs for the console and the API: the hub reads them through
//! a RoleBinding it gives itself in each tenant namespace (ClusterRole
//! `modelfleet-hub-tenant-logs`, `pods/log` `get`; `credentials.rs` binds
//! it), and nowhere else.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use super::{ClusterError, ClusterRegistry, timed};

/// The most pods of one deployment whose logs are read at once.
pub const LOG_PODS: usize = 16;
/// The most bytes read of one container's log.
pub const LOG_BYTES: i64 = 16 * 1024;

/// One replica's pod and the last lines of its containers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodLogs {
    pub pod: String,
    /// The node it runs on, once scheduled.
    pub node: Option<String>,
    /// `Pending`, `Running`, …
    pub phase: Option<String>,
    pub containers: Vec<ContainerLog>,
}

/// The last lines one container printed, or why they cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLog {
    pub container: String,
    pub lines: Vec<String>,
    /// Why there are no lines: the container has not started, or the
    /// cluster refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl ClusterRegistry {
    /// The last `lines` lines of each container (the weights' fetch, then
    /// the engine) of deployment `name`'s pods in `namespace`, at most
    /// [`LOG_PODS`] pods by name, [`LOG_BYTES`] per container.
    pub async fn replica_logs(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
        lines: i64,
    ) -> Result<Vec<PodLogs>, ClusterError> {
        let client = self.client(cluster).await?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let selector = format!(
            "{}={name}",
            modelfleet_core::contract::labels::DEPLOYMENT_LABEL
        );
        let mut listed = timed(
            cluster,
            "listing the deployment's pods",
            pods.list(&ListParams::default().labels(&selector)),
        )
        .await?
        .items;
        listed.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        listed.truncate(LOG_PODS);
        let reads = listed.iter().map(|pod| {
            let pods = &pods;
            async move {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let spec = pod.spec.clone().unwrap_or_default();
                let names: Vec<String> = spec
                    .init_containers
                    .iter()
                    .flatten()
                    .chain(&spec.containers)
                    .map(|c| c.name.clone())
                    .collect();
                let mut containers = Vec::new();
                for container in names {
                    let params = LogParams {
                        container: Some(container.clone()),
                        tail_lines: Some(lines),
                        limit_bytes: Some(LOG_BYTES),
                        ..LogParams::default()
                    };
                    let read = timed(
                        cluster,
                        "reading a pod's log",
                        pods.logs(&pod_name, &params),
                    );
                    containers.push(match read.await {
                        Ok(text) => ContainerLog {
                            container,
                            lines: text.lines().map(str::to_owned).collect(),
                            unavailable: None,
                        },
                        Err(error) => ContainerLog {
                            container,
                            lines: Vec::new(),
                            unavailable: Some(log_refusal(&error)),
                        },
                    });
                }
                PodLogs {
                    pod: pod_name,
                    node: spec.node_name,
                    phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
                    containers,
                }
            }
        });
        Ok(futures::future::join_all(reads).await)
    }
}

/// Why a log cannot be read, in the API server's words where it gave some
/// (`container "engine" in pod "…" is waiting to start: PodInitializing`).
fn log_refusal(error: &ClusterError) -> String {
    match error {
        ClusterError::Kube {
            source: kube::Error::Api(status),
            ..
        } if status.code == 403 => {
            "the hub may not read logs here yet (its cluster role predates it: apply \
             manifests/hub-member/ again)"
                .to_owned()
        }
        ClusterError::Kube {
            source: kube::Error::Api(status),
            ..
        } => status.message.clone(),
        other => other.to_string(),
    }
}
