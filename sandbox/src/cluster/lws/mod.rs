//! The LeaderWorkerSet controller (`leaderworkerset.x-k8s.io/v1`): groups
//! of a leader and workers for models that span nodes. The decision is
//! `groups::plan`; this module reads the custom resource as a
//! `DynamicObject`, lists pods, creates and deletes them, keeps the
//! headless Service, and writes status.
//!
//! Until the LeaderWorkerSet CRD exists the watch fails and backs off, so
//! the controller starts working whenever the CRD is created.

pub mod crd;
pub mod groups;
pub mod pods;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::common::{api_code, is_controlled_by, now};
use super::events::{self, LWS_CONTROLLER, Throttle};
use groups::LwsStatus;
use pods::{KIND, LwsSpec, NAME_LABEL, Owner};

/// The API resource of LeaderWorkerSets.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(pods::GROUP, pods::VERSION, KIND),
        pods::PLURAL,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum LwsError {
    #[error("leaderworkerset {name} has a spec this controller cannot read: {source}")]
    Spec {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("leaderworkerset {name}: {action}: {source}")]
    Api {
        name: String,
        action: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl LwsError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            LwsError::Spec { .. } => "spec",
            LwsError::Api { action, .. } => action,
        }
    }
}

struct Ctx {
    client: Client,
    resource: ApiResource,
    failed_create_events: Throttle,
}

/// Runs until the task is aborted.
pub async fn run(client: Client) {
    let resource = api_resource();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        resource: resource.clone(),
        failed_create_events: Throttle::new(Duration::from_secs(5)),
    });
    let sets: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let for_pods = resource.clone();
    Controller::new_with(sets, watcher::Config::default(), resource)
        .watches(
            Api::<Pod>::all(client),
            watcher::Config::default(),
            move |pod: Pod| {
                let namespace = pod.namespace().unwrap_or_default();
                pod.owner_references()
                    .iter()
                    .filter(|r| r.controller == Some(true) && r.kind == KIND)
                    .map(|r| ObjectRef::new_with(&r.name, for_pods.clone()).within(&namespace))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "leaderworkerset controller");
            }
            std::future::ready(())
        })
        .await;
}

fn error_policy(_lws: Arc<DynamicObject>, error: &LwsError, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(%error, reason = error.metric_label(), "leaderworkerset controller retries");
    match error {
        // A spec that cannot be read will not read better on retry.
        LwsError::Spec { .. } => Action::await_change(),
        LwsError::Api { .. } => Action::requeue(Duration::from_millis(250)),
    }
}

async fn reconcile(lws: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, LwsError> {
    if lws.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let owner = Owner {
        name: lws.name_any(),
        namespace: lws.namespace().unwrap_or_default(),
        uid: lws.uid().unwrap_or_default(),
    };
    let api_error = |action: &'static str| {
        let name = owner.name.clone();
        move |source| LwsError::Api {
            name,
            action,
            source,
        }
    };
    let spec: LwsSpec = serde_json::from_value(lws.data.get("spec").cloned().unwrap_or_default())
        .map_err(|source| LwsError::Spec {
        name: owner.name.clone(),
        source,
    })?;
    let previous: LwsStatus = lws
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("{NAME_LABEL}={}", owner.name)))
        .await
        .map_err(api_error("list"))?;
    let owned: Vec<&Pod> = listed
        .items
        .iter()
        .filter(|p| is_controlled_by(*p, &owner.uid))
        .collect();
    let plan = groups::plan(
        &owner,
        &spec,
        lws.metadata.generation,
        &previous,
        &owned,
        now(),
    );
    if !plan.create.is_empty() {
        ensure_service(&ctx.client, &owner)
            .await
            .map_err(api_error("service"))?;
    }
    for name in &plan.delete {
        match pods.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(source) => return Err(api_error("delete")(source)),
        }
    }
    for pod in &plan.create {
        match pods.create(&PostParams::default(), pod).await {
            // The name is still held (a pod on its way out, or a watch
            // behind the list): the next reconcile sees which.
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(409) => {}
            Err(kube::Error::Api(s)) if s.code == 403 => {
                // Refused by admission: reported on the LeaderWorkerSet,
                // retried with backoff.
                if ctx.failed_create_events.allow(&owner.uid) {
                    let regarding = lws.object_ref(&ctx.resource);
                    let note = format!("Error creating: {}", s.message);
                    let event = events::event_about(
                        regarding,
                        LWS_CONTROLLER,
                        "Warning",
                        "FailedCreate",
                        "Create",
                        &note,
                    );
                    events::publish(&ctx.client, event).await;
                }
                return Err(api_error("create")(kube::Error::Api(s)));
            }
            Err(source) => return Err(api_error("create")(source)),
        }
    }
    let current = serde_json::to_value(&previous).ok();
    if lws.data.get("status").is_none() || current != serde_json::to_value(&plan.status).ok() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &owner.namespace, &ctx.resource);
        let patch = json!({"status": plan.status});
        match api
            .patch_status(&owner.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(source) => return Err(api_error("status")(source)),
        }
    }
    Ok(Action::await_change())
}

/// Creates the headless Service the pods' DNS names live under, if absent.
async fn ensure_service(client: &Client, owner: &Owner) -> Result<(), kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), &owner.namespace);
    if services.get_opt(&owner.name).await?.is_some() {
        return Ok(());
    }
    match services
        .create(&PostParams::default(), &pods::headless_service(owner))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(409) => Ok(()),
        Err(e) => Err(e),
    }
}
