//! What the LeaderWorkerSet controller decides for one set, given its pods:
//! which pods to create and delete, and the status to report. Pure.
//!
//! The real controller makes a leader StatefulSet and, per leader, a
//! worker StatefulSet; this one makes the same pods directly (owned by the
//! LeaderWorkerSet) and keeps the group semantics that matter to users:
//! - a group is the leader `<name>-<i>` and workers `<name>-<i>-<j>`;
//! - workers are created once their leader exists (or is ready, with
//!   `startupPolicy: LeaderReady`);
//! - with `RecreateGroupOnPodRestart` (the default) a failed pod or a
//!   restarted container recreates its whole group; with `None` only a
//!   failed pod is replaced;
//! - a template change rolls groups from the highest index down, at most
//!   `maxUnavailable` (default 1) unready groups at a time, sparing groups
//!   below `partition`;
//! - a group is ready when all its pods are.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::pods::{
    GROUP_INDEX_LABEL, LwsSpec, NAME_LABEL, Owner, REVISION_LABEL, WORKER_INDEX_LABEL, group_pod,
    pod_name,
};
use crate::cluster::common::{
    is_active, is_ready, is_terminal, is_terminating, label, name_of, time,
};

/// `status` of a LeaderWorkerSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LwsStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_pod_selector: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub create: Vec<Pod>,
    pub delete: Vec<String>,
    pub status: LwsStatus,
}

/// Pods of one group, by worker index.
#[derive(Debug, Default)]
struct Group<'a> {
    pods: BTreeMap<i32, &'a Pod>,
}

impl Group<'_> {
    fn leader(&self) -> Option<&Pod> {
        self.pods.get(&0).copied()
    }

    fn ready(&self, size: i32) -> bool {
        (0..size).all(|w| {
            self.pods
                .get(&w)
                .is_some_and(|p| is_active(p) && is_ready(p))
        })
    }

    fn revision(&self) -> Option<&str> {
        self.leader().and_then(|p| label(p, REVISION_LABEL))
    }

    /// Under `RecreateGroupOnPodRestart`: a pod failed, or a container of a
    /// live pod restarted.
    fn broken(&self) -> bool {
        self.pods
            .values()
            .any(|p| is_terminal(p) && !is_terminating(p) || (is_active(p) && restarted(p)))
    }
}

fn restarted(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let inits = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    statuses.iter().chain(inits).any(|s| s.restart_count > 0)
}

fn index(pod: &Pod, key: &str) -> Option<i32> {
    label(pod, key)?.parse().ok()
}

/// Decides for the set `owner` with `spec`, whose pods are `pods`.
pub fn plan(
    owner: &Owner,
    spec: &LwsSpec,
    generation: Option<i64>,
    previous: &LwsStatus,
    pods: &[&Pod],
    now: Timestamp,
) -> Plan {
    let replicas = spec.replicas();
    let size = spec.size();
    let revision = spec.revision();
    let mut groups: BTreeMap<i32, Group> = BTreeMap::new();
    let mut delete: BTreeSet<String> = BTreeSet::new();
    let existing: BTreeSet<&str> = pods.iter().map(|p| name_of(*p)).collect();
    for pod in pods {
        match (
            index(pod, GROUP_INDEX_LABEL),
            index(pod, WORKER_INDEX_LABEL),
        ) {
            (Some(g), Some(w))
                if g < replicas
                    && w < size
                    && label(*pod, NAME_LABEL) == Some(owner.name.as_str()) =>
            {
                groups.entry(g).or_default().pods.insert(w, pod);
            }
            // Scaled away, shrunk, or not a pod of this set's shape.
            _ if !is_terminating(pod) => {
                delete.insert(name_of(*pod).to_owned());
            }
            _ => {}
        }
    }
    let delete_group = |group: &Group, delete: &mut BTreeSet<String>| {
        for pod in group.pods.values().filter(|p| !is_terminating(p)) {
            delete.insert(name_of(*pod).to_owned());
        }
    };
    // Failures first: a broken group is recreated whole, or under `None`
    // only its failed pods are.
    for group in groups.values() {
        if spec.recreate_group_on_restart() {
            if group.broken() {
                delete_group(group, &mut delete);
            }
        } else {
            for pod in group
                .pods
                .values()
                .filter(|p| is_terminal(p) && !is_terminating(p))
            {
                delete.insert(name_of(*pod).to_owned());
            }
        }
    }
    // Rolling update: outdated groups from the highest index down.
    let rolling = spec
        .rollout_strategy
        .clone()
        .unwrap_or_default()
        .rolling_update_configuration
        .unwrap_or_default();
    let partition = rolling.partition.unwrap_or(0).max(0);
    let max_unavailable = match rolling.max_unavailable {
        Some(IntOrString::Int(n)) => n.max(0),
        Some(IntOrString::String(p)) => p
            .trim_end_matches('%')
            .parse::<i32>()
            .map_or(1, |p| p * replicas / 100),
        None => 1,
    }
    .max(1);
    let unready = (0..replicas)
        .filter(|g| !groups.get(g).is_some_and(|grp| grp.ready(size)))
        .count() as i32;
    let mut budget = max_unavailable - unready;
    for (g, group) in groups.iter().rev() {
        let outdated = group.revision().is_some_and(|r| r != revision);
        if !outdated || *g < partition || group.pods.values().any(|p| delete.contains(name_of(*p)))
        {
            continue;
        }
        if !group.ready(size) {
            delete_group(group, &mut delete);
        } else if budget > 0 {
            delete_group(group, &mut delete);
            budget -= 1;
        }
    }
    // Missing pods. A name still held by a pod on its way out must wait.
    let mut create = Vec::new();
    for g in 0..replicas {
        let group = groups.get(&g);
        let leader = group.and_then(Group::leader);
        let leader_name = pod_name(&owner.name, g, 0);
        if !existing.contains(leader_name.as_str()) {
            create.push(group_pod(owner, spec, g, 0, &revision));
            continue;
        }
        let Some(leader) = leader.filter(|l| is_active(l) && !delete.contains(name_of(*l))) else {
            continue;
        };
        if spec.leader_ready_first() && !is_ready(leader) {
            continue;
        }
        let group_revision = label(leader, REVISION_LABEL)
            .unwrap_or(&revision)
            .to_owned();
        for w in 1..size {
            if !existing.contains(pod_name(&owner.name, g, w).as_str()) {
                create.push(group_pod(owner, spec, g, w, &group_revision));
            }
        }
    }
    let status = status(owner, spec, generation, previous, &groups, &revision, now);
    Plan {
        create,
        delete: delete.into_iter().collect(),
        status,
    }
}

fn status(
    owner: &Owner,
    spec: &LwsSpec,
    generation: Option<i64>,
    previous: &LwsStatus,
    groups: &BTreeMap<i32, Group>,
    revision: &str,
    now: Timestamp,
) -> LwsStatus {
    let replicas = spec.replicas();
    let size = spec.size();
    let created = groups
        .values()
        .filter(|g| g.leader().is_some_and(is_active))
        .count() as i32;
    let ready = groups.values().filter(|g| g.ready(size)).count() as i32;
    let updated = groups
        .values()
        .filter(|g| g.revision() == Some(revision))
        .count() as i32;
    let all_ready = ready == replicas && created == replicas;
    let updating = groups
        .values()
        .any(|g| g.revision().is_some_and(|r| r != revision));
    let condition = |type_: &str, status: bool, reason: &str, message: String| {
        let old = previous.conditions.iter().find(|c| c.type_ == type_);
        let status = if status { "True" } else { "False" };
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: old
                .filter(|c| c.status == status)
                .map_or_else(|| time(now), |c| c.last_transition_time.clone()),
        }
    };
    let progressing = "Replicas are progressing".to_owned();
    let conditions = vec![
        if all_ready {
            condition(
                "Available",
                true,
                "AllGroupsReady",
                "All replicas are ready".to_owned(),
            )
        } else {
            // The real controller's wording for a False Available differs
            // between versions; this one says how far it got.
            condition(
                "Available",
                false,
                "GroupsNotReady",
                format!("{ready} of {replicas} groups are ready"),
            )
        },
        condition("Progressing", !all_ready, "GroupsProgressing", progressing),
        if updating {
            condition(
                "UpdateInProgress",
                true,
                "GroupsUpdating",
                "Rolling Upgrade is in progress".to_owned(),
            )
        } else {
            condition(
                "UpdateInProgress",
                false,
                "UpdatesComplete",
                "No update in progress".to_owned(),
            )
        },
    ];
    LwsStatus {
        conditions,
        ready_replicas: ready,
        updated_replicas: updated,
        replicas: created,
        hpa_pod_selector: Some(format!(
            "{NAME_LABEL}={},{WORKER_INDEX_LABEL}=0",
            owner.name
        )),
    }
}

#[cfg(test)]
#[path = "groups_tests.rs"]
mod tests;
