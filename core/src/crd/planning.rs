//! From a ModelDeployment's spec to the planner's inputs.
//!
//! The API server's schema already refuses most impossible specs; what it
//! cannot know (is the model in the catalog, does an inline architecture add
//! up, do the runtime and the accelerators agree) is checked here, with an
//! error that says what to change. The operator and the hub both call this,
//! so a spec means the same thing wherever it is planned.

use std::fmt;

use crate::accelerator::{ACCELERATORS, Accelerator, Runtime};
use crate::fleet::Fleet;
use crate::model::{ModelArch, ModelError};
use crate::planner::{
    Constraints, DEFAULT_CONCURRENCY, MemoryUtilization, PlanReport, RequestError, ServingRequest,
    plan,
};

use super::spec::{ModelDeploymentSpec, RuntimeChoice};

/// A spec that cannot be planned whatever the fleet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.model: {0}")]
    Model(#[source] ModelError),
    #[error(
        "spec.architecture.id {architecture:?} must equal spec.model {model:?}: model names the architecture described inline"
    )]
    ArchitectureIdMismatch { model: String, architecture: String },
    #[error("spec.serving.gpuMemoryUtilization: {0}")]
    GpuMemoryUtilization(String),
    #[error(
        "spec.serving.runtime {runtime} runs on none of spec.placement.accelerators ({accelerators}); allow a {runtime} accelerator or set runtime to auto"
    )]
    RuntimeExcludesAccelerators {
        runtime: &'static str,
        accelerators: String,
    },
    #[error(
        "spec.source {0:?} must start with s3://, oss://, obs://, cos://, hf:// or pvc:// followed by a bucket, repository or claim name"
    )]
    Source(String),
    #[error("spec.sourceSecret: {0}")]
    SourceSecret(String),
}

impl SpecError {
    /// A bounded label for metrics and event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SpecError::Model(_) => "model",
            SpecError::ArchitectureIdMismatch { .. } => "architecture_id",
            SpecError::GpuMemoryUtilization(_) => "gpu_memory_utilization",
            SpecError::RuntimeExcludesAccelerators { .. } => "runtime_accelerators",
            SpecError::Source(_) => "source",
            SpecError::SourceSecret(_) => "source_secret",
        }
    }
}

/// Everything the planner needs, resolved from a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerInputs {
    pub model: ModelArch,
    pub request: ServingRequest,
    pub constraints: Constraints,
}

impl PlannerInputs {
    /// Plans on `fleet`. A pure function of the spec and the fleet.
    pub fn plan(&self, fleet: &Fleet) -> Result<PlanReport, RequestError> {
        plan(&self.model, &self.request, fleet, &self.constraints)
    }
}

impl ModelDeploymentSpec {
    /// The model, the request and the constraints, checked together.
    pub fn planner_inputs(&self) -> Result<PlannerInputs, SpecError> {
        self.model_source()?;
        Ok(PlannerInputs {
            model: self.resolve_model()?,
            request: self.serving_request()?,
            constraints: self.constraints()?,
        })
    }

    /// The inline architecture if there is one (validated), else the
    /// catalog model named by `model`.
    pub fn resolve_model(&self) -> Result<ModelArch, SpecError> {
        match &self.architecture {
            Some(arch) => {
                if arch.id != self.model {
                    return Err(SpecError::ArchitectureIdMismatch {
                        model: self.model.clone(),
                        architecture: arch.id.clone(),
                    });
                }
                arch.validate().map_err(SpecError::Model)?;
                Ok(arch.clone())
            }
            None => ModelArch::find(&self.model)
                .cloned()
                .map_err(SpecError::Model),
        }
    }

    /// What the deployment must serve. A deployment scaled to 0 is planned
    /// as one replica, so that its plan (and the devices it will need when
    /// scaled up) stays known while nothing runs.
    pub fn serving_request(&self) -> Result<ServingRequest, SpecError> {
        let serving = &self.serving;
        let gpu_memory_utilization = match serving.gpu_memory_utilization {
            Some(f) => {
                MemoryUtilization::from_fraction(f).map_err(SpecError::GpuMemoryUtilization)?
            }
            None => MemoryUtilization::DEFAULT,
        };
        Ok(ServingRequest {
            max_model_len: serving.max_model_len,
            concurrency: serving.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            precision: serving.precision,
            gpu_memory_utilization,
            tensor_parallel: serving.tensor_parallel_size,
            pipeline_parallel: serving.pipeline_parallel_size,
            replicas: self.replicas.max(1),
        })
    }

    /// Where the deployment may go. The planner has no notion of a runtime,
    /// so a fixed runtime narrows the allowed accelerators to those that run it.
    pub fn constraints(&self) -> Result<Constraints, SpecError> {
        let placement = &self.placement;
        let accelerators = match runtime_of(self.serving.runtime) {
            None => placement.accelerators.clone(),
            Some(runtime) => {
                let runs = |a: &Accelerator| a.runtime == runtime;
                let allowed: Vec<String> = if placement.accelerators.is_empty() {
                    ACCELERATORS
                        .iter()
                        .filter(|a| runs(a))
                        .map(|a| a.id.to_owned())
                        .collect()
                } else {
                    placement
                        .accelerators
                        .iter()
                        .filter(|id| Accelerator::find(id).is_none_or(runs))
                        .cloned()
                        .collect()
                };
                if allowed.is_empty() {
                    return Err(SpecError::RuntimeExcludesAccelerators {
                        runtime: runtime_name(runtime),
                        accelerators: placement.accelerators.join(", "),
                    });
                }
                allowed
            }
        };
        Ok(Constraints {
            clouds: placement.clouds.clone(),
            regions: placement.regions.clone(),
            accelerators,
            spot: placement.spot,
            pool: placement.pool.clone(),
            max_cost_per_hour: None,
        })
    }

    /// `spec.source`, split into its scheme and the rest.
    /// The parsed source, and its Secret checked against it.
    pub fn model_source(&self) -> Result<ModelSource, SpecError> {
        let source = ModelSource::parse(&self.source)?;
        if let Some(secret) = &self.source_secret {
            let b = secret.as_bytes();
            let named = !b.is_empty()
                && b.len() <= 253
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.'
                });
            if !named {
                return Err(SpecError::SourceSecret(format!(
                    "{secret:?} must name a Secret: lower-case letters, digits, '-' and '.'"
                )));
            }
            if secret == crate::contract::tenancy::ENGINE_API_KEY_SECRET {
                return Err(SpecError::SourceSecret(format!(
                    "{secret} is the engines' API key, which modelfleet manages; name a Secret \
                     of your own that holds the source's credentials"
                )));
            }
            if source.scheme == SourceScheme::Pvc {
                return Err(SpecError::SourceSecret(
                    "a pvc:// source is mounted, not fetched: it takes no credentials; remove \
                     sourceSecret"
                        .to_owned(),
                ));
            }
        }
        Ok(source)
    }
}

fn runtime_of(choice: RuntimeChoice) -> Option<Runtime> {
    match choice {
        RuntimeChoice::Auto => None,
        RuntimeChoice::Vllm => Some(Runtime::Vllm),
        RuntimeChoice::VllmAscend => Some(Runtime::VllmAscend),
    }
}

fn runtime_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Vllm => "vllm",
        Runtime::VllmAscend => "vllm-ascend",
    }
}

/// Where weights live, by the scheme of `spec.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceScheme {
    S3,
    Oss,
    Obs,
    Cos,
    HuggingFace,
    /// A PersistentVolumeClaim that already holds the weights; mounted
    /// directly, nothing is fetched.
    Pvc,
}

/// A parsed `spec.source`: `scheme://location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    pub scheme: SourceScheme,
    /// Bucket, repository or claim name: the first path segment.
    pub root: String,
    /// The rest of the path without a leading '/', possibly empty.
    pub path: String,
}

impl ModelSource {
    pub fn parse(uri: &str) -> Result<ModelSource, SpecError> {
        let bad = || SpecError::Source(uri.to_owned());
        let (scheme, rest) = uri.split_once("://").ok_or_else(bad)?;
        let scheme = match scheme {
            "s3" => SourceScheme::S3,
            "oss" => SourceScheme::Oss,
            "obs" => SourceScheme::Obs,
            "cos" => SourceScheme::Cos,
            "hf" => SourceScheme::HuggingFace,
            "pvc" => SourceScheme::Pvc,
            _ => return Err(bad()),
        };
        let (root, path) = rest.split_once('/').unwrap_or((rest, ""));
        if root.is_empty() || root.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        Ok(ModelSource {
            scheme,
            root: root.to_owned(),
            path: path.trim_matches('/').to_owned(),
        })
    }
}

impl SourceScheme {
    pub fn name(self) -> &'static str {
        match self {
            SourceScheme::S3 => "s3",
            SourceScheme::Oss => "oss",
            SourceScheme::Obs => "obs",
            SourceScheme::Cos => "cos",
            SourceScheme::HuggingFace => "hf",
            SourceScheme::Pvc => "pvc",
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.name(), self.root)?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        Ok(())
    }
}
