//! The parts of a `leaderworkerset.x-k8s.io/v1` LeaderWorkerSet this
//! controller reads, and the pods and Service it makes from them, with the
//! names, labels, annotations and environment the real LWS controller and
//! webhook give them. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodTemplateSpec, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use crate::cluster::common::{fnv32, hex_id, safe_encode};

pub const GROUP: &str = "leaderworkerset.x-k8s.io";
pub const VERSION: &str = "v1";
pub const KIND: &str = "LeaderWorkerSet";
pub const PLURAL: &str = "leaderworkersets";

pub const NAME_LABEL: &str = "leaderworkerset.sigs.k8s.io/name";
pub const GROUP_INDEX_LABEL: &str = "leaderworkerset.sigs.k8s.io/group-index";
pub const WORKER_INDEX_LABEL: &str = "leaderworkerset.sigs.k8s.io/worker-index";
pub const GROUP_KEY_LABEL: &str = "leaderworkerset.sigs.k8s.io/group-key";
pub const REVISION_LABEL: &str = "leaderworkerset.sigs.k8s.io/template-revision-hash";
pub const SIZE_ANNOTATION: &str = "leaderworkerset.sigs.k8s.io/size";
pub const LEADER_NAME_ANNOTATION: &str = "leaderworkerset.sigs.k8s.io/leader-name";

/// `spec` of a LeaderWorkerSet: the fields this controller acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LwsSpec {
    pub replicas: Option<i32>,
    pub leader_worker_template: LeaderWorkerTemplate,
    #[serde(default)]
    pub rollout_strategy: Option<RolloutStrategy>,
    /// `LeaderCreated` (default) or `LeaderReady`.
    #[serde(default)]
    pub startup_policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderWorkerTemplate {
    #[serde(default)]
    pub leader_template: Option<PodTemplateSpec>,
    #[serde(default)]
    pub worker_template: PodTemplateSpec,
    pub size: Option<i32>,
    /// `RecreateGroupOnPodRestart` (default), `None`, or the deprecated `Default`.
    #[serde(default)]
    pub restart_policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    #[serde(default)]
    pub rolling_update_configuration: Option<RollingUpdateConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateConfiguration {
    #[serde(default)]
    pub partition: Option<i32>,
    #[serde(default)]
    pub max_unavailable: Option<IntOrString>,
}

impl LwsSpec {
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1).max(0)
    }

    pub fn size(&self) -> i32 {
        self.leader_worker_template.size.unwrap_or(1).max(1)
    }

    pub fn recreate_group_on_restart(&self) -> bool {
        matches!(
            self.leader_worker_template.restart_policy.as_deref(),
            None | Some("RecreateGroupOnPodRestart")
        )
    }

    pub fn leader_ready_first(&self) -> bool {
        self.startup_policy.as_deref() == Some("LeaderReady")
    }

    /// The template revision: a change to either template rolls the groups.
    pub fn revision(&self) -> String {
        let text = serde_json::to_string(&self.leader_worker_template).unwrap_or_default();
        safe_encode(u64::from(fnv32(text.as_bytes())))
    }
}

/// Identity of the LeaderWorkerSet the pods belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Owner {
    fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: KIND.to_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

pub fn pod_name(lws: &str, group: i32, worker: i32) -> String {
    if worker == 0 {
        format!("{lws}-{group}")
    } else {
        format!("{lws}-{group}-{worker}")
    }
}

/// Prepends the LWS variables to a container's environment, replacing any
/// the template set itself, so the template's own variables can refer to
/// them (`$(LWS_LEADER_ADDRESS)`), as the LWS webhook does.
fn inject_env(container: &mut Container, vars: &[EnvVar]) {
    let mut env = vars.to_vec();
    env.extend(
        container
            .env
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !vars.iter().any(|v| v.name == e.name)),
    );
    container.env = Some(env);
}

/// Pod `worker` (0 is the leader) of group `group`.
pub fn group_pod(owner: &Owner, spec: &LwsSpec, group: i32, worker: i32, revision: &str) -> Pod {
    let templates = &spec.leader_worker_template;
    let template = match (&templates.leader_template, worker) {
        (Some(leader), 0) => leader.clone(),
        _ => templates.worker_template.clone(),
    };
    let name = pod_name(&owner.name, group, worker);
    let leader = pod_name(&owner.name, group, 0);
    let metadata = template.metadata.unwrap_or_default();
    let mut labels = metadata.labels.unwrap_or_default();
    labels.extend([
        (NAME_LABEL.to_owned(), owner.name.clone()),
        (GROUP_INDEX_LABEL.to_owned(), group.to_string()),
        (WORKER_INDEX_LABEL.to_owned(), worker.to_string()),
        (REVISION_LABEL.to_owned(), revision.to_owned()),
        (
            GROUP_KEY_LABEL.to_owned(),
            hex_id(&format!("{}/{leader}", owner.namespace), 40),
        ),
    ]);
    let mut annotations = metadata.annotations.unwrap_or_default();
    annotations.insert(SIZE_ANNOTATION.to_owned(), spec.size().to_string());
    if worker != 0 {
        annotations.insert(LEADER_NAME_ANNOTATION.to_owned(), leader.clone());
    }
    let env = [
        (
            "LWS_LEADER_ADDRESS",
            format!("{leader}.{}.{}", owner.name, owner.namespace),
        ),
        ("LWS_GROUP_SIZE", spec.size().to_string()),
        ("LWS_WORKER_INDEX", worker.to_string()),
    ]
    .map(|(name, value)| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        value_from: None,
    });
    let mut pod_spec = template.spec.unwrap_or_default();
    for container in pod_spec
        .containers
        .iter_mut()
        .chain(pod_spec.init_containers.iter_mut().flatten())
    {
        inject_env(container, &env);
    }
    // The pods are addressed through the headless Service named after the
    // LeaderWorkerSet: `<pod>.<lws>.<namespace>`.
    pod_spec.hostname = Some(name.clone());
    pod_spec.subdomain = Some(owner.name.clone());
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner.reference()]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// The headless Service that gives every pod of the set its DNS name.
pub fn headless_service(owner: &Owner) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(owner.name.clone()),
            namespace: Some(owner.namespace.clone()),
            labels: Some(BTreeMap::from([(
                NAME_LABEL.to_owned(),
                owner.name.clone(),
            )])),
            owner_references: Some(vec![owner.reference()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(BTreeMap::from([(
                NAME_LABEL.to_owned(),
                owner.name.clone(),
            )])),
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        status: None,
    }
}
