//! Scenario tests: what a platform engineer expects the planner to say.

use super::*;
use crate::fleet::Fleet;

fn model(id: &str) -> &'static ModelArch {
    ModelArch::find(id).unwrap()
}

fn on(accelerator: &str) -> Constraints {
    Constraints {
        accelerators: vec![accelerator.to_owned()],
        ..Constraints::default()
    }
}

fn with_precision(p: Precision) -> ServingRequest {
    ServingRequest {
        precision: PrecisionChoice::Fixed(p),
        ..ServingRequest::default()
    }
}

fn catalog_plan(id: &str, request: &ServingRequest, accelerator: &str) -> PlanReport {
    plan(
        model(id),
        request,
        &Fleet::catalog_nodes(),
        &on(accelerator),
    )
    .unwrap()
}

/// A fleet of one pool, for capacity and pricing cases.
fn one_pool(yaml_pool: &str) -> Fleet {
    Fleet::from_yaml(&format!("pools:\n- {yaml_pool}\n")).unwrap()
}

fn reason_for<'a>(report: &'a PlanReport, accelerator: &str) -> &'a Reason {
    &report
        .rejections
        .iter()
        .find(|r| r.accelerator == accelerator)
        .unwrap_or_else(|| panic!("{accelerator} was not rejected: {report:#?}"))
        .reason
}

#[test]
fn llama_70b_bf16_needs_four_h100s_and_fewer_h200s() {
    let request = with_precision(Precision::Bf16);
    let h100 = catalog_plan("llama-3.1-70b", &request, "h100-80gb");
    let best = h100.best().expect("fits on one H100 node");
    assert!(best.tensor_parallel >= 4, "{best:#?}");
    assert_eq!(best.nodes_per_replica, 1);
    assert_eq!(best.precision, Precision::Bf16);

    let h200 = catalog_plan("llama-3.1-70b", &request, "h200");
    let best_h200 = h200.best().unwrap();
    assert!(best_h200.devices_per_replica < best.devices_per_replica);
}

#[test]
fn qwen_7b_refuses_tensor_parallel_8_for_its_28_heads() {
    let request = ServingRequest {
        tensor_parallel: Some(8),
        ..ServingRequest::default()
    };
    let report = catalog_plan("qwen2.5-7b", &request, "h100-80gb");
    assert!(report.plans.is_empty());
    assert_eq!(
        reason_for(&report, "h100-80gb").to_string(),
        "qwen2.5-7b has 28 attention heads; tensor parallel 8 does not divide them"
    );
}

#[test]
fn gpt3_bf16_fits_one_h100_node_at_low_concurrency_and_needs_two_at_high() {
    // 350 GB of bf16 weights over 8 × 79.2 GiB: one node holds them with
    // room for about 45,000 tokens of KV cache (22 sequences of 2048).
    let mut request = with_precision(Precision::Bf16);
    let report = plan(
        model("gpt3-175b"),
        &request,
        &Fleet::example(),
        &on("h100-80gb"),
    )
    .unwrap();
    let best = report.best().unwrap();
    assert_eq!((best.tensor_parallel, best.pipeline_parallel), (8, 1));
    assert_eq!(best.max_model_len, 2048);

    request.concurrency = 64;
    let report = plan(
        model("gpt3-175b"),
        &request,
        &Fleet::example(),
        &on("h100-80gb"),
    )
    .unwrap();
    let best = report.best().unwrap();
    assert_eq!(
        (best.nodes_per_replica, best.pipeline_parallel),
        (2, 2),
        "{best:#?}"
    );
    assert_eq!(best.devices_per_node, 8);
    assert!(best.max_concurrency >= 64);

    // One node only (the catalog fleet): it says why it cannot.
    let report = catalog_plan("gpt3-175b", &request, "h100-80gb");
    assert!(report.plans.is_empty());
    let reason = reason_for(&report, "h100-80gb");
    assert_eq!(reason.code(), "kv_cache_too_small", "{reason}");
    assert!(
        reason
            .to_string()
            .contains("64 concurrent sequences of 2048 tokens need 131072")
    );
}

#[test]
fn gpt3_fp8_fits_one_node_of_eight() {
    let report = catalog_plan("gpt3-175b", &with_precision(Precision::Fp8), "h100-80gb");
    let best = report.best().unwrap();
    assert_eq!(best.nodes_per_replica, 1);
    assert!(best.devices_per_replica <= 8);
}

#[test]
fn deepseek_v3_fp8_fits_one_h200_node() {
    let report = catalog_plan("deepseek-v3", &with_precision(Precision::Fp8), "h200");
    let best = report.best().unwrap();
    assert_eq!((best.nodes_per_replica, best.devices_per_replica), (1, 8));
    // MLA: the KV latent is not split across tensor-parallel ranks.
    assert_eq!(best.kv_cache_bytes_per_token, 61 * 576 * 2);
}

#[test]
fn deepseek_v3_on_ascend_refuses_fp8_and_auto_plans_int8_on_two_nodes() {
    let fleet = Fleet::example();
    let report = plan(
        model("deepseek-v3"),
        &with_precision(Precision::Fp8),
        &fleet,
        &on("ascend-910b"),
    )
    .unwrap();
    assert!(report.plans.is_empty());
    assert_eq!(
        reason_for(&report, "ascend-910b").to_string(),
        "ascend-910b does not support fp8 (it supports bf16, int8, int4)"
    );

    let report = plan(
        model("deepseek-v3"),
        &ServingRequest::default(),
        &fleet,
        &on("ascend-910b"),
    )
    .unwrap();
    let best = report.best().unwrap();
    assert_eq!(best.precision, Precision::Int8);
    assert_eq!(
        (
            best.nodes_per_replica,
            best.tensor_parallel,
            best.pipeline_parallel
        ),
        (2, 8, 2)
    );
    assert_eq!(
        best.notes,
        ["deepseek-v3 is published in fp8, which ascend-910b does not support; planned in int8"]
    );
}

#[test]
fn every_catalog_model_has_a_plan_in_the_example_fleet() {
    let fleet = Fleet::example();
    for m in crate::model::catalog() {
        let report = plan(
            m,
            &ServingRequest::default(),
            &fleet,
            &Constraints::default(),
        )
        .unwrap();
        assert!(
            !report.plans.is_empty(),
            "{}: {:#?}",
            m.id,
            report.rejections
        );
        assert_eq!(
            report.plans.len() + report.rejections.len(),
            fleet.pools.len()
        );
    }
}

#[test]
fn auto_precision_order_stays_close_to_the_published_weights() {
    use Precision::*;
    assert_eq!(auto_precisions(Bf16), [Bf16, Fp8, Int8, Int4]);
    assert_eq!(auto_precisions(Fp8), [Fp8, Int8, Bf16, Int4]);
    assert_eq!(auto_precisions(Int4), [Int4, Bf16]);
}

#[test]
fn auto_keeps_bf16_where_it_fits_and_says_when_it_does_not() {
    let report = catalog_plan("llama-3.1-70b", &ServingRequest::default(), "h100-80gb");
    assert_eq!(report.best().unwrap().precision, Precision::Bf16);
    assert!(report.best().unwrap().notes.is_empty());

    // 141 GB of bf16 weights cannot fit one node of 4 × A10 (24 GB).
    let request = ServingRequest {
        concurrency: 4,
        ..ServingRequest::default()
    };
    let report = catalog_plan("llama-3.1-70b", &request, "a10");
    let best = report.best().unwrap();
    assert_eq!(best.precision, Precision::Int4, "{best:#?}");
    assert!(best.notes[0].contains("does not fit this pool; planned in int4"));
}

#[test]
fn pcie_devices_prefer_pipeline_over_tensor_parallelism() {
    // Two devices are needed for llama-3.1-8b at 32k × 16 on L40S; over PCIe
    // the planner splits layers, not heads.
    let request = ServingRequest {
        max_model_len: Some(32768),
        ..with_precision(Precision::Bf16)
    };
    let l40s = catalog_plan("llama-3.1-8b", &request, "l40s");
    let best = l40s.best().unwrap();
    assert!(best.devices_per_replica > 1, "{best:#?}");
    assert_eq!(best.tensor_parallel, 1, "{best:#?}");

    let h100 = catalog_plan(
        "llama-3.1-70b",
        &with_precision(Precision::Bf16),
        "h100-80gb",
    );
    assert_eq!(h100.best().unwrap().pipeline_parallel, 1);
}

#[test]
fn capacity_is_counted_in_free_nodes() {
    let fleet = one_pool(
        "{cloud: aws, region: us-east-1, cluster: c1, name: h100, accelerator: h100-80gb, \
         devicesPerNode: 8, nodesTotal: 4, nodesFree: 1, pricePerDeviceHour: \"6.88 USD\"}",
    );
    let request = ServingRequest {
        concurrency: 64,
        ..with_precision(Precision::Bf16)
    };
    let report = plan(
        model("gpt3-175b"),
        &request,
        &fleet,
        &Constraints::default(),
    )
    .unwrap();
    assert_eq!(
        report.rejections[0].reason.to_string(),
        "needs 2 nodes of 8 devices, pool has 1 free"
    );
}

#[test]
fn small_replicas_share_nodes() {
    let fleet = one_pool(
        "{cloud: aws, region: us-east-1, cluster: c1, name: l40s, accelerator: l40s, \
         devicesPerNode: 8, nodesTotal: 2, nodesFree: 1, pricePerDeviceHour: \"3.77 USD\"}",
    );
    let mut request = ServingRequest {
        replicas: 8,
        ..ServingRequest::default()
    };
    let report = plan(
        model("llama-3.1-8b"),
        &request,
        &fleet,
        &Constraints::default(),
    )
    .unwrap();
    let best = report.best().unwrap();
    assert_eq!(best.devices_per_replica, 1);
    // 8 replicas × 1 device × 3.77 = 30.16 USD per hour, exactly.
    assert_eq!(best.cost_per_hour.unwrap().to_string(), "30.16 USD");

    request.replicas = 9;
    let report = plan(
        model("llama-3.1-8b"),
        &request,
        &fleet,
        &Constraints::default(),
    )
    .unwrap();
    assert_eq!(
        report.rejections[0].reason.to_string(),
        "needs 2 nodes of 8 devices, pool has 1 free"
    );
}

#[test]
fn replicas_use_the_free_part_of_partly_used_nodes() {
    // One node free, two with 3 and 1 devices free: room for 8 + 3 + 1
    // single-device replicas of llama-3.1-8b, no more.
    let fleet = one_pool(
        "{cloud: aws, region: us-east-1, cluster: c1, name: l40s, accelerator: l40s, \
         devicesPerNode: 8, nodesTotal: 4, nodesFree: 1, partlyFree: [3, 1], pricePerDeviceHour: \"3.77 USD\"}",
    );
    let m = model("llama-3.1-8b");
    let fits = ServingRequest {
        replicas: 12,
        ..ServingRequest::default()
    };
    assert_eq!(
        plan(m, &fits, &fleet, &Constraints::default())
            .unwrap()
            .plans
            .len(),
        1
    );
    let too_many = ServingRequest {
        replicas: 13,
        ..ServingRequest::default()
    };
    let report = plan(m, &too_many, &fleet, &Constraints::default()).unwrap();
    assert_eq!(
        report.rejections[0].reason.to_string(),
        "needs 2 nodes of 8 devices, pool has 1 free (and partly used nodes with 3, 1 free devices, too few for a replica)"
    );
}

#[test]
fn plans_rank_by_cost_across_currencies() {
    let fleet = Fleet::from_yaml(
        "exchangeRates: {reference: USD, rates: {CNY: \"0.14\"}}\npools:\n\
         - {cloud: aws, region: us-east-1, cluster: a, name: dear, accelerator: h100-80gb, devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: \"6.88 USD\"}\n\
         - {cloud: aliyun, region: cn-beijing, cluster: b, name: cheap, accelerator: h100-80gb, devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: \"40 CNY\"}\n\
         - {cloud: aws, region: us-east-1, cluster: a, name: unpriced, accelerator: h100-80gb, devicesPerNode: 8, nodesTotal: 1, nodesFree: 1}\n",
    )
    .unwrap();
    let report = plan(
        model("llama-3.1-8b"),
        &ServingRequest::default(),
        &fleet,
        &Constraints::default(),
    )
    .unwrap();
    let order: Vec<_> = report.plans.iter().map(|p| p.pool.name.as_str()).collect();
    // 40 CNY × 0.14 = 5.60 USD < 6.88 USD; unpriced pools rank last.
    assert_eq!(order, ["cheap", "dear", "unpriced"]);
    assert_eq!(
        report.plans.iter().map(|p| p.rank).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn constraints_filter_pools_with_reasons() {
    let fleet = Fleet::example();
    let m = model("llama-3.1-8b");
    let request = ServingRequest::default();

    let only_huawei = Constraints {
        clouds: vec![Cloud::Huaweicloud],
        ..Constraints::default()
    };
    let report = plan(m, &request, &fleet, &only_huawei).unwrap();
    assert!(
        report
            .plans
            .iter()
            .all(|p| p.pool.cloud == Cloud::Huaweicloud)
    );
    assert!(
        report
            .plans
            .iter()
            .all(|p| p.runtime == Runtime::VllmAscend)
    );
    assert!(
        report
            .rejections
            .iter()
            .any(|r| r.reason.code() == "cloud_not_allowed")
    );

    let region = Constraints {
        regions: vec!["cn-beijing".to_owned()],
        ..Constraints::default()
    };
    let report = plan(m, &request, &fleet, &region).unwrap();
    assert!(report.plans.iter().all(|p| p.pool.region == "cn-beijing"));

    // Spot pools: refused by default, ranked first when preferred.
    let report = plan(m, &request, &fleet, &Constraints::default()).unwrap();
    assert!(
        report
            .plans
            .iter()
            .all(|p| p.capacity_type == CapacityType::OnDemand)
    );
    let preferred = Constraints {
        spot: SpotPolicy::Preferred,
        ..Constraints::default()
    };
    let report = plan(m, &request, &fleet, &preferred).unwrap();
    assert_eq!(report.best().unwrap().capacity_type, CapacityType::Spot);

    let pinned = Constraints {
        pool: Some("cce-gy-ascend/snt9b-910b".to_owned()),
        ..Constraints::default()
    };
    let report = plan(m, &request, &fleet, &pinned).unwrap();
    assert_eq!(report.plans.len(), 1);
    assert_eq!(
        report.best().unwrap().pool.to_string(),
        "cce-gy-ascend/snt9b-910b"
    );
}

#[test]
fn budget_rejects_what_costs_more_and_what_cannot_be_compared() {
    let fleet = Fleet::example();
    let m = model("llama-3.1-70b");
    let budget = |text: &str| Constraints {
        max_cost_per_hour: Some(text.parse().unwrap()),
        ..Constraints::default()
    };
    let report = plan(
        m,
        &with_precision(Precision::Bf16),
        &fleet,
        &budget("20 USD"),
    )
    .unwrap();
    for p in &report.plans {
        let usd = comparable(&fleet, Some(Currency::Usd), p.cost_per_hour.unwrap()).unwrap();
        assert!(usd <= 20_000_000, "{p:#?}");
    }
    let over = report
        .rejections
        .iter()
        .find(|r| r.pool.name == "p5-h100")
        .unwrap();
    assert_eq!(
        over.reason.to_string(),
        "costs 27.52 USD per hour, above the budget of 20.00 USD per hour"
    );

    // No rate between USD and CNY in the catalog fleet's terms.
    let fleet = one_pool(
        "{cloud: aliyun, region: cn-beijing, cluster: c, name: p, accelerator: a10, devicesPerNode: 4, \
         nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: \"9.80 CNY\"}",
    );
    let report = plan(
        model("llama-3.2-1b"),
        &ServingRequest::default(),
        &fleet,
        &budget("100 USD"),
    )
    .unwrap();
    assert_eq!(report.rejections[0].reason.code(), "currency_mismatch");
}

#[test]
fn impossible_requests_are_errors_not_empty_reports() {
    let fleet = Fleet::example();
    let m = model("gpt3-175b");
    let cases: [(ServingRequest, Constraints, &str); 5] = [
        (
            ServingRequest {
                max_model_len: Some(4096),
                ..ServingRequest::default()
            },
            Constraints::default(),
            "max model length 4096 exceeds gpt3-175b's context of 2048 tokens",
        ),
        (
            ServingRequest {
                concurrency: 0,
                ..ServingRequest::default()
            },
            Constraints::default(),
            "concurrency must be at least 1",
        ),
        (
            ServingRequest {
                replicas: 0,
                ..ServingRequest::default()
            },
            Constraints::default(),
            "replicas must be at least 1",
        ),
        (
            ServingRequest::default(),
            on("tpu-v5"),
            "unknown accelerator \"tpu-v5\"",
        ),
        (
            ServingRequest::default(),
            Constraints {
                pool: Some("nowhere/none".to_owned()),
                ..Constraints::default()
            },
            "pinned pool \"nowhere/none\" is not in the fleet",
        ),
    ];
    for (request, constraints, message) in cases {
        let err = plan(m, &request, &fleet, &constraints)
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{err}");
    }
}

#[test]
fn weights_that_fit_nowhere_are_explained() {
    let report = catalog_plan("deepseek-v3", &with_precision(Precision::Bf16), "a10");
    let reason = reason_for(&report, "a10");
    assert_eq!(reason.code(), "weights_do_not_fit");
    let text = reason.to_string();
    assert!(
        text.starts_with("deepseek-v3 in bf16 has 1249.8 GiB of weights"),
        "{text}"
    );
    assert!(text.contains("4 devices on 1 node"), "{text}");
}
