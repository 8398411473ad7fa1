//! What a user asks for: the `spec` of a ModelDeployment.
//!
//! The doc comments on these fields are the schema's descriptions, so they
//! are what `kubectl explain modeldeployment.spec…` prints: they are written
//! for the platform engineer at the terminal. Validation that the API server
//! can do by itself (ranges, enums, CEL rules) lives here too, so a
//! ModelDeployment that can never work is refused at `kubectl apply`, not
//! discovered later in a condition.

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::accelerator::ACCELERATORS;
use crate::fleet::Cloud;
use crate::model::ModelArch;
use crate::planner::SpotPolicy;
use crate::precision::PrecisionChoice;

use super::status::ModelDeploymentStatus;

/// The weight-store schemes `spec.source` accepts; the fetcher speaks S3 to
/// the first four, the Hugging Face Hub to `hf`, ModelScope's API to
/// `modelscope`, plain ranged GETs to `https` (one file), and `pvc` is
/// mounted as is.
pub const SOURCE_SCHEMES: [&str; 8] = [
    "s3",
    "oss",
    "obs",
    "cos",
    "hf",
    "modelscope",
    "https",
    "pvc",
];

/// The longest ModelDeployment name. The name becomes the Service's name (a
/// DNS-1035 label) and, for multi-node replicas, the LeaderWorkerSet
/// `<name>-group`, whose worker StatefulSets `<name>-group-<i>` label their
/// pods `controller-revision-hash: <statefulset>-<10 characters>`, a label
/// value of at most 63 characters: 40 leaves room for 99 groups.
pub const MAX_NAME_LEN: usize = 40;

/// A model served by vLLM (NVIDIA GPUs) or vllm-ascend (Huawei Ascend NPUs)
/// on the cheapest node pool of this cluster that can hold it. The operator
/// sizes it (precision, tensor and pipeline parallelism, nodes per replica),
/// runs it as a Deployment or a LeaderWorkerSet, and serves an
/// OpenAI-compatible API at `status.endpoint`.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "modelfleet.io",
    version = "v1alpha1",
    kind = "ModelDeployment",
    namespaced,
    shortname = "md",
    category = "modelfleet",
    status = "ModelDeploymentStatus",
    derive = "PartialEq",
    doc = "A large language model served on GPUs or NPUs, sized and placed by modelfleet.",
    scale(spec_replicas_path = ".spec.replicas", status_replicas_path = ".status.replicas"),
    printcolumn(name = "Model", type_ = "string", json_path = ".spec.model"),
    printcolumn(name = "Accelerator", type_ = "string", json_path = ".status.plan.accelerator"),
    printcolumn(
        name = "Devices",
        type_ = "integer",
        json_path = ".status.plan.devicesPerReplica",
        description = "Accelerator devices each replica uses"
    ),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Pool",
        type_ = "string",
        json_path = ".status.plan.pool",
        priority = 1
    ),
    printcolumn(
        name = "Cost/h",
        type_ = "string",
        json_path = ".status.plan.costPerHour",
        priority = 1
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        priority = 1
    ),
    // The API server checks that a custom resource's name is a DNS
    // subdomain (dots allowed, up to 253). Ours also names a Service and pod
    // host names, which are stricter.
    validation = (
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40",
        "name must be at most 40 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit: it names the model's Service and pods"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.architecture) || self.architecture.id == self.model",
    "message": "architecture.id must equal model: model names the architecture described inline",
}]))]
pub struct ModelDeploymentSpec {
    /// The model to serve: a catalog id such as `llama-3.1-70b` (see
    /// `modelfleet catalog`), or the id of the model described in
    /// `architecture`.
    #[schemars(length(min = 1, max = 63))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == '' || self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",
        "message": "model must be a catalog id such as llama-3.1-70b: lowercase letters, digits, '.' and '-'",
    }]))]
    pub model: String,

    /// The architecture of a model the catalog does not know, in the same
    /// fields as a `modelfleet plan --model-file` (its `id` must equal
    /// `model`). Leave it out for catalog models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<ModelArch>,

    /// Where the weights are: `s3://bucket/prefix`, `oss://…` (Alibaba
    /// Cloud), `obs://…` (Huawei Cloud), `cos://…` (Tencent Cloud),
    /// `hf://org/model[@revision]` (Hugging Face Hub),
    /// `modelscope://org/model[@revision]` (ModelScope),
    /// `https://host/path/to/file` (one file from any HTTPS server), or
    /// `pvc://claim/path` for a PersistentVolumeClaim in the same namespace
    /// that already holds them (ReadOnlyMany or ReadWriteMany when replicas
    /// span several nodes or several replicas share it).
    #[schemars(length(max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^(s3|oss|obs|cos|hf|modelscope|https|pvc)://[^/]+')",
        "message": "source must be a URI starting with s3://, oss://, obs://, cos://, hf://, modelscope://, https:// or pvc:// followed by a bucket, repository, host or claim name",
    }]))]
    pub source: String,

    /// A Secret in the same namespace whose keys become environment
    /// variables of the container that fetches the weights, and of no
    /// other container: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
    /// (and `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`) for an
    /// object store, `HF_TOKEN` (and `HF_ENDPOINT`) for Hugging Face,
    /// `MODELSCOPE_API_TOKEN` (and `MODELSCOPE_ENDPOINT`) for ModelScope.
    /// Without one, the fetch uses what its environment gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",
        "message": "sourceSecret must name a Secret: lower-case letters, digits, '-' and '.'",
    }]))]
    pub source_secret: Option<String>,

    /// How the engine serves the model: precision, context length, load.
    #[serde(default)]
    pub serving: Serving,

    /// Copies of the model, each on its own devices. 0 keeps the resource
    /// and its plan but stops serving and frees the devices.
    #[serde(default = "one")]
    pub replicas: u32,

    /// Where the model may run.
    #[serde(default)]
    pub placement: Placement,
}

fn one() -> u32 {
    1
}

/// Engine settings. Everything is optional: the planner picks what fits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    /// Serving engine: `vllm` (NVIDIA GPUs), `vllm-ascend` (Huawei Ascend
    /// NPUs), or `auto` for whichever the chosen accelerator runs.
    #[serde(default)]
    pub runtime: RuntimeChoice,

    /// Weight precision: `auto` (the published precision if it fits and the
    /// hardware runs it, else the next of bf16, fp8, int8, int4), or one of
    /// `bf16`, `fp8`, `int8`, `int4`. int8 and int4 expect `source` to hold
    /// a checkpoint already quantized to that precision.
    #[serde(default)]
    pub precision: PrecisionChoice,

    /// Longest sequence (prompt plus output) in tokens. Default: 8192 or the
    /// model's context, whichever is less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_model_len: Option<u32>,

    /// Sequences of `maxModelLen` tokens that must fit in the KV cache at
    /// once, per replica. Default: 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u32>,

    /// Share of each device's memory the engine may use, above 0.05 and up
    /// to 1.0. Default: 0.90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.05, max = 1.0))]
    pub gpu_memory_utilization: Option<f64>,

    /// Tensor parallel size, overriding the planner's choice. Must divide
    /// the model's attention heads and fit on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tensor_parallel_size: Option<u32>,

    /// Pipeline parallel size (usually the number of nodes per replica),
    /// overriding the planner's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pipeline_parallel_size: Option<u32>,

    /// Arguments appended to `vllm serve` after the ones modelfleet sets,
    /// e.g. `["--enable-prefix-caching"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,

    /// Engine image, replacing modelfleet's pinned vLLM or vllm-ascend image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
}

/// The serving engine a user asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RuntimeChoice {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "vllm")]
    Vllm,
    #[serde(rename = "vllm-ascend")]
    VllmAscend,
}

/// Constraints on placement. Empty lists allow everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Accelerators the model may run on, by catalog id (`h100-80gb`,
    /// `ascend-910b`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "accelerator_ids")]
    pub accelerators: Vec<String>,

    /// Clouds the model may run on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clouds: Vec<Cloud>,

    /// Regions the model may run in (`us-east-1`, `cn-beijing`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,

    /// Run only on this node pool, written `cluster/pool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 127))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "message": "pool must be written cluster/pool, e.g. aws-use1-prod/p5-h100",
    }]))]
    pub pool: Option<String>,

    /// Spot capacity: `never` (default), `allowed` (competes on price) or
    /// `preferred` (ranked ahead of on-demand).
    #[serde(default)]
    #[schemars(schema_with = "spot_policy")]
    pub spot: SpotPolicy,
}

/// The catalog's accelerator ids, so that a typo is refused at apply time.
fn accelerator_ids(_: &mut SchemaGenerator) -> Schema {
    let ids: Vec<&str> = ACCELERATORS.iter().map(|a| a.id).collect();
    json_schema!({
        "type": "array",
        "items": { "type": "string", "enum": ids },
    })
}

/// The planner's `SpotPolicy` written as its serde names; the planner's type
/// is reused so that the two cannot drift apart.
fn spot_policy(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "enum": ["never", "allowed", "preferred"],
        "default": "never",
    })
}
