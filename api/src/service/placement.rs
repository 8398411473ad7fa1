//! The one placement operation: from ranked plans to a deployment that
//! holds its devices in the quota and runs in a cluster.
//!
//! 0. **Budget**: a tenant whose budget refuses at its limit, and whose
//!    spend this month has reached it, gets nothing placed — whether the
//!    placement comes from the API, from kubectl or from failover.
//! 1. **Hold**: the plans are tried in rank order, each in its own
//!    transaction under the tenant's lock, until the quota admits one (the
//!    transaction commits with its audit record). Concurrent placements
//!    for one tenant can therefore never together exceed its quota.
//! 2. **Write**: the placement is written into its cluster. The row is
//!    committed first so that no lock is held across a network call.
//! 3. **Undo**: when the write fails, the hold is given back, so the
//!    caller can say "nothing changed; retrying is safe".
//!
//! What "hold", "write" and "undo" mean differs per caller — a new
//! deployment is admitted and its ModelDeployment applied; failover moves
//! the row and applies it in the other cluster, moving it back on failure;
//! a ModelDeployment applied with kubectl is admitted and its admission
//! annotated — and is the [`Placing`] each caller passes to
//! [`Hub::place`].

use modelfleet_core::crd::{ModelDeployment, Phase};
use modelfleet_core::planner::Plan;
use modelfleet_core::quota::QuotaExceeded;

use super::Hub;
use crate::billing::{BillingServiceError, budget_refusal};
use crate::clusters::ClusterError;
use crate::identity::Actor;
use crate::ids::TenantId;
use crate::store::{Deployment, DeploymentStatus, StoreError, Tx};

/// What one kind of placement does at each step.
pub trait Placing {
    /// The tenant whose deployment this places. Every placement starts
    /// replicas, so every one is refused when that tenant's budget says
    /// to refuse at its limit and the limit is reached.
    fn tenant(&self) -> TenantId;

    /// Holds `plan` in `tx`: the row, or [`StoreError::Quota`] to try the
    /// next plan (the transaction is then rolled back). Any other error
    /// ends the placement.
    fn hold(
        &self,
        tx: &mut Tx,
        plan: &Plan,
    ) -> impl Future<Output = Result<Deployment, StoreError>> + Send;

    /// The status code the hold's audit record answers with, if it serves
    /// a request.
    fn answers(&self) -> Option<http::StatusCode> {
        None
    }

    /// Writes the held placement into its cluster; returns the row as it
    /// stands afterwards.
    fn write(
        &self,
        hub: &Hub,
        held: Deployment,
        plan: &Plan,
    ) -> impl Future<Output = Result<Deployment, PlaceError>> + Send;

    /// Gives the hold back after `write` failed with `error`.
    fn undo(
        &self,
        hub: &Hub,
        held: &Deployment,
        error: &ClusterError,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a placement did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The quota admits none of the plans; the first refusal says why.
    #[error("the quota allows none of the {tried} plans: {first}")]
    Refused { first: QuotaExceeded, tried: usize },
    /// There was no plan to try.
    #[error("no plan to place")]
    NoPlan,
    /// The tenant's budget refuses new spend: it is set to refuse at its
    /// limit, and this month's spend has reached it. The text says so.
    #[error("{0}")]
    BudgetExhausted(String),
    #[error(transparent)]
    Billing(#[from] BillingServiceError),
    /// The cluster write failed; the hold was given back (`undone`) or
    /// giving it back failed too (then the error says so in the log).
    #[error("{error}")]
    Cluster {
        #[source]
        error: ClusterError,
        undone: bool,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A placement that holds its devices and runs.
#[derive(Debug, Clone)]
pub struct Placed {
    pub deployment: Deployment,
    /// The plan it holds, by its index in the plans given.
    pub plan: usize,
}

impl Hub {
    /// The usual write step: applies `md` into the held deployment's
    /// cluster and records the deployment as `Pending` there, with the
    /// new object's uid and `message`, as `actor`.
    pub(crate) async fn apply_held(
        &self,
        actor: &Actor,
        held: &Deployment,
        tenant: &str,
        md: &ModelDeployment,
        message: Option<String>,
    ) -> Result<Deployment, PlaceError> {
        self.deliver_source_credential(held, tenant, md).await?;
        let applied = self
            .registry
            .apply_deployment(&held.cluster, tenant, md)
            .await
            .map_err(|error| PlaceError::Cluster {
                error,
                undone: false,
            })?;
        let object = serde_json::to_string(md).map_err(|e| {
            StoreError::invalid("ModelDeployment", format!("cannot be encoded: {e}"))
        })?;
        let mut tx = self.store.begin(actor).await?;
        tx.record_applied_object(held.id, &object).await?;
        let recorded = tx
            .record_deployment_status(
                held.id,
                &DeploymentStatus {
                    phase: Phase::Pending,
                    ready_replicas: 0,
                    message,
                    resource_uid: applied.metadata.uid,
                    conditions: Some(Vec::new()),
                    endpoint: None,
                    unschedulable: false,
                    weights: Some(Vec::new()),
                },
            )
            .await?;
        tx.commit().await?;
        Ok(recorded)
    }

    /// Places on the first of `plans` (best first) that the quota admits.
    pub async fn place<P: Placing + Sync>(
        &self,
        actor: &Actor,
        plans: &[Plan],
        how: &P,
    ) -> Result<Placed, PlaceError> {
        let (held, index) = self.hold(actor, plans, how).await?;
        let plan = &plans[index];
        match how.write(self, held.clone(), plan).await {
            Ok(deployment) => Ok(Placed {
                deployment,
                plan: index,
            }),
            Err(PlaceError::Cluster { error, .. }) => {
                let undone = match how.undo(self, &held, &error).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(deployment = %held.id, error = %e,
                            "a failed placement could not be undone");
                        false
                    }
                };
                Err(PlaceError::Cluster { error, undone })
            }
            Err(e) => Err(e),
        }
    }

    async fn hold<P: Placing + Sync>(
        &self,
        actor: &Actor,
        plans: &[Plan],
        how: &P,
    ) -> Result<(Deployment, usize), PlaceError> {
        if plans.is_empty() {
            return Err(PlaceError::NoPlan);
        }
        if let Some(reason) = budget_refusal(&self.store, how.tenant()).await? {
            return Err(PlaceError::BudgetExhausted(reason));
        }
        let mut first = None;
        for (index, plan) in plans.iter().enumerate() {
            let mut tx = self.store.begin(actor).await?;
            match how.hold(&mut tx, plan).await {
                Ok(held) => {
                    match how.answers() {
                        Some(code) => tx.commit_with(code).await?,
                        None => tx.commit().await?,
                    }
                    return Ok((held, index));
                }
                Err(StoreError::Quota(refusal)) => {
                    tx.rollback().await?;
                    first.get_or_insert(refusal);
                }
                Err(e) => {
                    tx.rollback().await?;
                    return Err(e.into());
                }
            }
        }
        match first {
            Some(first) => Err(PlaceError::Refused {
                first,
                tried: plans.len(),
            }),
            None => Err(PlaceError::NoPlan),
        }
    }
}
