//! The LeaderWorkerSet (`leaderworkerset.x-k8s.io/v1`, kubernetes-sigs/lws)
//! that multi-node replicas run as: one leader pod and `size - 1` worker
//! pods per group, created and restarted together.
//!
//! A typed struct rather than a `DynamicObject` or raw JSON: the builder
//! fills real `PodTemplateSpec`s (checked by the compiler like the
//! Deployment's), the controller gets `Api<LeaderWorkerSet>` and typed
//! status, and a field the LWS API does not have cannot be written by
//! mistake. Only the fields modelfleet sets or reads are modelled; LWS
//! itself keeps the rest at their defaults. The schema is not derived
//! (`schema = "disabled"`): the CRD belongs to the LWS project and is
//! installed from its release, never from these types.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Label LWS puts on every pod of a group with the pod's index in the
/// group; the leader's is `"0"`.
pub const WORKER_INDEX_LABEL: &str = "leaderworkerset.sigs.k8s.io/worker-index";

/// Environment LWS injects into every container of a group.
pub const LEADER_ADDRESS_ENV: &str = "LWS_LEADER_ADDRESS";
pub const WORKER_INDEX_ENV: &str = "LWS_WORKER_INDEX";
pub const GROUP_SIZE_ENV: &str = "LWS_GROUP_SIZE";

#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "leaderworkerset.x-k8s.io",
    version = "v1",
    kind = "LeaderWorkerSet",
    namespaced,
    schema = "disabled",
    status = "LeaderWorkerSetStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct LeaderWorkerSetSpec {
    /// Groups (model replicas).
    pub replicas: i32,
    pub leader_worker_template: LeaderWorkerTemplate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_strategy: Option<RolloutStrategy>,
    /// `LeaderCreated` (workers start with the leader) or `LeaderReady`
    /// (workers wait for a ready leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderWorkerTemplate {
    /// Pods per group, the leader included.
    pub size: i32,
    /// `RecreateGroupOnPodRestart` restarts the whole group when one pod
    /// restarts, which a distributed engine needs: its peers cannot rejoin
    /// a half-dead collective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_template: Option<PodTemplateSpec>,
    pub worker_template: PodTemplateSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Only `RollingUpdate` exists.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update_configuration: Option<RollingUpdateConfiguration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderWorkerSetStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Groups created, ready or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Groups whose every pod is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Groups on the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_pod_selector: Option<String>,
}
