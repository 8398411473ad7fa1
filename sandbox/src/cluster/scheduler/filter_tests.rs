use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::contract::labels::POOL_LABEL;
use modelfleet_core::fleet::Fleet;

use super::*;
use crate::cluster::fixtures::{PodBuilder, pod};
use crate::cluster::nodes::fleet_nodes;

/// The example fleet's 39 nodes, and what its reserved pods hold.
fn example() -> (Vec<Node>, Usage) {
    let nodes = fleet_nodes(&Fleet::example(), "kube-system", Timestamp::UNIX_EPOCH);
    let usage = Usage::from_pods(&nodes.reserved);
    (nodes.nodes, usage)
}

/// A pod for the p5-h100 pool, tolerating its taints, as the operator
/// would build it.
fn h100_pod(name: &str, gpus: &str) -> PodBuilder {
    pod(name)
        .requests("nvidia.com/gpu", gpus)
        .tolerate("nvidia.com/gpu")
        .tolerate("workload")
        .affinity(POOL_LABEL, "In", &["p5-h100"])
}

#[test]
fn places_a_pod_only_on_its_pool_and_skips_full_nodes() {
    let (nodes, usage) = example();
    // p5-h100-0 is wholly reserved by the fleet's busy node.
    let placed = schedule(
        &h100_pod("a", "4").build(),
        &Candidates::new(&nodes),
        &usage,
    );
    assert_eq!(placed, Ok("p5-h100-1".to_owned()));
}

#[test]
fn spreads_pods_by_cpu_and_memory_like_the_default_profile() {
    let (nodes, mut usage) = example();
    let first = h100_pod("a", "4").requests("cpu", "16").build();
    let node = schedule(&first, &Candidates::new(&nodes), &usage).unwrap();
    usage.add(&node, first.spec.as_ref().unwrap());
    let second = h100_pod("b", "4").requests("cpu", "16").build();
    assert_eq!(
        schedule(&second, &Candidates::new(&nodes), &usage),
        Ok("p5-h100-2".to_owned())
    );
}

#[test]
fn an_oversize_request_gets_the_real_schedulers_message() {
    let (nodes, usage) = example();
    let err = schedule(
        &h100_pod("big", "16").build(),
        &Candidates::new(&nodes),
        &usage,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "0/39 nodes are available: 27 node(s) didn't match Pod's node affinity/selector, \
         4 Insufficient nvidia.com/gpu, 8 node(s) had untolerated taint {huawei.com/Ascend910: present}. \
         preemption: 0/39 nodes are available: 35 Preemption is not helpful for scheduling, \
         4 No preemption victims found for incoming pod."
    );
}

#[test]
fn a_full_pool_is_insufficient_and_freeing_it_lets_the_pod_in() {
    let (nodes, mut usage) = example();
    for n in 1..4 {
        usage.add(
            &format!("p5-h100-{n}"),
            h100_pod("x", "8").build().spec.as_ref().unwrap(),
        );
    }
    let want = h100_pod("next", "8").build();
    let err = schedule(&want, &Candidates::new(&nodes), &usage).unwrap_err();
    assert!(
        err.message.contains("4 Insufficient nvidia.com/gpu"),
        "{}",
        err.message
    );
    usage.0.remove("p5-h100-3");
    assert_eq!(
        schedule(&want, &Candidates::new(&nodes), &usage),
        Ok("p5-h100-3".to_owned())
    );
}

#[test]
fn untolerated_taints_are_named_with_key_and_value() {
    let (nodes, usage) = example();
    let no_tolerations = pod("p")
        .requests("nvidia.com/gpu", "1")
        .selector(POOL_LABEL, "p5-h100")
        .build();
    let err = schedule(&no_tolerations, &Candidates::new(&nodes), &usage).unwrap_err();
    assert!(
        err.message.starts_with("0/39 nodes are available: 31 node(s) had untolerated taint {nvidia.com/gpu: present}, 8 node(s) had untolerated taint {huawei.com/Ascend910: present}."),
        "{}",
        err.message
    );
    // Tolerating the device taint leaves the pool's own taint.
    let err = schedule(
        &pod("p")
            .requests("nvidia.com/gpu", "1")
            .tolerate("nvidia.com/gpu")
            .selector(POOL_LABEL, "p5-h100")
            .build(),
        &Candidates::new(&nodes),
        &usage,
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("4 node(s) had untolerated taint {workload: llm-serving}"),
        "{}",
        err.message
    );
}

#[test]
fn ascend_pods_land_on_ascend_nodes() {
    let (nodes, usage) = example();
    let npu = pod("npu")
        .requests("huawei.com/Ascend910", "16")
        .tolerate("huawei.com/Ascend910")
        .selector("accelerator-type", "module-a3-16")
        .build();
    assert_eq!(
        schedule(&npu, &Candidates::new(&nodes), &usage),
        Ok("snt9c-910c-0".to_owned())
    );
}

fn taint(key: &str, value: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        value: (!value.is_empty()).then(|| value.into()),
        effect: effect.into(),
        time_added: None,
    }
}

fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Toleration {
        key: opt(key),
        operator: opt(operator),
        value: opt(value),
        effect: opt(effect),
        toleration_seconds: None,
    }
}

#[test]
fn toleration_rules_follow_kubernetes() {
    let gpu = taint("nvidia.com/gpu", "present", "NoSchedule");
    assert!(tolerates(&toleration("", "Exists", "", ""), &gpu));
    assert!(tolerates(
        &toleration("nvidia.com/gpu", "Exists", "", ""),
        &gpu
    ));
    assert!(tolerates(
        &toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
        &gpu
    ));
    assert!(tolerates(
        &toleration("nvidia.com/gpu", "", "present", ""),
        &gpu
    ));
    assert!(!tolerates(
        &toleration("nvidia.com/gpu", "Equal", "absent", ""),
        &gpu
    ));
    assert!(!tolerates(
        &toleration("nvidia.com/gpu", "Exists", "", "NoExecute"),
        &gpu
    ));
    assert!(!tolerates(&toleration("other", "Exists", "", ""), &gpu));
}

#[test]
fn node_affinity_operators_match_as_the_api_documents() {
    let (nodes, _) = example();
    let h100 = nodes.iter().find(|n| name_of(*n) == "p5-h100-1").unwrap();
    let check =
        |b: PodBuilder| matches_node_selector_and_affinity(b.build().spec.as_ref().unwrap(), h100);
    assert!(check(pod("p").affinity(
        "nvidia.com/gpu.count",
        "Gt",
        &["4"]
    )));
    assert!(!check(pod("p").affinity(
        "nvidia.com/gpu.count",
        "Lt",
        &["4"]
    )));
    assert!(!check(pod("p").affinity(
        "nvidia.com/gpu.count",
        "Gt",
        &["x"]
    )));
    assert!(check(pod("p").affinity(
        "nvidia.com/gpu.product",
        "NotIn",
        &["NVIDIA-A10G"]
    )));
    assert!(check(pod("p").affinity("no-such-label", "NotIn", &["x"])));
    assert!(check(pod("p").affinity(
        "no-such-label",
        "DoesNotExist",
        &[]
    )));
    assert!(!check(pod("p").affinity("no-such-label", "Exists", &[])));
    assert!(!check(pod("p").affinity(POOL_LABEL, "In", &["g5-a10g"])));
    // Terms are ORed.
    assert!(check(
        pod("p")
            .affinity(POOL_LABEL, "In", &["g5-a10g"])
            .affinity(POOL_LABEL, "In", &["p5-h100"])
    ));
    // nodeSelector and affinity must both hold.
    assert!(!check(
        pod("p")
            .affinity(POOL_LABEL, "Exists", &[])
            .selector("kubernetes.io/arch", "arm64")
    ));
}

#[test]
fn cordoned_and_not_ready_nodes_take_no_pods() {
    let (mut nodes, usage) = example();
    nodes.retain(|n| name_of(n).starts_with("g5-a10g-"));
    nodes[0].spec.as_mut().unwrap().unschedulable = Some(true);
    for c in nodes[1]
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()
    {
        if c.type_ == "Ready" {
            c.status = "False".into();
        }
    }
    nodes[2]
        .spec
        .as_mut()
        .unwrap()
        .taints
        .as_mut()
        .unwrap()
        .push(taint("node.kubernetes.io/not-ready", "", "NoExecute"));
    let gpu_pod = pod("p")
        .requests("nvidia.com/gpu", "1")
        .tolerate("nvidia.com/gpu")
        .build();
    assert_eq!(
        schedule(&gpu_pod, &Candidates::new(&nodes), &usage),
        Ok("g5-a10g-3".to_owned())
    );
    nodes.pop();
    assert_eq!(
        schedule(&gpu_pod, &Candidates::new(&nodes), &usage)
            .unwrap_err()
            .message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         1 node(s) were not ready, 1 node(s) were unschedulable. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

#[test]
fn finished_pods_free_their_resources_and_terminating_ones_do_not() {
    let running = pod("a")
        .requests("nvidia.com/gpu", "4")
        .on("n")
        .phase("Running")
        .build();
    let failed = pod("b")
        .requests("nvidia.com/gpu", "4")
        .on("n")
        .phase("Failed")
        .build();
    let mut terminating = pod("c")
        .requests("nvidia.com/gpu", "2")
        .on("n")
        .phase("Running")
        .build();
    terminating.metadata.deletion_timestamp =
        Some(crate::cluster::common::time(Timestamp::UNIX_EPOCH));
    let pending = pod("d").requests("nvidia.com/gpu", "8").build();
    let usage = Usage::from_pods([&running, &failed, &terminating, &pending]);
    assert_eq!(usage.0["n"].requested["nvidia.com/gpu"], 6_000);
    assert_eq!(usage.0["n"].pods, 2);
    assert_eq!(usage.0.len(), 1);
}

#[test]
fn no_nodes_at_all_says_so() {
    let err = schedule(
        &pod("p").build(),
        &Candidates::new::<Node>(&[]),
        &Usage::default(),
    )
    .unwrap_err();
    assert_eq!(err.message, "no nodes available to schedule pods");
}

#[test]
fn the_bin_packing_profile_fills_a_partly_used_node_first() {
    let (nodes, mut usage) = example();
    let first = h100_pod("a", "4").requests("cpu", "16").build();
    let node = schedule(&first, &Candidates::new(&nodes), &usage).unwrap();
    usage.add(&node, first.spec.as_ref().unwrap());
    let second = h100_pod("b", "4").requests("cpu", "16").build();
    let packed = Candidates::new(&nodes).scoring(Scoring::BinPackDevices);
    assert_eq!(
        schedule(&second, &packed, &usage),
        Ok(node),
        "the second replica joins the first, leaving a whole node free"
    );
}
