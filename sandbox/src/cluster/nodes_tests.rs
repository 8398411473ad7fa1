use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::fleet::Fleet;
use modelfleet_core::money::Money;

use super::*;
use crate::cluster::resources::{milli, pod_requests};

fn example() -> FleetNodes {
    fleet_nodes(&Fleet::example(), "kube-system", Timestamp::UNIX_EPOCH)
}

fn node<'a>(nodes: &'a FleetNodes, name: &str) -> &'a Node {
    nodes
        .nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn allocatable(node: &Node, resource: &str) -> i128 {
    milli(&node.status.as_ref().unwrap().allocatable.as_ref().unwrap()[resource])
}

fn taints(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .unwrap()
        .taints
        .iter()
        .flatten()
        .map(|t| {
            format!(
                "{}={}:{}",
                t.key,
                t.value.as_deref().unwrap_or(""),
                t.effect
            )
        })
        .collect()
}

#[test]
fn every_pool_becomes_its_nodes_with_unique_names() {
    let fleet = Fleet::example();
    let nodes = example();
    let expected: u32 = fleet.pools.iter().map(|p| p.nodes_total).sum();
    assert_eq!(nodes.nodes.len(), expected as usize);
    let names: BTreeSet<_> = nodes
        .nodes
        .iter()
        .map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), nodes.nodes.len());
    for pool in &fleet.pools {
        for i in 0..pool.nodes_total {
            let n = node(&nodes, &format!("{}-{i}", pool.name));
            assert_eq!(label(n, POOL_LABEL), Some(pool.name.as_str()));
            assert_eq!(
                label(n, "topology.kubernetes.io/region"),
                Some(pool.region.as_str())
            );
            assert!(label(n, "topology.kubernetes.io/zone").is_some());
            assert!(label(n, "node.kubernetes.io/instance-type").is_some());
            let resource = pool.accelerator_spec().unwrap().resource_name;
            assert_eq!(
                allocatable(n, resource),
                i128::from(pool.devices_per_node) * 1000
            );
            // Allocatable is below capacity, as on a real kubelet.
            let status = n.status.as_ref().unwrap();
            let capacity_cpu = milli(&status.capacity.as_ref().unwrap()["cpu"]);
            assert!(allocatable(n, "cpu") < capacity_cpu);
            assert!(crate::cluster::common::node_is_ready(n));
        }
    }
    // Pod CIDRs do not overlap.
    let cidrs: BTreeSet<_> = nodes
        .nodes
        .iter()
        .map(|n| n.spec.as_ref().unwrap().pod_cidr.clone())
        .collect();
    assert_eq!(cidrs.len(), nodes.nodes.len());
}

#[test]
fn gpu_nodes_carry_feature_discovery_labels_and_the_gpu_taint() {
    let nodes = example();
    let h100 = node(&nodes, "p5-h100-0");
    assert_eq!(
        label(h100, "nvidia.com/gpu.product"),
        Some("NVIDIA-H100-80GB-HBM3")
    );
    assert_eq!(label(h100, "nvidia.com/gpu.count"), Some("8"));
    assert_eq!(label(h100, "nvidia.com/gpu.memory"), Some("81090"));
    assert_eq!(label(h100, "eks.amazonaws.com/nodegroup"), Some("p5-h100"));
    assert_eq!(
        label(h100, "eks.amazonaws.com/capacityType"),
        Some("ON_DEMAND")
    );
    assert_eq!(label(h100, "kubernetes.io/arch"), Some("amd64"));
    assert_eq!(
        label(h100, "node.kubernetes.io/instance-type"),
        Some("p5.48xlarge")
    );
    // The device taint and the pool's own taint, once each.
    assert_eq!(
        taints(h100),
        [
            "nvidia.com/gpu=present:NoSchedule",
            "workload=llm-serving:NoSchedule"
        ]
    );
    let status = h100.status.as_ref().unwrap();
    assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, "192");
    assert_eq!(
        status.node_info.as_ref().unwrap().kubelet_version,
        KUBELET_VERSION
    );
    assert_eq!(
        h100.metadata.annotations.as_ref().unwrap()[PRICE_ANNOTATION]
            .parse::<Money>()
            .unwrap()
            .to_string(),
        "6.88 USD"
    );
}

#[test]
fn each_cloud_names_its_node_pools_its_own_way() {
    let nodes = example();
    let ack = node(&nodes, "gn7i-a10-0");
    assert_eq!(label(ack, "alibabacloud.com/nodepool-id"), Some("gn7i-a10"));
    // The fleet's own labels win over what the sandbox would write.
    assert_eq!(
        label(ack, "aliyun.accelerator/nvidia_name"),
        Some("NVIDIA-A10")
    );
    assert_eq!(label(ack, "aliyun.accelerator/nvidia_count"), Some("4"));
    let tke = node(&nodes, "gn7-l40s-spot-1");
    assert_eq!(
        label(tke, "tke.cloud.tencent.com/nodepool-id"),
        Some("gn7-l40s-spot")
    );
    assert_eq!(label(tke, CAPACITY_TYPE_LABEL), Some("spot"));
    assert_eq!(
        label(tke, "node.kubernetes.io/instance-type"),
        Some("l40s-x8")
    );
    let spot = node(&nodes, "p4de-a100-spot-0");
    assert_eq!(label(spot, "eks.amazonaws.com/capacityType"), Some("SPOT"));
    assert_eq!(
        label(
            node(&nodes, "g6e-l40s-0"),
            "node.kubernetes.io/instance-type"
        ),
        Some("g6e.48xlarge")
    );
}

#[test]
fn ascend_nodes_are_arm_hosts_with_mindcluster_labels() {
    let nodes = example();
    let a3 = node(&nodes, "snt9c-910c-1");
    assert_eq!(label(a3, "accelerator"), Some("huawei-Ascend910"));
    assert_eq!(label(a3, "accelerator-type"), Some("module-a3-16"));
    assert_eq!(label(a3, "host-arch"), Some("huawei-arm"));
    assert_eq!(label(a3, "kubernetes.io/arch"), Some("arm64"));
    assert_eq!(label(a3, "cce.cloud.com/cce-nodepool"), Some("snt9c-910c"));
    assert_eq!(allocatable(a3, "huawei.com/Ascend910"), 16_000);
    assert_eq!(taints(a3), ["huawei.com/Ascend910=present:NoSchedule"]);
    // 910B and 910B4 share a product label; the accelerator label tells them apart.
    assert_eq!(
        label(node(&nodes, "snt9b4-910b4-0"), ACCELERATOR_LABEL),
        Some("ascend-910b4")
    );
    assert!(label(a3, "nvidia.com/gpu.product").is_none());
}

#[test]
fn busy_devices_are_held_by_reserved_pods() {
    let nodes = example();
    let held: Vec<(String, String, i128)> = nodes
        .reserved
        .iter()
        .map(|p| {
            let spec = p.spec.as_ref().unwrap();
            let requests = pod_requests(spec);
            let (resource, amount) = requests.into_iter().next().unwrap();
            (spec.node_name.clone().unwrap(), resource, amount / 1000)
        })
        .collect();
    // p5-h100: 4 nodes, 3 free → one full node. gn7e-a100: 2 nodes, 1 free,
    // one with 4 of 8 free. gn7i-a10: 6 nodes, 5 free. gt4-a100: 3 nodes, 2 free.
    assert_eq!(
        held,
        [
            ("p5-h100-0".to_owned(), "nvidia.com/gpu".to_owned(), 8),
            ("gn7i-a10-0".to_owned(), "nvidia.com/gpu".to_owned(), 4),
            ("gn7e-a100-0".to_owned(), "nvidia.com/gpu".to_owned(), 4),
            ("gt4-a100-0".to_owned(), "nvidia.com/gpu".to_owned(), 8),
        ]
    );
    for pod in &nodes.reserved {
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
        // Reserved pods must sit on tainted nodes without the scheduler.
        let tolerations = pod.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"));
    }
}

#[test]
fn pools_sharing_a_name_across_clusters_get_the_cluster_in_their_node_names() {
    let fleet = Fleet::from_yaml(
        "pools:\n\
         - {cloud: aws, region: us-east-1, cluster: c1, name: gpu, accelerator: h100, devicesPerNode: 8, nodesTotal: 1, nodesFree: 1}\n\
         - {cloud: generic, region: lab, cluster: c2, name: gpu, accelerator: a10, devicesPerNode: 4, nodesTotal: 1, nodesFree: 1}\n",
    )
    .unwrap();
    let nodes = fleet_nodes(&fleet, "kube-system", Timestamp::UNIX_EPOCH);
    let names: Vec<_> = nodes
        .nodes
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["c1-gpu-0", "c2-gpu-0"]);
    assert!(nodes.reserved.is_empty());
    // Generic pools have no node-group label, and an estimated host shape.
    let generic = &nodes.nodes[1];
    assert!(label(generic, "eks.amazonaws.com/nodegroup").is_none());
    assert_eq!(label(generic, POOL_LABEL), Some("gpu"));
    assert_eq!(
        generic.status.as_ref().unwrap().capacity.as_ref().unwrap()["cpu"].0,
        "48"
    );
}

/// A Huawei Cloud CCE pool of 910Bs, as the CCE AI suite runs them: its
/// devices are `huawei.com/ascend-1980`.
const CCE_ASCEND_1980_FLEET: &str = "pools:\n\
     - {cloud: huaweicloud, region: cn-southwest-2, cluster: cce, name: snt9b-cce, \
        accelerator: ascend-910b, devicesPerNode: 8, nodesTotal: 2, nodesFree: 1, \
        partlyFree: [6], deviceResource: huawei.com/ascend-1980, \
        pricePerDeviceHour: \"22.00 CNY\"}\n";

#[test]
fn a_cce_pool_advertises_its_device_resource_and_discovery_reads_it_back() {
    let fleet = Fleet::from_yaml(CCE_ASCEND_1980_FLEET).unwrap();
    let nodes = fleet_nodes(&fleet, "kube-system", Timestamp::UNIX_EPOCH);
    for n in &nodes.nodes {
        assert_eq!(label(n, "cce.cloud.com/cce-nodepool"), Some("snt9b-cce"));
        assert_eq!(allocatable(n, "huawei.com/ascend-1980"), 8_000);
        let allocatable = n.status.as_ref().unwrap().allocatable.as_ref().unwrap();
        assert!(!allocatable.contains_key("huawei.com/Ascend910"));
        assert_eq!(taints(n), ["huawei.com/ascend-1980=present:NoSchedule"]);
    }
    // The partly free node's busy devices are held under the same name.
    let [reserved] = nodes.reserved.as_slice() else {
        panic!("{:?}", nodes.reserved)
    };
    assert_eq!(
        pod_requests(reserved.spec.as_ref().unwrap())["huawei.com/ascend-1980"],
        2_000
    );

    // Pool discovery sees the fleet the nodes were made from.
    let discovered =
        modelfleet_core::contract::discovery::discover("cce", &nodes.nodes, &nodes.reserved);
    assert!(discovered.skipped.is_empty(), "{:?}", discovered.skipped);
    let [pool] = discovered.fleet.pools.as_slice() else {
        panic!("{:?}", discovered.fleet)
    };
    let given = &fleet.pools[0];
    assert_eq!(pool.device_resource, given.device_resource);
    assert_eq!(
        (
            pool.cloud,
            pool.accelerator.as_str(),
            pool.nodes_total,
            pool.nodes_free,
            pool.partly_free.as_slice()
        ),
        (
            given.cloud,
            given.accelerator.as_str(),
            given.nodes_total,
            given.nodes_free,
            given.partly_free.as_slice()
        )
    );
    assert_eq!(pool.price_per_device_hour, given.price_per_device_hour);
}
