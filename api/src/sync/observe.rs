//! The pure half of cluster sync: what a ModelDeployment's status means
//! for the hub's row, and what a pod means for device intervals. No client,
//! no database.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::accelerator::Accelerator;
use modelfleet_core::contract::condition::{self, reason};
use modelfleet_core::contract::discovery;
use modelfleet_core::crd::{ModelDeployment, Phase};

use crate::store::{Deployment, DeploymentStatus, LiveCondition};

/// What the database should say of a deployment whose ModelDeployment is
/// `md`.
pub fn status_of(md: &ModelDeployment) -> DeploymentStatus {
    let status = md.status.as_ref();
    let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let phase = status.and_then(|s| s.phase).unwrap_or(Phase::Pending);
    let message = find(condition::READY)
        .or_else(|| find(condition::ADMITTED))
        .map(|c| c.message.clone())
        .filter(|m| !m.is_empty());
    let unschedulable = find(condition::WORKLOAD_READY)
        .is_some_and(|c| c.status == "False" && c.reason == reason::UNSCHEDULABLE);
    DeploymentStatus {
        phase,
        ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        message,
        resource_uid: md.metadata.uid.clone(),
        conditions: Some(
            conditions
                .iter()
                .map(|c| LiveCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    since: c.last_transition_time.0.to_string(),
                })
                .collect(),
        ),
        endpoint: status.and_then(|s| s.endpoint.clone()),
        unschedulable,
        weights: Some(status.map(|s| s.weights.clone()).unwrap_or_default()),
    }
}

/// Whether recording `seen` would change `row`.
pub fn differs(row: &Deployment, seen: &DeploymentStatus) -> bool {
    let DeploymentStatus {
        phase,
        ready_replicas,
        message,
        resource_uid,
        conditions,
        endpoint,
        unschedulable,
        weights,
    } = seen;
    row.phase != *phase
        || conditions.as_ref().is_some_and(|c| row.conditions != *c)
        || (endpoint.is_some() && row.endpoint != *endpoint)
        || row.ready_replicas != *ready_replicas
        || row.status_message != *message
        || (resource_uid.is_some() && row.resource_uid != *resource_uid)
        || row.unschedulable_since.is_some() != *unschedulable
        || weights.as_ref().is_some_and(|w| row.weights != *w)
}

/// A pod that holds devices now: bound to a node and not finished. A pod
/// being deleted still holds them until it is gone.
pub fn holds_devices(pod: &Pod) -> bool {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    bound && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod was bound: its `PodScheduled=True` transition, or `None`
/// when the pod does not say.
pub fn bound_at(pod: &Pod) -> Option<DateTime<Utc>> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")?;
    c.last_transition_time.as_ref().and_then(|t| chrono_of(t.0))
}

fn chrono_of(t: Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(t.subsec_nanosecond()).ok()?;
    DateTime::from_timestamp(t.as_second(), nanos - nanos % 1000)
}

/// Devices of `accelerator` the pod requests, under whichever name its
/// cluster advertises them, counted as pool discovery (and the scheduler)
/// counts them.
pub fn devices_of(pod: &Pod, accelerator: &Accelerator) -> u32 {
    discovery::vendor_request(pod, accelerator.vendor)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use modelfleet_core::crd::ModelDeploymentStatus;
    use serde_json::json;

    use super::*;

    fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(
                Timestamp::from_second(DateTime::<Utc>::from(modelfleet_clock::now()).timestamp())
                    .unwrap(),
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn an_unschedulable_workload_is_flagged_with_the_operators_message() {
        let mut md: ModelDeployment = serde_json::from_value(json!({
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "m", "namespace": "mf-acme"},
            "spec": {"model": "llama-3.1-8b", "source": "s3://models/llama-3.1-8b"}
        }))
        .unwrap();
        md.status = Some(ModelDeploymentStatus {
            phase: Some(Phase::Scheduling),
            conditions: vec![
                cond(
                    condition::WORKLOAD_READY,
                    "False",
                    "Unschedulable",
                    "m-0: 0/2 nodes are available",
                ),
                cond(
                    condition::READY,
                    "False",
                    "Unschedulable",
                    "m-0: 0/2 nodes are available",
                ),
            ],
            ready_replicas: Some(0),
            ..ModelDeploymentStatus::default()
        });
        let seen = status_of(&md);
        assert_eq!(seen.phase, Phase::Scheduling);
        assert!(seen.unschedulable);
        assert_eq!(
            seen.message.as_deref(),
            Some("m-0: 0/2 nodes are available")
        );

        md.status.as_mut().unwrap().conditions[0].reason = "Loading".into();
        assert!(!status_of(&md).unschedulable);
        md.status = None;
        assert_eq!(status_of(&md).phase, Phase::Pending);
    }

    #[test]
    fn pods_hold_devices_while_bound_and_running() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u1"},
            "spec": {
                "nodeName": "n1",
                "initContainers": [{"name": "fetch", "resources": {"requests": {"nvidia.com/gpu": "1"}}}],
                "containers": [
                    {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "4"}}},
                    {"name": "b", "resources": {"requests": {"nvidia.com/gpu": "2"}}}
                ]
            },
            "status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-02T03:04:05Z"}
            ]}
        }))
        .unwrap();
        assert!(holds_devices(&pod));
        let h100 = Accelerator::find("h100-80gb").unwrap();
        assert_eq!(devices_of(&pod, h100), 6);
        assert_eq!(
            bound_at(&pod).unwrap().to_rfc3339(),
            "2026-01-02T03:04:05+00:00"
        );
        let mut done = pod.clone();
        done.status.as_mut().unwrap().phase = Some("Failed".into());
        assert!(!holds_devices(&done));
        let mut pending = pod;
        pending.spec.as_mut().unwrap().node_name = None;
        assert!(!holds_devices(&pending));
    }
}
