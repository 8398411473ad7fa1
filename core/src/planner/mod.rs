//! The sizing planner: from a model, what it must serve, the fleet and the
//! user's constraints, to a ranked list of feasible plans and a reason for
//! every pool that was not chosen.
//!
//! A pure function: no I/O, no clock, no randomness. The same inputs give the
//! same plans, so the operator, the hub and the CLI can all call it.

pub mod layout;
pub mod memory;
pub mod reason;

use std::cmp::Reverse;

use serde::{Deserialize, Serialize, Serializer};

use crate::accelerator::{Accelerator, Runtime};
use crate::fleet::{CapacityType, Cloud, Fleet, NodePool, PoolRef};
use crate::model::ModelArch;
use crate::money::{Currency, Money};
use crate::precision::{Precision, PrecisionChoice};

use layout::{Layout, Needs, best_layout};
pub use memory::MemoryUtilization;
pub use reason::{Reason, Rejection};

/// Context length planned for when the request names none (capped at the
/// model's own context).
pub const DEFAULT_MAX_MODEL_LEN: u32 = 8192;
/// Concurrent sequences at full context planned for when the request names none.
pub const DEFAULT_CONCURRENCY: u32 = 16;

/// What the deployment must serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingRequest {
    /// Longest sequence (prompt + output) served; `None` means
    /// [`DEFAULT_MAX_MODEL_LEN`] or the model's context, whichever is less.
    pub max_model_len: Option<u32>,
    /// Sequences of `max_model_len` tokens that must fit in the KV cache at once.
    pub concurrency: u32,
    pub precision: PrecisionChoice,
    pub gpu_memory_utilization: MemoryUtilization,
    pub tensor_parallel: Option<u32>,
    pub pipeline_parallel: Option<u32>,
    pub replicas: u32,
}

impl Default for ServingRequest {
    fn default() -> Self {
        ServingRequest {
            max_model_len: None,
            concurrency: DEFAULT_CONCURRENCY,
            precision: PrecisionChoice::Auto,
            gpu_memory_utilization: MemoryUtilization::DEFAULT,
            tensor_parallel: None,
            pipeline_parallel: None,
            replicas: 1,
        }
    }
}

/// Whether spot capacity may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpotPolicy {
    /// Serving stays on on-demand capacity.
    #[default]
    Never,
    /// Spot pools compete on price with on-demand ones.
    Allowed,
    /// Spot pools rank ahead of on-demand ones.
    Preferred,
}

/// Where the deployment may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    /// Allowed clouds; empty means any.
    pub clouds: Vec<Cloud>,
    /// Allowed regions; empty means any.
    pub regions: Vec<String>,
    /// Allowed accelerator ids (aliases accepted); empty means any.
    pub accelerators: Vec<String>,
    pub spot: SpotPolicy,
    /// Only this pool, as `cluster/pool`.
    pub pool: Option<String>,
    /// The most the deployment may cost per hour, all replicas together.
    pub max_cost_per_hour: Option<Money>,
}

/// A request that cannot be planned at all, whatever the fleet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("max model length must be at least 1 token")]
    ZeroContext,
    #[error(
        "max model length {requested} exceeds {model}'s context of {max_context} tokens; ask for {max_context} or less"
    )]
    ContextTooLong {
        model: String,
        requested: u32,
        max_context: u32,
    },
    #[error("concurrency must be at least 1")]
    ZeroConcurrency,
    #[error("replicas must be at least 1")]
    ZeroReplicas,
    #[error("tensor parallel must be at least 1")]
    ZeroTensorParallel,
    #[error("pipeline parallel must be at least 1")]
    ZeroPipelineParallel,
    #[error("unknown accelerator {0:?}; known: {known}", known = Accelerator::ids())]
    UnknownAccelerator(String),
    #[error("pinned pool {0:?} is not in the fleet; name it as cluster/pool")]
    UnknownPool(String),
}

/// One way to run the model, on one pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// 1 is the best.
    pub rank: usize,
    pub pool: PoolRef,
    pub accelerator: String,
    pub runtime: Runtime,
    pub capacity_type: CapacityType,
    pub precision: Precision,
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub nodes_per_replica: u32,
    pub devices_per_replica: u32,
    /// Devices each pod (one per node) asks for.
    pub devices_per_node: u32,
    pub replicas: u32,
    #[serde(serialize_with = "fraction")]
    pub gpu_memory_utilization: MemoryUtilization,
    #[serde(rename = "device_memory_gib", serialize_with = "gib")]
    pub device_memory_bytes: u64,
    #[serde(rename = "weights_gib_per_device", serialize_with = "gib")]
    pub weights_bytes_per_device: u64,
    #[serde(rename = "activation_gib_per_device", serialize_with = "gib")]
    pub activation_bytes_per_device: u64,
    #[serde(rename = "runtime_overhead_gib_per_device", serialize_with = "gib")]
    pub runtime_overhead_bytes_per_device: u64,
    #[serde(rename = "kv_cache_gib_per_device", serialize_with = "gib")]
    pub kv_cache_bytes_per_device: u64,
    pub kv_cache_bytes_per_token: u64,
    /// Tokens the KV cache of one replica holds.
    pub kv_cache_tokens: u64,
    /// Sequences of `max_model_len` tokens one replica holds at once.
    pub max_concurrency: u64,
    pub max_model_len: u32,
    pub price_per_device_hour: Option<Money>,
    /// All replicas together.
    pub cost_per_hour: Option<Money>,
    /// Choices a user would want to know were made for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn gib<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    // Two decimals: a reading for people, not an amount to add up.
    s.serialize_f64((*bytes as f64 / memory::GIB as f64 * 100.0).round() / 100.0)
}

fn fraction<S: Serializer>(u: &MemoryUtilization, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(u.as_fraction())
}

/// The request as planned, with every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedRequest {
    pub max_model_len: u32,
    pub concurrency: u32,
    pub precision: PrecisionChoice,
    #[serde(serialize_with = "fraction")]
    pub gpu_memory_utilization: MemoryUtilization,
    pub tensor_parallel: Option<u32>,
    pub pipeline_parallel: Option<u32>,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    pub model: String,
    pub request: ResolvedRequest,
    /// Feasible plans, best first.
    pub plans: Vec<Plan>,
    /// Every pool without a plan, in fleet order, with the reason.
    pub rejections: Vec<Rejection>,
}

impl PlanReport {
    pub fn best(&self) -> Option<&Plan> {
        self.plans.first()
    }
}

/// Plans `model` on every pool of `fleet` that the constraints allow.
pub fn plan(
    model: &ModelArch,
    request: &ServingRequest,
    fleet: &Fleet,
    constraints: &Constraints,
) -> Result<PlanReport, RequestError> {
    let resolved = resolve(model, request)?;
    let allowed_accelerators = constraints
        .accelerators
        .iter()
        .map(|id| {
            Accelerator::find(id)
                .map(|a| a.id)
                .ok_or_else(|| RequestError::UnknownAccelerator(id.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(pinned) = &constraints.pool
        && !fleet
            .pools
            .iter()
            .any(|p| p.reference().to_string() == *pinned)
    {
        return Err(RequestError::UnknownPool(pinned.clone()));
    }

    let needs = Needs {
        max_model_len: resolved.max_model_len,
        concurrency: resolved.concurrency,
        utilization: resolved.gpu_memory_utilization,
        tensor_parallel: resolved.tensor_parallel,
        pipeline_parallel: resolved.pipeline_parallel,
    };
    let reference = reference_currency(fleet);
    let mut plans = Vec::new();
    let mut rejections = Vec::new();
    for pool in &fleet.pools {
        match plan_pool(
            model,
            &resolved,
            &needs,
            pool,
            constraints,
            &allowed_accelerators,
            fleet,
            reference,
        ) {
            Ok(plan) => plans.push(plan),
            Err(reason) => rejections.push(Rejection {
                pool: pool.reference(),
                accelerator: pool.accelerator.clone(),
                reason,
            }),
        }
    }

    let prefer_spot = constraints.spot == SpotPolicy::Preferred;
    plans.sort_by_cached_key(|p| {
        let comparable = p
            .cost_per_hour
            .and_then(|c| comparable(fleet, reference, c));
        (
            prefer_spot && p.capacity_type != CapacityType::Spot,
            comparable.is_none(),
            comparable,
            Reverse(p.kv_cache_tokens),
            p.pool.clone(),
        )
    });
    for (i, plan) in plans.iter_mut().enumerate() {
        plan.rank = i + 1;
    }
    Ok(PlanReport {
        model: model.id.clone(),
        request: resolved,
        plans,
        rejections,
    })
}

fn resolve(model: &ModelArch, request: &ServingRequest) -> Result<ResolvedRequest, RequestError> {
    let max_model_len = request
        .max_model_len
        .unwrap_or(DEFAULT_MAX_MODEL_LEN.min(model.max_context));
    if max_model_len == 0 {
        return Err(RequestError::ZeroContext);
    }
    if max_model_len > model.max_context {
        return Err(RequestError::ContextTooLong {
            model: model.id.clone(),
            requested: max_model_len,
            max_context: model.max_context,
        });
    }
    if request.concurrency == 0 {
        return Err(RequestError::ZeroConcurrency);
    }
    if request.replicas == 0 {
        return Err(RequestError::ZeroReplicas);
    }
    if request.tensor_parallel == Some(0) {
        return Err(RequestError::ZeroTensorParallel);
    }
    if request.pipeline_parallel == Some(0) {
        return Err(RequestError::ZeroPipelineParallel);
    }
    Ok(ResolvedRequest {
        max_model_len,
        concurrency: request.concurrency,
        precision: request.precision,
        gpu_memory_utilization: request.gpu_memory_utilization,
        tensor_parallel: request.tensor_parallel,
        pipeline_parallel: request.pipeline_parallel,
        replicas: request.replicas,
    })
}

/// The currency plans are ranked in: the fleet's reference, else the
/// currency of its first priced pool.
fn reference_currency(fleet: &Fleet) -> Option<Currency> {
    fleet.exchange_rates.reference.or_else(|| {
        fleet
            .pools
            .iter()
            .find_map(|p| p.price_per_device_hour.map(Money::currency))
    })
}

fn comparable(fleet: &Fleet, reference: Option<Currency>, money: Money) -> Option<i128> {
    let rates = crate::money::ExchangeRates {
        reference,
        rates: fleet.exchange_rates.rates.clone(),
    };
    rates.comparable_micros(money)
}

/// The precisions `auto` tries, most faithful to the published weights
/// first: the native one; one of the same width (fp8 ↔ int8); bf16, which
/// loses nothing; then narrower ones.
pub fn auto_precisions(native: Precision) -> Vec<Precision> {
    let mut order = vec![native];
    let same_width = Precision::ALL
        .into_iter()
        .filter(|p| *p != native && p.bits() == native.bits());
    order.extend(same_width);
    if !order.contains(&Precision::Bf16) {
        order.push(Precision::Bf16);
    }
    for p in Precision::ALL {
        if !order.contains(&p) && p.bits() < native.bits() {
            order.push(p);
        }
    }
    order
}

#[allow(clippy::too_many_arguments)]
fn plan_pool(
    model: &ModelArch,
    request: &ResolvedRequest,
    needs: &Needs,
    pool: &NodePool,
    constraints: &Constraints,
    allowed_accelerators: &[&str],
    fleet: &Fleet,
    reference: Option<Currency>,
) -> Result<Plan, Reason> {
    let Some(accelerator) = pool.accelerator_spec() else {
        return Err(Reason::UnknownAccelerator {
            accelerator: pool.accelerator.clone(),
        });
    };
    admit(pool, accelerator, constraints, allowed_accelerators)?;

    let mut notes = Vec::new();
    let (precision, layout) = match request.precision {
        PrecisionChoice::Fixed(p) => {
            if !accelerator.supports(p) {
                return Err(unsupported(accelerator, p));
            }
            (p, best_layout(model, accelerator, pool, p, needs)?)
        }
        PrecisionChoice::Auto => {
            let mut last_failure = None;
            let mut found = None;
            for p in auto_precisions(model.native_precision) {
                if !accelerator.supports(p) {
                    continue;
                }
                match best_layout(model, accelerator, pool, p, needs) {
                    Ok(layout) => {
                        found = Some((p, layout));
                        break;
                    }
                    Err(reason) => last_failure = Some(reason),
                }
            }
            match found {
                Some((p, layout)) => {
                    if p != model.native_precision {
                        notes.push(precision_note(model, accelerator, p));
                    }
                    (p, layout)
                }
                None => {
                    return Err(last_failure
                        .unwrap_or_else(|| unsupported(accelerator, model.native_precision)));
                }
            }
        }
    };

    check_capacity(pool, &layout, request.replicas)?;

    let devices = layout.devices();
    let cost_per_hour = pool
        .price_per_device_hour
        .and_then(|price| price.checked_mul(u64::from(devices) * u64::from(request.replicas)));
    if let Some(budget) = constraints.max_cost_per_hour {
        check_budget(cost_per_hour, budget, fleet, reference)?;
    }

    let m = layout.memory;
    let kv_tokens = m.kv_tokens();
    Ok(Plan {
        rank: 0,
        pool: pool.reference(),
        accelerator: accelerator.id.to_owned(),
        runtime: accelerator.runtime,
        capacity_type: pool.capacity_type,
        precision,
        tensor_parallel: layout.tensor_parallel,
        pipeline_parallel: layout.pipeline_parallel,
        nodes_per_replica: layout.nodes,
        devices_per_replica: devices,
        devices_per_node: layout.devices_per_node(),
        replicas: request.replicas,
        gpu_memory_utilization: request.gpu_memory_utilization,
        device_memory_bytes: m.device,
        weights_bytes_per_device: m.weights,
        activation_bytes_per_device: m.activation,
        runtime_overhead_bytes_per_device: m.non_torch,
        kv_cache_bytes_per_device: m.kv_cache,
        kv_cache_bytes_per_token: m.kv_bytes_per_token,
        kv_cache_tokens: kv_tokens,
        max_concurrency: kv_tokens / u64::from(request.max_model_len),
        max_model_len: request.max_model_len,
        price_per_device_hour: pool.price_per_device_hour,
        cost_per_hour,
        notes,
    })
}

fn unsupported(accelerator: &Accelerator, precision: Precision) -> Reason {
    Reason::PrecisionUnsupported {
        accelerator: accelerator.id.to_owned(),
        precision,
        supported: accelerator.precision_list(),
    }
}

fn precision_note(model: &ModelArch, accelerator: &Accelerator, chosen: Precision) -> String {
    let native = model.native_precision;
    if accelerator.supports(native) {
        format!(
            "{} in its published {native} does not fit this pool; planned in {chosen}",
            model.id
        )
    } else {
        format!(
            "{} is published in {native}, which {} does not support; planned in {chosen}",
            model.id, accelerator.id
        )
    }
}

/// The user's constraints, checked before any sizing.
fn admit(
    pool: &NodePool,
    accelerator: &Accelerator,
    constraints: &Constraints,
    allowed_accelerators: &[&str],
) -> Result<(), Reason> {
    if !constraints.clouds.is_empty() && !constraints.clouds.contains(&pool.cloud) {
        return Err(Reason::CloudNotAllowed { cloud: pool.cloud });
    }
    if !constraints.regions.is_empty() && !constraints.regions.contains(&pool.region) {
        return Err(Reason::RegionNotAllowed {
            region: pool.region.clone(),
        });
    }
    if !allowed_accelerators.is_empty() && !allowed_accelerators.contains(&accelerator.id) {
        return Err(Reason::AcceleratorNotAllowed {
            accelerator: accelerator.id.to_owned(),
        });
    }
    if pool.capacity_type == CapacityType::Spot && constraints.spot == SpotPolicy::Never {
        return Err(Reason::SpotNotAllowed);
    }
    if let Some(pinned) = &constraints.pool
        && pool.reference().to_string() != *pinned
    {
        return Err(Reason::NotPinnedPool {
            pinned: pinned.clone(),
        });
    }
    Ok(())
}

/// Whether the pool's free devices hold every replica. A replica within one
/// node fits in a whole free node or in the free part of a used one; a
/// replica that spans nodes takes whole free nodes.
fn check_capacity(pool: &NodePool, layout: &Layout, replicas: u32) -> Result<(), Reason> {
    let devices = layout.devices();
    let (room, nodes_needed) = if layout.nodes == 1 {
        let per_free_node = pool.devices_per_node / devices;
        let in_partly_free: u32 = pool.partly_free.iter().map(|free| free / devices).sum();
        let room = pool.nodes_free * per_free_node + in_partly_free;
        let beyond_partial = replicas.saturating_sub(in_partly_free);
        (room, beyond_partial.div_ceil(per_free_node))
    } else {
        (pool.nodes_free / layout.nodes, layout.nodes * replicas)
    };
    if room < replicas {
        return Err(Reason::InsufficientCapacity {
            nodes_needed,
            devices_per_node: pool.devices_per_node,
            nodes_free: pool.nodes_free,
            partly_free: pool.partly_free.clone(),
        });
    }
    Ok(())
}

fn check_budget(
    cost: Option<Money>,
    budget: Money,
    fleet: &Fleet,
    reference: Option<Currency>,
) -> Result<(), Reason> {
    let Some(cost) = cost else {
        return Err(Reason::Unpriced);
    };
    let over = if cost.currency() == budget.currency() {
        cost.micros() > budget.micros()
    } else {
        match (
            comparable(fleet, reference, cost),
            comparable(fleet, reference, budget),
        ) {
            (Some(c), Some(b)) => c > b,
            _ => return Err(Reason::CurrencyMismatch { cost, budget }),
        }
    };
    if over {
        return Err(Reason::OverBudget { cost, budget });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
