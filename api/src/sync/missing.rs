//! A deployment the hub placed whose ModelDeployment is missing from its
//! cluster: applied again from the object the hub kept (the hub's record
//! is the desired state), or, with no object kept, deleted and its quota
//! released. Either way recorded in the audit trail; see
//! `docs/architecture.md` ("Clusters and deployments that disappear").

use modelfleet_core::crd::ModelDeployment;
use tracing::warn;

use super::{SyncError, actor};
use crate::identity::Scope;
use crate::service::Hub;
use crate::store::{AuditEntry, Deployment};

/// Applies again the ModelDeployment the hub applied for `row`, missing
/// from `cluster`: at the row's replica count, sealed anew, its status
/// back to `Pending` with a message saying why.
pub(super) async fn reapply(
    state: &Hub,
    cluster: &str,
    row: &Deployment,
    object: &str,
) -> Result<(), SyncError> {
    let mut md: ModelDeployment = match serde_json::from_str(object) {
        Ok(md) => md,
        Err(e) => {
            warn!(%cluster, deployment = %row.id, error = %e,
                "the ModelDeployment the hub kept cannot be read; deleting the missing deployment");
            return release(state, cluster, row).await;
        }
    };
    // Only as the row still is (one moved, resized or deleted meanwhile is
    // left to the next pass); the old object's uid forgotten, so that the
    // new one is the hub's own while it is applied and sealed; recorded
    // in the audit trail with that change.
    let mut tx = state.store().begin(&actor()).await?;
    if !tx.forget_resource_uid(row.id, row.revision).await? {
        return Ok(());
    }
    tx.audit_as(AuditEntry {
        verb: "update".to_owned(),
        resource: "deployments".to_owned(),
        tenant: Some(row.tenant),
        name: Some(row.name.clone()),
        uid: Some(row.id.to_string()),
        code: None,
        message: Some(format!(
            "its ModelDeployment was missing from cluster {cluster}: applied again with {} \
             replica(s)",
            row.replicas
        )),
        annotations: Default::default(),
    });
    tx.commit().await?;
    md.spec.replicas = row.replicas;
    md.metadata.uid = None;
    md.metadata.resource_version = None;
    let tenant = state.store().tenant(Scope::All, row.tenant).await?;
    let message =
        format!("its ModelDeployment was missing from cluster {cluster}; applied again by the hub");
    match state
        .apply_held(&actor(), row, &tenant.name, &md, Some(message))
        .await
    {
        Ok(_) => warn!(%cluster, deployment = %row.id, name = %row.name,
            "the ModelDeployment the hub placed was missing from its cluster: applied again"),
        Err(e) => warn!(%cluster, deployment = %row.id, error = %e,
            "cannot apply a missing ModelDeployment again; the next passes try again"),
    }
    Ok(())
}

/// Deletes `row`, whose ModelDeployment is missing from `cluster` and
/// cannot be applied again, and releases its quota, unless it changed
/// since it was read.
pub(super) async fn release(state: &Hub, cluster: &str, row: &Deployment) -> Result<(), SyncError> {
    let mut tx = state.store().begin(&actor()).await?;
    match tx.release_unchanged(row.id, row.revision).await {
        Ok(Some(_)) => {
            tx.commit().await?;
            warn!(%cluster, deployment = %row.id, name = %row.name,
                "the ModelDeployment the hub placed is missing from its cluster: deleted, quota released");
            Ok(())
        }
        // Changed meanwhile (deleted, moved by failover, resized): the
        // next passes look again.
        Ok(None) | Err(crate::StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
