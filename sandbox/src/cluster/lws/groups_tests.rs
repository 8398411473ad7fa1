use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, EnvVar, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::super::pods::{LEADER_NAME_ANNOTATION, SIZE_ANNOTATION, headless_service};
use super::*;
use crate::cluster::fixtures::PodBuilder;

fn owner() -> Owner {
    Owner {
        name: "llm".into(),
        namespace: "team-a".into(),
        uid: "lws-uid".into(),
    }
}

/// A LeaderWorkerSet spec as a user would write it.
fn spec(extra: serde_json::Value) -> LwsSpec {
    let mut value = json!({
        "replicas": 2,
        "leaderWorkerTemplate": {
            "size": 2,
            "workerTemplate": {"spec": {"containers": [{
                "name": "vllm",
                "image": "vllm/vllm-openai:v0.9.1",
                "env": [{"name": "LWS_GROUP_SIZE", "value": "wrong"}, {"name": "HF_HOME", "value": "/models"}]
            }]}}
        }
    });
    merge(&mut value, extra);
    serde_json::from_value(value).unwrap()
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The pod the controller would have made, now running (ready or not).
fn running(spec: &LwsSpec, group: i32, worker: i32, ready: bool) -> Pod {
    let mut pod = group_pod(&owner(), spec, group, worker, &spec.revision());
    pod.metadata.owner_references = None;
    PodBuilder(pod).ready(ready).build()
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect()
}

fn env(pod: &Pod) -> Vec<(String, String)> {
    pod.spec.as_ref().unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn run(spec: &LwsSpec, pods: &[Pod]) -> Plan {
    plan(
        &owner(),
        spec,
        Some(1),
        &LwsStatus::default(),
        &pods.iter().collect::<Vec<_>>(),
        Timestamp::UNIX_EPOCH,
    )
}

fn available(plan: &Plan) -> (String, String) {
    let c = plan
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .unwrap();
    (c.status.clone(), c.reason.clone())
}

#[test]
fn leaders_come_first_with_the_labels_and_environment_of_the_real_controller() {
    let s = spec(json!({}));
    let plan = run(&s, &[]);
    assert_eq!(names(&plan.create), ["llm-0", "llm-1"]);
    let leader = &plan.create[1];
    let labels = leader.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[NAME_LABEL], "llm");
    assert_eq!(labels[GROUP_INDEX_LABEL], "1");
    assert_eq!(labels[WORKER_INDEX_LABEL], "0");
    assert_eq!(labels[REVISION_LABEL], s.revision());
    assert_eq!(
        leader.metadata.annotations.as_ref().unwrap()[SIZE_ANNOTATION],
        "2"
    );
    assert_eq!(
        env(leader),
        [
            (
                "LWS_LEADER_ADDRESS".to_owned(),
                "llm-1.llm.team-a".to_owned()
            ),
            ("LWS_GROUP_SIZE".to_owned(), "2".to_owned()),
            ("LWS_WORKER_INDEX".to_owned(), "0".to_owned()),
            ("HF_HOME".to_owned(), "/models".to_owned()),
        ]
    );
    let pod_spec = leader.spec.as_ref().unwrap();
    assert_eq!(
        (pod_spec.hostname.as_deref(), pod_spec.subdomain.as_deref()),
        (Some("llm-1"), Some("llm"))
    );
    let owner_ref = &leader.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner_ref.kind.as_str(), owner_ref.api_version.as_str()),
        ("LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1")
    );
    assert_eq!(plan.status.replicas, 0);
    assert_eq!(available(&plan), ("False".into(), "GroupsNotReady".into()));
}

#[test]
fn workers_follow_their_leader() {
    let s = spec(json!({}));
    let plan = run(&s, &[running(&s, 0, 0, false), running(&s, 1, 0, false)]);
    assert_eq!(names(&plan.create), ["llm-0-1", "llm-1-1"]);
    let worker = &plan.create[0];
    assert_eq!(
        worker.metadata.annotations.as_ref().unwrap()[LEADER_NAME_ANNOTATION],
        "llm-0"
    );
    assert_eq!(
        worker.metadata.labels.as_ref().unwrap()[WORKER_INDEX_LABEL],
        "1"
    );
    assert_eq!(env(worker)[0].1, "llm-0.llm.team-a");
    assert_eq!(
        env(worker)[2],
        ("LWS_WORKER_INDEX".to_owned(), "1".to_owned())
    );
    assert_eq!(plan.status.replicas, 2);
    // With LeaderReady, workers wait for a ready leader.
    let s = spec(json!({"startupPolicy": "LeaderReady"}));
    let plan = run(&s, &[running(&s, 0, 0, true), running(&s, 1, 0, false)]);
    assert_eq!(names(&plan.create), ["llm-0-1"]);
}

#[test]
fn a_group_is_ready_when_all_its_pods_are() {
    let s = spec(json!({}));
    let mut pods = vec![
        running(&s, 0, 0, true),
        running(&s, 0, 1, true),
        running(&s, 1, 0, true),
        running(&s, 1, 1, false),
    ];
    let plan = run(&s, &pods);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(
        (
            plan.status.replicas,
            plan.status.ready_replicas,
            plan.status.updated_replicas
        ),
        (2, 1, 2)
    );
    assert_eq!(available(&plan), ("False".into(), "GroupsNotReady".into()));
    pods[3] = running(&s, 1, 1, true);
    let plan = run(&s, &pods);
    assert_eq!(available(&plan), ("True".into(), "AllGroupsReady".into()));
    let progressing = plan
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.status, "False");
    assert_eq!(
        plan.status.hpa_pod_selector.as_deref(),
        Some("leaderworkerset.sigs.k8s.io/name=llm,leaderworkerset.sigs.k8s.io/worker-index=0")
    );
}

fn restarted(mut pod: Pod) -> Pod {
    pod.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
        name: "vllm".into(),
        restart_count: 1,
        ..Default::default()
    }]);
    pod
}

#[test]
fn a_restart_recreates_the_whole_group_unless_the_policy_is_none() {
    let s = spec(json!({}));
    let pods = [
        running(&s, 0, 0, true),
        restarted(running(&s, 0, 1, true)),
        running(&s, 1, 0, true),
        running(&s, 1, 1, true),
    ];
    let plan = run(&s, &pods);
    assert_eq!(plan.delete, ["llm-0", "llm-0-1"]);
    assert!(
        plan.create.is_empty(),
        "names are still held by the pods being deleted"
    );
    let none = spec(json!({"leaderWorkerTemplate": {"restartPolicy": "None"}}));
    let pods = [
        running(&none, 0, 0, true),
        restarted(running(&none, 0, 1, true)),
    ];
    assert!(run(&none, &pods).delete.is_empty());
    let mut failed = running(&none, 0, 1, false);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    assert_eq!(
        run(&none, &[running(&none, 0, 0, true), failed]).delete,
        ["llm-0-1"]
    );
}

#[test]
fn scaling_down_removes_whole_groups_from_the_top() {
    let two = spec(json!({}));
    let pods = [
        running(&two, 0, 0, true),
        running(&two, 0, 1, true),
        running(&two, 1, 0, true),
        running(&two, 1, 1, true),
    ];
    let one = spec(json!({"replicas": 1}));
    assert_eq!(run(&one, &pods).delete, ["llm-1", "llm-1-1"]);
}

#[test]
fn a_template_change_rolls_one_group_at_a_time_from_the_highest() {
    let old = spec(json!({}));
    let pods = [
        running(&old, 0, 0, true),
        running(&old, 0, 1, true),
        running(&old, 1, 0, true),
        running(&old, 1, 1, true),
    ];
    let new = spec(
        json!({"leaderWorkerTemplate": {"workerTemplate": {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.0"}]}}}}),
    );
    assert_ne!(old.revision(), new.revision());
    let plan = run(&new, &pods);
    assert_eq!(plan.delete, ["llm-1", "llm-1-1"]);
    assert_eq!(plan.status.updated_replicas, 0);
    let updating = plan
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "UpdateInProgress")
        .unwrap();
    assert_eq!(
        (updating.status.as_str(), updating.reason.as_str()),
        ("True", "GroupsUpdating")
    );
    // A partition spares the groups below it.
    let partitioned = spec(json!({
        "rolloutStrategy": {"rollingUpdateConfiguration": {"partition": 2}},
        "leaderWorkerTemplate": {"workerTemplate": {"spec": {"containers": [{"name": "vllm", "image": "x"}]}}}
    }));
    assert!(run(&partitioned, &pods).delete.is_empty());
}

#[test]
fn a_leader_template_shapes_only_the_leader() {
    let leader_template = PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "ray-head".into(),
                env: Some(vec![EnvVar {
                    name: "ROLE".into(),
                    value: Some("head".into()),
                    value_from: None,
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let mut s = spec(json!({}));
    s.leader_worker_template.leader_template = Some(leader_template);
    let leader = group_pod(&owner(), &s, 0, 0, "r");
    assert_eq!(leader.spec.as_ref().unwrap().containers[0].name, "ray-head");
    assert_eq!(
        env(&leader).last().unwrap(),
        &("ROLE".to_owned(), "head".to_owned())
    );
    assert_eq!(
        group_pod(&owner(), &s, 0, 1, "r")
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .name,
        "vllm"
    );
    let service = headless_service(&owner());
    assert_eq!(
        service.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
}
