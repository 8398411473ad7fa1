//! Node-pool discovery: from a cluster's Nodes and Pods to the fleet the
//! planner sizes against. Pure: the operator and the hub list the objects,
//! this module only reads them.
//!
//! A pool is the nodes that share a pool label: `modelfleet.io/pool` if a
//! platform engineer set one, else the cloud's node-group label (EKS node
//! group, Karpenter node pool, ACK, TKE or CCE node pool). The accelerator is
//! read from the device plugin's allocatable resource and the product labels;
//! free devices are allocatable minus what non-terminated pods request. The
//! pool records which device resource its nodes advertise, so that pods
//! placed there request that one.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Node, Pod};

use super::devices::{self, DEVICE_RESOURCES};
use super::labels::{
    ACCELERATOR_LABEL, CAPACITY_TYPE_LABEL, CLOUD_LABEL, POOL_LABEL, PRICE_ANNOTATION,
};
use super::node_labels::{
    ACK_GPU_NAME, ASCEND_ACCELERATOR_TYPE, CLOUD_LABEL_PREFIXES, EKS_CAPACITY_TYPE, GPU_MEMORY,
    GPU_PRODUCT, KARPENTER_CAPACITY_TYPE, KARPENTER_GPU_MEMORY, KARPENTER_GPU_NAME,
    NODE_GROUP_LABELS, REGION,
};
use crate::accelerator::{ACCELERATORS, Accelerator, Vendor};
use crate::fleet::{CapacityType, Cloud, Fleet, NodePool, PoolSettings, Taint};
use crate::money::Money;

/// A node discovery could not place in a pool, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub node: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub fleet: Fleet,
    /// Accelerator nodes that belong to no pool the planner can use.
    pub skipped: Vec<Skipped>,
}

/// One accelerator node, as discovery reads it.
struct NodeFacts {
    pool: String,
    cloud: Cloud,
    region: String,
    accelerator: &'static Accelerator,
    resource: &'static str,
    allocatable: u32,
    schedulable: bool,
    capacity_type: CapacityType,
    price: Option<Money>,
    pool_labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    settings: PoolSettings,
}

/// Groups `nodes` into pools of cluster `cluster` and counts free devices
/// from `pods`. Nodes without accelerators are ignored. Takes the objects
/// owned or shared (`Arc`, as a watch cache hands them out), so that a
/// caller need not copy a whole cluster to ask.
pub fn discover<N: Borrow<Node>, P: Borrow<Pod>>(
    cluster: &str,
    nodes: &[N],
    pods: &[P],
) -> Discovery {
    let mut skipped = Vec::new();
    let mut pools: BTreeMap<String, NodePool> = BTreeMap::new();
    // Pods are read once, not once per node: a reconcile of a large
    // cluster would otherwise cost nodes × pods.
    let bound = live_pods_by_node(pods);
    for node in nodes {
        let node = node.borrow();
        let name = node.metadata.name.clone().unwrap_or_default();
        let facts = match read_node(node) {
            Ok(Some(facts)) => facts,
            Ok(None) => continue,
            Err(reason) => {
                skipped.push(Skipped { node: name, reason });
                continue;
            }
        };
        let used = bound
            .get(name.as_str())
            .map_or(0, |on_node| requested(facts.resource, on_node));
        let free = facts.allocatable.saturating_sub(used);
        let pool = pools.entry(facts.pool.clone()).or_insert_with(|| NodePool {
            cloud: facts.cloud,
            region: facts.region.clone(),
            cluster: cluster.to_owned(),
            name: facts.pool.clone(),
            accelerator: facts.accelerator.id.to_owned(),
            devices_per_node: facts.allocatable,
            nodes_total: 0,
            nodes_free: 0,
            partly_free: Vec::new(),
            price_per_device_hour: facts.price,
            capacity_type: facts.capacity_type,
            labels: facts.pool_labels.clone(),
            taints: facts.taints.clone(),
            device_resource: Some(facts.resource.to_owned()),
            settings: facts.settings.clone(),
        });
        if pool.accelerator != facts.accelerator.id {
            skipped.push(Skipped {
                node: name,
                reason: format!(
                    "has {} but pool {} has {}; a pool must be one kind of device",
                    facts.accelerator.id, pool.name, pool.accelerator
                ),
            });
            continue;
        }
        if pool.settings != facts.settings {
            skipped.push(Skipped {
                node: name,
                reason: format!(
                    "its modelfleet.io/ network and registry annotations ({:?}) differ from \
                     the other nodes' of pool {} ({:?}); annotate every node of a pool alike",
                    facts.settings, pool.name, pool.settings
                ),
            });
            continue;
        }
        if pool.device_resource.as_deref() != Some(facts.resource) {
            skipped.push(Skipped {
                node: name,
                reason: format!(
                    "advertises {} but the other nodes of pool {} advertise {}; a pod can \
                     request only one of them, so a pool's nodes must run one device plugin",
                    facts.resource,
                    pool.name,
                    pool.device_resource.as_deref().unwrap_or_default()
                ),
            });
            continue;
        }
        pool.nodes_total += 1;
        // Pools are homogeneous; a node with fewer devices (one broken, say)
        // still counts, and its devices are counted as they are.
        pool.devices_per_node = pool.devices_per_node.max(facts.allocatable);
        pool.taints.retain(|t| facts.taints.contains(t));
        if facts.schedulable && free > 0 {
            if free >= pool.devices_per_node {
                pool.nodes_free += 1;
            } else {
                pool.partly_free.push(free);
            }
        }
    }
    let mut pools: Vec<NodePool> = pools.into_values().collect();
    for pool in &mut pools {
        // A node seen before a larger one was counted as whole; keep the
        // split between whole and partly free nodes consistent.
        pool.partly_free
            .retain(|&free| free < pool.devices_per_node);
        pool.partly_free.sort_unstable_by(|a, b| b.cmp(a));
    }
    Discovery {
        fleet: Fleet {
            exchange_rates: Default::default(),
            pools,
        },
        skipped,
    }
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// `Ok(None)` for a node without accelerators.
fn read_node(node: &Node) -> Result<Option<NodeFacts>, String> {
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let Some((resource, vendor, count)) = DEVICE_RESOURCES.iter().find_map(|(resource, vendor)| {
        let quantity = allocatable?.get(*resource)?;
        let count: u32 = quantity.0.parse().ok()?;
        (count > 0).then_some((*resource, *vendor, count))
    }) else {
        return Ok(None);
    };
    let accelerator = identify(node, vendor)?;
    let (pool, pool_key) = match label(node, POOL_LABEL) {
        Some(pool) => (pool.to_owned(), Some(POOL_LABEL)),
        None => NODE_GROUP_LABELS
            .iter()
            .find_map(|(key, _)| label(node, key).map(|v| (v.to_owned(), Some(*key))))
            .unwrap_or_else(|| (format!("{}-nodes", accelerator.id.replace('.', "-")), None)),
    };
    let pool = dns_label(&pool);
    let mut pool_labels = BTreeMap::new();
    match pool_key {
        Some(key) => {
            pool_labels.insert(
                key.to_owned(),
                label(node, key).unwrap_or_default().to_owned(),
            );
        }
        // No pool label: pin by the device's own product label instead.
        None => {
            if let Some((key, value)) = product_label(node) {
                pool_labels.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    let price = match node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PRICE_ANNOTATION))
    {
        Some(text) => Some(text.parse::<Money>().map_err(|e| {
            format!(
                "annotation {PRICE_ANNOTATION} is not a price ({e}); write it like \"6.88 USD\""
            )
        })?),
        None => None,
    };
    let settings = super::pool_settings::read(node.metadata.annotations.as_ref())?;
    Ok(Some(NodeFacts {
        settings,
        pool,
        cloud: cloud_of(node)?,
        region: label(node, REGION)
            .map(dns_label)
            .unwrap_or_else(|| "unknown".to_owned()),
        accelerator,
        resource,
        allocatable: count,
        schedulable: is_schedulable(node),
        capacity_type: capacity_type_of(node),
        price,
        pool_labels,
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .map(|taints| {
                taints
                    .iter()
                    .map(|t| Taint {
                        key: t.key.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

fn product_label(node: &Node) -> Option<(&'static str, &str)> {
    [GPU_PRODUCT, ASCEND_ACCELERATOR_TYPE]
        .into_iter()
        .find_map(|key| label(node, key).map(|v| (key, v)))
}

/// Which catalog accelerator a node carries.
fn identify(node: &Node, vendor: Vendor) -> Result<&'static Accelerator, String> {
    if let Some(id) = label(node, ACCELERATOR_LABEL) {
        return Accelerator::find(id).ok_or_else(|| {
            format!(
                "label {ACCELERATOR_LABEL}={id} names no catalog accelerator (known: {})",
                Accelerator::ids()
            )
        });
    }
    let candidates = ACCELERATORS.iter().filter(|a| a.vendor == vendor);
    let found = match vendor {
        Vendor::Nvidia => {
            let product = label(node, GPU_PRODUCT)
                .or_else(|| label(node, ACK_GPU_NAME))
                .or_else(|| label(node, KARPENTER_GPU_NAME));
            product.and_then(|p| {
                let p = p.to_ascii_lowercase();
                // Exact product labels first (GPU Feature Discovery), then
                // names such as "a10g" or "h100" as token matches.
                if let Some(a) = candidates
                    .clone()
                    .find(|a| a.product_label.eq_ignore_ascii_case(&p))
                {
                    return Some(a);
                }
                let tokens: Vec<&str> = p.split(|c: char| !c.is_ascii_alphanumeric()).collect();
                let family: Vec<&'static Accelerator> = candidates
                    .clone()
                    .filter(|a| {
                        let short = a.id.split('-').next().unwrap_or(a.id);
                        tokens
                            .iter()
                            .any(|t| *t == short || *t == format!("{short}g"))
                    })
                    .collect();
                let memory_gb = gpu_memory_gb(node);
                match family.as_slice() {
                    [only] => Some(*only),
                    several => several
                        .iter()
                        .find(|a| {
                            tokens.contains(&a.memory_gb.to_string().as_str())
                                || tokens.contains(&format!("{}gb", a.memory_gb).as_str())
                        })
                        .or_else(|| {
                            let gb = memory_gb?;
                            several.iter().min_by_key(|a| a.memory_gb.abs_diff(gb))
                        })
                        .copied(),
                }
            })
        }
        // module-910b-8 is both the 64 GB 910B and the 32 GB 910B4: the
        // label alone cannot tell them apart, so it names the common 64 GB
        // card and the 910B4 needs modelfleet.io/accelerator.
        Vendor::Huawei => label(node, ASCEND_ACCELERATOR_TYPE)
            .and_then(|t| candidates.clone().find(|a| a.product_label == t)),
    };
    found.ok_or_else(|| {
        format!(
            "its {} accelerator is not recognised from its labels; set {ACCELERATOR_LABEL} to one of {}",
            match vendor {
                Vendor::Nvidia => "NVIDIA",
                Vendor::Huawei => "Ascend",
            },
            Accelerator::ids()
        )
    })
}

/// Device memory from GPU Feature Discovery (`nvidia.com/gpu.memory`) or
/// Karpenter (`karpenter.k8s.aws/instance-gpu-memory`), both in MiB.
fn gpu_memory_gb(node: &Node) -> Option<u32> {
    [GPU_MEMORY, KARPENTER_GPU_MEMORY]
        .into_iter()
        .find_map(|key| label(node, key)?.parse::<u32>().ok())
        .map(|mib| mib / 1024)
}

fn cloud_of(node: &Node) -> Result<Cloud, String> {
    if let Some(cloud) = label(node, CLOUD_LABEL) {
        return cloud
            .parse()
            .map_err(|e| format!("label {CLOUD_LABEL}: {e}"));
    }
    let labels = node.metadata.labels.as_ref();
    let has_prefix = |prefix: &str| labels.is_some_and(|l| l.keys().any(|k| k.starts_with(prefix)));
    Ok(NODE_GROUP_LABELS
        .iter()
        .find(|(key, _)| label(node, key).is_some())
        .map(|(_, cloud)| *cloud)
        .or_else(|| {
            CLOUD_LABEL_PREFIXES
                .iter()
                .find(|(prefix, _)| has_prefix(prefix))
                .map(|(_, cloud)| *cloud)
        })
        .unwrap_or(Cloud::Generic))
}

fn capacity_type_of(node: &Node) -> CapacityType {
    let spot = [
        (CAPACITY_TYPE_LABEL, "spot"),
        (EKS_CAPACITY_TYPE, "SPOT"),
        (KARPENTER_CAPACITY_TYPE, "spot"),
    ]
    .iter()
    .any(|(key, value)| label(node, key).is_some_and(|v| v.eq_ignore_ascii_case(value)));
    if spot {
        CapacityType::Spot
    } else {
        CapacityType::OnDemand
    }
}

fn is_schedulable(node: &Node) -> bool {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    ready && !cordoned
}

/// Devices of `resource` requested by non-terminated pods bound to `node`,
/// counted as the scheduler does: the larger of the containers' sum and
/// the largest init container.
pub fn requested_on(node: &str, resource: &str, pods: &[Pod]) -> u32 {
    live_pods_by_node(pods)
        .get(node)
        .map_or(0, |on_node| requested(resource, on_node))
}

/// Non-terminated pods by the node they are bound to.
fn live_pods_by_node<P: Borrow<Pod>>(pods: &[P]) -> HashMap<&str, Vec<&Pod>> {
    let mut bound: HashMap<&str, Vec<&Pod>> = HashMap::new();
    for pod in pods {
        let pod = pod.borrow();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            bound.entry(node).or_default().push(pod);
        }
    }
    bound
}

fn requested(resource: &str, pods: &[&Pod]) -> u32 {
    pods.iter().map(|p| pod_request(p, resource)).sum()
}

/// Devices of `resource` the pod asks for: the larger of its containers'
/// sum and its largest init container, as the scheduler counts.
pub fn pod_request(pod: &Pod, resource: &str) -> u32 {
    let Some(spec) = &pod.spec else { return 0 };
    let of = |c: &Container| -> u32 {
        let resources = c.resources.as_ref();
        resources
            .and_then(|r| r.requests.as_ref().and_then(|q| q.get(resource)))
            .or_else(|| resources.and_then(|r| r.limits.as_ref().and_then(|q| q.get(resource))))
            .and_then(|q| q.0.parse().ok())
            .unwrap_or(0)
    };
    let containers: u32 = spec.containers.iter().map(of).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    containers.max(init)
}

/// Devices of `vendor` the pod asks for, under whichever name its
/// cluster's device plugin advertises them (a pod asks for one of them).
pub fn vendor_request(pod: &Pod, vendor: Vendor) -> u32 {
    devices::resources_of(vendor)
        .map(|resource| pod_request(pod, resource))
        .sum()
}

/// Lowercases and replaces what a DNS label may not hold, so that any node
/// group id can name a pool.
fn dns_label(s: &str) -> String {
    let mapped: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let label: String = trimmed.chars().take(63).collect();
    if label.is_empty() {
        "pool".to_owned()
    } else {
        label.trim_end_matches('-').to_owned()
    }
}

#[cfg(test)]
mod tests;
