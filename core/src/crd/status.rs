//! What the operator reports: the `status` of a ModelDeployment.
//!
//! Only the operator writes it (through the status subresource). Conditions
//! follow Kubernetes' own shape (`metav1.Condition`) so that `kubectl wait
//! --for=condition=Ready md/NAME` and every dashboard that reads conditions
//! work unchanged. Their types and reasons are part of the cluster
//! contract: [`crate::contract::condition`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::planner::Plan;
use crate::precision::Precision;

/// The observed state, written by the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// The `metadata.generation` this status describes; older than the
    /// current generation while a spec change is being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Planned, WorkloadReady and Ready, each True, False or Unknown with a
    /// reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The plan the workload runs, as the planner chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanStatus>,

    /// Replicas that exist (ready or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,

    /// Replicas that answer requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<u32>,

    /// In-cluster URL of the OpenAI-compatible API, e.g.
    /// `http://llama-70b.team-a.svc:8000/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// The replicas' pods still downloading their weights, with bytes done
    /// and in all, as their fetch container last printed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pod"]))]
    pub fetching: Vec<PodFetch>,

    /// Where each started pod's weights came from: downloaded, the node's
    /// cache, or its own volume (a restarted pod), as its fetch container
    /// said when it finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pod"]))]
    pub weights: Vec<PodWeights>,
}

/// Where one pod's weights came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodWeights {
    pub pod: String,
    pub from: WeightsFrom,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WeightsFrom {
    /// Downloaded from the source.
    Download,
    /// The node's model cache held them.
    NodeCache,
    /// The pod's own volume held them (its fetch ran again).
    PodVolume,
}

/// One pod's download of the weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFetch {
    pub pod: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

impl PodFetch {
    /// `1.20 of 4.00 GiB` summed over `pods`, for messages.
    pub fn summary(pods: &[PodFetch]) -> Option<String> {
        if pods.is_empty() {
            return None;
        }
        let gib = |b: u64| b as f64 / (1024.0 * 1024.0 * 1024.0);
        let done: u64 = pods.iter().map(|p| p.bytes_done).sum();
        let total: u64 = pods.iter().map(|p| p.bytes_total).sum();
        Some(format!(
            "{:.2} of {:.2} GiB of weights fetched by {} pod{}",
            gib(done),
            gib(total),
            pods.len(),
            if pods.len() == 1 { "" } else { "s" }
        ))
    }
}

/// Where the deployment is in its life, as `kubectl get md` shows it:
/// Pending, Planning, Scheduling, Loading, Ready, Degraded, Failed or
/// Terminating — and, in the hub only, Deleting. One enum end to end: the
/// operator reports it, the hub stores it (a CHECK constraint allows these
/// names and no others), the API and the console show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted; the operator has not looked at it yet.
    Pending,
    /// The planner is sizing it against the cluster's node pools.
    Planning,
    /// Planned; waiting for pods to be scheduled onto the chosen pool.
    Scheduling,
    /// Pods are placed; weights are being fetched and loaded.
    Loading,
    /// Every replica answers requests.
    Ready,
    /// Some replicas answer, others do not.
    Degraded,
    /// It cannot run as asked (no plan fits, or the workload keeps failing).
    Failed,
    /// Being deleted; owned objects are being cleaned up.
    Terminating,
    /// The hub's own phase, never an operator's (so not in the CRD's
    /// schema): released by the hub, whose quota is free again, while its
    /// cluster removes it.
    #[schemars(skip)]
    Deleting,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Planning,
        Phase::Scheduling,
        Phase::Loading,
        Phase::Ready,
        Phase::Degraded,
        Phase::Failed,
        Phase::Terminating,
    ];

    /// The name it is written with everywhere (YAML, the database, JSON),
    /// also the bounded label of the operator's `deployments by phase`
    /// metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Planning => "Planning",
            Phase::Scheduling => "Scheduling",
            Phase::Loading => "Loading",
            Phase::Ready => "Ready",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Terminating => "Terminating",
            Phase::Deleting => "Deleting",
        }
    }

    /// The phase named `name` (as [`Phase::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL
            .into_iter()
            .chain([Phase::Deleting])
            .find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The chosen plan, in the words `kubectl get md -o yaml` readers use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStatus {
    /// The node pool, as `cluster/pool`.
    pub pool: String,
    /// Accelerator catalog id.
    pub accelerator: String,
    /// Weight precision the engine serves in.
    pub precision: Precision,
    /// Devices each layer is split across (`--tensor-parallel-size`).
    pub tensor_parallel: u32,
    /// Pipeline stages (`--pipeline-parallel-size`).
    pub pipeline_parallel: u32,
    /// Devices one replica uses.
    pub devices_per_replica: u32,
    /// Nodes one replica spans; more than one runs as a LeaderWorkerSet.
    pub nodes_per_replica: u32,
    /// Longest sequence served (`--max-model-len`).
    pub max_model_len: u32,
    /// Tokens the KV cache of one replica holds.
    pub kv_cache_tokens: u64,
    /// All replicas together, e.g. `27.52 USD`; absent for unpriced pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_hour: Option<String>,
}

impl From<&Plan> for PlanStatus {
    fn from(plan: &Plan) -> Self {
        PlanStatus {
            pool: plan.pool.to_string(),
            accelerator: plan.accelerator.clone(),
            precision: plan.precision,
            tensor_parallel: plan.tensor_parallel,
            pipeline_parallel: plan.pipeline_parallel,
            devices_per_replica: plan.devices_per_replica,
            nodes_per_replica: plan.nodes_per_replica,
            max_model_len: plan.max_model_len,
            kv_cache_tokens: plan.kv_cache_tokens,
            cost_per_hour: plan.cost_per_hour.map(|c| c.to_string()),
        }
    }
}
