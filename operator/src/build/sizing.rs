//! What a replica's pods ask of their node besides devices, from the model
//! and the plan, so that engines are never BestEffort (the first pods a
//! node evicts under pressure) and a model's download cannot fill a node's
//! disk unnoticed.
//!
//! | container | requests | limits |
//! | --- | --- | --- |
//! | engine | CPU 2 + 2 per device; memory 8 GiB + 4 GiB per device; ephemeral storage for the weights (fetched sources) | memory: the request, plus the shared-memory volume and the weights this node loads (read through the page cache, which the container is charged for); no CPU limit (a throttled engine stalls every request in flight) |
//! | fetch-weights | CPU 1, memory 256 MiB (it holds a few network buffers per request; measured at about 50 MiB) | memory 1 GiB (written pages it has not flushed yet count against it) |
//!
//! The weights' volume (`emptyDir`) gets the same size as its
//! ephemeral-storage request as its `sizeLimit`: the model's bytes plus 5%
//! and 1 GiB for the download's journal and the engine's own files.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use modelfleet_core::planner::Plan;

const GIB: u64 = 1024 * 1024 * 1024;

/// The shared-memory volume (`/dev/shm`, memory-backed) of every engine.
pub const SHM_BYTES: u64 = 16 * GIB;

/// The engine's requests and limits, in millicores and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSize {
    pub cpu_millis: u64,
    pub memory_request: u64,
    pub memory_limit: u64,
    /// Local disk for the downloaded weights; `None` when they are
    /// mounted (`pvc://`).
    pub storage: Option<u64>,
}

/// How big an engine pod of `plan` is, downloading `model_bytes` when
/// `fetched`.
pub fn engine(plan: &Plan, model_bytes: u64, fetched: bool) -> EngineSize {
    let devices = u64::from(plan.devices_per_node.max(1));
    let memory_request = 8 * GIB + 4 * GIB * devices;
    let weights_here = plan.weights_bytes_per_device.saturating_mul(devices);
    EngineSize {
        cpu_millis: 2_000 + 2_000 * devices,
        memory_request,
        memory_limit: round_up_gib(memory_request + SHM_BYTES + weights_here),
        storage: fetched.then(|| weights_volume(model_bytes)),
    }
}

/// The weights' volume: the model plus 5%, plus 1 GiB, in whole GiB.
pub fn weights_volume(model_bytes: u64) -> u64 {
    round_up_gib(model_bytes + model_bytes / 20 + GIB)
}

fn round_up_gib(bytes: u64) -> u64 {
    bytes.div_ceil(GIB).saturating_mul(GIB)
}

/// `bytes` as a quantity in `Gi` (every size here is whole GiB).
pub fn gib(bytes: u64) -> Quantity {
    Quantity(format!("{}Gi", bytes.div_ceil(GIB)))
}

pub fn millicores(millis: u64) -> Quantity {
    if millis.is_multiple_of(1000) {
        Quantity((millis / 1000).to_string())
    } else {
        Quantity(format!("{millis}m"))
    }
}

/// The fetch container's CPU and memory request and memory limit.
pub const FETCH_CPU: &str = "1";
pub const FETCH_MEMORY_REQUEST: &str = "256Mi";
pub const FETCH_MEMORY_LIMIT: &str = "1Gi";

#[cfg(test)]
mod tests {
    use super::*;
    use modelfleet_core::crd::ModelDeployment;
    use modelfleet_core::fleet::Fleet;

    fn plan(model: &str, accelerators: &[&str]) -> Plan {
        let mut md = ModelDeployment::test("m").model(model);
        md.spec.placement.accelerators = accelerators.iter().map(|a| (*a).to_owned()).collect();
        md.spec
            .planner_inputs()
            .unwrap()
            .plan(&Fleet::example())
            .unwrap()
            .plans
            .remove(0)
    }

    #[test]
    fn an_engine_asks_for_cpu_memory_and_disk_by_its_devices_and_weights() {
        let small = plan("llama-3.1-8b", &["l40s"]);
        assert_eq!(small.devices_per_node, 1);
        let size = engine(&small, 16_060_522_496, true);
        assert_eq!(size.cpu_millis, 4_000);
        assert_eq!(size.memory_request, 12 * GIB);
        // 12 GiB, 16 GiB of shared memory, ~15 GiB of weights.
        assert_eq!(size.memory_limit, 43 * GIB);
        // 14.96 GiB + 5% + 1 GiB, rounded up.
        assert_eq!(size.storage, Some(17 * GIB));
        assert_eq!(engine(&small, 16_060_522_496, false).storage, None);

        let large = plan("llama-3.1-70b", &["h100"]);
        let size = engine(&large, 141_107_412_992, true);
        let devices = u64::from(large.devices_per_node);
        assert_eq!(size.cpu_millis, 2_000 + 2_000 * devices);
        assert!(size.memory_limit >= size.memory_request + SHM_BYTES + 131 * GIB);
        assert_eq!(size.storage, Some(weights_volume(141_107_412_992)));
    }

    #[test]
    fn quantities_are_whole_units() {
        assert_eq!(gib(17 * GIB).0, "17Gi");
        assert_eq!(millicores(4_000).0, "4");
        assert_eq!(millicores(1_500).0, "1500m");
    }
}
