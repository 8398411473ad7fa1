//! From a fleet to the Node objects a real cluster of that fleet would
//! have, and to the pods that hold the devices the fleet says are in use.
//! Pure: `SimulatedCluster::start` creates what this returns.
//!
//! Label and device resource names are the cluster contract's
//! (`modelfleet_core::contract`), which pool discovery reads: the nodes of
//! a pool advertise its `deviceResource` when the fleet gives one (Huawei
//! Cloud CCE's AI suite: `huawei.com/ascend-1980`), else the name of the
//! vendor's own device plugin. Where a cloud's real label *value* is an
//! opaque id (ACK and TKE node pool ids look like `np-1a2b3c`), the pool
//! name stands in for it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Pod, PodSpec, ResourceRequirements, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::accelerator::{Accelerator, Vendor};
use modelfleet_core::contract::devices;
use modelfleet_core::contract::labels::{
    ACCELERATOR_LABEL, CAPACITY_TYPE_LABEL, POOL_LABEL, PRICE_ANNOTATION,
};
use modelfleet_core::contract::node_labels::{
    ACK_GPU_COUNT, ACK_GPU_MEMORY, ACK_GPU_NAME, ACK_NODEPOOL, ASCEND_ACCELERATOR,
    ASCEND_ACCELERATOR_TYPE, ASCEND_HOST_ARCH, CCE_NODEPOOL, EKS_CAPACITY_TYPE, EKS_NODEGROUP,
    GPU_COUNT, GPU_MEMORY, GPU_PRESENT, GPU_PRODUCT, INSTANCE_TYPE, REGION, TKE_NODEPOOL, ZONE,
};
use modelfleet_core::fleet::{CapacityType, Cloud, Fleet, NodePool};

use super::pod_network::PodNetwork;

use super::common::{hex_id, time};
use super::resources::format_kibibytes;

/// Marks the pods that stand for work the fleet says is already running.
pub const RESERVED_LABEL: &str = "sandbox.modelfleet.io/reserved";

/// The kubelet version every simulated node reports: the oldest Kubernetes
/// version modelfleet supports (k8s-openapi's `v1_33`).
pub const KUBELET_VERSION: &str = "v1.33.1";
const CONTAINER_RUNTIME: &str = "containerd://1.7.27";

/// The nodes of a fleet and the pods that occupy its busy devices.
#[derive(Debug, Clone)]
pub struct FleetNodes {
    pub nodes: Vec<Node>,
    pub reserved: Vec<Pod>,
}

/// Nodes for every pool of `fleet`, named `<pool>-<i>` (`<cluster>-<pool>-<i>`
/// where two clusters of the fleet share a pool name). Of each pool, the
/// first `nodesTotal − nodesFree − partlyFree` nodes are fully in use, the
/// next ones have `partlyFree` devices free, the rest are free; a pod in
/// `reserved_namespace` holds each node's used devices, so anyone counting
/// pods sees the same free capacity the fleet describes.
pub fn fleet_nodes(fleet: &Fleet, reserved_namespace: &str, created: Timestamp) -> FleetNodes {
    fleet_nodes_on(fleet, reserved_namespace, created, &PodNetwork::Simulated)
}

/// [`fleet_nodes`], the nodes' pod CIDRs from `network`.
pub fn fleet_nodes_on(
    fleet: &Fleet,
    reserved_namespace: &str,
    created: Timestamp,
    network: &PodNetwork,
) -> FleetNodes {
    let mut seen = BTreeSet::new();
    let shared_names: BTreeSet<&str> = fleet
        .pools
        .iter()
        .filter(|p| !seen.insert(p.name.as_str()))
        .map(|p| p.name.as_str())
        .collect();
    let mut out = FleetNodes {
        nodes: Vec::new(),
        reserved: Vec::new(),
    };
    let mut index = 0u32;
    for pool in &fleet.pools {
        // A fleet from `Fleet::from_yaml` has only catalog accelerators.
        let Some(accelerator) = pool.accelerator_spec() else {
            continue;
        };
        let prefix = if shared_names.contains(pool.name.as_str()) {
            format!("{}-{}", pool.cluster, pool.name)
        } else {
            pool.name.clone()
        };
        let busy = pool
            .nodes_total
            .saturating_sub(pool.nodes_free)
            .saturating_sub(pool.partly_free.len() as u32);
        for i in 0..pool.nodes_total {
            let name = format!("{prefix}-{i}");
            let mut node = node(pool, accelerator, &name, index, created);
            if !matches!(network, PodNetwork::Simulated) {
                let cidr = network.pod_cidr(index);
                if let Some(spec) = node.spec.as_mut() {
                    spec.pod_cidr = Some(cidr.clone());
                    spec.pod_cidrs = Some(vec![cidr]);
                }
            }
            let used = if i < busy {
                pool.devices_per_node
            } else {
                let partly = (i - busy) as usize;
                pool.partly_free
                    .get(partly)
                    .map_or(0, |free| pool.devices_per_node - free)
            };
            if used > 0 {
                out.reserved.push(reserved_pod(
                    &name,
                    reserved_namespace,
                    devices::resource_on(pool, accelerator),
                    used,
                    pool.devices_per_node,
                ));
            }
            out.nodes.push(node);
            index += 1;
        }
    }
    out
}

/// Host shape of the instance: vCPUs and memory in GiB. Known instance types
/// use the cloud's published shape; others are estimated per device.
fn host_shape(instance_type: &str, accelerator: &Accelerator, devices: u32) -> (u32, u64) {
    match instance_type {
        "p5en.48xlarge" | "p5.48xlarge" => (192, 2048),
        "p4de.24xlarge" | "p4d.24xlarge" => (96, 1152),
        "g6e.48xlarge" => (192, 1536),
        "g5.12xlarge" => (48, 192),
        "ecs.gn7i-c32g1.32xlarge" => (128, 752),
        "ecs.gn7e-c16g1.32xlarge" => (128, 1024),
        "GT4.41XLARGE948" => (164, 948),
        // Estimate: Atlas 800I A2 carries 192 Kunpeng cores and 1 TiB for 8
        // NPUs; GPU servers are similar per device.
        _ => {
            let per_device_cpu = if accelerator.memory_gb <= 24 { 12 } else { 24 };
            (per_device_cpu * devices, 128 * u64::from(devices))
        }
    }
}

/// `node.kubernetes.io/instance-type`: the pool's label if the fleet gives
/// one; else the accelerator's typical AWS instance on AWS; else a made-up
/// but label-safe name, since this cloud's real flavour is not known.
fn instance_type(pool: &NodePool, accelerator: &Accelerator) -> String {
    if let Some(t) = pool.labels.get(INSTANCE_TYPE) {
        return t.clone();
    }
    match pool.cloud {
        Cloud::Aws => accelerator.typical_instance.to_owned(),
        _ => format!("{}-x{}", accelerator.id, pool.devices_per_node),
    }
}

/// The zone a pool's nodes sit in, spelled as each cloud spells zones.
/// GPU node groups usually live in one zone (placement groups, capacity
/// reservations), so a pool gets one.
fn zone(cloud: Cloud, region: &str) -> String {
    match cloud {
        Cloud::Aws | Cloud::Huaweicloud => format!("{region}a"),
        Cloud::Aliyun => format!("{region}-i"),
        Cloud::Tencentcloud => format!("{region}-2"),
        Cloud::Generic => format!("{region}-a"),
    }
}

fn os_image(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => "Amazon Linux 2023.7.20250512",
        Cloud::Aliyun => "Alibaba Cloud Linux 3.2104 U11 (OpenAnolis Edition)",
        Cloud::Tencentcloud => "TencentOS Server 3.1 (Final)",
        Cloud::Huaweicloud => "EulerOS 2.0 (SP10)",
        Cloud::Generic => "Ubuntu 22.04.5 LTS",
    }
}

fn kernel_version(cloud: Cloud, arch: &str) -> &'static str {
    match (cloud, arch) {
        (_, "arm64") => "5.10.0-182.0.0.95.r1941_123.hce2.aarch64",
        (Cloud::Aws, _) => "6.1.134-150.224.amzn2023.x86_64",
        (Cloud::Aliyun, _) => "5.10.134-18.al8.x86_64",
        (Cloud::Tencentcloud, _) => "5.4.241-1-tlinux4-0017.7",
        _ => "5.15.0-131-generic",
    }
}

fn labels_of(
    pool: &NodePool,
    accelerator: &Accelerator,
    name: &str,
    arch: &str,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        labels.insert(k.to_owned(), v);
    };
    set("kubernetes.io/hostname", name.to_owned());
    set("kubernetes.io/os", "linux".into());
    set("kubernetes.io/arch", arch.into());
    set("beta.kubernetes.io/os", "linux".into());
    set("beta.kubernetes.io/arch", arch.into());
    set(INSTANCE_TYPE, instance_type(pool, accelerator));
    set(REGION, pool.region.clone());
    set(ZONE, zone(pool.cloud, &pool.region));
    set(POOL_LABEL, pool.name.clone());
    set(ACCELERATOR_LABEL, accelerator.id.to_owned());
    let spot = pool.capacity_type == CapacityType::Spot;
    match pool.cloud {
        Cloud::Aws => {
            set(EKS_NODEGROUP, pool.name.clone());
            set(
                EKS_CAPACITY_TYPE,
                if spot { "SPOT" } else { "ON_DEMAND" }.into(),
            );
        }
        Cloud::Aliyun => set(ACK_NODEPOOL, pool.name.clone()),
        Cloud::Tencentcloud => set(TKE_NODEPOOL, pool.name.clone()),
        Cloud::Huaweicloud => set(CCE_NODEPOOL, pool.name.clone()),
        Cloud::Generic => {}
    }
    if spot {
        set(CAPACITY_TYPE_LABEL, "spot".into());
    }
    match accelerator.vendor {
        Vendor::Nvidia => {
            // GPU Feature Discovery; memory is in MiB.
            set(GPU_PRESENT, "true".into());
            set(GPU_PRODUCT, accelerator.product_label.into());
            set(GPU_COUNT, pool.devices_per_node.to_string());
            set(GPU_MEMORY, accelerator.usable_mib.to_string());
            if pool.cloud == Cloud::Aliyun {
                // ACK's own GPU labels; the MiB suffix on nvidia_mem is our
                // best reading of ACK's documentation.
                set(ACK_GPU_NAME, accelerator.product_label.into());
                set(ACK_GPU_COUNT, pool.devices_per_node.to_string());
                set(ACK_GPU_MEMORY, format!("{}MiB", accelerator.usable_mib));
            }
        }
        Vendor::Huawei => {
            // MindCluster's Ascend labels.
            set(ASCEND_ACCELERATOR, "huawei-Ascend910".into());
            set(ASCEND_ACCELERATOR_TYPE, accelerator.product_label.into());
            set(ASCEND_HOST_ARCH, "huawei-arm".into());
        }
    }
    // The fleet's own pool labels are what workloads are pinned by: they win.
    labels.extend(pool.labels.clone());
    labels
}

/// The device plugin's taint keeps pods that do not ask for devices off
/// accelerator nodes. `nvidia.com/gpu=present:NoSchedule` is common on GPU
/// clouds; for Ascend the equivalent key is the resource name (a best
/// guess: MindCluster documents no standard taint).
pub fn device_taint(resource: &str) -> Taint {
    Taint {
        key: resource.to_owned(),
        value: Some("present".to_owned()),
        effect: "NoSchedule".to_owned(),
        time_added: None,
    }
}

fn node(
    pool: &NodePool,
    accelerator: &Accelerator,
    name: &str,
    index: u32,
    created: Timestamp,
) -> Node {
    let arch = match accelerator.vendor {
        Vendor::Nvidia => "amd64",
        Vendor::Huawei => "arm64",
    };
    let resource = devices::resource_on(pool, accelerator);
    let mut taints = vec![device_taint(resource)];
    for t in &pool.taints {
        if !taints
            .iter()
            .any(|have| have.key == t.key && have.effect == t.effect)
        {
            taints.push(Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                time_added: None,
            });
        }
    }
    let (cpus, memory_gib) = host_shape(
        &instance_type(pool, accelerator),
        accelerator,
        pool.devices_per_node,
    );
    let memory = memory_gib << 30;
    // What the kubelet keeps back for the system and eviction: half a core,
    // and 2% of memory plus the default 100Mi eviction threshold.
    let reserved_memory = memory / 50 + (100 << 20);
    let devices = Quantity(pool.devices_per_node.to_string());
    let quantities = |cpu: Quantity, memory: Quantity| {
        BTreeMap::from([
            ("cpu".to_owned(), cpu),
            ("memory".to_owned(), memory),
            ("pods".to_owned(), Quantity("110".into())),
            (
                "ephemeral-storage".to_owned(),
                Quantity("1887436800Ki".into()),
            ),
            ("hugepages-1Gi".to_owned(), Quantity("0".into())),
            ("hugepages-2Mi".to_owned(), Quantity("0".into())),
            (resource.to_owned(), devices.clone()),
        ])
    };
    let pod_cidr = format!("10.{}.{}.0/24", index / 256, index % 256);
    let host_ip = {
        let n = index + 10;
        format!("172.{}.{}.{}", 16 + n / 65536, (n / 256) % 256, n % 256)
    };
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(time(created)),
        last_transition_time: Some(time(created)),
    };
    // The pool's price and settings, as a platform engineer annotates
    // real nodes.
    let mut annotations = modelfleet_core::contract::pool_settings::annotations(&pool.settings);
    if let Some(price) = pool.price_per_device_hour {
        annotations.insert(PRICE_ANNOTATION.to_owned(), price.to_string());
    }
    let annotations = (!annotations.is_empty()).then_some(annotations);
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels_of(pool, accelerator, name, arch)),
            annotations,
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(pod_cidr.clone()),
            pod_cidrs: Some(vec![pod_cidr]),
            taints: Some(taints),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(quantities(
                Quantity(cpus.to_string()),
                format_kibibytes(memory),
            )),
            allocatable: Some(quantities(
                Quantity(format!("{}m", u64::from(cpus) * 1000 - 500)),
                format_kibibytes(memory - reserved_memory),
            )),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                ),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: host_ip,
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.to_owned(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint { port: 10250 }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: arch.to_owned(),
                boot_id: hex_uuid(&format!("{name}/boot")),
                container_runtime_version: CONTAINER_RUNTIME.to_owned(),
                kernel_version: kernel_version(pool.cloud, arch).to_owned(),
                kube_proxy_version: String::new(),
                kubelet_version: KUBELET_VERSION.to_owned(),
                machine_id: hex_id(&format!("{name}/machine"), 32),
                operating_system: "linux".to_owned(),
                os_image: os_image(pool.cloud).to_owned(),
                system_uuid: hex_uuid(&format!("{name}/system")),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn hex_uuid(seed: &str) -> String {
    let h = hex_id(seed, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A pod bound straight to `node` (as a static or pre-existing pod would
/// be) that holds `used` of its devices for as long as the cluster runs.
fn reserved_pod(node: &str, namespace: &str, resource: &str, used: u32, total: u32) -> Pod {
    let devices = BTreeMap::from([(resource.to_owned(), Quantity(used.to_string()))]);
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("reserved-{node}")),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (RESERVED_LABEL.to_owned(), "true".to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "modelfleet-sandbox".to_owned(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                "sandbox.modelfleet.io/why".to_owned(),
                format!(
                    "the fleet says {used} of this node's {total} devices are in use by work outside modelfleet"
                ),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            containers: vec![Container {
                name: "reserved".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                resources: Some(ResourceRequirements {
                    requests: Some(devices.clone()),
                    limits: Some(devices),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
