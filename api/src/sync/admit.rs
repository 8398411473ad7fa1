//! ModelDeployments someone applied straight into a cluster (`kubectl
//! apply`), found by sync. One in a tenant's namespace (`mf-<tenant>`)
//! belongs to that tenant and is admitted against the tenant's quota with
//! the same transaction as a REST request (`Tx::admit_deployment`, source
//! `cluster`), with the plan its operator will run it by: the same rule
//! (`modelfleet_core::contract::pool_choice`) on the same cluster's pools,
//! so the pool, the sticky pool of one already running, and the
//! LeaderWorkerSet check agree. The decision is written back as annotations
//! (`modelfleet_core::contract::admission`): `admitted`, or `rejected` with a
//! reason and the quota's message. An operator with the cluster's admission key
//! runs only admitted ones; a rejected one is tried again on later passes,
//! so it runs once the tenant has room.
//!
//! One in a namespace mapped to no tenant is marked `rejected` with reason
//! `NoTenant`: the hub counts it against no quota, and an operator that
//! requires admission does not run it (one that does not, runs it as
//! before — the hub does not delete what it does not own).

use kube::ResourceExt;
use modelfleet_core::contract::admission::{
    ADMITTED, ANNOTATION, MESSAGE_ANNOTATION, REASON_ANNOTATION, REASON_BUDGET_EXHAUSTED,
    REASON_INVALID_SPEC, REASON_NAME_TAKEN, REASON_NO_FEASIBLE_PLAN, REASON_NO_TENANT,
    REASON_QUOTA_EXCEEDED, REJECTED,
};
use modelfleet_core::contract::namespace::{TENANT_NAMESPACE_PREFIX, tenant_of_namespace};
use modelfleet_core::contract::pool_choice::{self, Outcome};
use modelfleet_core::contract::tenancy;
use modelfleet_core::crd::ModelDeployment;
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
    let tenant = match tenant_of_namespace(namespace) {
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
             into {TENANT_NAMESPACE_PREFIX}<tenant> so that they count against that tenant's quota"
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
            return reject(
                state,
                cluster,
                md,
                Some(tenant.id),
                REASON_NAME_TAKEN,
                message,
            )
            .await;
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }

    // The engine is the platform's choice: only its images and flags.
    let serving = &md.spec.serving;
    let settings = state.settings();
    if let Err(message) = modelfleet_core::contract::engine::check(
        serving.image.as_deref(),
        &serving.extra_args,
        &settings.engine_images,
        &settings.engine_flags,
    ) {
        return reject(
            state,
            cluster,
            md,
            Some(tenant.id),
            modelfleet_core::contract::admission::REASON_ENGINE_NOT_ALLOWED,
            message,
        )
        .await;
    }
    let inputs = match md.spec.planner_inputs() {
        Ok(inputs) => inputs,
        Err(e) => {
            return reject(
                state,
                cluster,
                md,
                Some(tenant.id),
                REASON_INVALID_SPEC,
                e.to_string(),
            )
            .await;
        }
    };
    let (fleet, lws_available) = cluster_fleet(state, cluster).await?;
    let plan = match operators_choice(md, &fleet, lws_available) {
        Ok(plan) => plan,
        Err((reason, why)) => {
            let message = if reason == REASON_NO_FEASIBLE_PLAN {
                format!(
                    "no pool of cluster {cluster} can run {} as asked, so there is nothing to \
                     count against the quota: {why}",
                    inputs.model.id
                )
            } else {
                why
            };
            return reject(state, cluster, md, Some(tenant.id), reason, message).await;
        }
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
                REASON_INVALID_SPEC,
                format!("{field}: {reason}"),
            )
            .await
        }
        Err(PlaceError::BudgetExhausted(reason)) => {
            reject(
                state,
                cluster,
                md,
                Some(tenant.id),
                REASON_BUDGET_EXHAUSTED,
                reason,
            )
            .await
        }
        Err(PlaceError::Billing(e)) => Err(SyncError::Service(e.into())),
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
    fn tenant(&self) -> TenantId {
        self.tenant.id
    }

    async fn hold(&self, tx: &mut Tx, plan: &Plan) -> Result<Deployment, StoreError> {
        let mut request =
            deployment_request(self.name, self.model, plan, self.namespace, self.fallback);
        request.source = Source::Cluster;
        request.resource_uid = Some(self.uid.to_owned());
        let row = tx.admit_deployment(self.tenant.id, request).await?;
        if let Some(credential) = self
            .md
            .spec
            .source_secret
            .as_deref()
            .and_then(tenancy::source_credential_of)
        {
            tx.use_source_credential(self.tenant.id, row.id, credential)
                .await?;
        }
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
        hub.deliver_source_credential(&held, &self.tenant.name, self.md)
            .await?;
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

/// The pools of this one cluster, with the hub's prices, and whether it
/// serves the LeaderWorkerSet API.
async fn cluster_fleet(state: &Hub, cluster: &str) -> Result<(Fleet, bool), SyncError> {
    let observed = state
        .observe_cluster(cluster)
        .await
        .map_err(SyncError::Service)?;
    let lws_available = match observed.clusters.first().map(|v| &v.pools) {
        Some(Err(e)) => return Err(SyncError::Pools(e.clone())),
        Some(Ok(discovered)) => discovered.lws_available,
        None => false,
    };
    Ok((observed.fleet, lws_available))
}

/// The plan `md` will run by in the cluster of `fleet`, chosen by the rule
/// its operator follows: the pool it already runs on while that pool holds
/// it, else the best on free devices, else the best on the pools' shape
/// (its pods then wait for capacity, and its devices count against the
/// quota all the same); none when it needs a LeaderWorkerSet the cluster
/// does not serve. Else the rejection's reason and message.
///
/// The hub's pools count the devices of `md`'s own pods as taken where the
/// operator counts them as free; with an admission key (how a hub runs
/// its clusters' operators) nothing runs before it is admitted, so both
/// see the same pools.
fn operators_choice(
    md: &ModelDeployment,
    fleet: &Fleet,
    lws_available: bool,
) -> Result<Plan, (&'static str, String)> {
    // The operator's condition reasons (`InvalidSpec`, `NoFeasiblePlan`)
    // are the admission's reasons too.
    match pool_choice::choose(md, fleet, lws_available) {
        Outcome::Planned(chosen) => Ok(chosen.plan),
        Outcome::Unplannable { reason, message } => Err((reason, message)),
    }
}

async fn mark(
    state: &Hub,
    cluster: &str,
    md: &ModelDeployment,
    row: &Deployment,
    tenant: &str,
) -> Result<(), ClusterError> {
    let key = state.registry().admission_key(cluster)?;
    let done = md.annotations().get(ANNOTATION).map(String::as_str) == Some(ADMITTED)
        && md.labels().get(crate::clusters::DEPLOYMENT_ID_LABEL) == Some(&row.id.to_string())
        && modelfleet_core::contract::admission::check(md, &key)
            == modelfleet_core::contract::admission::Sealed::Current;
    if !done {
        let decision = Decision::Admitted {
            deployment: row.id,
            tenant: tenant.to_owned(),
        };
        // A namespace someone else made gets what the hub's own have
        // (Pod Security, the operator's binding) before anything runs.
        state
            .registry()
            .prepare_namespace(cluster, &row.namespace, tenant)
            .await?;
        // Sealed as read: the spec this pass admitted, not whatever the
        // object holds by the time the write lands.
        state
            .registry()
            .annotate_admission(cluster, md, &row.namespace, &row.name, &decision)
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
        let code = if reason == REASON_QUOTA_EXCEEDED || reason == REASON_BUDGET_EXHAUSTED {
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
                md,
                &namespace,
                &md.name_any(),
                &Decision::Rejected { reason, message },
            )
            .await?;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use modelfleet_core::crd::{ModelDeploymentStatus, PlanStatus};
    use serde_json::{Value, json};

    use super::*;

    /// Two free H100 pools of cluster `c`: `cheap` and `dear`.
    fn fleet() -> Fleet {
        Fleet::from_yaml(
            "pools:\n\
             - {cloud: aws, region: us-east-1, cluster: c, name: cheap, accelerator: h100-80gb, \
                devicesPerNode: 8, nodesTotal: 2, nodesFree: 2, pricePerDeviceHour: \"5.00 USD\"}\n\
             - {cloud: aws, region: us-east-1, cluster: c, name: dear, accelerator: h100-80gb, \
                devicesPerNode: 8, nodesTotal: 2, nodesFree: 2, pricePerDeviceHour: \"7.00 USD\"}\n",
        )
        .unwrap()
    }

    /// A ModelDeployment as someone would `kubectl apply` it.
    fn applied(model: &str, serving: Value) -> ModelDeployment {
        serde_json::from_value(json!({
            "apiVersion": "modelfleet.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "m", "namespace": "mf-acme", "uid": "u1"},
            "spec": {"model": model, "source": format!("s3://models/{model}"), "serving": serving}
        }))
        .unwrap()
    }

    /// What the hub counted before it followed the operator's rule: the
    /// best plan on the pools' free devices.
    fn best_on_free_devices(md: &ModelDeployment, fleet: &Fleet) -> Plan {
        let report = md.spec.planner_inputs().unwrap().plan(fleet).unwrap();
        report.best().unwrap().clone()
    }

    fn operator(md: &ModelDeployment, fleet: &Fleet, lws_available: bool) -> Outcome {
        pool_choice::choose(md, fleet, lws_available)
    }

    #[test]
    fn a_running_deployment_is_counted_on_the_pool_its_operator_keeps_it_on() {
        let fleet = fleet();
        let mut md = applied("llama-3.1-70b", json!({"precision": "bf16"}));
        // Its operator placed it on `dear` while `cheap` was taken.
        let dear_only = Fleet {
            pools: vec![fleet.pools[1].clone()],
            ..fleet.clone()
        };
        let Outcome::Planned(first) = operator(&md, &dear_only, true) else {
            panic!("not planned on dear")
        };
        md.status = Some(ModelDeploymentStatus {
            plan: Some(PlanStatus::from(&first.plan)),
            ..ModelDeploymentStatus::default()
        });

        // Now `cheap` is free too. The best plan on free devices is there,
        // but the operator keeps the deployment where it runs.
        assert_eq!(best_on_free_devices(&md, &fleet).pool.name, "cheap");
        let Outcome::Planned(kept) = operator(&md, &fleet, true) else {
            panic!("not planned")
        };
        assert_eq!(kept.pool.name, "dear");
        // The hub counts it where it runs.
        assert_eq!(operators_choice(&md, &fleet, true), Ok(kept.plan));
    }

    #[test]
    fn a_multi_node_replica_is_refused_where_leader_worker_sets_cannot_run() {
        let fleet = fleet();
        let md = applied("gpt3-175b", json!({"precision": "bf16", "concurrency": 64}));
        // The best plan spans two nodes, which only a LeaderWorkerSet runs.
        assert_eq!(best_on_free_devices(&md, &fleet).nodes_per_replica, 2);

        let Outcome::Unplannable { reason, .. } = operator(&md, &fleet, false) else {
            panic!("the operator runs it without LeaderWorkerSet")
        };
        let (refused, message) = operators_choice(&md, &fleet, false).unwrap_err();
        assert_eq!(
            (refused, reason),
            (REASON_NO_FEASIBLE_PLAN, REASON_NO_FEASIBLE_PLAN)
        );
        assert!(message.contains("LeaderWorkerSet"), "{message}");

        // Where the API is served, both run it on two nodes.
        let Outcome::Planned(runs) = operator(&md, &fleet, true) else {
            panic!("not planned")
        };
        assert_eq!(runs.plan.nodes_per_replica, 2);
        assert_eq!(operators_choice(&md, &fleet, true), Ok(runs.plan));
    }
}
