//! Plans every catalog model against a generated fleet of 1,000 pools.
//!
//! `cargo bench -p modelfleet-core --bench planner`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modelfleet_core::accelerator::ACCELERATORS;
use modelfleet_core::fleet::{CapacityType, Cloud, Fleet, NodePool};
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::planner::{Constraints, ServingRequest, SpotPolicy, plan};

/// 1,000 pools cycling through clouds, accelerators, node counts and prices.
fn generated_fleet(pools: usize) -> Fleet {
    let clouds = [
        Cloud::Aws,
        Cloud::Aliyun,
        Cloud::Tencentcloud,
        Cloud::Huaweicloud,
    ];
    Fleet {
        exchange_rates: serde_yaml::from_str("reference: USD\nrates: {CNY: \"0.14\"}").unwrap(),
        pools: (0..pools)
            .map(|i| {
                let accelerator = &ACCELERATORS[i % ACCELERATORS.len()];
                let cloud = clouds[i % clouds.len()];
                let currency = if cloud == Cloud::Aws {
                    Currency::Usd
                } else {
                    Currency::Cny
                };
                let nodes_total = 1 + (i % 6) as u32;
                NodePool {
                    cloud,
                    region: format!("region-{}", i % 7),
                    cluster: format!("cluster-{}", i / 10),
                    name: format!("pool-{i}"),
                    accelerator: accelerator.id.to_owned(),
                    devices_per_node: accelerator.devices_per_node,
                    nodes_total,
                    nodes_free: nodes_total - (i % 2) as u32,
                    partly_free: Vec::new(),
                    price_per_device_hour: Some(Money::from_micros(
                        1_000_000 + (i as i64 * 37_000) % 9_000_000,
                        currency,
                    )),
                    capacity_type: if i % 5 == 0 {
                        CapacityType::Spot
                    } else {
                        CapacityType::OnDemand
                    },
                    labels: BTreeMap::new(),
                    taints: Vec::new(),
                    device_resource: None,
                    settings: Default::default(),
                }
            })
            .collect(),
    }
}

fn bench_planner(c: &mut Criterion) {
    let fleet = generated_fleet(1000);
    let request = ServingRequest::default();
    let constraints = Constraints {
        spot: SpotPolicy::Allowed,
        ..Constraints::default()
    };
    let models = modelfleet_core::model::catalog();
    let name = format!("plan {} catalog models × 1000 pools", models.len());
    c.bench_function(&name, |b| {
        b.iter(|| {
            for model in models {
                black_box(plan(model, &request, &fleet, &constraints).unwrap());
            }
        })
    });
    let llama = modelfleet_core::ModelArch::find("llama-3.1-70b").unwrap();
    c.bench_function("plan llama-3.1-70b × 1000 pools", |b| {
        b.iter(|| black_box(plan(llama, &request, &fleet, &constraints).unwrap()))
    });
}

criterion_group!(benches, bench_planner);
criterion_main!(benches);
