//! The `apply` step: server-side apply of the built objects with one field
//! manager, and removal of a workload of the other kind after a re-plan
//! moved the model between one node and several. Also removes a
//! deployment's objects when it is rejected or deleted.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource};
use modelfleet_core::crd::lws::LeaderWorkerSet;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{Applied, Built, GROUP_SUFFIX, Resources, Workload};

/// The field manager of everything the operator writes.
pub const MANAGER: &str = "modelfleet-operator";

/// The API server refused a write.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("applying {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// Whether the API server refused for want of permission (403): the
    /// operator's role is not bound where it tried to write.
    pub fn is_forbidden(&self) -> bool {
        let (ApplyError::Apply { source, .. } | ApplyError::Delete { source, .. }) = self;
        matches!(source, kube::Error::Api(status) if status.code == 403)
    }

    /// A bounded label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ApplyError::Apply { .. } => "apply",
            ApplyError::Delete { .. } => "delete",
        }
    }
}

/// Applies every built object and returns them as the API server stored
/// them.
pub async fn apply(
    client: &Client,
    namespace: &str,
    built: Resources<Built>,
) -> Result<Resources<Applied>, ApplyError> {
    // The cache's volume and claim before the pods that mount them. The
    // volume is made once and then left alone: its `claimRef` is an atomic
    // field the PersistentVolume controller completes with the claim's
    // uid, which applying it again would take back.
    if let Some(cache) = &built.model_cache {
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        let name = name_of(&cache.volume);
        let failed = |source| ApplyError::Apply {
            kind: "PersistentVolume".into(),
            name: name.clone(),
            source,
        };
        if volumes.get_opt(&name).await.map_err(failed)?.is_none() {
            volumes
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&cache.volume),
                )
                .await
                .map_err(failed)?;
        }
        let _: PersistentVolumeClaim = ssa(client, namespace, &cache.claim).await?;
    }
    let workload = match &built.workload {
        Workload::Deployment(d) => {
            let applied = ssa(client, namespace, d.as_ref()).await?;
            delete_if_present::<LeaderWorkerSet>(
                client,
                namespace,
                &format!("{}{GROUP_SUFFIX}", name_of(d.as_ref())),
            )
            .await?;
            Workload::Deployment(Box::new(applied))
        }
        Workload::LeaderWorkerSet(l) => {
            let applied = ssa(client, namespace, l.as_ref()).await?;
            let plain = name_of(l.as_ref())
                .trim_end_matches(GROUP_SUFFIX)
                .to_owned();
            delete_if_present::<Deployment>(client, namespace, &plain).await?;
            Workload::LeaderWorkerSet(Box::new(applied))
        }
    };
    let service: Service = ssa(client, namespace, &built.service).await?;
    let pdb: PodDisruptionBudget = ssa(client, namespace, &built.disruption_budget).await?;
    Ok(built.applied(workload, service, pdb))
}

fn name_of<K: Resource>(object: &K) -> String {
    object.meta().name.clone().unwrap_or_default()
}

async fn ssa<K>(client: &Client, namespace: &str, object: &K) -> Result<K, ApplyError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = name_of(object);
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| ApplyError::Apply {
        kind: K::kind(&Default::default()).into_owned(),
        name,
        source,
    })
}

/// Deletes the workload objects of deployment `name` (not waiting for
/// pods); a LeaderWorkerSet only where the API is served.
pub async fn remove_workloads(
    client: &Client,
    namespace: &str,
    name: &str,
    lws_available: bool,
) -> Result<(), ApplyError> {
    delete_if_present::<Deployment>(client, namespace, name).await?;
    if lws_available {
        delete_if_present::<LeaderWorkerSet>(client, namespace, &format!("{name}{GROUP_SUFFIX}"))
            .await?;
    }
    delete_if_present::<Service>(client, namespace, name).await?;
    delete_if_present::<PodDisruptionBudget>(client, namespace, name).await?;
    Ok(())
}

/// Deletes `name` if it exists; a kind whose API is not installed (no
/// LeaderWorkerSet CRD) has nothing to delete either.
pub async fn delete_if_present<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<bool, ApplyError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        // Not allowed to delete here (the operator's role is not bound in
        // this namespace), so it cannot have made one either: if there is
        // none (it may read everywhere), there is nothing to clean up, and
        // a ModelDeployment there can still be deleted.
        Err(kube::Error::Api(status))
            if status.code == 403 && matches!(api.get_opt(name).await, Ok(None)) =>
        {
            Ok(false)
        }
        Err(source) => Err(ApplyError::Delete {
            kind: K::kind(&Default::default()).into_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}
