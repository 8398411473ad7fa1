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
        "spec.source {0:?} must start with s3://, oss://, obs://, cos://, hf://, modelscope://, https:// or pvc:// followed by a bucket, repository, host or claim name"
    )]
    Source(String),
    /// A known scheme in a form that scheme does not take.
    #[error("spec.source {uri:?} {problem}; {expected}")]
    SourceForm {
        uri: String,
        problem: String,
        /// What a right one looks like.
        expected: &'static str,
    },
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
            SpecError::Source(_) | SpecError::SourceForm { .. } => "source",
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
            if let Some(credential) = crate::contract::tenancy::source_credential_of(secret) {
                crate::contract::tenancy::check_source_credential_name(credential).map_err(
                    |reason| {
                        SpecError::SourceSecret(format!(
                            "{secret} names a source credential the hub keeps, and {reason}"
                        ))
                    },
                )?;
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
    /// ModelScope (`modelscope://org/model[@revision]`), fetched like
    /// Hugging Face.
    ModelScope,
    /// One file over HTTPS (`https://host[:port]/path/to/file`), fetched
    /// into the model's directory under its own name.
    Https,
    /// A PersistentVolumeClaim that already holds the weights; mounted
    /// directly, nothing is fetched.
    Pvc,
}

/// A parsed `spec.source`: `scheme://location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    pub scheme: SourceScheme,
    /// Bucket, organisation, host (with its port) or claim name: the first
    /// path segment.
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
            "modelscope" => SourceScheme::ModelScope,
            "https" => SourceScheme::Https,
            "pvc" => SourceScheme::Pvc,
            "http" => {
                return Err(SpecError::SourceForm {
                    uri: uri.to_owned(),
                    problem: "is plain HTTP, which anyone on the way can read or alter".to_owned(),
                    expected: HTTPS_FORM,
                });
            }
            _ => return Err(bad()),
        };
        let (root, path) = rest.split_once('/').unwrap_or((rest, ""));
        if root.is_empty() || root.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let form = |problem: String, expected| SpecError::SourceForm {
            // A password before the host is not repeated in errors.
            uri: match root.rsplit_once('@') {
                Some((_, host)) => uri.replacen(root, &format!("…@{host}"), 1),
                None => uri.to_owned(),
            },
            problem,
            expected,
        };
        match scheme {
            SourceScheme::ModelScope => {
                modelscope_problem(root, path).map_or(Ok(()), |p| Err(form(p, MODELSCOPE_FORM)))?
            }
            SourceScheme::Https => {
                https_problem(root, path).map_or(Ok(()), |p| Err(form(p, HTTPS_FORM)))?
            }
            SourceScheme::S3
            | SourceScheme::Oss
            | SourceScheme::Obs
            | SourceScheme::Cos
            | SourceScheme::HuggingFace
            | SourceScheme::Pvc => {}
        }
        Ok(ModelSource {
            scheme,
            root: root.to_owned(),
            path: path.trim_matches('/').to_owned(),
        })
    }
}

const MODELSCOPE_FORM: &str = "a ModelScope source is modelscope://org/model or \
     modelscope://org/model@revision (a branch, tag or commit)";
const HTTPS_FORM: &str = "an HTTPS source is one file, https://host/path/to/file or \
     https://host:port/path/to/file";

/// A ModelScope organisation or model name: letters, digits, '-', '_', '.'.
fn hub_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What is wrong with `modelscope://<org>/<path>`, if anything.
fn modelscope_problem(org: &str, path: &str) -> Option<String> {
    let (model, revision) = match path.split_once('@') {
        Some((model, revision)) => (model, Some(revision)),
        None => (path, None),
    };
    if model.is_empty() {
        return Some("names no model after the organisation".to_owned());
    }
    if model.contains('/') {
        return Some("has more than org/model before the revision".to_owned());
    }
    if !hub_name(org) || !hub_name(model) {
        return Some(
            "has a name with a character other than letters, digits, '-', '_' and '.'".to_owned(),
        );
    }
    match revision {
        Some("") => Some("has no revision after @".to_owned()),
        Some(r)
            if !r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')) =>
        {
            Some(format!(
                "has a revision {r:?} with a character other than letters, digits, '-', '_', \
                 '.' and '/'"
            ))
        }
        _ => None,
    }
}

/// What is wrong with `https://<host>/<path>`, if anything.
fn https_problem(host: &str, path: &str) -> Option<String> {
    if host.contains('@') {
        return Some(
            "carries credentials before the host, which would be shown wherever the \
             source is; the fetch takes no credentials for HTTPS"
                .to_owned(),
        );
    }
    // `[v6]:port`, `[v6]`, `name:port` or `name`.
    let (name, port) = match host.find(']') {
        Some(end) => match &host[end + 1..] {
            "" => (&host[..=end], None),
            rest => (&host[..=end], Some(rest.strip_prefix(':').unwrap_or(rest))),
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let name_ok = match name.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        }
    };
    if !name_ok {
        return Some(format!("has no valid host name ({name:?})"));
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Some(format!("has a port {port:?} that is not 1 to 65535"));
    }
    if path.contains(['?', '#']) {
        return Some(
            "has a query or fragment; the source names a file by its path alone (a signed \
             URL's query is a credential and would be shown wherever the source is)"
                .to_owned(),
        );
    }
    if path.is_empty() || path.ends_with('/') {
        return Some("names a directory, not a file".to_owned());
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
        || path.chars().any(|c| c.is_whitespace() || c == '\\')
    {
        return Some(
            "has an empty, '.' or '..' part, a backslash or a space in its path".to_owned(),
        );
    }
    None
}

impl SourceScheme {
    pub fn name(self) -> &'static str {
        match self {
            SourceScheme::S3 => "s3",
            SourceScheme::Oss => "oss",
            SourceScheme::Obs => "obs",
            SourceScheme::Cos => "cos",
            SourceScheme::HuggingFace => "hf",
            SourceScheme::ModelScope => "modelscope",
            SourceScheme::Https => "https",
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
