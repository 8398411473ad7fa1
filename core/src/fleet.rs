//! Node pools and fleets: the hardware on offer.
//!
//! A pool is a group of identical nodes in one cluster (an EKS node group, an
//! ACK node pool, a CCE node pool). A fleet is every pool the planner may use,
//! across clusters and clouds, written in YAML.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::accelerator::{ACCELERATORS, Accelerator};
use crate::contract::devices;
use crate::money::{ExchangeRates, Money};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    Aws,
    Aliyun,
    Tencentcloud,
    Huaweicloud,
    /// Not tied to a cloud: on-premises clusters, and the catalog's
    /// one-node-per-accelerator fleet.
    Generic,
}

impl Cloud {
    pub const ALL: [Cloud; 5] = [
        Cloud::Aws,
        Cloud::Aliyun,
        Cloud::Tencentcloud,
        Cloud::Huaweicloud,
        Cloud::Generic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Aliyun => "aliyun",
            Cloud::Tencentcloud => "tencentcloud",
            Cloud::Huaweicloud => "huaweicloud",
            Cloud::Generic => "generic",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Cloud {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cloud::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown cloud {s:?}; use aws, aliyun, tencentcloud, huaweicloud or generic"
                )
            })
    }
}

/// How the pool's nodes are bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CapacityType {
    #[default]
    #[serde(rename = "on-demand")]
    OnDemand,
    /// Cheaper, and reclaimable by the cloud at short notice.
    #[serde(rename = "spot")]
    Spot,
}

impl fmt::Display for CapacityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapacityType::OnDemand => "on-demand",
            CapacityType::Spot => "spot",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePool {
    pub cloud: Cloud,
    pub region: String,
    pub cluster: String,
    pub name: String,
    /// Accelerator id from the catalog (`h100-80gb`, `ascend-910b`, …).
    pub accelerator: String,
    pub devices_per_node: u32,
    pub nodes_total: u32,
    /// Nodes with all their devices unallocated.
    pub nodes_free: u32,
    /// Free devices on each node that is partly allocated (`[4, 2]`: one
    /// node with 4 free, one with 2). Replicas smaller than a node can use them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partly_free: Vec<u32>,
    /// Price per device-hour; an unpriced pool can be planned on but not
    /// ranked by cost or held to a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_device_hour: Option<Money>,
    #[serde(default)]
    pub capacity_type: CapacityType,
    /// Node labels every node of the pool carries. Workloads are pinned to
    /// the pool by requiring them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints every node of the pool carries; workloads placed on the pool
    /// tolerate them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// The extended resource the pool's nodes advertise their devices as
    /// (`huawei.com/ascend-1980` on Huawei Cloud CCE's AI suite, say), as
    /// discovery saw it; absent, the name the accelerator's vendor's own
    /// device plugin uses. Pods placed on the pool request this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_resource: Option<String>,
    /// What pods on the pool need from its nodes' network and registries
    /// (`contract::pool_settings`).
    #[serde(default, skip_serializing_if = "PoolSettings::is_empty")]
    pub settings: PoolSettings,
}

/// A pool's network interface for the engines' collectives, the registry
/// mirror images are pulled through, and the Secrets they are pulled with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolSettings {
    /// NCCL_SOCKET_IFNAME (HCCL_SOCKET_IFNAME on Ascend) and
    /// GLOO_SOCKET_IFNAME: `eth0`, or an NCCL-style list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface: Option<String>,
    /// `host[:port][/path]` that mirrors docker.io, quay.io and the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_mirror: Option<String>,
    /// Secrets in the pods' namespace the kubelet pulls images with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// A directory on every node of the pool where fetched models are
    /// kept, once per node, for the pods placed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_cache: Option<ModelCache>,
    /// The IAM identity provider a Huawei Cloud CCE cluster's service
    /// account tokens are exchanged at, for `obs://` sources without keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cce_identity: Option<CceIdentity>,
}

/// A CCE cluster's workload identity (`contract::pool_settings`): pods'
/// tokens for this audience are exchanged at the identity provider for a
/// project's temporary keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CceIdentity {
    /// The identity provider's name in IAM.
    pub provider: String,
    /// The project (region) whose keys the pods get.
    pub project_id: String,
    /// The provider's client ID, which the projected token's audience is.
    pub audience: String,
}

/// A pool's node-local model cache (`contract::pool_settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelCache {
    /// The directory on each node; each namespace gets its own directory
    /// below it.
    pub path: String,
    /// Bytes of models each namespace may keep there.
    pub bytes: u64,
}

impl PoolSettings {
    pub fn is_empty(&self) -> bool {
        *self == PoolSettings::default()
    }
}

/// A node taint, as Kubernetes writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

impl NodePool {
    /// The catalog entry for this pool's accelerator.
    pub fn accelerator_spec(&self) -> Option<&'static Accelerator> {
        Accelerator::find(&self.accelerator)
    }

    /// Devices free now: every device of the free nodes, and the free part
    /// of the partly used ones.
    pub fn devices_free(&self) -> u64 {
        u64::from(self.nodes_free) * u64::from(self.devices_per_node)
            + self.partly_free.iter().map(|&n| u64::from(n)).sum::<u64>()
    }

    pub fn reference(&self) -> PoolRef {
        PoolRef {
            cloud: self.cloud,
            region: self.region.clone(),
            cluster: self.cluster.clone(),
            name: self.name.clone(),
        }
    }
}

/// Where a pool is, as plans and rejections name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PoolRef {
    pub cloud: Cloud,
    pub region: String,
    pub cluster: String,
    pub name: String,
}

impl fmt::Display for PoolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.cluster, self.name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fleet {
    /// How to compare prices in different currencies when ranking plans.
    #[serde(default)]
    pub exchange_rates: ExchangeRates,
    pub pools: Vec<NodePool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("the fleet could not be read: {0}")]
    Syntax(String),
    #[error("the fleet is not valid:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Fleet {
    /// Reads and checks a fleet; accelerator aliases become catalog ids.
    pub fn from_yaml(text: &str) -> Result<Fleet, FleetError> {
        let mut fleet: Fleet =
            serde_yaml::from_str(text).map_err(|e| FleetError::Syntax(e.to_string()))?;
        fleet.validate()?;
        Ok(fleet)
    }

    /// Every problem in the fleet at once, naming the pool.
    pub fn validate(&mut self) -> Result<(), FleetError> {
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        if self.pools.is_empty() {
            problems.push("the fleet has no pools".to_owned());
        }
        for (i, pool) in self.pools.iter_mut().enumerate() {
            let at = format!("pools[{i}] ({}/{})", pool.cluster, pool.name);
            for (field, value) in [
                ("region", &pool.region),
                ("cluster", &pool.cluster),
                ("name", &pool.name),
            ] {
                if !is_dns_label(value) {
                    problems.push(format!(
                        "{at}: {field} {value:?} must be a DNS label (lowercase letters, digits and '-', at most 63)"
                    ));
                }
            }
            match Accelerator::find(&pool.accelerator) {
                Some(a) => pool.accelerator = a.id.to_owned(),
                None => problems.push(format!(
                    "{at}: unknown accelerator {:?}; known: {}",
                    pool.accelerator,
                    Accelerator::ids()
                )),
            }
            if let (Some(resource), Some(a)) =
                (&pool.device_resource, Accelerator::find(&pool.accelerator))
                && devices::vendor_of(resource) != Some(a.vendor)
            {
                let names: Vec<&str> = devices::resources_of(a.vendor).collect();
                problems.push(format!(
                    "{at}: deviceResource {resource:?} is not a name {} devices are advertised \
                     as; use one of {}",
                    a.id,
                    names.join(", ")
                ));
            }
            if pool.devices_per_node == 0 {
                problems.push(format!("{at}: devicesPerNode must be at least 1"));
            }
            if pool.nodes_free > pool.nodes_total {
                problems.push(format!(
                    "{at}: nodesFree ({}) cannot exceed nodesTotal ({})",
                    pool.nodes_free, pool.nodes_total
                ));
            }
            if let Some(bad) = pool
                .partly_free
                .iter()
                .find(|&&n| n == 0 || n >= pool.devices_per_node)
            {
                problems.push(format!(
                    "{at}: partlyFree entry {bad} must be between 1 and devicesPerNode − 1 ({}); \
                     a node with all devices free counts in nodesFree",
                    pool.devices_per_node.saturating_sub(1)
                ));
            }
            if pool.nodes_free as usize + pool.partly_free.len() > pool.nodes_total as usize {
                problems.push(format!(
                    "{at}: nodesFree ({}) plus partly free nodes ({}) exceed nodesTotal ({})",
                    pool.nodes_free,
                    pool.partly_free.len(),
                    pool.nodes_total
                ));
            }
            for taint in &pool.taints {
                if !matches!(
                    taint.effect.as_str(),
                    "NoSchedule" | "PreferNoSchedule" | "NoExecute"
                ) {
                    problems.push(format!(
                        "{at}: taint {} has effect {:?}; use NoSchedule, PreferNoSchedule or NoExecute",
                        taint.key, taint.effect
                    ));
                }
            }
            let annotations = crate::contract::pool_settings::annotations(&pool.settings);
            if let Err(reason) = crate::contract::pool_settings::read(Some(&annotations)) {
                problems.push(format!("{at}: settings: {reason}"));
            }
            if !seen.insert((pool.cluster.clone(), pool.name.clone())) {
                problems.push(format!(
                    "{at}: a pool with this cluster and name is listed twice"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(FleetError::Invalid(problems))
        }
    }

    /// One node of every catalog accelerator at its list price, for sizing
    /// a model when no fleet is given.
    pub fn catalog_nodes() -> Fleet {
        Fleet {
            exchange_rates: ExchangeRates::default(),
            pools: ACCELERATORS
                .iter()
                .map(|a| NodePool {
                    cloud: Cloud::Generic,
                    region: "any".to_owned(),
                    cluster: "catalog".to_owned(),
                    name: a.id.replace('.', "-"),
                    accelerator: a.id.to_owned(),
                    devices_per_node: a.devices_per_node,
                    nodes_total: 1,
                    nodes_free: 1,
                    partly_free: Vec::new(),
                    price_per_device_hour: a.list_price,
                    capacity_type: CapacityType::OnDemand,
                    labels: BTreeMap::new(),
                    taints: Vec::new(),
                    device_resource: None,
                    settings: Default::default(),
                })
                .collect(),
        }
    }

    /// The example fleet shipped in `examples/fleet.yaml`: all four clouds,
    /// GPU and NPU pools.
    pub fn example() -> Fleet {
        Fleet::from_yaml(EXAMPLE_FLEET).expect("examples/fleet.yaml is valid (checked by a test)")
    }
}

pub const EXAMPLE_FLEET: &str = include_str!("../../examples/fleet.yaml");

/// RFC 1123 label: what Kubernetes accepts as a name segment.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::Vendor;

    #[test]
    fn example_fleet_covers_four_clouds_with_gpus_and_npus() {
        let fleet = Fleet::example();
        for cloud in [
            Cloud::Aws,
            Cloud::Aliyun,
            Cloud::Tencentcloud,
            Cloud::Huaweicloud,
        ] {
            assert!(fleet.pools.iter().any(|p| p.cloud == cloud), "{cloud}");
        }
        let vendors: BTreeSet<_> = fleet
            .pools
            .iter()
            .map(|p| format!("{:?}", p.accelerator_spec().unwrap().vendor))
            .collect();
        assert!(vendors.contains(&format!("{:?}", Vendor::Nvidia)));
        assert!(vendors.contains(&format!("{:?}", Vendor::Huawei)));
        assert!(
            fleet
                .pools
                .iter()
                .any(|p| p.capacity_type == CapacityType::Spot)
        );
    }

    #[test]
    fn aliases_become_catalog_ids() {
        let fleet = Fleet::from_yaml(
            "pools:\n- {cloud: aws, region: us-east-1, cluster: c1, name: p1, accelerator: H100,\n   devicesPerNode: 8, nodesTotal: 2, nodesFree: 1, pricePerDeviceHour: \"6.88 USD\"}\n",
        )
        .unwrap();
        assert_eq!(fleet.pools[0].accelerator, "h100-80gb");
        assert_eq!(fleet.pools[0].capacity_type, CapacityType::OnDemand);
    }

    #[test]
    fn names_every_problem_in_a_bad_fleet() {
        let err = Fleet::from_yaml(
            "pools:\n\
             - {cloud: aws, region: us-east-1, cluster: c1, name: p1, accelerator: h1000, devicesPerNode: 0, nodesTotal: 1, nodesFree: 2}\n\
             - {cloud: aws, region: US_East, cluster: c1, name: p1, accelerator: a10, devicesPerNode: 4, nodesTotal: 1, nodesFree: 1, partlyFree: [4]}\n",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "pools[0] (c1/p1): unknown accelerator \"h1000\"",
            "devicesPerNode must be at least 1",
            "nodesFree (2) cannot exceed nodesTotal (1)",
            "pools[1] (c1/p1): region \"US_East\" must be a DNS label",
            "listed twice",
            "partlyFree entry 4 must be between 1 and devicesPerNode − 1 (3)",
            "nodesFree (1) plus partly free nodes (1) exceed nodesTotal (1)",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
        let err = Fleet::from_yaml("pools:\n- {cloud: gcp}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gcp"), "{err}");
        let err = Fleet::from_yaml("pools: []").unwrap_err().to_string();
        assert!(err.contains("no pools"), "{err}");
    }

    #[test]
    fn a_pools_device_resource_must_be_a_name_of_its_vendors_devices() {
        let yaml = |resource: &str| {
            format!(
                "pools:\n- {{cloud: huaweicloud, region: cn-southwest-2, cluster: c1, name: p1, \
                 accelerator: ascend-910b, devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, \
                 deviceResource: {resource}}}\n"
            )
        };
        let fleet = Fleet::from_yaml(&yaml("huawei.com/ascend-1980")).unwrap();
        assert_eq!(
            fleet.pools[0].device_resource.as_deref(),
            Some("huawei.com/ascend-1980")
        );
        let err = Fleet::from_yaml(&yaml("nvidia.com/gpu"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "pools[0] (c1/p1): deviceResource \"nvidia.com/gpu\" is not a name ascend-910b \
                 devices are advertised as; use one of huawei.com/Ascend910, huawei.com/ascend-1980"
            ),
            "{err}"
        );
    }

    #[test]
    fn catalog_nodes_are_one_node_of_each_accelerator() {
        let fleet = Fleet::catalog_nodes();
        assert_eq!(fleet.pools.len(), ACCELERATORS.len());
        assert!(
            fleet
                .pools
                .iter()
                .all(|p| p.nodes_total == 1 && p.nodes_free == 1)
        );
        fleet.clone().validate().unwrap();
    }
}
