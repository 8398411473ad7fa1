//! The accelerator catalog: the GPUs and NPUs modelfleet knows how to size
//! models for and how Kubernetes exposes them.
//!
//! Facts come from `shared/reference/accelerators-and-clouds.md`. `usable_mib`
//! is what the serving engine sees as total device memory, which is below the
//! figure a device is sold with (an "80 GB" H100 reports about 79.2 GiB).

use std::fmt;

use serde::Serialize;

use crate::contract::devices::{ASCEND_910, NVIDIA_GPU};
use crate::money::{Currency, Money};
use crate::precision::Precision;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Nvidia,
    Huawei,
}

/// How devices within one node talk to each other. Tensor parallelism moves
/// activations between devices every layer, so without a fast fabric the
/// planner prefers pipeline parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interconnect {
    Nvlink,
    Hccs,
    Pcie,
}

impl Interconnect {
    pub fn is_fast(self) -> bool {
        matches!(self, Interconnect::Nvlink | Interconnect::Hccs)
    }
}

impl fmt::Display for Interconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Interconnect::Nvlink => "NVLink",
            Interconnect::Hccs => "HCCS",
            Interconnect::Pcie => "PCIe",
        })
    }
}

/// The serving engine family an accelerator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Runtime {
    #[serde(rename = "vllm")]
    Vllm,
    #[serde(rename = "vllm-ascend")]
    VllmAscend,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Vllm => "vllm",
            Runtime::VllmAscend => "vllm-ascend",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accelerator {
    /// Stable id used in fleets, constraints and the CRD.
    pub id: &'static str,
    pub name: &'static str,
    pub vendor: Vendor,
    /// Memory per device as sold, in GB.
    pub memory_gb: u32,
    /// Memory per device as the serving engine reports it, in MiB.
    pub usable_mib: u64,
    /// Devices in the node shape this accelerator usually comes in.
    pub devices_per_node: u32,
    pub interconnect: Interconnect,
    /// Weight precisions the hardware runs natively.
    pub precisions: &'static [Precision],
    /// Extended resource the vendor's own device plugin advertises. A
    /// cluster may advertise the device under another name (see
    /// [`crate::contract::devices`]); discovery records that one on the pool.
    pub resource_name: &'static str,
    /// Product label value (`nvidia.com/gpu.product` or Ascend's
    /// `accelerator-type`) node discovery recognises the device by.
    pub product_label: &'static str,
    pub runtime: Runtime,
    /// A typical cloud instance with this device.
    pub typical_instance: &'static str,
    /// Public on-demand list price per device-hour where one was verified
    /// (AWS); `None` where no verified public price exists. Fleets set their
    /// own prices; this only prices the catalog's one-node-per-device fleet.
    pub list_price: Option<Money>,
}

impl Accelerator {
    pub fn usable_bytes(&self) -> u64 {
        self.usable_mib * 1024 * 1024
    }

    pub fn supports(&self, precision: Precision) -> bool {
        self.precisions.contains(&precision)
    }

    pub fn precision_list(&self) -> String {
        let names: Vec<_> = self.precisions.iter().map(|p| p.name()).collect();
        names.join(", ")
    }

    /// Looks an accelerator up by id or a common alias (`h100`, `910b`, `a10g`).
    pub fn find(id: &str) -> Option<&'static Accelerator> {
        let id = id.trim().to_ascii_lowercase();
        let canonical = match id.as_str() {
            "h100" | "h100-sxm" => "h100-80gb",
            "a100" => "a100-80gb",
            "a10g" => "a10",
            "910b" | "ascend910b" => "ascend-910b",
            "910b4" => "ascend-910b4",
            "910c" | "ascend-a3" => "ascend-910c",
            other => other,
        };
        ACCELERATORS.iter().find(|a| a.id == canonical)
    }

    pub fn ids() -> String {
        let ids: Vec<_> = ACCELERATORS.iter().map(|a| a.id).collect();
        ids.join(", ")
    }
}

const HOPPER: &[Precision] = &[
    Precision::Bf16,
    Precision::Fp8,
    Precision::Int8,
    Precision::Int4,
];
const NO_FP8: &[Precision] = &[Precision::Bf16, Precision::Int8, Precision::Int4];

/// 8 × H200 on p5en.48xlarge at 63.30 USD/h → 7.9125 USD per device-hour.
const H200_PRICE: Money = Money::from_micros(7_912_500, Currency::Usd);
/// 8 × H100 on p5.48xlarge at 55.04 USD/h → 6.88 USD per device-hour.
const H100_PRICE: Money = Money::from_micros(6_880_000, Currency::Usd);
/// 8 × A100 80 GB on p4de.24xlarge at 27.45 USD/h → 3.43125 USD per device-hour.
const A100_80_PRICE: Money = Money::from_micros(3_431_250, Currency::Usd);
/// 8 × A100 40 GB on p4d.24xlarge at 21.96 USD/h → 2.745 USD per device-hour.
const A100_40_PRICE: Money = Money::from_micros(2_745_000, Currency::Usd);

pub static ACCELERATORS: &[Accelerator] = &[
    Accelerator {
        id: "h200",
        name: "NVIDIA H200 141GB",
        vendor: Vendor::Nvidia,
        memory_gb: 141,
        usable_mib: 143_000,
        devices_per_node: 8,
        interconnect: Interconnect::Nvlink,
        precisions: HOPPER,
        resource_name: NVIDIA_GPU,
        product_label: "NVIDIA-H200",
        runtime: Runtime::Vllm,
        typical_instance: "p5en.48xlarge",
        list_price: Some(H200_PRICE),
    },
    Accelerator {
        id: "h100-80gb",
        name: "NVIDIA H100 SXM 80GB",
        vendor: Vendor::Nvidia,
        memory_gb: 80,
        usable_mib: 81_090,
        devices_per_node: 8,
        interconnect: Interconnect::Nvlink,
        precisions: HOPPER,
        resource_name: NVIDIA_GPU,
        product_label: "NVIDIA-H100-80GB-HBM3",
        runtime: Runtime::Vllm,
        typical_instance: "p5.48xlarge",
        list_price: Some(H100_PRICE),
    },
    Accelerator {
        id: "a100-80gb",
        name: "NVIDIA A100 SXM 80GB",
        vendor: Vendor::Nvidia,
        memory_gb: 80,
        usable_mib: 81_050,
        devices_per_node: 8,
        interconnect: Interconnect::Nvlink,
        precisions: NO_FP8,
        resource_name: NVIDIA_GPU,
        product_label: "NVIDIA-A100-SXM4-80GB",
        runtime: Runtime::Vllm,
        typical_instance: "p4de.24xlarge",
        list_price: Some(A100_80_PRICE),
    },
    Accelerator {
        id: "a100-40gb",
        name: "NVIDIA A100 SXM 40GB",
        vendor: Vendor::Nvidia,
        memory_gb: 40,
        usable_mib: 40_330,
        devices_per_node: 8,
        interconnect: Interconnect::Nvlink,
        precisions: NO_FP8,
        resource_name: NVIDIA_GPU,
        product_label: "NVIDIA-A100-SXM4-40GB",
        runtime: Runtime::Vllm,
        typical_instance: "p4d.24xlarge",
        list_price: Some(A100_40_PRICE),
    },
    Accelerator {
        id: "l40s",
        name: "NVIDIA L40S 48GB",
        vendor: Vendor::Nvidia,
        memory_gb: 48,
        usable_mib: 45_470,
        devices_per_node: 8,
        interconnect: Interconnect::Pcie,
        precisions: HOPPER,
        resource_name: NVIDIA_GPU,
        product_label: "NVIDIA-L40S",
        runtime: Runtime::Vllm,
        typical_instance: "g6e.48xlarge",
        list_price: None,
    },
    Accelerator {
        id: "a10",
        name: "NVIDIA A10 / A10G 24GB",
        vendor: Vendor::Nvidia,
        memory_gb: 24,
        usable_mib: 22_600,
        devices_per_node: 4,
        interconnect: Interconnect::Pcie,
        precisions: NO_FP8,
        resource_name: NVIDIA_GPU,
        product_label: "NVIDIA-A10G",
        runtime: Runtime::Vllm,
        typical_instance: "g5.12xlarge",
        list_price: None,
    },
    Accelerator {
        id: "ascend-910b",
        name: "Huawei Ascend 910B 64GB",
        vendor: Vendor::Huawei,
        memory_gb: 64,
        usable_mib: 62_420,
        devices_per_node: 8,
        interconnect: Interconnect::Hccs,
        precisions: NO_FP8,
        resource_name: ASCEND_910,
        product_label: "module-910b-8",
        runtime: Runtime::VllmAscend,
        typical_instance: "Atlas 800I A2",
        list_price: None,
    },
    Accelerator {
        id: "ascend-910b4",
        name: "Huawei Ascend 910B4 32GB",
        vendor: Vendor::Huawei,
        memory_gb: 32,
        usable_mib: 30_200,
        devices_per_node: 8,
        interconnect: Interconnect::Hccs,
        precisions: NO_FP8,
        resource_name: ASCEND_910,
        product_label: "module-910b-8",
        runtime: Runtime::VllmAscend,
        typical_instance: "Atlas 800I A2 (910B4)",
        list_price: None,
    },
    Accelerator {
        // Each of the 910C's two 64 GB dies is a device to Kubernetes and the
        // engine. FP8 arrives with later Ascend generations, not the A3.
        id: "ascend-910c",
        name: "Huawei Ascend 910C (A3) 64GB per die",
        vendor: Vendor::Huawei,
        memory_gb: 64,
        usable_mib: 62_420,
        devices_per_node: 16,
        interconnect: Interconnect::Hccs,
        precisions: NO_FP8,
        resource_name: ASCEND_910,
        product_label: "module-a3-16",
        runtime: Runtime::VllmAscend,
        typical_instance: "Atlas 800I A3",
        list_price: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_only_where_the_hardware_has_it() {
        for id in [
            "a100-80gb",
            "a100-40gb",
            "a10",
            "ascend-910b",
            "ascend-910b4",
        ] {
            assert!(
                !Accelerator::find(id).unwrap().supports(Precision::Fp8),
                "{id}"
            );
        }
        for id in ["h200", "h100-80gb", "l40s"] {
            assert!(
                Accelerator::find(id).unwrap().supports(Precision::Fp8),
                "{id}"
            );
        }
    }

    #[test]
    fn resource_names_and_runtimes_follow_the_vendor() {
        for a in ACCELERATORS {
            match a.vendor {
                Vendor::Nvidia => {
                    assert_eq!(a.resource_name, "nvidia.com/gpu");
                    assert_eq!(a.runtime, Runtime::Vllm);
                }
                Vendor::Huawei => {
                    assert_eq!(a.resource_name, "huawei.com/Ascend910");
                    assert_eq!(a.runtime, Runtime::VllmAscend);
                    assert_eq!(a.interconnect, Interconnect::Hccs);
                }
            }
            // Engines see less than the memory on the box, never more.
            assert!(a.usable_mib * 1024 * 1024 < u64::from(a.memory_gb) * 1_100_000_000);
        }
    }

    #[test]
    fn aliases_resolve() {
        assert_eq!(Accelerator::find("H100").unwrap().id, "h100-80gb");
        assert_eq!(Accelerator::find("a10g").unwrap().id, "a10");
        assert_eq!(Accelerator::find("910b").unwrap().id, "ascend-910b");
        assert!(Accelerator::find("h1000").is_none());
    }
}
