//! A tenant's deployments: create (plan, then place), scale, delete, read
//! one with its status and events, list.
//!
//! A deployment is addressed by its id or, within a tenant, by its name
//! ([`DeploymentRef`]): names are unique among a tenant's live
//! deployments, and every other tool (kubectl, the console) uses them.
//!
//! Reads never call a cluster: cluster sync keeps each row's phase, ready
//! replicas, conditions and endpoint current from its watches.

use std::str::FromStr;

use http::StatusCode;
use modelfleet_core::billing::Discounts;
use modelfleet_core::planner::Plan;

use super::placement::{PlaceError, Placing};
use super::plans::rejections;
use super::{Caller, Error, Hub, PlanRequest, Result};
use crate::billing::{BillingServiceError, GroupBy, UsageQuery, UsageReport};
use crate::clusters::{ClusterError, PodLogs, namespace_of};

/// The most log lines a replica's container shows.
pub const MAX_LOG_LINES: u32 = 200;

/// Reads of replicas' logs each tenant may start (platform staff share one
/// budget): 20, and one more every 3 seconds. Each read asks the cluster
/// for up to 16 pods' logs.
pub(crate) const LOG_READS: super::throttle::Limit = super::throttle::Limit {
    burst: 20,
    refill: std::time::Duration::from_secs(3),
};
use crate::identity::{Permission, Scope};
use crate::ids::{DeploymentId, TenantId};
use crate::placement::{
    Ask, MAX_REPLICAS, check_name, deployment_request, model_deployment, prefer_warm_pools,
};
use crate::store::{Deployment, DeploymentEvent, StoreError, Tenant, Tx};

/// A deployment as callers name it: its id, or its name in the caller's
/// tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentRef {
    Id(DeploymentId),
    Name(String),
}

impl FromStr for DeploymentRef {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match text.parse::<DeploymentId>() {
            Ok(id) => DeploymentRef::Id(id),
            Err(_) => DeploymentRef::Name(text.to_owned()),
        })
    }
}

impl From<DeploymentId> for DeploymentRef {
    fn from(id: DeploymentId) -> Self {
        DeploymentRef::Id(id)
    }
}

/// A request to deploy: a plan request with a name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateRequest {
    /// At most 40 lower-case letters, digits and '-', starting with a letter.
    pub name: String,
    pub plan: PlanRequest,
}

/// A deployment placed and written into its cluster.
#[derive(Debug, Clone)]
pub struct Created {
    pub deployment: Deployment,
    /// The plan it was placed on.
    pub plan: Plan,
    /// The tenant's discounts, which the plan's billed cost is shown with.
    pub discounts: Discounts,
}

/// Which deployments to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Only this tenant's (platform staff see every tenant's otherwise).
    pub tenant: Option<TenantId>,
    pub include_deleted: bool,
}

/// One deployment with what the hub knows of it: the row (kept current by
/// cluster sync, with the cluster's conditions and endpoint) and its events,
/// newest last.
#[derive(Debug, Clone)]
pub struct DeploymentDetail {
    pub deployment: Deployment,
    pub events: Vec<DeploymentEvent>,
}

impl Hub {
    /// The deployment `which` names, if the caller may see it (deleted ones
    /// included; `deleted_at` says so).
    pub async fn deployment(&self, caller: &Caller, which: &DeploymentRef) -> Result<Deployment> {
        caller.require(Permission::Read)?;
        match which {
            DeploymentRef::Id(id) => Ok(self.store.deployment(caller.scope(), *id).await?),
            DeploymentRef::Name(name) => {
                let Some(tenant) = caller.actor.tenant else {
                    return Err(Error::new(
                        StatusCode::NOT_FOUND,
                        "not-found",
                        "Not Found",
                        format!(
                            "no deployment is named {name:?} for platform staff, who have no \
                             tenant: address it by its id"
                        ),
                    ));
                };
                if check_name(name).is_err() {
                    return Err(Error::not_found("deployment"));
                }
                Ok(self
                    .store
                    .deployment_by_name(caller.scope(), tenant, name)
                    .await?)
            }
        }
    }

    /// A deployment with its events.
    pub async fn deployment_detail(
        &self,
        caller: &Caller,
        which: &DeploymentRef,
    ) -> Result<DeploymentDetail> {
        let deployment = self.deployment(caller, which).await?;
        let events = self
            .store
            .deployment_events(caller.scope(), deployment.tenant, deployment.id)
            .await?;
        Ok(DeploymentDetail { deployment, events })
    }

    /// The deployments the caller may see, by tenant and name.
    pub async fn deployments(
        &self,
        caller: &Caller,
        request: &ListRequest,
    ) -> Result<Vec<Deployment>> {
        caller.require(Permission::Read)?;
        let mut deployments = self
            .store
            .deployments(caller.scope(), request.include_deleted)
            .await?;
        if let Some(tenant) = request.tenant {
            let tenant = caller.tenant(Some(tenant))?;
            deployments.retain(|d| d.tenant == tenant);
        }
        Ok(deployments)
    }

    /// Plans a model across every cluster and places it on the best plan
    /// the tenant's quota allows; it runs once its cluster has started it.
    pub async fn create_deployment(
        &self,
        caller: &Caller,
        request: CreateRequest,
    ) -> Result<Created> {
        let CreateRequest { name, mut plan } = request;
        caller.require(Permission::Deploy)?;
        let tenant = self
            .store
            .tenant(caller.scope(), caller.tenant(plan.tenant)?)
            .await?;
        check_name(&name).map_err(|reason| Error::invalid("name", reason))?;
        self.describe_from_source(caller, &mut plan).await?;
        let ask = self.ask(&plan)?;
        let inputs = ask.planner_inputs()?;
        let fleet = self.observe_fleet().await?.fleet;
        let mut report = inputs.plan(&fleet)?;
        let warm = self.warm_pools(tenant.id, &ask.model).await?;
        prefer_warm_pools(&mut report.plans, &fleet, &warm);
        if report.plans.is_empty() {
            return Err(Error::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no-feasible-plan",
                "No Feasible Plan",
                format!(
                    "no pool of any registered cluster can run {} as asked; `rejections` says why for each",
                    report.model
                ),
            )
            .with("rejections", rejections(&report)));
        }
        let placing = NewDeployment {
            caller,
            tenant: &tenant,
            name: &name,
            namespace: namespace_of(&tenant.name),
            ask: &ask,
            model: &inputs.model,
            fallback: self.settings.reference_currency,
        };
        let placed = self
            .place(&caller.actor, &report.plans, &placing)
            .await
            .map_err(|e| match e {
                PlaceError::Refused { first, tried } => {
                    Error::quota(&first).with("plansTried", tried)
                }
                PlaceError::Cluster { error, undone } => {
                    let detail = if undone {
                        format!(
                            "{error}; nothing was deployed and the quota is free again, so retrying is safe"
                        )
                    } else {
                        format!("{error}; nothing was deployed")
                    };
                    Error::unavailable(detail, &error)
                }
                PlaceError::NoPlan => Error::invalid("model", "no plan to place"),
                PlaceError::BudgetExhausted(reason) => Error::budget_exhausted(reason),
                PlaceError::Billing(e) => e.into(),
                PlaceError::Store(e) => e.into(),
            })?;
        let discounts = self
            .store
            .discount_set(Scope::All, placed.deployment.tenant)
            .await?;
        Ok(Created {
            plan: report.plans[placed.plan].clone(),
            deployment: placed.deployment,
            discounts,
        })
    }

    /// The last `lines` lines (1 to [`MAX_LOG_LINES`]) of each container of
    /// the deployment's pods, read from its cluster now; nothing for a
    /// deleted deployment.
    pub async fn deployment_logs(
        &self,
        caller: &Caller,
        which: &DeploymentRef,
        lines: u32,
    ) -> Result<Vec<PodLogs>> {
        if !(1..=MAX_LOG_LINES).contains(&lines) {
            return Err(Error::invalid(
                "lines",
                format!("must be between 1 and {MAX_LOG_LINES}"),
            ));
        }
        let d = self.deployment(caller, which).await?;
        if d.deleted_at.is_some() {
            return Ok(Vec::new());
        }
        let who = caller
            .actor
            .tenant
            .map_or_else(|| "staff".to_owned(), |t| t.to_string());
        self.log_reads
            .take(&who, None, std::time::Instant::now())
            .map_err(|wait| {
                let seconds = u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX);
                Error::too_many_requests(
                    format!("too many reads of replicas' logs; retry after {seconds} seconds"),
                    seconds,
                )
            })?;
        self.registry
            .replica_logs(&d.cluster, &d.namespace, &d.name, i64::from(lines))
            .await
            .map_err(|e| {
                Error::unavailable(
                    format!(
                        "the logs of {} cannot be read from its cluster now: {e}",
                        d.name
                    ),
                    &e,
                )
            })
    }

    /// The pools (cluster, pool) where `tenant` runs `model` with a ready
    /// replica now: with a node cache, their nodes likely hold it.
    pub(crate) async fn warm_pools(
        &self,
        tenant: TenantId,
        model: &str,
    ) -> Result<std::collections::BTreeSet<(String, String)>> {
        Ok(self
            .store
            .deployments(Scope::Tenant(tenant), false)
            .await?
            .into_iter()
            .filter(|d| d.model == model && d.ready_replicas > 0)
            .map(|d| (d.cluster, d.pool))
            .collect())
    }

    /// Changes the replica count; growth is checked against the quota. 0
    /// keeps the deployment and its plan but frees its devices.
    pub async fn scale_deployment(
        &self,
        caller: &Caller,
        which: &DeploymentRef,
        replicas: u32,
    ) -> Result<Deployment> {
        let before = self.deployment(caller, which).await?;
        if before.deleted_at.is_some() {
            return Err(Error::not_found("deployment"));
        }
        if replicas > MAX_REPLICAS {
            return Err(Error::invalid(
                "replicas",
                format!("must be between 0 and {MAX_REPLICAS}"),
            ));
        }
        if replicas > before.replicas
            && let Some(reason) = crate::billing::budget_refusal(&self.store, before.tenant).await?
        {
            return Err(Error::budget_exhausted(reason));
        }
        let mut tx = self.store.begin(&caller.actor).await?;
        let after = tx.resize_deployment(before.id, replicas).await?;
        tx.commit_with(StatusCode::OK).await?;
        if after.replicas == before.replicas {
            return Ok(after);
        }
        if let Err(e) = self
            .registry
            .scale_deployment(&after.cluster, &after.namespace, &after.name, replicas)
            .await
        {
            // Put the quota back as it was: the cluster still runs the old count.
            let mut tx = self.store.begin(&caller.actor.follow_up("api")).await?;
            tx.resize_deployment(before.id, before.replicas).await?;
            tx.commit().await?;
            return Err(Error::unavailable(
                format!("{e}; the replica count is unchanged"),
                &e,
            ));
        }
        Ok(after)
    }

    /// Deletes a deployment: its quota is free at once, and its cluster
    /// stops it (the operator's finalizer cleans up; cluster sync deletes
    /// it later if the cluster cannot be reached now).
    pub async fn delete_deployment(
        &self,
        caller: &Caller,
        which: &DeploymentRef,
    ) -> Result<Deployment> {
        let id = match which {
            DeploymentRef::Id(id) => *id,
            DeploymentRef::Name(_) => self.deployment(caller, which).await?.id,
        };
        let mut tx = self.store.begin(&caller.actor).await?;
        let released = tx.release_deployment(id).await?;
        tx.commit_with(StatusCode::ACCEPTED).await?;
        if let Err(e) = self
            .registry
            .delete_deployment(&released.cluster, &released.namespace, &released.name)
            .await
        {
            tracing::warn!(deployment = %id, error = %e, "ModelDeployment not deleted from its cluster yet");
        }
        Ok(released)
    }

    /// What a deployment has cost since it was created, or `None` when the
    /// caller's role may not read usage.
    pub async fn deployment_usage(
        &self,
        caller: &Caller,
        d: &Deployment,
    ) -> Result<Option<UsageReport>> {
        if caller.require(Permission::Read).is_err() {
            return Ok(None);
        }
        let query = UsageQuery {
            tenant: Some(caller.tenant(Some(d.tenant))?),
            from: d.created_at,
            to: crate::store::now(),
            deployment: Some(d.id),
            cloud: None,
            accelerator: None,
            group_by: GroupBy::Deployment,
        };
        match crate::billing::usage_report(&self.store, caller.scope(), &query).await {
            Ok(report) => Ok(Some(report)),
            Err(BillingServiceError::Store(StoreError::Forbidden)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A new deployment through the API or the console: admitted as a new row,
/// its ModelDeployment applied with the pool pinned; undone by releasing
/// the row.
struct NewDeployment<'a> {
    caller: &'a Caller,
    tenant: &'a Tenant,
    name: &'a str,
    namespace: String,
    ask: &'a Ask,
    model: &'a modelfleet_core::model::ModelArch,
    /// The currency an unpriced pool's zero cost is counted in.
    fallback: modelfleet_core::money::Currency,
}

impl Placing for NewDeployment<'_> {
    fn tenant(&self) -> TenantId {
        self.tenant.id
    }

    async fn hold(&self, tx: &mut Tx, plan: &Plan) -> Result<Deployment, StoreError> {
        let request =
            deployment_request(self.name, self.model, plan, &self.namespace, self.fallback);
        let held = tx.admit_deployment(self.tenant.id, request).await?;
        if let Some(credential) = self.ask.source_credential() {
            tx.use_source_credential(self.tenant.id, held.id, credential)
                .await?;
        }
        Ok(held)
    }

    fn answers(&self) -> Option<StatusCode> {
        Some(StatusCode::ACCEPTED)
    }

    async fn write(
        &self,
        hub: &Hub,
        held: Deployment,
        plan: &Plan,
    ) -> Result<Deployment, PlaceError> {
        let md = model_deployment(
            self.ask,
            self.name,
            &self.namespace,
            &self.tenant.name,
            held.id,
            plan,
        );
        hub.apply_held(
            &self.caller.actor.follow_up("api"),
            &held,
            &self.tenant.name,
            &md,
            None,
        )
        .await
    }

    async fn undo(
        &self,
        hub: &Hub,
        held: &Deployment,
        _error: &ClusterError,
    ) -> Result<(), StoreError> {
        let mut tx = hub.store.begin(&self.caller.actor.follow_up("api")).await?;
        tx.release_deployment(held.id).await?;
        tx.commit().await
    }
}
