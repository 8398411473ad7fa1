//! Label, annotation and finalizer names under `modelfleet.io/`, by who
//! writes them and who reads them.

// --- On nodes: what a platform engineer sets where discovery cannot infer
// it. Discovery reads them; the sandbox writes them on its nodes.

/// Groups nodes into a pool, overriding the cloud's node-group label.
pub const POOL_LABEL: &str = "modelfleet.io/pool";
/// A catalog accelerator id, for devices whose product labels are
/// ambiguous (`module-910b-8` is both the 910B and the 910B4).
pub const ACCELERATOR_LABEL: &str = "modelfleet.io/accelerator";
/// `aws`, `aliyun`, `tencentcloud`, `huaweicloud` or `generic`.
pub const CLOUD_LABEL: &str = "modelfleet.io/cloud";
/// `spot` for reclaimable capacity where the cloud's own label is missing.
pub const CAPACITY_TYPE_LABEL: &str = "modelfleet.io/capacity-type";
/// The price of one device-hour on the node, written like `6.88 USD`.
pub const PRICE_ANNOTATION: &str = "modelfleet.io/price-per-device-hour";

// --- On the objects the operator builds for a ModelDeployment. The hub
// watches pods by the deployment label; the gateway finds servers by role.

/// The ModelDeployment an object belongs to; also the pods' selector.
pub const DEPLOYMENT_LABEL: &str = "modelfleet.io/deployment";
/// The model id served.
pub const MODEL_LABEL: &str = "modelfleet.io/model";
/// [`ROLE_SERVER`] for pods that answer HTTP (a Deployment's pods, an LWS
/// group's leader), [`ROLE_WORKER`] for the other pods of a multi-node group.
pub const ROLE_LABEL: &str = "modelfleet.io/role";
pub const ROLE_SERVER: &str = "server";
pub const ROLE_WORKER: &str = "worker";
/// The size of the model's weights in bytes, on a pod; the sandbox's
/// kubelet grows fetch and load times with it. The operator writes the
/// plan's figure on every pod it builds.
pub const MODEL_BYTES_ANNOTATION: &str = "modelfleet.io/model-bytes";

/// The operator's finalizer on a ModelDeployment: it blocks deletion until
/// the workload and its pods are gone.
pub const FINALIZER: &str = "modelfleet.io/cleanup";

// --- Written by the hub on a tenant's namespace and ModelDeployments.

/// Names the tenant on its namespace and its ModelDeployments; cluster sync
/// maps namespaces back to tenants by it.
pub const TENANT_LABEL: &str = "modelfleet.io/tenant";
/// The hub's id of a deployment, on its ModelDeployment.
pub const DEPLOYMENT_ID_LABEL: &str = "modelfleet.io/deployment-id";
