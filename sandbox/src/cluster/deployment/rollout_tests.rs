use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::cluster::common::time;
use crate::cluster::fixtures::pod;

fn t(seconds: u64) -> Timestamp {
    later(
        Timestamp::from_second(1_700_000_000).unwrap(),
        Duration::from_secs(seconds),
    )
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("team-a".into()),
            uid: Some("d-uid".into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "vllm".into(),
                        image: Some(image.into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// A pod of revision `hash`, created at `t(created)`, ready or not.
fn replica(name: &str, hash: &str, created: u64, ready: bool) -> Pod {
    let mut p = pod(name)
        .label(TEMPLATE_HASH_LABEL, hash)
        .label("app", "web")
        .ready(ready)
        .build();
    p.metadata.creation_timestamp = Some(time(t(created)));
    if ready {
        p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(time(t(created)));
    }
    p
}

fn condition(plan: &Plan, type_: &str) -> (String, String) {
    let c = plan
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap();
    (c.status.clone(), c.reason.clone().unwrap_or_default())
}

#[test]
fn a_new_deployment_creates_its_replicas_named_and_owned_like_the_real_ones() {
    let d = deployment(3, "vllm/vllm-openai:v0.9.1");
    let hash = template_hash(&d);
    let plan = plan(&d, &[], t(0), 1.0);
    assert_eq!(plan.create.len(), 3);
    assert!(plan.delete.is_empty());
    let p = &plan.create[0];
    assert_eq!(
        p.metadata.generate_name.as_deref(),
        Some(format!("web-{hash}-").as_str())
    );
    assert_eq!(p.metadata.namespace.as_deref(), Some("team-a"));
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[TEMPLATE_HASH_LABEL], hash);
    assert_eq!(labels["app"], "web");
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Deployment", "d-uid", Some(true))
    );
    assert_eq!(plan.status.observed_generation, Some(2));
    assert_eq!(plan.status.replicas, Some(0));
    assert_eq!(
        condition(&plan, "Available"),
        ("False".into(), "MinimumReplicasUnavailable".into())
    );
    assert_eq!(
        condition(&plan, "Progressing"),
        ("True".into(), "ReplicaSetUpdated".into())
    );
    // The hash changes with the template only.
    assert_eq!(
        hash,
        template_hash(&deployment(5, "vllm/vllm-openai:v0.9.1"))
    );
    assert_ne!(
        hash,
        template_hash(&deployment(3, "vllm/vllm-openai:v0.10.0"))
    );
}

#[test]
fn ready_replicas_make_the_deployment_available_and_complete() {
    let d = deployment(2, "v1");
    let h = template_hash(&d);
    let pods = [replica("a", &h, 0, true), replica("b", &h, 0, true)];
    let plan = plan(&d, &pods.iter().collect::<Vec<_>>(), t(10), 1.0);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    let s = &plan.status;
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas
        ),
        (Some(2), Some(2), Some(2), Some(2))
    );
    assert_eq!(s.unavailable_replicas, Some(0));
    assert_eq!(
        condition(&plan, "Available"),
        ("True".into(), "MinimumReplicasAvailable".into())
    );
    assert_eq!(
        condition(&plan, "Progressing"),
        ("True".into(), "NewReplicaSetAvailable".into())
    );
    let message = s.conditions.as_ref().unwrap()[1].message.clone().unwrap();
    assert_eq!(
        message,
        format!("ReplicaSet \"web-{h}\" has successfully progressed.")
    );
}

#[test]
fn a_template_change_rolls_one_surge_pod_at_a_time_without_losing_availability() {
    let old = deployment(3, "v1");
    let new = deployment(3, "v2");
    let (h1, h2) = (template_hash(&old), template_hash(&new));
    let olds: Vec<Pod> = ["a", "b", "c"]
        .iter()
        .map(|n| replica(n, &h1, 0, true))
        .collect();
    // 25% of 3: surge rounds up to 1, unavailable down to 0.
    let first = plan(&new, &olds.iter().collect::<Vec<_>>(), t(10), 1.0);
    assert_eq!((first.create.len(), first.delete.len()), (1, 0));
    assert_eq!(
        first.create[0].metadata.labels.as_ref().unwrap()[TEMPLATE_HASH_LABEL],
        h2
    );
    // While the new pod loads, nothing else moves.
    let mut pods = olds.clone();
    pods.push(replica("n1", &h2, 10, false));
    let waiting = plan(&new, &pods.iter().collect::<Vec<_>>(), t(20), 1.0);
    assert_eq!((waiting.create.len(), waiting.delete.len()), (0, 0));
    assert_eq!(waiting.status.updated_replicas, Some(1));
    assert_eq!(waiting.status.replicas, Some(4));
    // Once it is ready, one old pod goes.
    pods.pop();
    pods.push(replica("n1", &h2, 10, true));
    let next = plan(&new, &pods.iter().collect::<Vec<_>>(), t(30), 1.0);
    assert_eq!((next.create.len(), next.delete.len()), (0, 1));
    assert_eq!(
        condition(&next, "Available"),
        ("True".into(), "MinimumReplicasAvailable".into())
    );
}

#[test]
fn unhealthy_old_pods_go_first_and_scale_down_removes_unready_and_newest() {
    let d = deployment(1, "v1");
    let h = template_hash(&d);
    let pods = [
        replica("old-ready", &h, 0, true),
        replica("young-ready", &h, 5, true),
        replica("unready", &h, 1, false),
    ];
    let plan = plan(&d, &pods.iter().collect::<Vec<_>>(), t(10), 1.0);
    assert_eq!(plan.delete, ["unready", "young-ready"]);
    let new = deployment(2, "v2");
    let h2 = template_hash(&new);
    // 2 replicas: surge 1, unavailable 0. Once the surge pod is ready, the
    // old pod that serves nothing goes before the one that does.
    let pods = [
        replica("crashing", &h, 0, false),
        replica("fine", &h, 0, true),
        replica("n1", &h2, 5, true),
    ];
    let rolling = super::plan(&new, &pods.iter().collect::<Vec<_>>(), t(10), 1.0);
    assert_eq!(rolling.delete, ["crashing"]);
    assert!(rolling.create.is_empty());
}

#[test]
fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let mut new = deployment(2, "v2");
    new.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    let h1 = template_hash(&deployment(2, "v1"));
    let olds = [replica("a", &h1, 0, true), replica("b", &h1, 0, true)];
    let first = plan(&new, &olds.iter().collect::<Vec<_>>(), t(10), 1.0);
    assert_eq!((first.create.len(), first.delete.len()), (0, 2));
    let mut stopping = olds.clone();
    for p in &mut stopping {
        p.metadata.deletion_timestamp = Some(time(t(10)));
    }
    let waiting = plan(&new, &stopping.iter().collect::<Vec<_>>(), t(11), 1.0);
    assert_eq!((waiting.create.len(), waiting.delete.len()), (0, 0));
    assert_eq!(plan(&new, &[], t(12), 1.0).create.len(), 2);
}

#[test]
fn failed_pods_are_not_counted_and_are_replaced() {
    let d = deployment(2, "v1");
    let h = template_hash(&d);
    let mut lost = replica("lost", &h, 0, false);
    lost.status.as_mut().unwrap().phase = Some("Failed".into());
    let pods = [lost, replica("ok", &h, 0, true)];
    let plan = plan(&d, &pods.iter().collect::<Vec<_>>(), t(10), 1.0);
    assert_eq!(plan.create.len(), 1);
    assert!(plan.delete.is_empty());
    assert_eq!(plan.status.replicas, Some(1));
}

#[test]
fn min_ready_seconds_delay_availability_and_ask_for_a_recheck() {
    let mut d = deployment(1, "v1");
    d.spec.as_mut().unwrap().min_ready_seconds = Some(30);
    let h = template_hash(&d);
    let pods = [replica("a", &h, 100, true)];
    let plan = plan(&d, &pods.iter().collect::<Vec<_>>(), t(110), 1.0);
    assert_eq!(
        (plan.status.ready_replicas, plan.status.available_replicas),
        (Some(1), Some(0))
    );
    assert_eq!(plan.recheck_at, Some(t(130)));
}

#[test]
fn a_rollout_without_progress_times_out() {
    let mut d = deployment(1, "v1");
    let h = template_hash(&d);
    let pods = [replica("a", &h, 0, false)];
    let first = plan(&d, &pods.iter().collect::<Vec<_>>(), t(0), 1.0);
    assert_eq!(first.recheck_at, Some(t(600)));
    d.status = Some(first.status);
    let later_on = plan(&d, &pods.iter().collect::<Vec<_>>(), t(601), 1.0);
    assert_eq!(
        condition(&later_on, "Progressing"),
        ("False".into(), "ProgressDeadlineExceeded".into())
    );
    // The deadline scales with the time factor, but not below a few seconds.
    d.status = None;
    let fast = plan(&d, &pods.iter().collect::<Vec<_>>(), t(0), 0.001);
    assert_eq!(fast.recheck_at, Some(t(5)));
}

#[test]
fn surge_and_unavailability_resolve_like_the_real_controller() {
    let mut d = deployment(10, "v1");
    assert_eq!(surge_and_unavailable(&d, 10), (3, 2));
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(0)),
            max_unavailable: Some(IntOrString::String("5%".into())),
        }),
    });
    // Both round to zero: one pod may be unavailable so the rollout moves.
    assert_eq!(surge_and_unavailable(&d, 10), (0, 1));
}
