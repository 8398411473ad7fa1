use super::*;
use crate::crd::{ModelDeploymentStatus, PlanStatus};

/// Two H100 pools of cluster `c`, `cheap` and `dear`, with `free` of their
/// two nodes free each.
fn two_pools(free: u32) -> Fleet {
    Fleet::from_yaml(&format!(
        "pools:\n\
         - {{cloud: aws, region: us-east-1, cluster: c, name: cheap, accelerator: h100-80gb, \
            devicesPerNode: 8, nodesTotal: 2, nodesFree: {free}, pricePerDeviceHour: \"5.00 USD\"}}\n\
         - {{cloud: aws, region: us-east-1, cluster: c, name: dear, accelerator: h100-80gb, \
            devicesPerNode: 8, nodesTotal: 2, nodesFree: {free}, pricePerDeviceHour: \"7.00 USD\"}}\n"
    ))
    .unwrap()
}

fn llama70() -> ModelDeployment {
    ModelDeployment::test("llama70")
        .model("llama-3.1-70b")
        .precision("bf16")
}

fn planned(outcome: Outcome) -> Chosen {
    match outcome {
        Outcome::Planned(chosen) => *chosen,
        other => panic!("not planned: {other:?}"),
    }
}

/// `md` as the operator left it after running it on `pool`.
fn running_on(mut md: ModelDeployment, pool: &str, fleet: &Fleet) -> ModelDeployment {
    let only: Fleet = Fleet {
        pools: fleet
            .pools
            .iter()
            .filter(|p| p.name == pool)
            .cloned()
            .collect(),
        ..fleet.clone()
    };
    let chosen = planned(choose(&md, &only, false));
    md.status = Some(ModelDeploymentStatus {
        plan: Some(PlanStatus::from(&chosen.plan)),
        ..ModelDeploymentStatus::default()
    });
    md
}

#[test]
fn a_new_deployment_lands_on_the_cheapest_pool_with_free_devices() {
    let chosen = planned(choose(&llama70(), &two_pools(2), false));
    assert_eq!(chosen.pool.name, "cheap");
    assert_eq!(chosen.plan.pool.to_string(), "c/cheap");
    assert_eq!(chosen.accelerator.id, "h100-80gb");
    assert_eq!(chosen.waiting_for_capacity, None);
}

#[test]
fn a_running_deployment_stays_on_its_pool_while_the_pool_holds_it() {
    let fleet = two_pools(2);
    let md = running_on(llama70(), "dear", &fleet);
    let chosen = planned(choose(&md, &fleet, false));
    assert_eq!(chosen.pool.name, "dear", "a cheaper pool does not move it");

    // Once its pool is gone, it moves to the best of the others.
    let without_dear = Fleet {
        pools: vec![fleet.pools[0].clone()],
        ..fleet.clone()
    };
    assert_eq!(
        planned(choose(&md, &without_dear, false)).pool.name,
        "cheap"
    );

    // A pool pinned in the spec wins over where it runs.
    let pinned = running_on(llama70().pool("c/cheap"), "cheap", &fleet);
    let mut pinned_elsewhere = pinned.clone();
    pinned_elsewhere.status = md.status.clone();
    assert_eq!(
        planned(choose(&pinned_elsewhere, &fleet, false)).pool.name,
        "cheap"
    );
}

#[test]
fn without_free_devices_it_is_planned_on_the_pools_shape_and_waits() {
    let chosen = planned(choose(&llama70(), &two_pools(0), false));
    assert_eq!(chosen.pool.name, "cheap");
    let why = chosen.waiting_for_capacity.expect("waits for capacity");
    assert!(why.contains("c/cheap") && why.contains("c/dear"), "{why}");

    // Its own pool's shape first, as with free devices.
    let md = running_on(llama70(), "dear", &two_pools(2));
    assert_eq!(planned(choose(&md, &two_pools(0), false)).pool.name, "dear");
}

#[test]
fn a_multi_node_replica_needs_the_leader_worker_set_api() {
    let md = ModelDeployment::test("gpt3")
        .model("gpt3-175b")
        .precision("bf16")
        .concurrency(64)
        .on("h100-80gb");
    let fleet = two_pools(2);
    let chosen = planned(choose(&md, &fleet, true));
    assert_eq!(chosen.plan.nodes_per_replica, 2);

    let Outcome::Unplannable {
        reason: why,
        message,
    } = choose(&md, &fleet, false)
    else {
        panic!("planned without LeaderWorkerSet")
    };
    assert_eq!(why, reason::NO_FEASIBLE_PLAN);
    assert!(
        message.contains("needs 2 nodes per replica")
            && message.contains("leaderworkerset.x-k8s.io/v1"),
        "{message}"
    );
}

#[test]
fn a_spec_that_cannot_be_planned_says_so() {
    let Outcome::Unplannable {
        reason: why,
        message,
    } = choose(
        &ModelDeployment::test("x").model("no-such-model"),
        &two_pools(2),
        true,
    )
    else {
        panic!("planned an unknown model")
    };
    assert_eq!(why, reason::INVALID_SPEC);
    assert!(message.contains("no-such-model"), "{message}");

    let Outcome::Unplannable { reason: why, .. } = choose(&llama70(), &Fleet::default(), true)
    else {
        panic!("planned on no pools")
    };
    assert_eq!(why, reason::NO_FEASIBLE_PLAN);
}
