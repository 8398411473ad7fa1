//! An in-process emulation of the part of the Kubernetes API that modelfleet
//! and `kubectl` use, with simulated GPU and NPU node pools, a scheduler and a
//! kubelet. It is the embedded default cluster of `modelfleet serve` and the
//! harness for end-to-end tests; it is not a Kubernetes distribution.
//!
//! - [`api`]: the API server ([`ApiServer`]), reachable in process through
//!   a `kube::Client` and over HTTP on a loopback port for `kubectl`.
//! - [`cluster`]: the simulated cluster behind it (nodes, scheduler,
//!   kubelet, workload controllers), acting only through a `kube::Client`.
//! - [`logs`]: what containers print, written by the kubelet and served
//!   as `pods/{name}/log`.
//! - [`engine`]: the simulated vLLM engine each serving pod runs, on a
//!   loopback port its pod address resolves to.
//! - [`install`]: `kubectl apply --server-side -f` of a manifest, in
//!   process (the RBAC a real cluster would have before modelfleet runs).

pub mod api;
pub mod cluster;
pub mod engine;
pub mod install;
pub mod logs;

pub use api::{
    ApiServer, ApiServerOptions, Faults, ServingHandle, SnapshotError, SnapshotKeeper, Verb,
};
