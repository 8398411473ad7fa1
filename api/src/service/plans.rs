//! Planning: what a model would run on across every registered cluster,
//! every pool passed over and why, and whether the tenant's quota admits
//! each plan now. Nothing changes.

use modelfleet_core::billing::Discounts;
use modelfleet_core::crd::{Placement, Serving};
use modelfleet_core::model::ModelArch;
use modelfleet_core::money::Money;
use modelfleet_core::planner::{Plan, PlanReport};
use modelfleet_core::quota::QuotaExceeded;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Caller, Error, Hub, Observation, Result};
use crate::clusters::ClusterView;
use crate::identity::Permission;
use crate::ids::TenantId;
use crate::placement::{Ask, MAX_REPLICAS, quota_view};

/// What a tenant asks to run, before defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanRequest {
    /// A catalog model id, e.g. `llama-3.1-70b`.
    pub model: String,
    /// The model's architecture when the catalog does not know it; its id
    /// must be `model`. For a model hub's source the hub reads it itself
    /// when it is left out.
    pub architecture: Option<ModelArch>,
    /// Where the weights are; the hub's model store when absent.
    pub source: Option<String>,
    /// A Secret in the tenant's namespace with the source's credentials,
    /// for the container that fetches the weights alone.
    pub source_secret: Option<String>,
    /// Default 1.
    pub replicas: Option<u32>,
    /// Engine settings. Its `image` and `extra_args` are the platform's to
    /// choose, never a tenant's: they are dropped.
    pub serving: Serving,
    pub placement: Placement,
    /// The most all replicas together may cost per hour.
    pub max_cost_per_hour: Option<Money>,
    /// Whose quota applies (platform staff name one, or none to plan
    /// without a quota); a tenant's callers leave it out.
    pub tenant: Option<TenantId>,
}

/// One plan and whether the quota admits it now.
#[derive(Debug, Clone)]
pub struct PlanWithQuota {
    pub plan: Plan,
    /// `None` when no tenant's quota applies (platform staff).
    pub quota: Option<Result<(), QuotaExceeded>>,
}

/// The answer to a plan request.
#[derive(Debug, Clone)]
pub struct Planned {
    pub report: PlanReport,
    /// `report.plans` with the quota's word on each, in the same order.
    pub plans: Vec<PlanWithQuota>,
    /// The tenant's discounts (none without a tenant).
    pub discounts: Discounts,
    /// Every cluster looked at; those whose pools are unknown were left out.
    pub clusters: Vec<ClusterView>,
}

/// A pool that has no plan, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectionView {
    /// `cluster/pool`.
    pub pool: String,
    pub accelerator: String,
    /// Stable, for programs: `insufficient_capacity`, `weights_do_not_fit`, …
    pub code: String,
    pub reason: String,
}

/// Every pool of `report` without a plan.
pub fn rejections(report: &PlanReport) -> Vec<RejectionView> {
    report
        .rejections
        .iter()
        .map(|r| RejectionView {
            pool: r.pool.to_string(),
            accelerator: r.accelerator.clone(),
            code: r.reason.code().to_owned(),
            reason: r.reason.to_string(),
        })
        .collect()
}

impl Hub {
    /// Fills in the defaults of a request and checks what the planner does
    /// not (the replica range).
    pub(crate) fn ask(&self, request: &PlanRequest) -> Result<Ask> {
        let replicas = request.replicas.unwrap_or(1);
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(Error::invalid(
                "replicas",
                format!("must be between 1 and {MAX_REPLICAS}"),
            ));
        }
        let mut serving = request.serving.clone();
        serving.extra_args = Vec::new();
        serving.image = None;
        Ok(Ask {
            source: request
                .source
                .clone()
                .unwrap_or_else(|| self.settings.model_source(&request.model)),
            source_secret: request.source_secret.clone(),
            model: request.model.clone(),
            architecture: request.architecture.clone(),
            replicas,
            serving,
            placement: request.placement.clone(),
            max_cost_per_hour: request.max_cost_per_hour,
        })
    }

    /// Ranks every pool of every cluster for `request`.
    pub async fn plan(&self, caller: &Caller, mut request: PlanRequest) -> Result<Planned> {
        caller.require(Permission::Read)?;
        // Platform staff may plan without a tenant; then no quota applies.
        let tenant = match (caller.actor.tenant, request.tenant) {
            (None, None) => None,
            (_, named) => Some(caller.tenant(named)?),
        };
        self.describe_from_source(caller, &mut request).await?;
        let ask = self.ask(&request)?;
        let inputs = ask.planner_inputs()?;
        let Observation { clusters, fleet } = self.observe_fleet().await?;
        let mut report = inputs.plan(&fleet)?;
        if let Some(tenant) = tenant {
            let warm = self.warm_pools(tenant, &ask.model).await?;
            crate::placement::prefer_warm_pools(&mut report.plans, &fleet, &warm);
        }
        let (discounts, quota) = match tenant {
            Some(tenant) => {
                let discounts = self.store.discount_set(caller.scope(), tenant).await?;
                let quota = self.store.quota(caller.scope(), tenant).await?;
                let usage = self.store.usage(caller.scope(), tenant).await?;
                let fallback = self.settings.reference_currency;
                let checks = quota_view(&report.plans, &inputs.model, &quota, &usage, fallback);
                (discounts, checks.into_iter().map(Some).collect())
            }
            None => (Discounts::none(), vec![None; report.plans.len()]),
        };
        let plans = report
            .plans
            .iter()
            .cloned()
            .zip(quota)
            .map(|(plan, quota)| PlanWithQuota { plan, quota })
            .collect();
        Ok(Planned {
            report,
            plans,
            discounts,
            clusters,
        })
    }
}
