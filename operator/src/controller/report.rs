//! The `status` step's writes: the ModelDeployment's status, through the
//! status subresource, and the Events that tell a platform engineer what
//! the operator decided. What the status says is computed in [`super::status`].

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use modelfleet_core::crd::{ModelDeployment, ModelDeploymentStatus};
use serde_json::json;
use tracing::warn;

use super::apply::MANAGER;

/// The status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the status: {0}")]
pub struct StatusError(#[source] pub kube::Error);

impl StatusError {
    /// A bounded label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        "status"
    }
}

/// Writes `next` when it differs from `previous`, with server-side apply on
/// the status subresource.
pub async fn write_status(
    client: &Client,
    md: &ModelDeployment,
    namespace: &str,
    previous: Option<&ModelDeploymentStatus>,
    next: ModelDeploymentStatus,
) -> Result<(), StatusError> {
    if previous == Some(&next) {
        return Ok(());
    }
    let api: Api<ModelDeployment> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "apiVersion": ModelDeployment::api_version(&()),
        "kind": ModelDeployment::kind(&()),
        "status": next,
    });
    api.patch_status(
        &md.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(StatusError)?;
    Ok(())
}

/// Publishes an Event on the ModelDeployment. Events are advisory: a failure
/// to publish is logged, never fails the reconcile.
pub async fn publish(
    recorder: &Recorder,
    md: &ModelDeployment,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &md.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish event");
    }
}
