//! Device resources: the extended resource names device plugins advertise
//! on nodes, and that pods request their accelerators as.
//!
//! One vendor's devices can go by several names, depending on the plugin a
//! cluster runs: Huawei's MindCluster plugin advertises every Ascend 910
//! class as `huawei.com/Ascend910`, while Huawei Cloud CCE's AI suite names
//! the 910B class `huawei.com/ascend-1980`. Discovery records on each pool
//! the name its nodes advertise, and the operator requests that name.

use crate::accelerator::{Accelerator, Vendor};
use crate::fleet::NodePool;

/// NVIDIA's device plugin: every NVIDIA GPU.
pub const NVIDIA_GPU: &str = "nvidia.com/gpu";
/// Huawei MindCluster's device plugin: the Ascend 910A, 910B and A3 (910C).
pub const ASCEND_910: &str = "huawei.com/Ascend910";
/// Huawei Cloud CCE's AI suite: the Ascend 910B class.
pub const ASCEND_1980: &str = "huawei.com/ascend-1980";

/// Every device resource modelfleet knows, with the vendor whose devices
/// it counts, in the order discovery tries them on a node.
pub const DEVICE_RESOURCES: &[(&str, Vendor)] = &[
    (NVIDIA_GPU, Vendor::Nvidia),
    (ASCEND_910, Vendor::Huawei),
    (ASCEND_1980, Vendor::Huawei),
];

/// The vendor whose devices `resource` counts; `None` for a resource that
/// is not a known accelerator.
pub fn vendor_of(resource: &str) -> Option<Vendor> {
    DEVICE_RESOURCES
        .iter()
        .find(|(name, _)| *name == resource)
        .map(|(_, vendor)| *vendor)
}

/// The names `vendor`'s devices can be advertised as.
pub fn resources_of(vendor: Vendor) -> impl Iterator<Item = &'static str> {
    DEVICE_RESOURCES
        .iter()
        .filter(move |(_, v)| *v == vendor)
        .map(|(name, _)| *name)
}

/// The resource a pod placed on `pool` requests its `accelerator` devices
/// as: the one the pool's nodes advertise where discovery saw it, else the
/// name the vendor's own device plugin uses.
pub fn resource_on<'a>(pool: &'a NodePool, accelerator: &'a Accelerator) -> &'a str {
    pool.device_resource
        .as_deref()
        .unwrap_or(accelerator.resource_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::ACCELERATORS;
    use crate::fleet::Fleet;

    #[test]
    fn every_catalog_accelerator_is_advertised_under_a_name_of_its_vendor() {
        for a in ACCELERATORS {
            assert_eq!(vendor_of(a.resource_name), Some(a.vendor), "{}", a.id);
        }
        assert_eq!(vendor_of(ASCEND_1980), Some(Vendor::Huawei));
        assert_eq!(vendor_of("cpu"), None);
        assert_eq!(
            resources_of(Vendor::Huawei).collect::<Vec<_>>(),
            [ASCEND_910, ASCEND_1980]
        );
    }

    #[test]
    fn a_pool_is_asked_for_the_resource_its_nodes_advertise() {
        let mut pool = Fleet::example()
            .pools
            .into_iter()
            .find(|p| p.accelerator == "ascend-910b")
            .unwrap();
        let accelerator = pool.accelerator_spec().unwrap();
        assert_eq!(resource_on(&pool, accelerator), ASCEND_910);
        pool.device_resource = Some(ASCEND_1980.to_owned());
        assert_eq!(resource_on(&pool, accelerator), ASCEND_1980);
    }
}
