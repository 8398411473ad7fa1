//! Node labels that Kubernetes, the clouds and the device plugins set, as
//! far as modelfleet reads them: discovery groups and identifies nodes by
//! them, and the sandbox's nodes carry them. Names follow
//! `shared/reference/accelerators-and-clouds.md`.

use crate::fleet::Cloud;

/// Kubernetes' well-known topology and instance labels.
pub const REGION: &str = "topology.kubernetes.io/region";
pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";

/// EKS managed node groups.
pub const EKS_NODEGROUP: &str = "eks.amazonaws.com/nodegroup";
/// `ON_DEMAND` or `SPOT`.
pub const EKS_CAPACITY_TYPE: &str = "eks.amazonaws.com/capacityType";
/// Karpenter on AWS.
pub const KARPENTER_NODEPOOL: &str = "karpenter.sh/nodepool";
/// `on-demand` or `spot`.
pub const KARPENTER_CAPACITY_TYPE: &str = "karpenter.sh/capacity-type";
/// The GPU's short name, e.g. `h100` or `a10g`.
pub const KARPENTER_GPU_NAME: &str = "karpenter.k8s.aws/instance-gpu-name";
/// Memory per GPU in MiB.
pub const KARPENTER_GPU_MEMORY: &str = "karpenter.k8s.aws/instance-gpu-memory";
/// Alibaba Cloud ACK node pools.
pub const ACK_NODEPOOL: &str = "alibabacloud.com/nodepool-id";
/// ACK's own GPU labels.
pub const ACK_GPU_NAME: &str = "aliyun.accelerator/nvidia_name";
pub const ACK_GPU_COUNT: &str = "aliyun.accelerator/nvidia_count";
pub const ACK_GPU_MEMORY: &str = "aliyun.accelerator/nvidia_mem";
/// Tencent Cloud TKE node pools.
pub const TKE_NODEPOOL: &str = "tke.cloud.tencent.com/nodepool-id";
/// Huawei Cloud CCE node pools.
pub const CCE_NODEPOOL: &str = "cce.cloud.com/cce-nodepool";

/// Node-group labels by cloud, in the order discovery tries them.
pub const NODE_GROUP_LABELS: &[(&str, Cloud)] = &[
    (EKS_NODEGROUP, Cloud::Aws),
    (KARPENTER_NODEPOOL, Cloud::Aws),
    (ACK_NODEPOOL, Cloud::Aliyun),
    (TKE_NODEPOOL, Cloud::Tencentcloud),
    (CCE_NODEPOOL, Cloud::Huaweicloud),
];

/// Label prefixes that give a node's cloud away when it is in no node
/// group.
pub const CLOUD_LABEL_PREFIXES: &[(&str, Cloud)] = &[
    ("eks.amazonaws.com/", Cloud::Aws),
    ("karpenter.k8s.aws/", Cloud::Aws),
    ("alibabacloud.com/", Cloud::Aliyun),
    ("aliyun.accelerator/", Cloud::Aliyun),
    ("tke.cloud.tencent.com/", Cloud::Tencentcloud),
    ("cce.cloud.com/", Cloud::Huaweicloud),
];

/// NVIDIA GPU Feature Discovery.
pub const GPU_PRESENT: &str = "nvidia.com/gpu.present";
/// The product, e.g. `NVIDIA-H100-80GB-HBM3` (an accelerator's
/// `product_label`).
pub const GPU_PRODUCT: &str = "nvidia.com/gpu.product";
pub const GPU_COUNT: &str = "nvidia.com/gpu.count";
/// Memory per GPU in MiB.
pub const GPU_MEMORY: &str = "nvidia.com/gpu.memory";

/// Huawei MindCluster's Ascend labels: `accelerator=huawei-Ascend910`,
/// `accelerator-type=module-910b-8` (an accelerator's `product_label`),
/// `host-arch=huawei-arm`.
pub const ASCEND_ACCELERATOR: &str = "accelerator";
pub const ASCEND_ACCELERATOR_TYPE: &str = "accelerator-type";
pub const ASCEND_HOST_ARCH: &str = "host-arch";
