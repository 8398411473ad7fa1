//! The `status` step's arithmetic: from what was planned and applied, and
//! the pods' state, to the ModelDeployment's phase and conditions. Pure: no
//! client required.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use modelfleet_core::contract::condition::{self, pod, reason};
use modelfleet_core::crd::{ModelDeploymentStatus, Phase, PlanStatus, PodFetch};
use modelfleet_core::planner::Plan;

/// What the apply step saw of the running workload.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub desired_replicas: u32,
    /// Replicas the workload object counts (ready or not).
    pub replicas: u32,
    pub ready_replicas: u32,
    /// The deployment's pods.
    pub pods: &'a [Pod],
    /// Those downloading weights, and how far they have got.
    pub fetching: &'a [PodFetch],
    pub previous: Option<&'a ModelDeploymentStatus>,
    pub now: Timestamp,
}

/// Status of a deployment running `plan`.
pub fn running(
    plan: &Plan,
    endpoint: &str,
    waiting_for_capacity: Option<&str>,
    seen: &Observed<'_>,
) -> ModelDeploymentStatus {
    let unschedulable = first_unschedulable(seen.pods);
    let failing = first_failing(seen.pods);
    let scheduled = seen
        .pods
        .iter()
        .any(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some());
    let all_ready = seen.ready_replicas >= seen.desired_replicas && seen.desired_replicas > 0;

    let (phase, workload_reason, workload_message) = if seen.desired_replicas == 0 {
        (
            Phase::Pending,
            reason::SCALED_TO_ZERO,
            "spec.replicas is 0: nothing runs".to_owned(),
        )
    } else if all_ready {
        (
            Phase::Ready,
            reason::ALL_REPLICAS_READY,
            format!(
                "{}/{} replicas ready",
                seen.ready_replicas, seen.desired_replicas
            ),
        )
    } else if let Some(message) = &failing {
        let phase = if seen.ready_replicas > 0 {
            Phase::Degraded
        } else {
            Phase::Failed
        };
        (phase, reason::POD_FAILED, message.clone())
    } else if let Some(message) = &unschedulable {
        let phase = if seen.ready_replicas > 0 {
            Phase::Degraded
        } else {
            Phase::Scheduling
        };
        let message = match waiting_for_capacity {
            Some(why) => format!("{message} (planner: {why})"),
            None => message.clone(),
        };
        (phase, reason::UNSCHEDULABLE, message)
    } else if seen.ready_replicas > 0 {
        let mut message = format!(
            "{}/{} replicas ready",
            seen.ready_replicas, seen.desired_replicas
        );
        if let Some(fetched) = PodFetch::summary(seen.fetching) {
            message.push_str(&format!("; {fetched}"));
        }
        (Phase::Degraded, reason::REPLICAS_NOT_READY, message)
    } else if scheduled {
        let message = match PodFetch::summary(seen.fetching) {
            Some(fetched) => format!("pods are placed; {fetched}"),
            None => "pods are placed; the model is being fetched and loaded".to_owned(),
        };
        (Phase::Loading, reason::LOADING, message)
    } else {
        (
            Phase::Scheduling,
            reason::WAITING_FOR_PODS,
            "waiting for pods to be created and placed".to_owned(),
        )
    };

    let previous = seen
        .previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let planned_message = match waiting_for_capacity {
        Some(why) => format!(
            "{} devices of {} on {}; waiting for free capacity: {why}",
            plan.devices_per_replica, plan.accelerator, plan.pool
        ),
        None => format!(
            "{} × {} on {} (tensor parallel {}, pipeline parallel {}, {})",
            plan.devices_per_replica,
            plan.accelerator,
            plan.pool,
            plan.tensor_parallel,
            plan.pipeline_parallel,
            plan.precision
        ),
    };
    let ready = phase == Phase::Ready;
    let conditions = vec![
        set(
            previous,
            condition::PLANNED,
            true,
            reason::PLAN_CHOSEN,
            &planned_message,
            seen,
        ),
        set(
            previous,
            condition::WORKLOAD_READY,
            ready,
            workload_reason,
            &workload_message,
            seen,
        ),
        set(
            previous,
            condition::READY,
            ready,
            if ready {
                reason::SERVING
            } else {
                workload_reason
            },
            &if ready {
                format!("serving at {endpoint}")
            } else {
                workload_message.clone()
            },
            seen,
        ),
    ];
    ModelDeploymentStatus {
        phase: Some(phase),
        observed_generation: seen.generation,
        conditions,
        plan: Some(PlanStatus::from(plan)),
        replicas: Some(seen.replicas),
        ready_replicas: Some(seen.ready_replicas),
        endpoint: Some(endpoint.to_owned()),
        fetching: seen.fetching.to_vec(),
        weights: super::progress::weights(seen.pods),
    }
}

/// Status of a deployment that cannot be planned: `Planned=False` with the
/// planner's reason. What ran before (if anything) is left running and
/// reported as it is.
pub fn unplannable(reason: &str, message: &str, seen: &Observed<'_>) -> ModelDeploymentStatus {
    let previous = seen
        .previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let kept = seen.previous.cloned().unwrap_or_default();
    ModelDeploymentStatus {
        phase: Some(Phase::Failed),
        observed_generation: seen.generation,
        conditions: vec![
            set(previous, condition::PLANNED, false, reason, message, seen),
            set(
                previous,
                condition::WORKLOAD_READY,
                false,
                reason,
                "no workload for this spec",
                seen,
            ),
            set(previous, condition::READY, false, reason, message, seen),
        ],
        plan: kept.plan,
        replicas: Some(seen.replicas),
        ready_replicas: Some(seen.ready_replicas),
        endpoint: kept.endpoint,
        fetching: Vec::new(),
        weights: Vec::new(),
    }
}

/// A condition, keeping its transition time while its status is unchanged.
fn set(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    seen: &Observed<'_>,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(seen.now));
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: since,
        observed_generation: seen.generation,
    }
}

/// The scheduler's message for the first pod it could not place.
fn first_unschedulable(pods: &[Pod]) -> Option<String> {
    pods.iter().find_map(|p| {
        let c = p
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == pod::SCHEDULED && c.status == "False")?;
        (c.reason.as_deref() == Some(pod::UNSCHEDULABLE)).then(|| {
            let name = p.metadata.name.as_deref().unwrap_or("a pod");
            format!(
                "{name}: {}",
                c.message.as_deref().unwrap_or(pod::UNSCHEDULABLE)
            )
        })
    })
}

/// The first pod that failed or keeps crashing, and why.
fn first_failing(pods: &[Pod]) -> Option<String> {
    pods.iter().find_map(|p| {
        let name = p.metadata.name.as_deref().unwrap_or("a pod");
        let status = p.status.as_ref()?;
        if status.phase.as_deref() == Some("Failed") {
            let why = status
                .reason
                .as_deref()
                .or(status.message.as_deref())
                .unwrap_or("failed");
            return Some(format!("{name}: {why}"));
        }
        // A container that cannot start for its configuration (a Secret
        // it reads is missing): the kubelet's message says which.
        let misconfigured = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .find_map(|c| {
                let waiting = c.state.as_ref()?.waiting.as_ref()?;
                matches!(
                    waiting.reason.as_deref(),
                    Some("CreateContainerConfigError" | "CreateContainerError")
                )
                .then(|| {
                    format!(
                        "{name}: container {} cannot start: {}",
                        c.name,
                        waiting
                            .message
                            .as_deref()
                            .unwrap_or("its configuration is invalid")
                    )
                })
            });
        if misconfigured.is_some() {
            return misconfigured;
        }
        let crash_looping = |c: &&ContainerStatus| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
        };
        // An init container that keeps failing (a download refused, say):
        // what it last said is the reason.
        let init = status
            .init_container_statuses
            .iter()
            .flatten()
            .find(crash_looping)
            .map(|c| {
                let said = c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .and_then(|t| t.message.as_deref())
                    .and_then(|m| m.lines().rev().find(|l| !l.trim().is_empty()))
                    .map(|l| format!(": {}", l.trim()))
                    .unwrap_or_default();
                format!(
                    "{name}: init container {} keeps failing ({} restarts){said}",
                    c.name, c.restart_count
                )
            });
        init.or_else(|| {
            status
                .container_statuses
                .iter()
                .flatten()
                .find(crash_looping)
                .map(|c| {
                    format!(
                        "{name}: container {} is crash-looping ({} restarts)",
                        c.name, c.restart_count
                    )
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "llama-0"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "engine"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn seen<'a>(pods: &'a [Pod], fetching: &'a [PodFetch]) -> Observed<'a> {
        Observed {
            generation: Some(1),
            desired_replicas: 1,
            replicas: 1,
            ready_replicas: 0,
            pods,
            fetching,
            previous: None,
            now: Timestamp::from_second(1_800_000_000).unwrap(),
        }
    }

    fn plan() -> Plan {
        let fleet = modelfleet_core::Fleet::example();
        let md = modelfleet_core::crd::ModelDeployment::test("llama");
        let inputs = md.spec.planner_inputs().unwrap();
        inputs.plan(&fleet).unwrap().plans.remove(0)
    }

    fn ready_message(status: &ModelDeploymentStatus) -> &str {
        &status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::READY)
            .unwrap()
            .message
    }

    #[test]
    fn a_failing_download_fails_the_deployment_with_what_the_fetch_said() {
        let pods = [pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [{
                "name": "fetch-weights", "ready": false, "restartCount": 3, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "message": "fetch s3://m/x into /models/x\ns3://m/x: access denied with credentials from AWS_ACCESS_KEY_ID …0001; check the key\n"}}
            }]
        }))];
        let status = running(&plan(), "http://x", None, &seen(&pods, &[]));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(
            ready_message(&status),
            "llama-0: init container fetch-weights keeps failing (3 restarts): s3://m/x: access \
             denied with credentials from AWS_ACCESS_KEY_ID …0001; check the key"
        );
    }

    #[test]
    fn a_missing_secret_fails_the_deployment_with_the_kubelets_message() {
        let pods = [pod(json!({
            "phase": "Pending",
            "initContainerStatuses": [{
                "name": "fetch-weights", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "CreateContainerConfigError",
                    "message": "secret \"model-store-keys\" not found"}}
            }]
        }))];
        let status = running(&plan(), "http://x", None, &seen(&pods, &[]));
        assert_eq!(status.phase, Some(Phase::Failed));
        assert_eq!(
            ready_message(&status),
            "llama-0: container fetch-weights cannot start: secret \"model-store-keys\" not found"
        );
    }

    #[test]
    fn a_loading_deployment_says_how_much_is_fetched() {
        let pods = [pod(json!({"phase": "Pending"}))];
        let fetching = [PodFetch {
            pod: "llama-0".into(),
            bytes_done: 1 << 30,
            bytes_total: 4 << 30,
        }];
        let status = running(&plan(), "http://x", None, &seen(&pods, &fetching));
        assert_eq!(status.phase, Some(Phase::Loading));
        assert_eq!(
            ready_message(&status),
            "pods are placed; 1.00 of 4.00 GiB of weights fetched by 1 pod"
        );
        assert_eq!(status.fetching, fetching);
    }
}
