//! The top-level objects: the workload (a Deployment when a replica fits one
//! node, a LeaderWorkerSet when it spans several), the Service in front of
//! it and the PodDisruptionBudget that limits voluntary evictions.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelfleet_core::crd::lws::{
    LeaderWorkerSet, LeaderWorkerSetSpec, LeaderWorkerTemplate, RollingUpdateConfiguration,
    RolloutStrategy,
};

use super::engine::HTTP_PORT;
use super::meta::Owner;
use super::pod::{PodInputs, Role, pod_template};

/// A rollout replaces one replica at a time and never adds one: the planner
/// reserved devices for `replicas` copies, so a surge pod would wait for
/// devices that only its predecessor can free.
fn one_at_a_time() -> (IntOrString, IntOrString) {
    (IntOrString::Int(1), IntOrString::Int(0))
}

/// Weights download and load for large models routinely exceed the 600 s
/// default before a Deployment reports it is not progressing.
const PROGRESS_DEADLINE_SECONDS: i32 = 3600;

pub fn deployment(owner: &Owner, pod: &PodInputs, replicas: i32) -> Deployment {
    let (max_unavailable, max_surge) = one_at_a_time();
    Deployment {
        metadata: owner.object_meta(),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(owner.selector()),
                match_expressions: None,
            },
            template: pod_template(pod, Role::Server),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(max_unavailable),
                    max_surge: Some(max_surge),
                }),
            }),
            progress_deadline_seconds: Some(PROGRESS_DEADLINE_SECONDS),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// One group per replica, `nodes_per_replica` pods per group: the leader
/// (Ray head, `vllm serve`, HTTP) and workers (Ray workers).
pub fn leader_worker_set(
    owner: &Owner,
    pod: &PodInputs,
    replicas: i32,
    group_size: i32,
) -> LeaderWorkerSet {
    let (max_unavailable, max_surge) = one_at_a_time();
    LeaderWorkerSet {
        metadata: owner.object_meta_named(&owner.group_name()),
        spec: LeaderWorkerSetSpec {
            replicas,
            leader_worker_template: LeaderWorkerTemplate {
                size: group_size,
                restart_policy: Some("RecreateGroupOnPodRestart".to_owned()),
                leader_template: Some(pod_template(pod, Role::Leader)),
                worker_template: pod_template(pod, Role::Worker),
            },
            rollout_strategy: Some(RolloutStrategy {
                type_: "RollingUpdate".to_owned(),
                rolling_update_configuration: Some(RollingUpdateConfiguration {
                    max_unavailable: Some(max_unavailable),
                    max_surge: Some(max_surge),
                }),
            }),
            // Workers must start with the leader: the leader only becomes
            // ready once they have joined its Ray cluster, so `LeaderReady`
            // would wait forever.
            startup_policy: Some("LeaderCreated".to_owned()),
        },
        status: None,
    }
}

/// Port 8000 of the pods that serve HTTP (for a LeaderWorkerSet, only the
/// leaders: workers run no server).
pub fn service(owner: &Owner) -> Service {
    Service {
        metadata: owner.object_meta(),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(owner.server_selector()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                app_protocol: Some("http".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// At most one pod of the deployment may be evicted at a time, so a node
/// drain takes down at most one replica (for a LeaderWorkerSet, one group:
/// losing any pod restarts its group). `maxUnavailable` rather than
/// `minAvailable` so that a single-replica model never blocks a drain
/// forever; pods that are not ready may always be evicted, since they serve
/// nothing.
pub fn disruption_budget(owner: &Owner) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: owner.object_meta(),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(owner.selector()),
                match_expressions: None,
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}
