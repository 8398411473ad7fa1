//! Failover across clouds: the pool a deployment was placed on becomes
//! unusable (its nodes go NotReady) right after placement, its pods stay
//! Unschedulable, and after the configured time the hub moves it to a pool
//! of another cluster on another cloud: the old ModelDeployment is gone,
//! the new one runs, and both steps are recorded. With nowhere else to go
//! it stays, and that is recorded once. Each test runs on SQLite and, when
//! `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use axum::http::StatusCode;
use kube::api::Api;
use modelfleet_api::ApiSettings;
use modelfleet_api::identity::Scope;
use modelfleet_api::ids::{DeploymentId, TenantId};
use modelfleet_api::store::EventKind;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::crd::ModelDeployment;
use serde_json::json;
use support::two_clouds::{self, CHEAP, DEAR, row};
use support::{Hub, eventually, test_settings};

fn settings() -> ApiSettings {
    ApiSettings {
        // Placement uses what it listed a moment ago, so the deployment
        // lands on the pool that fails right after.
        pool_max_age_seconds: 3600,
        failover_after_seconds: 1,
        ..test_settings()
    }
}

async fn start(db: TestDb, with_other_cloud: bool) -> Hub {
    two_clouds::start(db, with_other_cloud, settings()).await
}

/// Places `chat` on the cheap pool, then takes that pool's nodes down.
async fn place_then_break(hub: &Hub, key: &str) -> DeploymentId {
    let plans = hub
        .post("/api/v1/plans", key, json!({"model": "llama-3.1-8b"}))
        .await;
    assert_eq!(plans.status, StatusCode::OK, "{:#}", plans.body);
    let cheap = hub.sandbox(CHEAP);
    for node in cheap.nodes.nodes() {
        cheap.nodes.node_not_ready(node).await.unwrap();
    }
    let reply = hub
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": "chat", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    assert_eq!(
        reply.body["deployment"]["cluster"], CHEAP,
        "{:#}",
        reply.body
    );
    reply.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn an_unschedulable_deployment_moves_to_another_cloud(db: TestDb) {
    let hub = start(db, true).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    let tenant: TenantId = tenant.parse().unwrap();
    let id = place_then_break(&hub, &key).await;
    let background = hub.background();

    let moved = eventually("the deployment moves to the other cloud", || async {
        let d = row(&hub, id).await;
        (d.cluster == DEAR).then_some(d)
    })
    .await;
    assert_eq!(moved.pool, "l40s");
    assert!(moved.deleted_at.is_none());

    let old: Api<ModelDeployment> = Api::namespaced(hub.sandbox(CHEAP).kube.clone(), "mf-acme");
    eventually("the old ModelDeployment is gone", || async {
        old.get_opt("chat").await.unwrap().is_none().then_some(())
    })
    .await;
    let new: Api<ModelDeployment> = Api::namespaced(hub.sandbox(DEAR).kube.clone(), "mf-acme");
    let md = new
        .get("chat")
        .await
        .expect("written into the other cluster");
    assert_eq!(md.spec.placement.pool.as_deref(), Some("ali-b/l40s"));
    assert_eq!(md.spec.model, "llama-3.1-8b");

    let ready = eventually("it runs on the other cloud", || async {
        let d = row(&hub, id).await;
        (d.phase == modelfleet_core::crd::Phase::Ready).then_some(d)
    })
    .await;
    assert_eq!((ready.cluster.as_str(), ready.ready_replicas), (DEAR, 1));
    let shown = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
    assert_eq!(shown.body["pool"], "ali-b/l40s", "{:#}", shown.body);

    let events = eventually("both steps are recorded", || async {
        let events = hub
            .store
            .deployment_events(Scope::All, tenant, id)
            .await
            .unwrap();
        (events.len() >= 2).then_some(events)
    })
    .await;
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::FailoverPlaced, EventKind::FailoverRemoved],
        "{events:#?}"
    );
    let placed = &events[0];
    assert_eq!(
        (
            placed.from_cluster.as_deref(),
            placed.from_pool.as_deref(),
            placed.to_cluster.as_deref(),
            placed.to_pool.as_deref()
        ),
        (Some(CHEAP), Some("l40s"), Some(DEAR), Some("l40s"))
    );
    // Why: the scheduler's own words, as the operator reported them.
    assert!(
        placed.reason.contains("unschedulable on aws-a/l40s")
            && placed.reason.contains("not ready"),
        "{}",
        placed.reason
    );

    // The quota counts it once, on its new pool.
    let quota = hub.get("/api/v1/quota", &key).await;
    let total = quota.body["usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["limit"] == "total devices")
        .unwrap()
        .clone();
    assert_eq!(total["inUse"], ready.devices_per_replica.to_string());
    background.stop().await;
}

async fn with_nowhere_else_to_go_it_stays_and_that_is_recorded_once(db: TestDb) {
    let hub = start(db, false).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    let tenant: TenantId = tenant.parse().unwrap();
    let id = place_then_break(&hub, &key).await;
    let background = hub.background();

    let events = eventually("failover records that nothing else fits", || async {
        let events = hub
            .store
            .deployment_events(Scope::All, tenant, id)
            .await
            .unwrap();
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events[0].kind, EventKind::FailoverStuck, "{events:#?}");
    assert!(
        events[0].reason.contains("no pool of another cluster"),
        "{}",
        events[0].reason
    );
    // Several more passes (the pass interval is a quarter of a second
    // here) find the same: still one record, still where it was.
    for _ in 0..3 {
        modelfleet_api::failover::pass(hub.state.hub())
            .await
            .unwrap();
    }
    let again = hub
        .store
        .deployment_events(Scope::All, tenant, id)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "{again:#?}");
    let d = row(&hub, id).await;
    assert_eq!(d.cluster, CHEAP);
    assert!(d.unschedulable_since.is_some());
    background.stop().await;
}

modelfleet_api::store_tests!(
    an_unschedulable_deployment_moves_to_another_cloud,
    with_nowhere_else_to_go_it_stays_and_that_is_recorded_once,
);
