//! ModelDeployments someone applied straight into a cluster (`kubectl
//! apply`), found by sync. One in a tenant's namespace (`mf-<tenant>`)
//! belongs to that tenant and is admitted against the tenant's quota with
//! the same transaction as a REST request (`Tx::admit_deployment`, source
//! `cluster`), sized by the planner on the cluster's own pools the way its
//! operator will size it. The decision is written back as annotations
//! (`modelfleet_core::crd::admission`): `admitted`, or `rejected` with a
//! reason and the quota's message. An operator with `require_admission`
//! runs only admitted ones; a rejected one is tried again on later passes,
//! so it runs once the tenant has room.
//!
//! One in a namespace mapped to no tenant is marked `rejected` with reason
//! `NoTenant`: the hub counts it against no quota, and an operator that
//! requires admission does not run it (one that does not, runs it as
//! before — the hub does not delete what it does not own).

use kube::ResourceExt;
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::crd::admission::{
    ADMITTED, ANNOTATION, MESSAGE_ANNOTATION, REASON_ANNOTATION, REASON_NO_FEASIBLE_PLAN,
    REASON_NO_TENANT, REASON_QUOTA_EXCEEDED, REJECTED,
};
use modelfleet_core::fleet::Fleet;
use modelfleet_core::model::ModelArch;
use modelfleet_core::money::Currency;
use modelfleet_core::planner::Plan;

use super::{SyncError, actor};
use crate::clusters::{ClusterError, Decision};
use crate::identity::Scope;
use crate::ids::TenantId;
use crate::placement::deployment_request;
use crate::service::Hub;
use crate::service::placement::{PlaceError, Placing};
use crate::store::{AuditEntry, Deployment, Source, StoreError, Tenant, Tx};

const TENANT_NAMESPACE_PREFIX: &str = "mf-";

/// Decides about a ModelDeployment the hub did not create. Returns its row
/// when it is (now) admitted.
pub(super) async fn found(
    state: &Hub,
    cluster: &str,
    md: &ModelDeployment,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Option<Deployment>, SyncError> {
    if md.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let tenant = match namespace.strip_prefix(TENANT_NAMESPACE_PREFIX) {
        Some(tenant) => match state.store().tenant_by_name(Scope::All, tenant).await {
            Ok(t) => Some(t),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let Some(tenant) = tenant else {
        let message = format!(
            "namespace {namespace:?} belongs to no tenant of the hub; apply ModelDeployments \
             into mf-<tenant> so that they count against that tenant's quota"
        );
        return reject(state, cluster, md, None, REASON_NO_TENANT, message).await;
    };

    // Admitted before (the annotation write may have failed): same object.
    match state
        .store()
        .deployment_by_name(Scope::All, tenant.id, name)
        .await
    {
        Ok(row) if row.resource_uid.as_deref() == Some(uid) && row.cluster == cluster => {
            mark(state, cluster, md, &row, &tenant.name).await?;
            return Ok(Some(row));
        }
        Ok(row) => {
            let message = format!(
                "tenant {} already has a deployment named {name:?} (on cluster {}); \
                 rename this one",
                tenant.name, row.cluster
            );
            return reject(state, cluster, md, Some(tenant.id), "NameTaken", message).await;
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }

    let inputs = match md.spec.planner_inputs() {
        Ok(inputs) => inputs,
        Err(e) => {
            return reject(
                state,
                cluster,
                md,
                Some(tenant.id),
                "InvalidSpec",
                e.to_string(),
            )
            .await;
        }
    };
    let fleet = cluster_fleet(state, cluster).await?;
    let Some(plan) = plan_like_the_operator(&inputs, &fleet) else {
        let message = format!(
            "no pool of cluster {cluster} can run {} as asked, so there is nothing to count \
             against the quota",
            inputs.model.id
        );
        return reject(
            state,
            cluster,
            md,
            Some(tenant.id),
            REASON_NO_FEASIBLE_PLAN,
            message,
        )
        .await;
    };
    let adopting = Adopt {
        md,
        cluster,
        namespace,
        name,
        uid,
        tenant: &tenant,
        model: &inputs.model,
        fallback: state.settings().reference_currency,
    };
    match state
        .place(&actor(), std::slice::from_ref(&plan), &adopting)
        .await
    {
        Ok(placed) => {
            tracing::info!(%cluster, %namespace, %name, tenant = %tenant.name, "admitted a kubectl-applied ModelDeployment");
            Ok(Some(placed.deployment))
        }
        Err(PlaceError::Refused { first, .. }) => {
            reject(
                state,
                cluster,
                md,
                Some(tenant.id),
                REASON_QUOTA_EXCEEDED,
                first.to_string(),
            )
            .await
        }
        Err(PlaceError::Store(StoreError::Invalid { field, reason })) => {
            reject(
                state,
                cluster,
                md,
                Some(tenant.id),
                "InvalidSpec",
                format!("{field}: {reason}"),
            )
            .await
        }
        Err(PlaceError::Store(e)) => Err(e.into()),
        Err(PlaceError::Cluster { error, .. }) => Err(error.into()),
        Err(PlaceError::NoPlan) => Ok(None),
    }
}

/// A ModelDeployment applied with kubectl, adopted by the hub: admitted as
/// a row of source `cluster` (audited as a kubectl create), and its
/// admission annotated on the object. Undo gives nothing back: the object
/// exists and its devices count, and the next pass writes the annotation
/// again (it finds the same row by uid).
struct Adopt<'a> {
    md: &'a ModelDeployment,
    cluster: &'a str,
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
    tenant: &'a Tenant,
    model: &'a ModelArch,
    fallback: Currency,
}

impl Placing for Adopt<'_> {
    async fn hold(&self, tx: &mut Tx, plan: &Plan) -> Result<Deployment, StoreError> {
        let mut request =
            deployment_request(self.name, self.model, plan, self.namespace, self.fallback);
        request.source = Source::Cluster;
        request.resource_uid = Some(self.uid.to_owned());
        let row = tx.admit_deployment(self.tenant.id, request).await?;
        tx.audit_as(AuditEntry {
            verb: "create".to_owned(),
            resource: "deployments".to_owned(),
            tenant: Some(self.tenant.id),
            name: Some(row.name.clone()),
            uid: Some(row.id.to_string()),
            annotations: [
                ("modelfleet.io/cluster".to_owned(), self.cluster.to_owned()),
                (
                    "modelfleet.io/namespace".to_owned(),
                    self.namespace.to_owned(),
                ),
                ("modelfleet.io/source".to_owned(), "kubectl".to_owned()),
            ]
            .into(),
            ..AuditEntry::default()
        });
        Ok(row)
    }

    async fn write(
        &self,
        hub: &Hub,
        held: Deployment,
        _plan: &Plan,
    ) -> Result<Deployment, PlaceError> {
        match mark(hub, self.cluster, self.md, &held, &self.tenant.name).await {
            Ok(()) => Ok(held),
            Err(error) => Err(PlaceError::Cluster {
                error,
                undone: false,
            }),
        }
    }

    async fn undo(
        &self,
        _hub: &Hub,
        _held: &Deployment,
        _error: &ClusterError,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The pools of this one cluster, with the hub's prices.
async fn cluster_fleet(state: &Hub, cluster: &str) -> Result<Fleet, SyncError> {
    let observed = state
        .observe_cluster(cluster)
        .await
        .map_err(SyncError::Service)?;
    if let Some(Err(e)) = observed.clusters.first().map(|v| &v.pools) {
        return Err(SyncError::Pools(e.clone()));
    }
    Ok(observed.fleet)
}

/// The plan the operator will choose: the best on free devices, else the
/// best on the pools' shape (its pods then wait for capacity, and its
/// devices count against the quota all the same).
fn plan_like_the_operator(
    inputs: &modelfleet_core::crd::PlannerInputs,
    fleet: &Fleet,
) -> Option<Plan> {
    if let Ok(report) = inputs.plan(fleet)
        && let Some(best) = report.best()
    {
        return Some(best.clone());
    }
    let mut whole = fleet.clone();
    for pool in &mut whole.pools {
        pool.nodes_free = pool.nodes_total;
        pool.partly_free.clear();
    }
    inputs.plan(&whole).ok()?.best().cloned()
}

async fn mark(
    state: &Hub,
    cluster: &str,
    md: &ModelDeployment,
    row: &Deployment,
    tenant: &str,
) -> Result<(), ClusterError> {
    let done = md.annotations().get(ANNOTATION).map(String::as_str) == Some(ADMITTED)
        && md.labels().get(crate::clusters::DEPLOYMENT_ID_LABEL) == Some(&row.id.to_string());
    if !done {
        let decision = Decision::Admitted {
            deployment: row.id,
            tenant: tenant.to_owned(),
        };
        state
            .registry()
            .annotate_admission(cluster, &row.namespace, &row.name, &decision)
            .await?;
    }
    Ok(())
}

/// Refuses a ModelDeployment: records the refusal in the audit trail (as
/// Kubernetes answers a denied admission: 403 for quota, 422 otherwise),
/// then says why on the object. Both happen once per decision, not on
/// every pass of sync.
async fn reject(
    state: &Hub,
    cluster: &str,
    md: &ModelDeployment,
    tenant: Option<TenantId>,
    reason: &'static str,
    message: String,
) -> Result<Option<Deployment>, SyncError> {
    let a = md.annotations();
    let same = a.get(ANNOTATION).map(String::as_str) == Some(REJECTED)
        && a.get(REASON_ANNOTATION).map(String::as_str) == Some(reason)
        && a.get(MESSAGE_ANNOTATION) == Some(&message);
    if !same {
        tracing::info!(%cluster, md = %md.name_any(), reason, "ModelDeployment not admitted");
        let namespace = md.namespace().unwrap_or_default();
        let code = if reason == REASON_QUOTA_EXCEEDED {
            403
        } else {
            422
        };
        let entry = AuditEntry {
            verb: "create".to_owned(),
            resource: "deployments".to_owned(),
            tenant,
            name: Some(md.name_any()),
            uid: md.metadata.uid.clone(),
            code: Some(code),
            message: Some(format!("{reason}: {message}")),
            annotations: [
                ("modelfleet.io/cluster".to_owned(), cluster.to_owned()),
                ("modelfleet.io/namespace".to_owned(), namespace.clone()),
                ("modelfleet.io/source".to_owned(), "kubectl".to_owned()),
            ]
            .into(),
        };
        state.store().record_request(&actor(), entry).await?;
        state
            .registry()
            .annotate_admission(
                cluster,
                &namespace,
                &md.name_any(),
                &Decision::Rejected { reason, message },
            )
            .await?;
    }
    Ok(None)
}
