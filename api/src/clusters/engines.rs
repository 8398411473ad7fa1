//! Where a deployment's engines answer, for the inference gateway: the
//! Ready serving pods (a Deployment's pods, an LWS group's leader) of the
//! deployment, listed through the same tenant-namespace rights as their
//! logs, and each pod's address.
//!
//! In a real cluster the address is the pod's IP (VPC-native CNIs — AWS
//! VPC CNI, Alibaba Cloud Terway, Huawei Cloud Yangtse, Tencent Cloud
//! VPC-CNI — give pods addresses the hub's network reaches). A sandbox
//! cluster's pods have IPs nothing answers on; whoever runs it hands in a
//! resolver from a pod's IP and port to where its simulated engine
//! listens ([`ClusterRegistry::route_engines`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use modelfleet_core::contract::engine::ENGINE_HTTP_PORT;
use modelfleet_core::contract::labels::{DEPLOYMENT_LABEL, ROLE_LABEL, ROLE_SERVER};

use super::{ClusterError, ClusterRegistry, timed};

/// A pod's IP and port to the address its engine answers at.
pub type ResolveEngine = Arc<dyn Fn(&str, u16) -> Option<SocketAddr> + Send + Sync>;

/// One Ready engine of a deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub pod: String,
    pub addr: SocketAddr,
}

impl ClusterRegistry {
    /// Cluster `name`'s engines answer where `resolve` says, not at their
    /// pods' IPs: how `modelfleet serve` hands in its sandbox clusters.
    pub fn route_engines(&self, name: &str, resolve: ResolveEngine) {
        self.engine_routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), resolve);
    }

    /// The Ready serving pods of deployment `name` in `namespace`, with
    /// where each answers.
    pub async fn ready_engines(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<Engine>, ClusterError> {
        let client = self.client(cluster).await?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let selector = format!("{DEPLOYMENT_LABEL}={name},{ROLE_LABEL}={ROLE_SERVER}");
        let listed = timed(
            cluster,
            "listing the deployment's engines",
            pods.list(&ListParams::default().labels(&selector)),
        )
        .await?
        .items;
        let route = self
            .engine_routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
            .cloned();
        let mut engines: Vec<Engine> = listed
            .iter()
            .filter(|pod| is_ready(pod))
            .filter_map(|pod| {
                let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
                let addr = match &route {
                    Some(resolve) => resolve(ip, ENGINE_HTTP_PORT)?,
                    None => SocketAddr::new(ip.parse::<IpAddr>().ok()?, ENGINE_HTTP_PORT),
                };
                Some(Engine {
                    pod: pod.metadata.name.clone()?,
                    addr,
                })
            })
            .collect();
        engines.sort_by(|a, b| a.pod.cmp(&b.pod));
        Ok(engines)
    }
}

/// Running, not being deleted, and its Ready condition true.
fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}
