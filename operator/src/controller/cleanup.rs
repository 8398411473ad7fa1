//! What the finalizer runs when a ModelDeployment is deleted: delete what
//! it owns and wait until its pods are gone, so that its devices are free
//! (and no longer billed) when it disappears.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use modelfleet_core::contract::labels::DEPLOYMENT_LABEL;
use modelfleet_core::crd::{ModelDeployment, Phase};
use tracing::{info, warn};

use super::Context;
use super::apply::{self, ApplyError};
use super::fetch::{self, FetchError};
use super::report;

/// Why a deleted ModelDeployment is not gone yet.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error(transparent)]
    Remove(#[from] ApplyError),
    #[error(transparent)]
    ListPods(#[from] FetchError),
    #[error("waiting for {0} to be deleted")]
    StillDeleting(String),
}

impl CleanupError {
    /// A bounded label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CleanupError::Remove(e) => e.metric_label(),
            CleanupError::ListPods(e) => e.metric_label(),
            CleanupError::StillDeleting(_) => "still_deleting",
        }
    }
}

/// Marks `md` Terminating, deletes its objects, and succeeds once its pods
/// are gone; until then it fails, so the finalizer stays and it is retried.
pub async fn cleanup(
    md: &ModelDeployment,
    namespace: &str,
    ctx: &Context,
) -> Result<Action, CleanupError> {
    let name = md.name_any();
    let client = &ctx.client;
    if md.status.as_ref().and_then(|s| s.phase) != Some(Phase::Terminating) {
        let mut next = md.status.clone().unwrap_or_default();
        next.phase = Some(Phase::Terminating);
        // Best effort: the object is going away either way.
        if let Err(e) = report::write_status(client, md, namespace, md.status.as_ref(), next).await
        {
            warn!(error = %e, "could not mark {name} Terminating");
        }
    }
    apply::remove_workloads(client, namespace, &name, ctx.lws_available).await?;
    let pods = fetch::list::<Pod>(
        Api::namespaced(client.clone(), namespace),
        &ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={name}")),
        "pods",
    )
    .await?;
    if !pods.is_empty() {
        return Err(CleanupError::StillDeleting(format!(
            "{} pod(s) of {name}",
            pods.len()
        )));
    }
    info!(%namespace, %name, "cleaned up");
    Ok(Action::await_change())
}
