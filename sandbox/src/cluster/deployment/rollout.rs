//! What the Deployment controller decides for one Deployment, given its
//! pods: which pods to create, which to delete, and the status to report.
//! Pure: no client here.
//!
//! The real controller works through ReplicaSets; this one keeps the
//! ReplicaSet level implicit. A pod's `pod-template-hash` label says which
//! revision it belongs to, exactly as in a real cluster, so pod names
//! (`<deployment>-<hash>-<suffix>`), labels, rolling updates (`maxSurge`,
//! `maxUnavailable`, Recreate) and status counts behave as users expect;
//! only the ReplicaSet objects themselves are missing, and pods are owned
//! by the Deployment directly.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use crate::cluster::common::{
    controller_ref, fnv32, is_active, is_ready, label, later, name_of, namespace_of, ready_since,
    safe_encode, time,
};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

const MIN_PROGRESS_DEADLINE: Duration = Duration::from_secs(5);

/// The controller's decision for one Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Pods to create, without names: the caller names them
    /// `<generate_name><random suffix>`.
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    pub status: DeploymentStatus,
    /// When to look again even if nothing changes (a pod passing
    /// `minReadySeconds`, a progress deadline).
    pub recheck_at: Option<Timestamp>,
}

/// The hash of the pod template, as the `pod-template-hash` label and the
/// implicit ReplicaSet's name carry it.
pub fn template_hash(deployment: &Deployment) -> String {
    let spec = deployment.spec.clone().unwrap_or_default();
    let mut text = serde_json::to_string(&spec.template).unwrap_or_default();
    if let Some(collisions) = deployment.status.as_ref().and_then(|s| s.collision_count) {
        text.push_str(&collisions.to_string());
    }
    safe_encode(u64::from(fnv32(text.as_bytes())))
}

/// Resolves an int-or-percent against `total`, rounding up or down.
fn resolve(value: Option<&IntOrString>, default_percent: i32, total: i32, round_up: bool) -> i32 {
    let percent = match value {
        Some(IntOrString::Int(n)) => return (*n).max(0),
        Some(IntOrString::String(s)) => s
            .trim_end_matches('%')
            .parse::<i32>()
            .unwrap_or(default_percent),
        None => default_percent,
    };
    let scaled = i64::from(percent) * i64::from(total);
    let value = if round_up {
        (scaled + 99) / 100
    } else {
        scaled / 100
    };
    i32::try_from(value.max(0)).unwrap_or(i32::MAX)
}

/// `(maxSurge, maxUnavailable)` for this Deployment; Recreate has neither.
fn surge_and_unavailable(deployment: &Deployment, desired: i32) -> (i32, i32) {
    let strategy = deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.clone())
        .unwrap_or_default();
    if strategy.type_.as_deref() == Some("Recreate") || desired == 0 {
        return (0, 0);
    }
    let rolling = strategy.rolling_update.unwrap_or_default();
    let surge = resolve(rolling.max_surge.as_ref(), 25, desired, true);
    let unavailable = resolve(rolling.max_unavailable.as_ref(), 25, desired, false);
    // Both zero would never make progress; the real controller allows one.
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Pods to remove first: not ready before ready, then the newest first,
/// as the ReplicaSet controller ranks them.
fn deletion_order(pods: &mut [&Pod]) {
    pods.sort_by_key(|p| {
        (
            is_ready(p),
            std::cmp::Reverse(p.metadata.creation_timestamp.clone().map(|t| t.0)),
            name_of(*p).to_owned(),
        )
    });
}

/// The pod a new replica of the current template starts as.
pub fn new_pod(deployment: &Deployment, hash: &str) -> Pod {
    let template = deployment.spec.clone().unwrap_or_default().template;
    let mut metadata = template.metadata.unwrap_or_default();
    let ObjectMeta {
        labels,
        annotations,
        ..
    } = &mut metadata;
    labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-{hash}-", name_of(deployment))),
            namespace: Some(namespace_of(deployment).to_owned()),
            labels: labels.take(),
            annotations: annotations.take(),
            owner_references: Some(vec![controller_ref(deployment)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Decides for `deployment`, whose pods (those it controls) are `pods`.
/// `time_factor` scales the progress deadline like every simulated
/// duration, so a rollout that would time out in real time times out here.
pub fn plan(deployment: &Deployment, pods: &[&Pod], now: Timestamp, time_factor: f64) -> Plan {
    let spec = deployment.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let hash = template_hash(deployment);
    let min_ready =
        Duration::from_secs(u64::try_from(spec.min_ready_seconds.unwrap_or(0)).unwrap_or(0));
    let available = |p: &Pod| ready_since(p).is_some_and(|since| later(since, min_ready) <= now);
    let (new, old): (Vec<&Pod>, Vec<&Pod>) = pods
        .iter()
        .copied()
        .filter(|p| is_active(p))
        .partition(|p| label(*p, TEMPLATE_HASH_LABEL) == Some(hash.as_str()));
    let (surge, max_unavailable) = surge_and_unavailable(deployment, desired);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let count = |v: &[&Pod]| i32::try_from(v.len()).unwrap_or(i32::MAX);
    let mut create = 0;
    let mut delete: Vec<&Pod> = Vec::new();
    if spec.paused == Some(true) {
        // A paused Deployment is left as it is.
    } else if old.is_empty() {
        let still_stopping =
            recreate && pods.iter().any(|p| p.metadata.deletion_timestamp.is_some());
        if count(&new) < desired && !still_stopping {
            create = desired - count(&new);
        } else if count(&new) > desired {
            let mut excess = new.clone();
            deletion_order(&mut excess);
            delete.extend(excess.into_iter().take((count(&new) - desired) as usize));
        }
    } else if recreate {
        // Recreate: every old pod goes before any new one starts.
        delete.extend(old.iter().copied());
    } else {
        let all = count(&new) + count(&old);
        create = (desired - count(&new)).min(desired + surge - all).max(0);
        let min_available = desired - max_unavailable;
        let new_unavailable = count(&new)
            - count(
                &new.iter()
                    .copied()
                    .filter(|p| available(p))
                    .collect::<Vec<_>>(),
            );
        let mut budget = all - min_available - new_unavailable;
        let (old_available, mut old_unhealthy): (Vec<&Pod>, Vec<&Pod>) =
            old.iter().copied().partition(|p| available(p));
        // Old pods that serve nothing go first: removing them costs no
        // availability.
        deletion_order(&mut old_unhealthy);
        for pod in old_unhealthy {
            if budget <= 0 {
                break;
            }
            delete.push(pod);
            budget -= 1;
        }
        let total_available = pods.iter().filter(|p| is_active(p) && available(p)).count() as i32;
        let mut room = (total_available - min_available).min(budget);
        let mut old_available = old_available;
        deletion_order(&mut old_available);
        for pod in old_available {
            if room <= 0 {
                break;
            }
            delete.push(pod);
            room -= 1;
        }
    }
    let replicas = count(&new) + count(&old);
    let ready = new.iter().chain(&old).filter(|p| is_ready(p)).count() as i32;
    let available_count = new.iter().chain(&old).filter(|p| available(p)).count() as i32;
    let updated = count(&new);
    let rs_name = format!("{}-{hash}", name_of(deployment));
    let previous = deployment.status.clone().unwrap_or_default();
    let complete = updated == desired && replicas == desired && available_count == desired;
    let progressed = (
        previous.updated_replicas,
        previous.ready_replicas,
        previous.available_replicas,
        previous.replicas,
    ) != (
        Some(updated),
        Some(ready),
        Some(available_count),
        Some(replicas),
    );
    let old_conditions = previous.conditions.clone().unwrap_or_default();
    let old_progressing = old_conditions.iter().find(|c| c.type_ == "Progressing");
    // Scaled like every simulated duration, but never below a few seconds:
    // condition times are written to the second, and a deadline shorter
    // than that would fire on the rounding alone.
    let deadline = Duration::from_secs(
        u64::try_from(spec.progress_deadline_seconds.unwrap_or(600)).unwrap_or(600),
    )
    .mul_f64(time_factor.max(0.0))
    .max(MIN_PROGRESS_DEADLINE);
    let progress_since = old_progressing
        .filter(|c| {
            c.status == "True"
                && c.reason.as_deref() != Some("NewReplicaSetAvailable")
                && !progressed
        })
        .and_then(|c| c.last_update_time.as_ref().map(|t| t.0));
    let mut recheck_at = None;
    let progressing = if complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else if progress_since.is_some_and(|since| later(since, deadline) <= now)
        || old_progressing
            .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded") && !progressed)
    {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
        )
    } else {
        recheck_at = Some(later(progress_since.unwrap_or(now), deadline));
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let available_condition = if available_count >= desired - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_owned(),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_owned(),
        )
    };
    // A pod that is ready but not yet past minReadySeconds becomes
    // available without any event: look again then.
    let next_available = new
        .iter()
        .chain(&old)
        .filter_map(|p| ready_since(p).map(|s| later(s, min_ready)))
        .filter(|at| *at > now)
        .min();
    recheck_at = [recheck_at, next_available].into_iter().flatten().min();
    let conditions = vec![
        condition(
            &old_conditions,
            "Available",
            available_condition,
            now,
            false,
        ),
        condition(&old_conditions, "Progressing", progressing, now, progressed),
    ];
    let status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available_count),
        unavailable_replicas: Some((desired.max(replicas) - available_count).max(0)),
        conditions: Some(conditions),
        collision_count: previous.collision_count,
        terminating_replicas: None,
    };
    Plan {
        create: (0..create).map(|_| new_pod(deployment, &hash)).collect(),
        delete: delete.into_iter().map(|p| name_of(p).to_owned()).collect(),
        status,
        recheck_at,
    }
}

/// `ReplicaFailure`: pods could not be created. As the ReplicaSet
/// controller, a condition already set keeps its first message.
pub fn replica_failure(
    old: &[DeploymentCondition],
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    if let Some(previous) = old
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
    {
        return previous.clone();
    }
    condition(
        old,
        "ReplicaFailure",
        ("True", "FailedCreate", message.to_owned()),
        now,
        false,
    )
}

/// A condition that keeps its transition time while its status holds and
/// its update time while nothing about it changes (or `touched` says
/// progress was made).
fn condition(
    old: &[DeploymentCondition],
    type_: &str,
    (status, reason, message): (&str, &str, String),
    now: Timestamp,
    touched: bool,
) -> DeploymentCondition {
    let previous = old.iter().find(|c| c.type_ == type_);
    let same_status = previous.is_some_and(|c| c.status == status);
    let unchanged = previous.is_some_and(|c| {
        same_status && c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(&message)
    });
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: if same_status {
            previous.and_then(|c| c.last_transition_time.clone())
        } else {
            Some(time(now))
        },
        last_update_time: if unchanged && !touched {
            previous.and_then(|c| c.last_update_time.clone())
        } else {
            Some(time(now))
        },
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
