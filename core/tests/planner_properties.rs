//! Properties that must hold for any request on any pool: a plan never
//! overcommits device memory, tensor parallelism always divides the heads,
//! the KV cache holds what was asked, and no pool is dropped silently.

use std::collections::BTreeMap;

use modelfleet_core::accelerator::{ACCELERATORS, Accelerator};
use modelfleet_core::fleet::{CapacityType, Cloud, Fleet, NodePool};
use modelfleet_core::model::catalog;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::planner::{Constraints, MemoryUtilization, ServingRequest, SpotPolicy, plan};
use modelfleet_core::{Precision, PrecisionChoice};
use proptest::prelude::*;

fn pool(
    i: usize,
    accelerator: &Accelerator,
    nodes_total: u32,
    nodes_free: u32,
    spot: bool,
) -> NodePool {
    NodePool {
        cloud: Cloud::Aws,
        region: "us-east-1".to_owned(),
        cluster: "c".to_owned(),
        name: format!("p{i}"),
        accelerator: accelerator.id.to_owned(),
        devices_per_node: accelerator.devices_per_node,
        nodes_total,
        nodes_free: nodes_free.min(nodes_total),
        partly_free: Vec::new(),
        price_per_device_hour: Some(Money::from_micros(1_000_000 + i as i64, Currency::Usd)),
        capacity_type: if spot {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        },
        labels: BTreeMap::new(),
        taints: Vec::new(),
        device_resource: None,
        settings: Default::default(),
    }
}

fn precision_choice() -> impl Strategy<Value = PrecisionChoice> {
    prop_oneof![
        Just(PrecisionChoice::Auto),
        proptest::sample::select(Precision::ALL.to_vec()).prop_map(PrecisionChoice::Fixed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn plans_respect_memory_heads_and_requested_capacity(
        model_index in 0..catalog().len(),
        pools in proptest::collection::vec((0..ACCELERATORS.len(), 1u32..5, 0u32..5, any::<bool>()), 1..6),
        context_share in 1u32..=100,
        concurrency in 1u32..64,
        utilization_bp in 5000u32..=9500,
        precision in precision_choice(),
        tensor_parallel in proptest::option::weighted(0.2, 1u32..=16),
        replicas in 1u32..4,
    ) {
        let model = &catalog()[model_index];
        let fleet = Fleet {
            exchange_rates: Default::default(),
            pools: pools
                .iter()
                .enumerate()
                .map(|(i, &(a, total, free, spot))| pool(i, &ACCELERATORS[a], total, free, spot))
                .collect(),
        };
        let max_model_len = (model.max_context.min(65_536) * context_share / 100).max(1);
        let utilization = MemoryUtilization::from_fraction(f64::from(utilization_bp) / 10_000.0).unwrap();
        let request = ServingRequest {
            max_model_len: Some(max_model_len),
            concurrency,
            precision,
            gpu_memory_utilization: utilization,
            tensor_parallel,
            pipeline_parallel: None,
            replicas,
        };
        let constraints = Constraints { spot: SpotPolicy::Allowed, ..Constraints::default() };
        let report = plan(model, &request, &fleet, &constraints).unwrap();

        // Never silent: every pool is either planned or rejected with words.
        prop_assert_eq!(report.plans.len() + report.rejections.len(), fleet.pools.len());
        for r in &report.rejections {
            prop_assert!(!r.reason.to_string().is_empty());
        }

        for p in &report.plans {
            let accelerator = Accelerator::find(&p.accelerator).unwrap();
            let pool = fleet.pools.iter().find(|q| q.reference() == p.pool).unwrap();
            // Memory: everything on the busiest device fits the engine's budget.
            let budget = utilization.of(accelerator.usable_bytes());
            let used = p.weights_bytes_per_device
                + p.activation_bytes_per_device
                + p.runtime_overhead_bytes_per_device
                + p.kv_cache_bytes_per_device;
            prop_assert!(used <= budget, "{} > {}", used, budget);
            prop_assert!(p.kv_cache_tokens * p.kv_cache_bytes_per_token <= p.kv_cache_bytes_per_device);
            // Capacity: the KV cache holds what was asked.
            prop_assert!(p.kv_cache_tokens >= u64::from(max_model_len) * u64::from(concurrency));
            prop_assert!(p.max_concurrency >= u64::from(concurrency));
            // Parallelism: legal for the model and the node.
            prop_assert_eq!(model.attention_heads % p.tensor_parallel, 0);
            prop_assert!(p.tensor_parallel <= pool.devices_per_node);
            prop_assert!(p.pipeline_parallel <= model.layers);
            prop_assert_eq!(p.devices_per_replica, p.tensor_parallel * p.pipeline_parallel);
            prop_assert_eq!(p.devices_per_node * p.nodes_per_replica, p.devices_per_replica);
            prop_assert!(p.devices_per_node <= pool.devices_per_node);
            if let Some(tp) = tensor_parallel {
                prop_assert_eq!(p.tensor_parallel, tp);
            }
            // Precision: supported by the hardware, and the one asked for.
            prop_assert!(accelerator.supports(p.precision));
            if let PrecisionChoice::Fixed(fixed) = precision {
                prop_assert_eq!(p.precision, fixed);
            }
            // Free capacity holds every replica.
            prop_assert!(p.nodes_per_replica <= pool.nodes_free);
            // Cost is exactly devices × replicas × price.
            let expected = pool.price_per_device_hour.unwrap().micros()
                * i64::from(p.devices_per_replica)
                * i64::from(replicas);
            prop_assert_eq!(p.cost_per_hour.unwrap().micros(), expected);
        }
        // Ranked by cost.
        for pair in report.plans.windows(2) {
            prop_assert!(pair[0].cost_per_hour.unwrap().micros() <= pair[1].cost_per_hour.unwrap().micros());
        }
    }

    #[test]
    fn spot_policy_never_admits_spot(spot in proptest::collection::vec(any::<bool>(), 1..8)) {
        let h100 = Accelerator::find("h100-80gb").unwrap();
        let fleet = Fleet {
            exchange_rates: Default::default(),
            pools: spot.iter().enumerate().map(|(i, &s)| pool(i, h100, 2, 2, s)).collect(),
        };
        let model = &catalog()[0];
        let report = plan(model, &ServingRequest::default(), &fleet, &Constraints::default()).unwrap();
        prop_assert!(report.plans.iter().all(|p| p.capacity_type == CapacityType::OnDemand));
        prop_assert_eq!(report.plans.len(), spot.iter().filter(|s| !**s).count());
    }
}
