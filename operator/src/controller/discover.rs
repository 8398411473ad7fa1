//! The `discover` step: from the cluster's Nodes and Pods to the pools a
//! deployment is planned against ([`modelfleet_core::contract::discovery`]),
//! and its own pods, whose state the status step reports. Pure: no client
//! required.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use modelfleet_core::contract::discovery;
use modelfleet_core::contract::labels::DEPLOYMENT_LABEL;
use modelfleet_core::fleet::Fleet;

use super::fetch::Snapshot;

/// What one deployment sees of its cluster.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The cluster's pools, with the devices of the deployment's own pods
    /// counted as free, so that a model never competes with itself.
    pub fleet: Fleet,
    /// The deployment's own pods.
    pub own_pods: Vec<Pod>,
}

/// The pools of `cluster` as deployment `name` in `namespace` sees them.
pub fn discover(cluster: &str, namespace: &str, name: &str, snapshot: &Snapshot) -> Seen {
    let (nodes, pods) = snapshot;
    let (own, others): (Vec<&Arc<Pod>>, Vec<&Arc<Pod>>) = pods.iter().partition(|p| {
        p.namespace().as_deref() == Some(namespace)
            && p.labels().get(DEPLOYMENT_LABEL).map(String::as_str) == Some(name)
    });
    let others: Vec<&Pod> = others.into_iter().map(Arc::as_ref).collect();
    Seen {
        fleet: discovery::discover(cluster, nodes, &others).fleet,
        // Only this deployment's own few pods are copied.
        own_pods: own.into_iter().map(|p| Pod::clone(p)).collect(),
    }
}
