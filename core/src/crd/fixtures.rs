//! Fixture builders for tests:
//! `ModelDeployment::test("chat").model("llama-3.1-70b").on("h100-80gb")`
//! reads better than a page of struct literals.
//!
//! Compiled for this crate's tests and, with the `fixtures` feature, for the
//! tests of crates above (the operator enables it as a dev-dependency). The
//! objects look as if the API server had stored them: a namespace, a uid and
//! generation 1, so that owner references and `observedGeneration` can be
//! built from them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::ModelArch;
use crate::planner::SpotPolicy;
use crate::precision::PrecisionChoice;

use super::spec::{ModelDeployment, ModelDeploymentSpec, Placement, RuntimeChoice, Serving};

/// The namespace fixtures live in.
pub const TEST_NAMESPACE: &str = "models";
/// The uid every fixture carries, so that snapshots are stable.
pub const TEST_UID: &str = "3f1e6a4c-2b7d-4e58-9a61-0c5d8b2f7e90";

impl ModelDeployment {
    /// A stored-looking ModelDeployment of `llama-3.1-8b` from
    /// `s3://models/llama-3.1-8b`, one replica, everything else default.
    pub fn test(name: &str) -> ModelDeployment {
        let mut md = ModelDeployment::new(
            name,
            ModelDeploymentSpec {
                model: String::new(),
                architecture: None,
                source: String::new(),
                source_secret: None,
                serving: Serving::default(),
                replicas: 1,
                placement: Placement::default(),
            },
        )
        .model("llama-3.1-8b");
        md.metadata = ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(TEST_NAMESPACE.to_owned()),
            uid: Some(TEST_UID.to_owned()),
            generation: Some(1),
            ..ObjectMeta::default()
        };
        md
    }

    /// Serves catalog model `id`, with weights at `s3://models/<id>`
    /// (call [`ModelDeployment::source`] afterwards to change that).
    pub fn model(mut self, id: &str) -> Self {
        self.spec.model = id.to_owned();
        self.spec.source = format!("s3://models/{id}");
        self
    }

    /// Serves a model described inline; `model` becomes its id.
    pub fn architecture(mut self, arch: ModelArch) -> Self {
        self = self.model(&arch.id.clone());
        self.spec.architecture = Some(arch);
        self
    }

    /// Allows only accelerator `id`.
    pub fn on(mut self, id: &str) -> Self {
        self.spec.placement.accelerators = vec![id.to_owned()];
        self
    }

    pub fn source(mut self, uri: &str) -> Self {
        self.spec.source = uri.to_owned();
        self
    }

    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_owned());
        self
    }

    pub fn replicas(mut self, n: u32) -> Self {
        self.spec.replicas = n;
        self
    }

    /// `"auto"`, `"bf16"`, `"fp8"`, `"int8"` or `"int4"`.
    pub fn precision(mut self, precision: &str) -> Self {
        self.spec.serving.precision = precision
            .parse::<PrecisionChoice>()
            .expect("a fixture names a known precision");
        self
    }

    pub fn runtime(mut self, runtime: RuntimeChoice) -> Self {
        self.spec.serving.runtime = runtime;
        self
    }

    pub fn concurrency(mut self, n: u32) -> Self {
        self.spec.serving.concurrency = Some(n);
        self
    }

    pub fn max_model_len(mut self, tokens: u32) -> Self {
        self.spec.serving.max_model_len = Some(tokens);
        self
    }

    pub fn gpu_memory_utilization(mut self, fraction: f64) -> Self {
        self.spec.serving.gpu_memory_utilization = Some(fraction);
        self
    }

    pub fn extra_args(mut self, args: &[&str]) -> Self {
        self.spec.serving.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    pub fn image(mut self, image: &str) -> Self {
        self.spec.serving.image = Some(image.to_owned());
        self
    }

    /// Pins the pool, written `cluster/pool`.
    pub fn pool(mut self, pool: &str) -> Self {
        self.spec.placement.pool = Some(pool.to_owned());
        self
    }

    pub fn spot(mut self, spot: SpotPolicy) -> Self {
        self.spec.placement.spot = spot;
        self
    }
}
