//! The simulated cluster behind the sandbox API: nodes from a fleet, a
//! scheduler, a kubelet for every node, and the Deployment and
//! LeaderWorkerSet controllers.
//!
//! Every part is an API client, as real Kubernetes components are: it
//! acts on the cluster only through a `kube::Client` (watch, list, create,
//! patch, delete), never by reaching into the API server's store. That
//! keeps the API server honest, and would let these parts run against any
//! API server. Each part splits into a pure decision over k8s-openapi
//! types, unit-tested, and a thin loop that applies it:
//!
//! | part | decision (pure) | loop |
//! | --- | --- | --- |
//! | nodes | `nodes::fleet_nodes` | `SimulatedCluster::start` |
//! | scheduler | `scheduler::filter::schedule` | `scheduler::run` |
//! | kubelet | `kubelet::runtime`, `kubelet::status` | `kubelet::kubelet` |
//! | Deployment controller | `deployment::rollout::plan` | `deployment::run` |
//! | LeaderWorkerSet controller | `lws::groups::plan` | `lws::run` |
//! | PersistentVolume binding | `volumes::bind` | `volumes::run` |
//! | simulated engines | `kubelet::engines::wanted` | `kubelet::kubelet` |
//!
//! The loops are kube-runtime watchers and controllers: a dropped watch is
//! re-established with back-off, a failed write is retried with back-off,
//! so the cluster converges through an API server that injects faults.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), modelfleet_sandbox::cluster::ClusterError> {
//! use modelfleet_core::Fleet;
//! use modelfleet_sandbox::cluster::{ClusterOptions, SimulatedCluster};
//!
//! let options = ClusterOptions::default().time_factor(0.001);
//! let cluster = SimulatedCluster::start(client, &Fleet::example(), options).await?;
//! cluster.node_not_ready("p5-h100-1").await?;
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! What is simpler than real Kubernetes is said where it is simplified:
//! no ReplicaSet objects (pods carry `pod-template-hash` and are owned by
//! the Deployment), no StatefulSets under LeaderWorkerSets, no node
//! heartbeats or leases, no preemption, no images, and of volumes only
//! claims bound to volumes made for them (`volumes`). Containers
//! print only what the sandbox knows of them (see `kubelet::output`).

pub mod common;
pub mod deployment;
pub mod events;
pub mod kubelet;
pub mod lws;
pub mod nodes;
pub mod pod_network;
pub mod resources;
pub mod scheduler;
pub mod volumes;

#[cfg(test)]
mod fixtures;

mod handle;

pub use handle::{ClusterError, ClusterHandle};
pub use kubelet::real_fetch::RealFetch;
pub use kubelet::runtime::Timings;
pub use pod_network::PodNetwork;
pub use scheduler::filter::Scoring;

use kube::Client;

use crate::logs::PodLogs;
use modelfleet_core::fleet::Fleet;

/// How a simulated cluster behaves.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How long things take on the nodes; `timings.time_factor` scales them
    /// all (1.0 is real time; tests use about 0.001).
    pub timings: Timings,
    /// Where the pods that hold a fleet's busy devices live.
    pub reserved_namespace: String,
    /// Create the LeaderWorkerSet CRD if the API server has none, as
    /// installing LWS would.
    pub install_lws_crd: bool,
    /// Where the kubelet writes what containers print: the API server's
    /// ([`ApiServer::pod_logs`](crate::ApiServer::pod_logs)), so that
    /// `kubectl logs` shows it. By default a store of its own, which no
    /// API server reads.
    pub pod_logs: PodLogs,
    /// Run modelfleet's own fetch init containers for real (see
    /// `kubelet::real_fetch`); simulated, as every other container, when
    /// `None`.
    pub real_fetch: Option<RealFetch>,
    /// How the scheduler ranks nodes. By default the bin-packing profile
    /// GPU platforms configure, so that replicas fill partly used nodes
    /// and whole nodes stay free for large ones; an unconfigured
    /// kube-scheduler spreads (`Scoring::LeastAllocated`).
    pub scoring: Scoring,
    /// Serving (`vllm serve`) containers run a simulated vLLM engine once
    /// ready, reached through
    /// [`ClusterHandle::engine_addresses`]. On by default.
    pub simulated_engines: bool,
    /// Where pods get their addresses ([`PodNetwork`]): by default as in a
    /// real cluster, where only [`ClusterHandle::engine_addresses`] finds
    /// the engines; on loopback, where any process of this machine does.
    pub pod_network: PodNetwork,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            timings: Timings::default(),
            reserved_namespace: "kube-system".to_owned(),
            install_lws_crd: true,
            pod_logs: PodLogs::default(),
            real_fetch: None,
            scoring: Scoring::BinPackDevices,
            simulated_engines: true,
            pod_network: PodNetwork::default(),
        }
    }
}

impl ClusterOptions {
    pub fn time_factor(mut self, factor: f64) -> Self {
        self.timings.time_factor = factor;
        self
    }

    /// Containers' output goes to `logs` (an API server's, for `pods/log`).
    pub fn pod_logs(mut self, logs: PodLogs) -> Self {
        self.pod_logs = logs;
        self
    }
}

/// Starts simulated clusters.
#[derive(Debug)]
pub struct SimulatedCluster;

impl SimulatedCluster {
    /// Creates the fleet's nodes (and the pods that hold its busy devices)
    /// through `client`, then starts the scheduler, the kubelet and the
    /// controllers as tokio tasks. Nodes and pods that already exist are
    /// left as they are, so a cluster can be restarted against the same
    /// API server.
    pub async fn start(
        client: Client,
        fleet: &Fleet,
        options: ClusterOptions,
    ) -> Result<ClusterHandle, ClusterError> {
        handle::start(client, fleet, options).await
    }
}
