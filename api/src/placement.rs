//! Placement, the pure part: from what a tenant asks for to the
//! ModelDeployment spec, the planner's inputs, what each plan would hold
//! against the quota, the row admission records and the object written
//! into the chosen cluster. No client, no database: the handlers in
//! `http/v1/{plans,deployments}.rs` do the I/O around these.
//!
//! The request becomes a [`ModelDeploymentSpec`] first and is planned
//! through [`ModelDeploymentSpec::planner_inputs`], the same conversion the
//! operator uses, so a request means the same thing to the hub that plans
//! it and to the operator that runs it.

use std::collections::BTreeMap;

use modelfleet_core::crd::{
    ModelDeployment, ModelDeploymentSpec, Placement, PlannerInputs, Serving, SpecError,
};
use modelfleet_core::model::ModelArch;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::planner::Plan;
use modelfleet_core::quota::{Footprint, Quota, QuotaExceeded, Usage, check_admission};

use crate::clusters::{DEPLOYMENT_ID_LABEL, TENANT_LABEL};
use crate::ids::DeploymentId;
use crate::store::{DeploymentRequest, Source};

/// The most replicas one deployment may ask for.
pub const MAX_REPLICAS: u32 = 1000;

/// What a tenant asks for, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub model: String,
    /// Inline, for a model the catalog does not know.
    pub architecture: Option<ModelArch>,
    pub source: String,
    pub source_secret: Option<String>,
    pub replicas: u32,
    pub serving: Serving,
    pub placement: Placement,
    /// All replicas together.
    pub max_cost_per_hour: Option<Money>,
}

impl Ask {
    /// The source credential the hub keeps for the tenant that this
    /// deployment fetches with, if its `sourceSecret` names one.
    pub fn source_credential(&self) -> Option<&str> {
        self.source_secret
            .as_deref()
            .and_then(modelfleet_core::contract::tenancy::source_credential_of)
    }

    pub fn spec(&self) -> ModelDeploymentSpec {
        ModelDeploymentSpec {
            model: self.model.clone(),
            architecture: self.architecture.clone(),
            source: self.source.clone(),
            source_secret: self.source_secret.clone(),
            serving: self.serving.clone(),
            replicas: self.replicas,
            placement: self.placement.clone(),
        }
    }

    /// The model, the request and the constraints, checked together.
    pub fn planner_inputs(&self) -> Result<PlannerInputs, SpecError> {
        let mut inputs = self.spec().planner_inputs()?;
        inputs.constraints.max_cost_per_hour = self.max_cost_per_hour;
        Ok(inputs)
    }
}

/// Whether a ModelDeployment name is one the CRD accepts: it also names the
/// model's Service and pods, so it must start with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= modelfleet_core::crd::MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be at most {} lower-case letters, digits and '-', starting with a \
             letter and ending with a letter or digit",
            modelfleet_core::crd::MAX_NAME_LEN
        ))
    }
}

/// The price of one replica of `plan` for an hour. An unpriced pool costs
/// nothing known: zero in `fallback`, so no spend ceiling is charged for it.
pub fn replica_cost(plan: &Plan, fallback: Currency) -> Money {
    plan.price_per_device_hour
        .and_then(|p| p.checked_mul(u64::from(plan.devices_per_replica)))
        .unwrap_or_else(|| Money::zero(fallback))
}

/// What `plan` would hold against a quota.
pub fn footprint(plan: &Plan, model: &ModelArch, fallback: Currency) -> Footprint {
    Footprint {
        accelerator: plan.accelerator.clone(),
        devices_per_replica: plan.devices_per_replica,
        replicas: plan.replicas,
        model_params: model.total_params,
        replica_cost_per_hour: replica_cost(plan, fallback),
    }
}

/// For each plan, in order, whether the quota admits it next to `usage`.
/// Advisory: admission checks again inside its transaction.
pub fn quota_view(
    plans: &[Plan],
    model: &ModelArch,
    quota: &Quota,
    usage: &Usage,
    fallback: Currency,
) -> Vec<Result<(), QuotaExceeded>> {
    plans
        .iter()
        .map(|plan| check_admission(quota, usage, &footprint(plan, model, fallback)))
        .collect()
}

/// The row admission records for `plan`.
pub fn deployment_request(
    name: &str,
    model: &ModelArch,
    plan: &Plan,
    namespace: &str,
    fallback: Currency,
) -> DeploymentRequest {
    DeploymentRequest {
        name: name.to_owned(),
        model: model.id.clone(),
        model_params: model.total_params,
        cluster: plan.pool.cluster.clone(),
        namespace: namespace.to_owned(),
        pool: plan.pool.name.clone(),
        accelerator: plan.accelerator.clone(),
        devices_per_replica: plan.devices_per_replica,
        replicas: plan.replicas,
        precision: plan.precision,
        replica_cost_per_hour: replica_cost(plan, fallback),
        source: Source::Api,
        resource_uid: None,
    }
}

/// The ModelDeployment written into the plan's cluster: the tenant's spec
/// with the chosen pool pinned, so the operator there runs it where the hub
/// placed it (and counted it against the quota).
pub fn model_deployment(
    ask: &Ask,
    name: &str,
    namespace: &str,
    tenant_name: &str,
    id: DeploymentId,
    plan: &Plan,
) -> ModelDeployment {
    placed(ask.spec(), name, namespace, tenant_name, id, plan)
}

/// `spec` with `plan`'s pool pinned, as the hub writes it into the plan's
/// cluster (also when failover moves it there).
pub fn placed(
    mut spec: ModelDeploymentSpec,
    name: &str,
    namespace: &str,
    tenant_name: &str,
    id: DeploymentId,
    plan: &Plan,
) -> ModelDeployment {
    spec.placement.pool = Some(plan.pool.to_string());
    let mut md = ModelDeployment::new(name, spec);
    md.metadata.namespace = Some(namespace.to_owned());
    md.metadata.labels = Some(BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant_name.to_owned()),
        (DEPLOYMENT_ID_LABEL.to_owned(), id.to_string()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            crate::clusters::FIELD_MANAGER.to_owned(),
        ),
    ]));
    // Admitted against the quota before it is written: an operator that
    // requires admission runs it at once.
    md.metadata.annotations = Some(BTreeMap::from([(
        modelfleet_core::contract::admission::ANNOTATION.to_owned(),
        modelfleet_core::contract::admission::ADMITTED.to_owned(),
    )]));
    md
}

/// `plans` (best first) with, among plans of equal cost, those on a pool
/// that likely holds the model in its nodes' cache first: a pool with a
/// model cache where `warm` says the tenant runs the same model now. The
/// order is otherwise kept; cost always decides first.
pub fn prefer_warm_pools(
    plans: &mut [Plan],
    fleet: &modelfleet_core::fleet::Fleet,
    warm: &std::collections::BTreeSet<(String, String)>,
) {
    let cached = |plan: &Plan| {
        warm.contains(&(plan.pool.cluster.clone(), plan.pool.name.clone()))
            && fleet
                .pools
                .iter()
                .any(|p| p.reference() == plan.pool && p.settings.model_cache.is_some())
    };
    let mut start = 0;
    while start < plans.len() {
        let cost = plans[start].cost_per_hour;
        let end = start
            + plans[start..]
                .iter()
                .take_while(|p| p.cost_per_hour == cost)
                .count();
        // Stable: warm ones first, each group in its old order.
        plans[start..end].sort_by_key(|p| !cached(p));
        start = end;
    }
    for (rank, plan) in plans.iter_mut().enumerate() {
        plan.rank = rank + 1;
    }
}

#[cfg(test)]
mod tests {
    use modelfleet_core::fleet::Fleet;
    use modelfleet_core::model::ParamCount;

    use super::*;

    fn ask(model: &str) -> Ask {
        Ask {
            model: model.to_owned(),
            architecture: None,
            source: format!("s3://models/{model}"),
            source_secret: None,
            replicas: 1,
            serving: Serving::default(),
            placement: Placement::default(),
            max_cost_per_hour: None,
        }
    }

    #[test]
    fn names_follow_the_crd_rule() {
        assert!(check_name("llama70").is_ok());
        for bad in ["", "7b", "Llama", "a-", &"a".repeat(41), "a.b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_plan_pins_its_pool_and_counts_against_the_quota() {
        let ask = ask("llama-3.1-70b");
        let inputs = ask.planner_inputs().unwrap();
        let report = inputs.plan(&Fleet::example()).unwrap();
        let best = report.best().expect("the example fleet holds a 70B model");
        let id = DeploymentId::new();
        let md = model_deployment(&ask, "llama70", "mf-acme", "acme", id, best);
        assert_eq!(md.spec.placement.pool, Some(best.pool.to_string()));
        assert_eq!(md.metadata.namespace.as_deref(), Some("mf-acme"));
        assert_eq!(
            md.metadata.labels.as_ref().unwrap()[DEPLOYMENT_ID_LABEL],
            id.to_string()
        );
        assert_eq!(
            md.metadata.annotations.as_ref().unwrap()
                [modelfleet_core::contract::admission::ANNOTATION],
            "admitted"
        );
        let request = deployment_request("llama70", &inputs.model, best, "mf-acme", Currency::Usd);
        assert_eq!(request.cluster, best.pool.cluster);
        assert_eq!(request.devices_per_replica, best.devices_per_replica);

        let small = Quota::unlimited().max_model_params(ParamCount::billions(8));
        let view = quota_view(
            &report.plans,
            &inputs.model,
            &small,
            &Usage::default(),
            Currency::Usd,
        );
        assert!(view.iter().all(Result::is_err));
        let view = quota_view(
            &report.plans,
            &inputs.model,
            &Quota::unlimited(),
            &Usage::default(),
            Currency::Usd,
        );
        assert!(view.iter().all(Result::is_ok));
    }

    #[test]
    fn a_budget_rejects_pools_that_cost_more() {
        let mut ask = ask("llama-3.1-70b");
        ask.max_cost_per_hour = Some(Money::parse_amount("0.01", Currency::Usd).unwrap());
        let report = ask
            .planner_inputs()
            .unwrap()
            .plan(&Fleet::example())
            .unwrap();
        assert!(report.plans.is_empty());
        assert!(
            report
                .rejections
                .iter()
                .any(|r| r.reason.code() == "over_budget")
        );
    }

    #[test]
    fn at_equal_cost_a_pool_whose_nodes_hold_the_model_goes_first() {
        // Two pools alike in all but cluster and name: equal cost.
        let mut fleet = Fleet::example();
        let base = fleet
            .pools
            .iter()
            .find(|p| p.accelerator == "l40s")
            .unwrap()
            .clone();
        let twin = modelfleet_core::fleet::NodePool {
            cluster: "aws-use1-second".into(),
            name: "g6e-l40s-b".into(),
            ..base.clone()
        };
        fleet.pools.push(twin.clone());
        let plans = ask("llama-3.1-8b")
            .planner_inputs()
            .unwrap()
            .plan(&fleet)
            .unwrap()
            .plans;
        let position = |plans: &[Plan], pool: &modelfleet_core::fleet::NodePool| {
            plans
                .iter()
                .position(|p| p.pool == pool.reference())
                .unwrap()
        };
        let (a, b) = (position(&plans, &base), position(&plans, &twin));
        assert_eq!(plans[a].cost_per_hour, plans[b].cost_per_hour);
        let (first, second) = if a < b {
            (&base, &twin)
        } else {
            (&twin, &base)
        };
        let warm =
            std::collections::BTreeSet::from([(second.cluster.clone(), second.name.clone())]);

        // Without a cache on the pool, running the model there says nothing.
        let mut same = plans.clone();
        prefer_warm_pools(&mut same, &fleet, &warm);
        assert_eq!(same, plans);

        for pool in fleet.pools.iter_mut().filter(|p| p.accelerator == "l40s") {
            pool.settings.model_cache = Some(modelfleet_core::fleet::ModelCache {
                path: "/var/lib/modelfleet/models".into(),
                bytes: 500 << 30,
            });
        }
        let mut preferred = plans.clone();
        prefer_warm_pools(&mut preferred, &fleet, &warm);
        assert!(position(&preferred, second) < position(&preferred, first));
        // Cost still decides first: the cheapest plan stays first unless it
        // is the one that swapped places.
        assert_eq!(
            preferred[0].cost_per_hour, plans[0].cost_per_hour,
            "nothing more expensive jumps ahead"
        );
        assert!(preferred.iter().enumerate().all(|(i, p)| p.rank == i + 1));
        for pair in preferred.windows(2) {
            let costs = (pair[0].cost_per_hour, pair[1].cost_per_hour);
            let (i, j) = (
                plans.iter().position(|p| p.pool == pair[0].pool).unwrap(),
                plans.iter().position(|p| p.pool == pair[1].pool).unwrap(),
            );
            assert!(i < j || costs.0 == costs.1, "only equal costs change order");
        }
    }
}
