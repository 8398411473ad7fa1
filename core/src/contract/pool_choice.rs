//! Which pool of a cluster a ModelDeployment lands on, and with which plan.
//! The operator runs its workload by this choice, and the hub admits a
//! ModelDeployment someone applied into a cluster by the same choice, so
//! that the devices it counts against a quota are the ones that run. Pure:
//! no client required.
//!
//! Two rules keep a running model from moving around:
//! - the fleet it is planned against counts its own pods' devices as free
//!   (the caller leaves them out), so a model never competes with itself;
//! - once planned onto a pool, it is re-planned on that same pool first, and
//!   moves only when that pool can no longer hold it as asked.
//!
//! When the pools could hold the model but their devices are taken, it is
//! still planned on their shape, and its pods wait for capacity (as they
//! would while a cluster autoscaler adds nodes): the status says so.

use super::condition::reason;
use crate::accelerator::Accelerator;
use crate::crd::ModelDeployment;
use crate::fleet::{Fleet, NodePool};
use crate::planner::{Plan, PlanReport};

/// What was decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Planned(Box<Chosen>),
    /// Nothing in this cluster can run it as asked.
    Unplannable {
        /// `InvalidSpec` or `NoFeasiblePlan`, for the condition.
        reason: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub plan: Plan,
    pub pool: NodePool,
    pub accelerator: &'static Accelerator,
    /// Set when the pool's shape fits but its free devices do not: why the
    /// pods will wait.
    pub waiting_for_capacity: Option<String>,
}

/// Chooses the plan for `md` on `fleet`, one cluster's pools; `lws_available`
/// says whether multi-node replicas can run there at all (the
/// LeaderWorkerSet API is served). A pool `md` already runs on is kept
/// while it can still hold it (its `status.plan.pool`).
pub fn choose(md: &ModelDeployment, fleet: &Fleet, lws_available: bool) -> Outcome {
    let inputs = match md.spec.planner_inputs() {
        Ok(inputs) => inputs,
        Err(e) => {
            return Outcome::Unplannable {
                reason: reason::INVALID_SPEC,
                message: e.to_string(),
            };
        }
    };
    let current_pool = md
        .status
        .as_ref()
        .and_then(|s| s.plan.as_ref())
        .map(|p| p.pool.clone())
        .filter(|_| inputs.constraints.pool.is_none());

    let plan_on = |fleet: &Fleet, pool: Option<&String>| {
        let mut inputs = inputs.clone();
        if let Some(pool) = pool {
            inputs.constraints.pool = Some(pool.clone());
        }
        inputs.plan(fleet)
    };

    // Stay where it runs if that still works; else the best of all pools.
    let mut report = None;
    if let Some(pool) = &current_pool
        && let Ok(r) = plan_on(fleet, Some(pool))
        && !r.plans.is_empty()
    {
        report = Some(r);
    }
    let report = match report {
        Some(r) => r,
        None => match plan_on(fleet, None) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Unplannable {
                    reason: reason::INVALID_SPEC,
                    message: e.to_string(),
                };
            }
        },
    };
    if let Some(outcome) = chosen(&report, fleet, None, lws_available) {
        return outcome;
    }

    // Nothing fits the free devices: does anything fit the pools' shape?
    let capacity_reason = summarize(&report);
    let mut whole = fleet.clone();
    for pool in &mut whole.pools {
        pool.nodes_free = pool.nodes_total;
        pool.partly_free.clear();
    }
    let shaped = current_pool
        .as_ref()
        .and_then(|pool| plan_on(&whole, Some(pool)).ok())
        .filter(|r| !r.plans.is_empty())
        .or_else(|| plan_on(&whole, None).ok());
    if let Some(shaped) = shaped
        && let Some(outcome) = chosen(&shaped, fleet, Some(capacity_reason.clone()), lws_available)
    {
        return outcome;
    }
    Outcome::Unplannable {
        reason: reason::NO_FEASIBLE_PLAN,
        message: capacity_reason,
    }
}

fn chosen(
    report: &PlanReport,
    fleet: &Fleet,
    waiting_for_capacity: Option<String>,
    lws_available: bool,
) -> Option<Outcome> {
    let plan = report.best()?;
    if plan.nodes_per_replica > 1 && !lws_available {
        return Some(Outcome::Unplannable {
            reason: reason::NO_FEASIBLE_PLAN,
            message: format!(
                "{} needs {} nodes per replica on {}, which runs as a LeaderWorkerSet, and the \
                 LeaderWorkerSet API (leaderworkerset.x-k8s.io/v1) is not installed in this cluster",
                report.model, plan.nodes_per_replica, plan.pool
            ),
        });
    }
    let pool = fleet
        .pools
        .iter()
        .find(|p| p.reference() == plan.pool)?
        .clone();
    let accelerator = Accelerator::find(&plan.accelerator)?;
    Some(Outcome::Planned(Box::new(Chosen {
        plan: plan.clone(),
        pool,
        accelerator,
        waiting_for_capacity,
    })))
}

/// One message for a condition: every pool's reason, constraint exclusions
/// folded into a count.
fn summarize(report: &PlanReport) -> String {
    if report.rejections.is_empty() {
        return "the cluster has no accelerator node pools".to_owned();
    }
    let excluded = report
        .rejections
        .iter()
        .filter(|r| r.reason.is_constraint())
        .count();
    let mut parts: Vec<String> = report
        .rejections
        .iter()
        .filter(|r| !r.reason.is_constraint())
        .map(|r| format!("{}: {}", r.pool, r.reason))
        .collect();
    if excluded > 0 {
        parts.push(format!(
            "{excluded} pool{} excluded by spec.placement",
            if excluded == 1 { "" } else { "s" }
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests;
