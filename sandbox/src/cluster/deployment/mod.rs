//! The Deployment controller (`apps/v1`): keeps each Deployment's pods at
//! its replica count through rolling updates, and its status current. The
//! decision is `rollout::plan`; this module lists, creates, deletes and
//! writes status.
//!
//! Pods are listed from the API server on every reconcile rather than read
//! from a cache, so a reconcile never acts on a view that misses the pods
//! the previous one created, and never creates a replica twice.

pub mod rollout;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::common::{is_controlled_by, name_of, namespace_of, now, random_suffix, until};
use super::events::{self, DEPLOYMENT_CONTROLLER, Throttle};

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("listing the pods of deployment {deployment}: {source}")]
    List {
        deployment: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating a pod for deployment {deployment}: {source}")]
    Create {
        deployment: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting pod {pod}: {source}")]
    Delete {
        pod: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of deployment {deployment}: {source}")]
    Status {
        deployment: String,
        #[source]
        source: kube::Error,
    },
}

impl DeploymentError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            DeploymentError::List { .. } => "list",
            DeploymentError::Create { .. } => "create",
            DeploymentError::Delete { .. } => "delete",
            DeploymentError::Status { .. } => "status",
        }
    }
}

struct Ctx {
    client: Client,
    time_factor: f64,
    failed_create_events: Throttle,
}

/// Runs until the task is aborted.
pub async fn run(client: Client, time_factor: f64) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        time_factor,
        failed_create_events: Throttle::new(Duration::from_secs(5)),
    });
    Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Pod>::all(client),
        watcher::Config::default(),
        |pod: Pod| {
            let namespace = pod.namespace().unwrap_or_default();
            pod.owner_references()
                .iter()
                .filter(|r| r.controller == Some(true) && r.kind == "Deployment")
                .map(|r| ObjectRef::new(&r.name).within(&namespace))
                .collect::<Vec<_>>()
        },
    )
    .run(reconcile, error_policy, ctx)
    .for_each(|result| {
        if let Err(error) = result {
            tracing::debug!(%error, "deployment controller");
        }
        std::future::ready(())
    })
    .await;
}

fn error_policy(_d: Arc<Deployment>, error: &DeploymentError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(%error, reason = error.metric_label(), "deployment controller retries");
    Action::requeue(Duration::from_millis(250))
}

/// `key=value,…` from the selector's matchLabels, to narrow the list; the
/// owner reference decides what is really this Deployment's.
fn label_selector(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

async fn reconcile(deployment: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, DeploymentError> {
    if deployment.metadata.deletion_timestamp.is_some() {
        // Its pods go with it through the API server's garbage collection.
        return Ok(Action::await_change());
    }
    let name = name_of(deployment.as_ref()).to_owned();
    let uid = deployment.uid().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace_of(deployment.as_ref()));
    let listed = pods
        .list(&ListParams::default().labels(&label_selector(&deployment)))
        .await
        .map_err(|source| DeploymentError::List {
            deployment: name.clone(),
            source,
        })?;
    let owned: Vec<&Pod> = listed
        .items
        .iter()
        .filter(|p| is_controlled_by(*p, &uid))
        .collect();
    let now = now();
    let mut plan = rollout::plan(&deployment, &owned, now, ctx.time_factor);
    // A pod the API refuses (admission, quota) is reported as the
    // ReplicaSet controller reports it, and retried with backoff.
    let mut refused = None;
    'create: for mut pod in std::mem::take(&mut plan.create) {
        let prefix = pod.metadata.generate_name.clone().unwrap_or_default();
        // A clash of random suffixes is unlikely; one retry makes it moot.
        for attempt in 0..2 {
            pod.metadata.name = Some(format!("{prefix}{}", random_suffix(5)));
            match pods.create(&PostParams::default(), &pod).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 && attempt == 0 => continue,
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    refused = Some((s.message.clone(), kube::Error::Api(s)));
                    break 'create;
                }
                Err(source) => {
                    return Err(DeploymentError::Create {
                        deployment: name,
                        source,
                    });
                }
            }
        }
    }
    if let Some((message, _)) = &refused {
        let old = deployment
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        if let Some(conditions) = plan.status.conditions.as_mut() {
            conditions.push(rollout::replica_failure(&old, message, now));
        }
        if ctx.failed_create_events.allow(&uid) {
            let event = events::event_about(
                deployment.object_ref(&()),
                DEPLOYMENT_CONTROLLER,
                "Warning",
                "FailedCreate",
                "Create",
                &format!("Error creating: {message}"),
            );
            events::publish(&ctx.client, event).await;
        }
    }
    for pod in plan.delete {
        match pods.delete(&pod, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(DeploymentError::Delete { pod, source }),
        }
    }
    let unchanged = serde_json::to_value(&deployment.status).ok()
        == serde_json::to_value(Some(&plan.status)).ok();
    if !unchanged {
        let api: Api<Deployment> =
            Api::namespaced(ctx.client.clone(), namespace_of(deployment.as_ref()));
        let patch = json!({"status": plan.status});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(DeploymentError::Status {
                    deployment: name,
                    source,
                });
            }
        }
    }
    if let Some((_, source)) = refused {
        return Err(DeploymentError::Create {
            deployment: name,
            source,
        });
    }
    Ok(match plan.recheck_at {
        Some(at) => Action::requeue(until(now, at).max(Duration::from_millis(1))),
        None => Action::await_change(),
    })
}
