//! modelfleet's domain, with no I/O: the model and accelerator catalogs,
//! node pools and fleets, exact money, the sizing planner, and the cluster
//! contract (`contract`: what the hub, the operator and the sandbox agree on
//! about a cluster, pool discovery and pool choice among it).
//!
//! Everything above this crate (the operator, the hub, the console, the CLI)
//! may depend on it; it depends on nothing that talks to the network, a disk
//! or a clock, so every function here can be tested with plain values.

pub mod accelerator;
pub mod audit;
pub mod billing;
pub mod checkpoint;
pub mod contract;
pub mod crd;
pub mod fleet;
pub mod model;
pub mod money;
pub mod planner;
pub mod precision;
pub mod quota;

pub use accelerator::Accelerator;
pub use fleet::{Fleet, NodePool};
pub use model::ModelArch;
pub use money::{Currency, Money};
pub use precision::{Precision, PrecisionChoice};
