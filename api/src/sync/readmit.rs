//! A ModelDeployment the hub admitted whose spec no longer carries the
//! hub's seal for it (`modelfleet_core::contract::admission`): someone
//! changed it with kubectl since (`kubectl scale`, another image), or wrote
//! an admission the hub never made. Its operator holds it as admitted —
//! what runs keeps running, nothing new starts — until the hub decides:
//!
//! - a change of `replicas` alone is admitted as `PATCH` of replicas is,
//!   against the tenant's quota and budget, and sealed anew, so `kubectl
//!   scale` within quota goes through within one sync pass;
//! - beyond quota or budget, or any other change, is refused: the reason
//!   and message go on the object (its `Admitted` condition says them) and
//!   into the audit trail, once per decision. The admitted seal stays, so
//!   it keeps running as admitted; putting the spec back ends the hold.

use kube::ResourceExt;
use modelfleet_core::contract::admission::{
    self as contract, AdmissionKey, MESSAGE_ANNOTATION, REASON_ANNOTATION, REASON_BUDGET_EXHAUSTED,
    REASON_CHANGED, REASON_QUOTA_EXCEEDED, Sealed,
};
use modelfleet_core::crd::ModelDeployment;

use super::{SyncError, actor};
use crate::service::{Caller, DeploymentRef, Hub};
use crate::store::{AuditEntry, Deployment, now};

/// How long after the hub last wrote a deployment an unsealed picture of
/// its ModelDeployment is taken for the watch lagging behind the seal.
const IN_FLIGHT_SECONDS: i64 = 60;

/// Checks a tracked deployment's seal and decides about a change. Returns
/// the row as it is after the decision. `key` is the cluster's admission
/// key when the caller derived it already (once per pass).
pub(super) async fn check(
    state: &Hub,
    cluster: &str,
    key: Option<&AdmissionKey>,
    md: &ModelDeployment,
    row: Deployment,
) -> Result<Deployment, SyncError> {
    let derived;
    let key = match key {
        Some(key) => key,
        None => {
            derived = state.registry().admission_key(cluster)?;
            &derived
        }
    };
    let changed = match contract::check(md, key) {
        Sealed::Current => return Ok(row),
        Sealed::Changed { admitted } => contract::changed_fields(&admitted, &md.spec),
        // Just written by the hub: this picture of it may be from between
        // the apply and the seal (the watch lags behind the hub's own
        // writes). Not a change to refuse yet; one still unsealed once the
        // row has been quiet for a while (the hub died between the two
        // writes, or someone removed the seal) is refused, and it is held
        // by its operator meanwhile, as any unsealed object is.
        Sealed::Unsealed
            if now() - row.updated_at < chrono::TimeDelta::seconds(IN_FLIGHT_SECONDS) =>
        {
            return Ok(row);
        }
        Sealed::Unsealed => Vec::new(),
    };
    if changed == ["replicas"] {
        let caller = Caller {
            actor: actor(),
            session: None,
            pending: None,
        };
        let replicas = md.spec.replicas;
        match state
            .scale_deployment(&caller, &DeploymentRef::Id(row.id), replicas)
            .await
        {
            Ok(after) => {
                // Sealed anew as it is now, also when the count was already
                // the row's (a seal lost on the way).
                state
                    .registry()
                    .scale_deployment(cluster, &after.namespace, &after.name, replicas)
                    .await?;
                tracing::info!(%cluster, md = %md.name_any(), replicas, "kubectl scale admitted");
                return Ok(after);
            }
            Err(e) => {
                let reason = match e.slug() {
                    "budget-exhausted" => REASON_BUDGET_EXHAUSTED,
                    "quota-exceeded" => REASON_QUOTA_EXCEEDED,
                    _ => REASON_CHANGED,
                };
                let message = format!(
                    "scaling to {replicas} replicas was not admitted: {}",
                    e.detail()
                );
                refuse(state, cluster, md, &row, reason, message).await?;
                return Ok(row);
            }
        }
    }
    let message = if changed.is_empty() {
        "the admission on this ModelDeployment is not the hub's (missing, altered or \
         copied from another object); it runs only as the hub admitted it"
            .to_owned()
    } else {
        format!(
            "only replicas can change on an admitted ModelDeployment, and {} changed: put {} \
             back, or delete it and apply the new spec to have it admitted afresh",
            changed.join(", "),
            if changed.len() == 1 { "it" } else { "them" }
        )
    };
    refuse(state, cluster, md, &row, REASON_CHANGED, message).await?;
    Ok(row)
}

/// Says why a change was not admitted, on the object and in the audit
/// trail, once per decision. The admission itself stays as it was.
async fn refuse(
    state: &Hub,
    cluster: &str,
    md: &ModelDeployment,
    row: &Deployment,
    reason: &'static str,
    message: String,
) -> Result<(), SyncError> {
    let a = md.annotations();
    if a.get(REASON_ANNOTATION).map(String::as_str) == Some(reason)
        && a.get(MESSAGE_ANNOTATION) == Some(&message)
    {
        return Ok(());
    }
    tracing::info!(%cluster, md = %md.name_any(), reason, "change to a ModelDeployment not admitted");
    let code = if reason == REASON_CHANGED { 422 } else { 403 };
    let entry = AuditEntry {
        verb: "update".to_owned(),
        resource: "deployments".to_owned(),
        tenant: Some(row.tenant),
        name: Some(row.name.clone()),
        uid: md.metadata.uid.clone(),
        code: Some(code),
        message: Some(format!("{reason}: {message}")),
        annotations: [
            ("modelfleet.io/cluster".to_owned(), cluster.to_owned()),
            ("modelfleet.io/namespace".to_owned(), row.namespace.clone()),
            ("modelfleet.io/source".to_owned(), "kubectl".to_owned()),
        ]
        .into(),
    };
    state.store().record_request(&actor(), entry).await?;
    state
        .registry()
        .explain_refusal(cluster, &row.namespace, &row.name, reason, &message)
        .await?;
    Ok(())
}
