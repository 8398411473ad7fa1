//! The cluster contract: everything the hub, the operator and the sandbox
//! must agree on about a Kubernetes cluster, in one place, so that a typo
//! fails to compile instead of failing in production.
//!
//! - [`labels`]: `modelfleet.io/` labels, annotations and the finalizer;
//! - [`node_labels`]: the clouds' and device plugins' node labels read by
//!   discovery (and written by the sandbox);
//! - [`devices`]: device resource names per vendor, and which one a pod on
//!   a pool requests;
//! - [`namespace`]: tenant namespaces (`mf-<tenant>`);
//! - [`condition`]: condition types and reasons on a ModelDeployment;
//! - [`fetch`]: the weights' init container and the progress lines it
//!   prints;
//! - [`admission`]: the hub's admission annotations;
//! - [`discovery`]: node pools from a cluster's Nodes and Pods;
//! - [`pool_choice`]: which pool a ModelDeployment lands on;
//! - [`pool_settings`]: a pool's network interface, registry mirror and
//!   image pull Secrets, from its nodes' annotations;
//! - [`tenancy`]: what keeps tenants apart inside one cluster (Pod Security
//!   labels, the operator's RoleBinding, NetworkPolicy, engine API key).
//!
//! Pure like the rest of this crate: functions over k8s-openapi types and
//! plain values; whoever calls them lists the objects.

pub mod admission;
pub mod condition;
pub mod devices;
pub mod discovery;
pub mod engine;
pub mod fetch;
pub mod labels;
pub mod namespace;
pub mod node_labels;
pub mod pool_choice;
pub mod pool_settings;
pub mod tenancy;
