//! The in-cluster controller that reconciles `ModelDeployment` resources into
//! GPU and NPU workloads (Deployments or LeaderWorkerSets, Services,
//! PodDisruptionBudgets) and reports their status.
//!
//! It may talk to the Kubernetes API through a `kube::Client`; it may not talk
//! to the database. What it shares with the hub and the sandbox (labels,
//! device resources, pool discovery, which pool a deployment lands on) is
//! the cluster contract in `modelfleet_core::contract`.

pub mod build;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod probes;
pub mod runner;
