//! Failover: a deployment whose pods have stayed unschedulable for longer
//! than `ApiSettings::failover_after_seconds` (cluster sync records since
//! when, from the operator's `WorkloadReady=False, reason Unschedulable`)
//! is re-placed on the best plan in *another* cluster that its spec's
//! constraints and its tenant's quota allow, then written there, and the
//! old ModelDeployment is deleted.
//!
//! The quota sees the move as one step: `Tx::move_deployment` releases the
//! old footprint and admits the new one in one transaction under the
//! tenant's lock, so a move never needs the old and the new devices at
//! once. Each step is recorded in `deployment_events` on the transaction
//! that makes it: `failover-placed` (from → to, with why), then
//! `failover-removed` once the old ModelDeployment is deleted. When no
//! other placement fits, `failover-stuck` is recorded once per episode and
//! the deployment stays where it is (it is looked at again on every pass,
//! so it moves as soon as room appears).
//!
//! A deployment on a cluster the hub has declared lost (see
//! [`crate::sync`]) is marked unschedulable too, and moved the same way,
//! from the ModelDeployment the hub kept when it applied it, since the
//! lost cluster cannot be read; its old ModelDeployment is deleted by
//! cluster sync once that cluster answers again.
//!
//! Only deployments the hub placed (source `api`) are moved: one that
//! someone applied into a cluster with kubectl is theirs to place, and
//! moving it would delete their object.

use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use modelfleet_core::crd::{ModelDeployment, ModelDeploymentSpec};
use modelfleet_core::planner::Plan;

use crate::clusters::ClusterError;
use crate::identity::{Actor, Scope};
use crate::ids::TenantId;
use crate::placement::{placed, replica_cost};
use crate::service::Hub;
use crate::service::placement::{PlaceError, Placing};
use crate::store::{
    Deployment, DeploymentStatus, EventKind, NewEvent, Relocation, Source, StoreError, Tx, now,
};

/// What one look at a deployment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Moved to `cluster/pool`.
    Moved { cluster: String, pool: String },
    /// Nothing else fits; recorded.
    Stuck(String),
    /// Not unschedulable long enough, or its ModelDeployment is not there.
    Waiting,
}

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Service(#[from] crate::service::Error),
}

fn actor() -> Actor {
    Actor::system("failover")
}

/// Runs failover until `stop` becomes `true` (or its sender is dropped);
/// see [`crate::sync::run`] for how `serve` spawns both.
pub async fn run(state: Hub, mut stop: watch::Receiver<bool>) {
    let after = Duration::from_secs(state.settings().failover_after_seconds);
    let tick = (after / 4).clamp(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        if let Err(e) = pass(&state).await {
            warn!(error = %e, "failover pass failed; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// [`run`] on its own task.
pub fn spawn(state: Hub, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run(state, stop))
}

/// Looks once at every deployment that is unschedulable.
pub async fn pass(state: &Hub) -> Result<Vec<(Deployment, Outcome)>, FailoverError> {
    let after = TimeDelta::seconds(
        i64::try_from(state.settings().failover_after_seconds).unwrap_or(i64::MAX / 1000),
    );
    let mut outcomes = Vec::new();
    for deployment in state.store().unschedulable_deployments().await? {
        let Some(since) = deployment.unschedulable_since else {
            continue;
        };
        if deployment.source != Source::Api {
            continue;
        }
        if now() - since < after {
            continue;
        }
        let outcome = match fail_over(state, &deployment).await {
            Ok(outcome) => outcome,
            Err(e) => {
                warn!(deployment = %deployment.id, error = %e, "failover of a deployment failed");
                continue;
            }
        };
        outcomes.push((deployment, outcome));
    }
    Ok(outcomes)
}

async fn fail_over(state: &Hub, d: &Deployment) -> Result<Outcome, FailoverError> {
    // The spec as it runs, from the ModelDeployment at its placement; or,
    // when its cluster is lost, from the one the hub kept when it applied
    // it (the hub's record is the desired state).
    let lost = match state.store().cluster_by_name(&d.cluster).await {
        Ok(cluster) => cluster.lost_at.is_some(),
        Err(StoreError::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let md = if lost {
        let kept = state.store().applied_object(d.id).await?;
        match kept.as_deref().map(serde_json::from_str::<ModelDeployment>) {
            Some(Ok(md)) => md,
            Some(Err(_)) | None => {
                let reason = format!(
                    "cluster {} is lost and the hub kept no readable copy of its \
                     ModelDeployment to place elsewhere",
                    d.cluster
                );
                return stuck(state, d, reason).await;
            }
        }
    } else {
        let Some(md) = state
            .registry()
            .get_deployment(&d.cluster, &d.namespace, &d.name)
            .await?
        else {
            return Ok(Outcome::Waiting);
        };
        md
    };
    let why = format!(
        "unschedulable on {}/{} since {}: {}",
        d.cluster,
        d.pool,
        d.unschedulable_since
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        d.status_message
            .as_deref()
            .unwrap_or("pods cannot be placed")
    );
    let mut spec = md.spec.clone();
    spec.placement.pool = None;
    let inputs = match spec.planner_inputs() {
        Ok(inputs) => inputs,
        Err(e) => return stuck(state, d, format!("its spec cannot be planned: {e}")).await,
    };
    let mut fleet = state.observe_fleet().await?.fleet;
    fleet.pools.retain(|p| p.cluster != d.cluster);
    let report = match inputs.plan(&fleet) {
        Ok(report) => report,
        Err(e) => return stuck(state, d, format!("its spec cannot be planned: {e}")).await,
    };
    if report.plans.is_empty() {
        return stuck(
            state,
            d,
            format!(
                "no pool of another cluster can run it now ({} pools passed over)",
                report.rejections.len()
            ),
        )
        .await;
    }

    let tenant = state.store().tenant(Scope::All, d.tenant).await?;
    let moving = Move {
        from: d,
        spec,
        tenant: &tenant.name,
        why,
        fallback: state.settings().reference_currency,
    };
    let row = match state.place(&actor(), &report.plans, &moving).await {
        Ok(placed) => placed.deployment,
        Err(PlaceError::Refused { first, .. }) => {
            return stuck(
                state,
                d,
                format!("the tenant's quota allows none of the other placements: {first}"),
            )
            .await;
        }
        Err(PlaceError::NoPlan) => return Ok(Outcome::Waiting),
        Err(PlaceError::BudgetExhausted(reason)) => {
            return stuck(
                state,
                d,
                format!("the tenant's budget refuses a new placement: {reason}"),
            )
            .await;
        }
        Err(PlaceError::Billing(e)) => return Err(crate::service::Error::from(e).into()),
        // Changed since it was read (recovered, resized, deleted): the
        // next pass decides again.
        Err(PlaceError::Store(StoreError::Conflict { .. } | StoreError::NotFound(_))) => {
            return Ok(Outcome::Waiting);
        }
        Err(PlaceError::Store(e)) => return Err(e.into()),
        Err(PlaceError::Cluster { error, .. }) => return Err(error.into()),
    };

    let removed = state
        .registry()
        .delete_deployment(&d.cluster, &d.namespace, &d.name)
        .await;
    match removed {
        Ok(()) => {
            let mut tx = state.store().begin(&actor()).await?;
            tx.record_event(&NewEvent {
                deployment: d.id,
                tenant: d.tenant,
                kind: EventKind::FailoverRemoved,
                from: Some((d.cluster.clone(), d.pool.clone())),
                to: None,
                reason: format!("replaced by {}/{}", row.cluster, row.pool),
            })
            .await?;
            tx.commit().await?;
        }
        // Cluster sync deletes it once the cluster answers: the row no
        // longer places it there.
        Err(e) => warn!(deployment = %d.id, error = %e, "old ModelDeployment not deleted yet"),
    }
    info!(deployment = %d.id, from = %format!("{}/{}", d.cluster, d.pool),
          to = %format!("{}/{}", row.cluster, row.pool), "failed over");
    Ok(Outcome::Moved {
        cluster: row.cluster,
        pool: row.pool,
    })
}

/// A move to another cluster: the row is moved (its old footprint released
/// and the new one admitted in one transaction, with a `failover-placed`
/// event), the ModelDeployment applied there; undone by moving the row
/// back, with a `failover-stuck` event.
struct Move<'a> {
    from: &'a Deployment,
    spec: ModelDeploymentSpec,
    tenant: &'a str,
    why: String,
    fallback: modelfleet_core::money::Currency,
}

impl Placing for Move<'_> {
    fn tenant(&self) -> TenantId {
        self.from.tenant
    }

    async fn hold(&self, tx: &mut Tx, plan: &Plan) -> Result<Deployment, StoreError> {
        let d = self.from;
        let to = Relocation {
            cluster: plan.pool.cluster.clone(),
            pool: plan.pool.name.clone(),
            accelerator: plan.accelerator.clone(),
            devices_per_replica: plan.devices_per_replica,
            precision: plan.precision,
            replica_cost_per_hour: replica_cost(plan, self.fallback),
        };
        let row = tx.move_deployment(d.id, Some(d.revision), &to).await?;
        tx.record_event(&NewEvent {
            deployment: d.id,
            tenant: d.tenant,
            kind: EventKind::FailoverPlaced,
            from: Some((d.cluster.clone(), d.pool.clone())),
            to: Some((to.cluster.clone(), to.pool.clone())),
            reason: self.why.clone(),
        })
        .await?;
        Ok(row)
    }

    async fn write(
        &self,
        hub: &Hub,
        held: Deployment,
        plan: &Plan,
    ) -> Result<Deployment, PlaceError> {
        let d = self.from;
        let new_md = placed(
            self.spec.clone(),
            &d.name,
            &d.namespace,
            self.tenant,
            d.id,
            plan,
        );
        hub.apply_held(
            &actor(),
            &held,
            self.tenant,
            &new_md,
            Some(format!("moved from {}/{}", d.cluster, d.pool)),
        )
        .await
    }

    async fn undo(
        &self,
        hub: &Hub,
        held: &Deployment,
        error: &ClusterError,
    ) -> Result<(), StoreError> {
        // Put it back where it was; it is tried again later.
        let d = self.from;
        let back = Relocation {
            cluster: d.cluster.clone(),
            pool: d.pool.clone(),
            accelerator: d.accelerator.clone(),
            devices_per_replica: d.devices_per_replica,
            precision: d.precision,
            replica_cost_per_hour: d.replica_cost_per_hour,
        };
        let mut tx = hub.store().begin(&actor()).await?;
        tx.move_deployment(d.id, None, &back).await?;
        tx.record_deployment_status(
            d.id,
            &DeploymentStatus {
                phase: d.phase,
                ready_replicas: d.ready_replicas,
                message: d.status_message.clone(),
                resource_uid: d.resource_uid.clone(),
                conditions: Some(d.conditions.clone()),
                endpoint: d.endpoint.clone(),
                unschedulable: false,
                weights: None,
            },
        )
        .await?;
        tx.record_event(&NewEvent {
            deployment: d.id,
            tenant: d.tenant,
            kind: EventKind::FailoverStuck,
            from: Some((d.cluster.clone(), d.pool.clone())),
            to: Some((held.cluster.clone(), held.pool.clone())),
            reason: format!("{error}; it stays on {}/{}", d.cluster, d.pool),
        })
        .await?;
        tx.commit().await
    }
}

/// Records, once per unschedulable episode, that nothing else fits.
async fn stuck(state: &Hub, d: &Deployment, reason: String) -> Result<Outcome, FailoverError> {
    let events = state
        .store()
        .deployment_events(Scope::All, d.tenant, d.id)
        .await?;
    let told = events.last().is_some_and(|e| {
        e.kind == EventKind::FailoverStuck && d.unschedulable_since.is_some_and(|s| e.at >= s)
    });
    if !told {
        let mut tx = state.store().begin(&actor()).await?;
        tx.record_event(&NewEvent {
            deployment: d.id,
            tenant: d.tenant,
            kind: EventKind::FailoverStuck,
            from: Some((d.cluster.clone(), d.pool.clone())),
            to: None,
            reason: reason.clone(),
        })
        .await?;
        tx.commit().await?;
        info!(deployment = %d.id, %reason, "failover found no other placement");
    }
    Ok(Outcome::Stuck(reason))
}
