//! The reconcile's `build` step: from a ModelDeployment and the plan chosen
//! for it to the Kubernetes objects that run it. Pure: no client required,
//! no clock, no I/O; the same inputs give the same objects, which the tests
//! pin as golden YAML.
//!
//! `… → choose → build → apply → status`: build returns
//! [`Resources<Built>`]; only the apply step turns them into
//! [`Resources<Applied>`] (what the API server answered), and status is
//! computed from that, so it can never describe objects that were not
//! applied.

mod cache;
mod engine;
mod identity;
mod meta;
mod objects;
mod pod;
pub mod sizing;

use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use modelfleet_core::accelerator::{Accelerator, Runtime};
use modelfleet_core::crd::lws::LeaderWorkerSet;
use modelfleet_core::crd::{ModelDeployment, ModelDeploymentSpec, Serving, SpecError};
use modelfleet_core::fleet::NodePool;
use modelfleet_core::planner::Plan;
use modelfleet_core::precision::Precision;

pub use cache::CacheVolume;
pub use engine::{HTTP_PORT, VLLM_ASCEND_A3_IMAGE, VLLM_ASCEND_IMAGE, VLLM_IMAGE};
pub use meta::GROUP_SUFFIX;

/// Where modelfleet's own image (the init container runs `modelfleet fetch`)
/// is published.
pub const MODELFLEET_IMAGE_REPOSITORY: &str = "ghcr.io/modelfleet/modelfleet";

/// Settings of the operator, not of one ModelDeployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Image of the `fetch-weights` init container.
    pub fetcher_image: String,
    /// Mount the Ascend driver's files from the node into vllm-ascend
    /// containers (`--ascend-host-paths`), for nodes without the Ascend
    /// Docker Runtime. Such pods need a namespace Pod Security allows
    /// host paths in, which tenant namespaces do not.
    pub ascend_host_paths: bool,
    /// Engines require the namespace's API key (set when a hub manages
    /// the cluster: its gateway holds the key).
    pub engine_api_key: bool,
}

impl Default for BuildOptions {
    /// The modelfleet image of this very release.
    fn default() -> Self {
        BuildOptions {
            fetcher_image: format!(
                "{MODELFLEET_IMAGE_REPOSITORY}:v{}",
                env!("CARGO_PKG_VERSION")
            ),
            ascend_host_paths: false,
            engine_api_key: false,
        }
    }
}

/// Why the objects could not be built. Each is a bug in the caller or a
/// spec the planner should already have refused, never a cluster problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(
        "the ModelDeployment has no metadata.{field}; build works on objects read back from the API server"
    )]
    NotStored { field: &'static str },
    #[error("the plan is for pool {plan} but pool {pool} was given")]
    PoolMismatch { plan: String, pool: String },
    #[error("the plan is for accelerator {plan} but {given} was given")]
    AcceleratorMismatch { plan: String, given: String },
    #[error("{runtime} cannot serve {precision} weights")]
    UnsupportedPrecision {
        runtime: Runtime,
        precision: Precision,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl BuildError {
    /// A bounded label for the operator's error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BuildError::NotStored { .. } => "build_not_stored",
            BuildError::PoolMismatch { .. } | BuildError::AcceleratorMismatch { .. } => {
                "build_plan_mismatch"
            }
            BuildError::UnsupportedPrecision { .. } => "build_precision",
            BuildError::Spec(_) => "build_spec",
        }
    }
}

/// The workload kind a plan needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// Each replica on one node.
    Deployment(Box<Deployment>),
    /// Each replica a group of pods on several nodes.
    LeaderWorkerSet(Box<LeaderWorkerSet>),
}

impl Workload {
    /// The kind, for logs and for pruning the other kind after a re-plan
    /// moves a model between one node and several.
    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Deployment(_) => "Deployment",
            Workload::LeaderWorkerSet(_) => "LeaderWorkerSet",
        }
    }

    /// The object's name: the ModelDeployment's for a Deployment,
    /// `<name>-group` for a LeaderWorkerSet.
    pub fn name(&self) -> &str {
        let meta = match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::LeaderWorkerSet(l) => &l.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }
}

/// Stage markers for [`Resources`].
#[derive(Debug)]
pub enum Built {}
#[derive(Debug)]
pub enum Applied {}

/// The objects that run one ModelDeployment, at a stage of the reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources<Stage> {
    pub workload: Workload,
    pub service: Service,
    pub disruption_budget: PodDisruptionBudget,
    /// The node cache's volume and claim, when the pool has a cache and
    /// the pods use it.
    pub model_cache: Option<CacheVolume>,
    /// `http://<service>.<namespace>.svc:8000/v1`.
    pub endpoint: String,
    stage: PhantomData<Stage>,
}

impl Resources<Built> {
    /// The objects as the API server returned them from server-side apply.
    /// Only the apply step calls this.
    pub fn applied(
        self,
        workload: Workload,
        service: Service,
        disruption_budget: PodDisruptionBudget,
    ) -> Resources<Applied> {
        Resources {
            workload,
            service,
            disruption_budget,
            model_cache: self.model_cache,
            endpoint: self.endpoint,
            stage: PhantomData,
        }
    }

    /// Every object, serialized as a multi-document YAML stream, in the
    /// order a person would `kubectl apply` them.
    pub fn to_yaml(&self) -> String {
        let workload = match &self.workload {
            Workload::Deployment(d) => serde_yaml::to_string(d),
            Workload::LeaderWorkerSet(l) => serde_yaml::to_string(l),
        };
        let cache = self.model_cache.iter().flat_map(|c| {
            [
                serde_yaml::to_string(&c.volume),
                serde_yaml::to_string(&c.claim),
            ]
        });
        cache
            .chain([
                workload,
                serde_yaml::to_string(&self.service),
                serde_yaml::to_string(&self.disruption_budget),
            ])
            .map(|doc| doc.expect("Kubernetes objects serialize to YAML"))
            .collect::<Vec<_>>()
            .join("---\n")
    }
}

impl Resources<Applied> {
    /// Replicas the workload counts, ready or not (groups, for a
    /// LeaderWorkerSet).
    pub fn replicas(&self) -> u32 {
        let replicas = match &self.workload {
            Workload::Deployment(d) => d.status.as_ref().and_then(|s| s.replicas),
            Workload::LeaderWorkerSet(l) => l.status.as_ref().and_then(|s| s.replicas),
        };
        replicas.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
    }

    /// Replicas the workload reports as ready (groups, for a LeaderWorkerSet).
    pub fn ready_replicas(&self) -> u32 {
        let ready = match &self.workload {
            Workload::Deployment(d) => d.status.as_ref().and_then(|s| s.ready_replicas),
            Workload::LeaderWorkerSet(l) => l.status.as_ref().and_then(|s| s.ready_replicas),
        };
        ready.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
    }
}

/// Builds the objects for `md` running `plan` on `pool` of `accelerator`.
pub fn build(
    md: &ModelDeployment,
    plan: &Plan,
    pool: &NodePool,
    accelerator: &Accelerator,
    options: &BuildOptions,
) -> Result<Resources<Built>, BuildError> {
    if plan.pool != pool.reference() {
        return Err(BuildError::PoolMismatch {
            plan: plan.pool.to_string(),
            pool: pool.reference().to_string(),
        });
    }
    if plan.accelerator != accelerator.id || pool.accelerator != accelerator.id {
        return Err(BuildError::AcceleratorMismatch {
            plan: plan.accelerator.clone(),
            given: accelerator.id.to_owned(),
        });
    }
    // Every field is named, so a new one fails to compile here until the
    // build decides what it means for the objects.
    let ModelDeploymentSpec {
        model,
        architecture: _, // sized by the planner; the engine reads config.json
        source: _,       // parsed and checked with its Secret below
        source_secret,
        serving,
        replicas,
        placement: _, // decided the pool, which is given
    } = &md.spec;
    let Serving {
        runtime: _, // the plan's runtime is the accelerator's
        precision: _,
        max_model_len: _,
        concurrency: _,
        gpu_memory_utilization: _,
        tensor_parallel_size: _,
        pipeline_parallel_size: _, // all five as planned, read from `plan`
        extra_args,
        image,
    } = serving;

    let source = md.spec.model_source()?;
    let owner = meta::Owner::of(md, &plan.runtime.to_string())?;
    let multi_node = plan.nodes_per_replica > 1;
    let pod = pod::PodInputs {
        owner: &owner,
        plan,
        pool,
        accelerator,
        image: engine::image(image.as_deref(), accelerator),
        serve_args: engine::serve_args(model, plan, multi_node, extra_args)?,
        source,
        source_secret: source_secret.as_deref(),
        fetcher_image: &options.fetcher_image,
        ascend_host_paths: options.ascend_host_paths,
        engine_api_key: options.engine_api_key,
    };
    let replicas = i32::try_from(*replicas).unwrap_or(i32::MAX);
    let workload = if multi_node {
        let size = i32::try_from(plan.nodes_per_replica).unwrap_or(i32::MAX);
        Workload::LeaderWorkerSet(Box::new(objects::leader_worker_set(
            &owner, &pod, replicas, size,
        )))
    } else {
        Workload::Deployment(Box::new(objects::deployment(&owner, &pod, replicas)))
    };
    let model_cache =
        pod::cache_of(&pod).map(|cache| cache::cache_volume(&owner.namespace, pool, cache));
    Ok(Resources {
        workload,
        service: objects::service(&owner),
        disruption_budget: objects::disruption_budget(&owner),
        model_cache,
        endpoint: owner.endpoint(),
        stage: PhantomData,
    })
}

#[cfg(test)]
mod tests;
