//! Golden plans: each file in `planner_cases/` is a request a person might
//! make; the snapshot beside it is the planner's whole answer (plans and
//! rejections). A change to the arithmetic shows up as a reviewed diff.
//!
//! Update with `cargo insta review` (or `INSTA_UPDATE=always`) after checking
//! that the new numbers are right.

use modelfleet_core::fleet::Fleet;
use modelfleet_core::planner::{Constraints, MemoryUtilization, ServingRequest, plan};
use modelfleet_core::{ModelArch, PrecisionChoice};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    model: String,
    #[serde(default)]
    precision: PrecisionChoice,
    max_model_len: Option<u32>,
    concurrency: Option<u32>,
    tensor_parallel: Option<u32>,
    pipeline_parallel: Option<u32>,
    replicas: Option<u32>,
    gpu_memory_utilization: Option<f64>,
    /// Plan on the pools of this accelerator only.
    accelerator: String,
    /// `example` for examples/fleet.yaml; one catalog node when absent.
    fleet: Option<String>,
}

impl Case {
    fn fleet(&self) -> Fleet {
        let mut fleet = match self.fleet.as_deref() {
            None => Fleet::catalog_nodes(),
            Some("example") => Fleet::example(),
            Some(other) => panic!("unknown fleet {other:?} in case"),
        };
        fleet.pools.retain(|p| p.accelerator == self.accelerator);
        assert!(!fleet.pools.is_empty(), "no {} pool", self.accelerator);
        fleet
    }

    fn request(&self) -> ServingRequest {
        let defaults = ServingRequest::default();
        ServingRequest {
            max_model_len: self.max_model_len,
            concurrency: self.concurrency.unwrap_or(defaults.concurrency),
            precision: self.precision,
            gpu_memory_utilization: self
                .gpu_memory_utilization
                .map(|f| MemoryUtilization::from_fraction(f).unwrap())
                .unwrap_or_default(),
            tensor_parallel: self.tensor_parallel,
            pipeline_parallel: self.pipeline_parallel,
            replicas: self.replicas.unwrap_or(1),
        }
    }
}

#[test]
fn golden_plans() {
    insta::glob!("planner_cases/*.yaml", |path| {
        let case: Case = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let model = ModelArch::find(&case.model).unwrap();
        let report = plan(
            model,
            &case.request(),
            &case.fleet(),
            &Constraints::default(),
        )
        .unwrap();
        insta::assert_yaml_snapshot!(report);
    });
}
