//! The `ModelDeployment` custom resource (`modelfleet.io/v1alpha1`, short
//! name `md`): the one object a platform engineer `kubectl apply`s and the
//! hub writes into a cluster, and the LeaderWorkerSet type that multi-node
//! replicas run as.
//!
//! Defined once here with kube's `CustomResource` derive (the derive only:
//! no client, no runtime) so that the operator, the hub and the console read
//! and write the same shape. The CRD YAML in `manifests/crds/` is generated
//! from these types by [`crd_yaml`] and a test fails when the two differ.
//!
//! - `spec`: what the user asks for ([`ModelDeploymentSpec`]);
//! - `planning`: from a spec to the planner's inputs, with clear errors;
//! - `status`: what the operator reports ([`ModelDeploymentStatus`]);
//! - `lws`: the LeaderWorkerSet object the operator emits;
//! - `fixtures`: `ModelDeployment::test("name").model(…).on(…)` for tests.

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod lws;
mod planning;
mod spec;
mod status;

use kube::CustomResourceExt;

pub use planning::{ModelSource, PlannerInputs, SourceScheme, SpecError};
pub use spec::{
    MAX_NAME_LEN, ModelDeployment, ModelDeploymentSpec, Placement, RuntimeChoice, SOURCE_SCHEMES,
    Serving,
};
pub use status::{ModelDeploymentStatus, Phase, PlanStatus, PodFetch, PodWeights, WeightsFrom};

/// Where the generated CRD is committed, relative to the workspace root.
pub const CRD_PATH: &str = "manifests/crds/modeldeployment.yaml";

/// The ModelDeployment CustomResourceDefinition as YAML, exactly as
/// committed at [`CRD_PATH`] (`modelfleet crd` prints it).
pub fn crd_yaml() -> String {
    let body = serde_yaml::to_string(&ModelDeployment::crd())
        .expect("a CustomResourceDefinition always serializes to YAML");
    format!(
        "# Generated from the Rust types in core/src/crd by `modelfleet crd`.\n\
         # Do not edit: change the types and regenerate with\n\
         #   cargo run -- crd > {CRD_PATH}\n{body}"
    )
}

#[cfg(test)]
mod tests;
