use std::collections::BTreeMap;

use crate::fleet::{CapacityType, Cloud, Taint};
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus,
    ResourceRequirements, Taint as K8sTaint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

const NO_PODS: &[Pod] = &[];

/// A Ready node with `devices` of `resource` and the given labels.
fn node(name: &str, resource: &str, devices: u32, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(BTreeMap::from([
                (resource.to_owned(), Quantity(devices.to_string())),
                ("cpu".to_owned(), Quantity("96".to_owned())),
            ])),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".to_owned(),
                status: "True".to_owned(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
    }
}

fn pod_on(node: &str, resource: &str, devices: u32, phase: &str) -> Pod {
    Pod {
        metadata: ObjectMeta::default(),
        spec: Some(PodSpec {
            node_name: Some(node.to_owned()),
            containers: vec![Container {
                name: "engine".to_owned(),
                resources: Some(ResourceRequirements {
                    limits: Some(BTreeMap::from([(
                        resource.to_owned(),
                        Quantity(devices.to_string()),
                    )])),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.to_owned()),
            ..PodStatus::default()
        }),
    }
}

const GPU: &str = "nvidia.com/gpu";
const NPU: &str = "huawei.com/Ascend910";

fn eks_h100(name: &str) -> Node {
    node(
        name,
        GPU,
        8,
        &[
            ("eks.amazonaws.com/nodegroup", "p5-h100"),
            ("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
            ("topology.kubernetes.io/region", "us-east-1"),
        ],
    )
}

#[test]
fn groups_eks_nodes_by_node_group_and_counts_free_devices() {
    let nodes = [eks_h100("n1"), eks_h100("n2"), eks_h100("n3")];
    let pods = [
        pod_on("n1", GPU, 4, "Running"),
        pod_on("n2", GPU, 8, "Running"),
        // Finished pods hold nothing.
        pod_on("n3", GPU, 8, "Succeeded"),
    ];
    let d = discover("prod", &nodes, &pods);
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    let [pool] = d.fleet.pools.as_slice() else {
        panic!("{:?}", d.fleet)
    };
    assert_eq!(pool.name, "p5-h100");
    assert_eq!(pool.cloud, Cloud::Aws);
    assert_eq!(pool.region, "us-east-1");
    assert_eq!(pool.cluster, "prod");
    assert_eq!(pool.accelerator, "h100-80gb");
    assert_eq!(
        (pool.devices_per_node, pool.nodes_total, pool.nodes_free),
        (8, 3, 1)
    );
    assert_eq!(pool.partly_free, [4]);
    assert_eq!(
        pool.labels,
        BTreeMap::from([(
            "eks.amazonaws.com/nodegroup".to_owned(),
            "p5-h100".to_owned()
        )])
    );
    // The discovered fleet is one the planner accepts.
    d.fleet.clone().validate().unwrap();
}

#[test]
fn the_modelfleet_pool_label_wins_and_ascend_is_recognised() {
    let n = node(
        "a1",
        NPU,
        8,
        &[
            ("modelfleet.io/pool", "Snt9B_Pool"),
            ("cce.cloud.com/cce-nodepool", "other"),
            ("accelerator-type", "module-910b-8"),
        ],
    );
    let d = discover("gy", &[n], NO_PODS);
    let pool = &d.fleet.pools[0];
    assert_eq!(pool.name, "snt9b-pool");
    assert_eq!(pool.accelerator, "ascend-910b");
    assert_eq!(pool.cloud, Cloud::Huaweicloud);
    assert_eq!(
        pool.labels.get("modelfleet.io/pool").map(String::as_str),
        Some("Snt9B_Pool")
    );
}

#[test]
fn cpu_nodes_are_ignored_and_unknown_devices_are_explained() {
    let cpu = node("cpu", "cpu", 16, &[]);
    let mystery = node("m1", GPU, 8, &[("nvidia.com/gpu.product", "NVIDIA-B300")]);
    let d = discover("c", &[cpu, mystery], NO_PODS);
    assert!(d.fleet.pools.is_empty());
    assert_eq!(d.skipped.len(), 1);
    assert_eq!(d.skipped[0].node, "m1");
    assert!(
        d.skipped[0]
            .reason
            .contains("set modelfleet.io/accelerator"),
        "{}",
        d.skipped[0].reason
    );

    // "a100" alone could be the 40 or the 80 GB card.
    let ambiguous = node(
        "m3",
        GPU,
        8,
        &[("karpenter.k8s.aws/instance-gpu-name", "a100")],
    );
    assert!(!discover("c", &[ambiguous], NO_PODS).skipped.is_empty());
    let a10g = node(
        "m4",
        GPU,
        4,
        &[("karpenter.k8s.aws/instance-gpu-name", "a10g")],
    );
    assert_eq!(
        discover("c", &[a10g], NO_PODS).fleet.pools[0].accelerator,
        "a10"
    );

    let labelled = node("m2", GPU, 8, &[("modelfleet.io/accelerator", "h200")]);
    let d = discover("c", &[labelled], NO_PODS);
    assert_eq!(d.fleet.pools[0].accelerator, "h200");
    assert_eq!(d.fleet.pools[0].cloud, Cloud::Generic);
}

#[test]
fn not_ready_and_cordoned_nodes_count_but_are_not_free() {
    let mut cordoned = eks_h100("n1");
    cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
    let mut not_ready = eks_h100("n2");
    not_ready
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "False".to_owned();
    let d = discover("c", &[cordoned, not_ready, eks_h100("n3")], NO_PODS);
    let pool = &d.fleet.pools[0];
    assert_eq!((pool.nodes_total, pool.nodes_free), (3, 1));
}

#[test]
fn spot_price_and_taints_are_read_from_the_nodes() {
    let mut n = node(
        "s1",
        GPU,
        8,
        &[
            ("karpenter.sh/nodepool", "a100-spot"),
            ("karpenter.sh/capacity-type", "spot"),
            ("karpenter.k8s.aws/instance-gpu-name", "a100"),
            ("karpenter.k8s.aws/instance-gpu-memory", "81920"),
        ],
    );
    n.metadata.annotations = Some(BTreeMap::from([(
        PRICE_ANNOTATION.to_owned(),
        "1.50 USD".to_owned(),
    )]));
    n.spec.as_mut().unwrap().taints = Some(vec![K8sTaint {
        key: "nvidia.com/gpu".to_owned(),
        value: Some("present".to_owned()),
        effect: "NoSchedule".to_owned(),
        time_added: None,
    }]);
    let d = discover("c", &[n], NO_PODS);
    let pool = &d.fleet.pools[0];
    assert_eq!(pool.capacity_type, CapacityType::Spot);
    assert_eq!(pool.price_per_device_hour.unwrap().to_string(), "1.50 USD");
    assert_eq!(pool.accelerator, "a100-80gb");
    assert_eq!(
        pool.taints,
        [Taint {
            key: "nvidia.com/gpu".to_owned(),
            value: Some("present".to_owned()),
            effect: "NoSchedule".to_owned()
        }]
    );

    let mut bad = eks_h100("b1");
    bad.metadata.annotations = Some(BTreeMap::from([(
        PRICE_ANNOTATION.to_owned(),
        "cheap".to_owned(),
    )]));
    let d = discover("c", &[bad], NO_PODS);
    assert!(
        d.skipped[0].reason.contains("is not a price"),
        "{:?}",
        d.skipped
    );
}

#[test]
fn init_containers_count_as_the_scheduler_counts_them() {
    let mut p = pod_on("n1", GPU, 2, "Pending");
    let mut init = p.spec.as_ref().unwrap().containers[0].clone();
    init.name = "fetch".to_owned();
    init.resources.as_mut().unwrap().limits =
        Some(BTreeMap::from([(GPU.to_owned(), Quantity("4".to_owned()))]));
    p.spec.as_mut().unwrap().init_containers = Some(vec![init]);
    assert_eq!(requested_on("n1", GPU, &[p]), 4);
}

#[test]
fn a_pool_records_the_device_resource_its_nodes_advertise() {
    let cce = |name: &str, resource: &str| {
        node(
            name,
            resource,
            8,
            &[
                ("cce.cloud.com/cce-nodepool", "snt9b"),
                ("accelerator-type", "module-910b-8"),
            ],
        )
    };
    let pods = [pod_on("c1", "huawei.com/ascend-1980", 4, "Running")];
    let d = discover(
        "gy",
        &[
            cce("c1", "huawei.com/ascend-1980"),
            cce("c2", "huawei.com/ascend-1980"),
        ],
        &pods,
    );
    let [pool] = d.fleet.pools.as_slice() else {
        panic!("{:?}", d.fleet)
    };
    assert_eq!(pool.accelerator, "ascend-910b");
    assert_eq!(pool.cloud, Cloud::Huaweicloud);
    assert_eq!(
        pool.device_resource.as_deref(),
        Some("huawei.com/ascend-1980")
    );
    // Pods count against the free devices under the pool's own name.
    assert_eq!(
        (pool.nodes_free, pool.partly_free.as_slice()),
        (1, [4].as_slice())
    );
    d.fleet.clone().validate().unwrap();

    let eks = discover("prod", &[eks_h100("n1")], NO_PODS);
    assert_eq!(eks.fleet.pools[0].device_resource.as_deref(), Some(GPU));

    // A pod can ask for one name only: a node of another plugin in the
    // same pool is left out, and says why.
    let d = discover(
        "gy",
        &[cce("c1", "huawei.com/ascend-1980"), cce("c2", NPU)],
        NO_PODS,
    );
    assert_eq!(d.fleet.pools[0].nodes_total, 1);
    assert_eq!(d.skipped.len(), 1);
    assert!(
        d.skipped[0].reason.contains("advertises huawei.com/Ascend910 but the other nodes of pool snt9b advertise huawei.com/ascend-1980"),
        "{}",
        d.skipped[0].reason
    );
}

#[test]
fn a_pods_devices_of_a_vendor_count_under_any_of_its_names() {
    let cce = pod_on("n1", "huawei.com/ascend-1980", 4, "Running");
    let mindcluster = pod_on("n1", NPU, 2, "Running");
    assert_eq!(vendor_request(&cce, Vendor::Huawei), 4);
    assert_eq!(vendor_request(&mindcluster, Vendor::Huawei), 2);
    assert_eq!(vendor_request(&cce, Vendor::Nvidia), 0);
}

#[test]
fn a_pools_network_and_registry_settings_come_from_its_nodes_annotations() {
    use crate::contract::pool_settings::{
        IMAGE_PULL_SECRETS_ANNOTATION, NETWORK_INTERFACE_ANNOTATION, REGISTRY_MIRROR_ANNOTATION,
    };
    let annotate = |mut n: Node, interface: &str| {
        n.metadata.annotations = Some(BTreeMap::from([
            (
                NETWORK_INTERFACE_ANNOTATION.to_owned(),
                interface.to_owned(),
            ),
            (
                REGISTRY_MIRROR_ANNOTATION.to_owned(),
                "registry.cn-hangzhou.aliyuncs.com/mirror".to_owned(),
            ),
            (
                IMAGE_PULL_SECRETS_ANNOTATION.to_owned(),
                "acr-pull".to_owned(),
            ),
        ]));
        n
    };
    let d = discover(
        "c",
        &[
            annotate(eks_h100("a"), "eth0"),
            annotate(eks_h100("b"), "eth0"),
        ],
        NO_PODS,
    );
    let settings = &d.fleet.pools[0].settings;
    assert_eq!(settings.network_interface.as_deref(), Some("eth0"));
    assert_eq!(
        settings.registry_mirror.as_deref(),
        Some("registry.cn-hangzhou.aliyuncs.com/mirror")
    );
    assert_eq!(settings.image_pull_secrets, ["acr-pull"]);
    assert_eq!(d.fleet.pools[0].nodes_total, 2);

    // A node that disagrees is left out, saying why; a bad value too.
    let d = discover(
        "c",
        &[
            annotate(eks_h100("a"), "eth0"),
            annotate(eks_h100("b"), "bond0"),
            annotate(eks_h100("c"), "eth0 && reboot"),
        ],
        NO_PODS,
    );
    assert_eq!(d.fleet.pools[0].nodes_total, 1);
    assert_eq!(d.skipped.len(), 2, "{:?}", d.skipped);
    assert!(
        d.skipped[0]
            .reason
            .contains("annotate every node of a pool alike")
    );
    assert!(d.skipped[1].reason.contains(NETWORK_INTERFACE_ANNOTATION));
}
