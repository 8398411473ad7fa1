//! A cluster that stops answering (its API server cut off, as a network
//! partition would) for longer than `cluster_lost_after_seconds` is lost:
//! its replica intervals are closed at the last time the hub saw them, not
//! when it answers again; its deployments stop showing as running; those
//! the hub placed fail over where they may; each step is in the audit
//! trail. When it answers again, pods still running there are billed from
//! that moment, and a ModelDeployment moved meanwhile is deleted there.
//! Each test runs on SQLite and, when `MODELFLEET_TEST_DATABASE_URL` is
//! set, on PostgreSQL.

mod support;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use kube::api::Api;
use modelfleet_api::ApiSettings;
use modelfleet_api::identity::Scope;
use modelfleet_api::ids::{DeploymentId, TenantId};
use modelfleet_api::store::EventKind;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::crd::{ModelDeployment, Phase};
use serde_json::json;
use support::two_clouds::{self, CHEAP, DEAR, intervals, row};
use support::{Hub, eventually, test_settings};

fn settings() -> ApiSettings {
    ApiSettings {
        cluster_lost_after_seconds: 2,
        failover_after_seconds: 1,
        ..test_settings()
    }
}

async fn start(db: TestDb, with_other_cloud: bool) -> Hub {
    two_clouds::start(db, with_other_cloud, settings()).await
}

/// Deploys `chat` (it lands on the cheap cluster) and waits until it is
/// Ready there, billed, and the cluster seen since.
async fn deploy_ready(hub: &Hub, key: &str, tenant: TenantId) -> DeploymentId {
    let reply = hub
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": "chat", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    assert_eq!(reply.body["deployment"]["cluster"], CHEAP);
    let id: DeploymentId = reply.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    eventually("it runs and is billed on the cheap cluster", || async {
        let ready = row(hub, id).await.phase == Phase::Ready;
        let open = intervals(hub, tenant, id)
            .await
            .iter()
            .any(|i| i.released_at.is_none());
        (ready && open).then_some(())
    })
    .await;
    let opened = intervals(hub, tenant, id).await[0].allocated_at;
    eventually("the cluster is seen after that", || async {
        let cluster = hub.store.cluster_by_name(CHEAP).await.unwrap();
        cluster.last_seen_at.filter(|t| *t > opened).map(|_| ())
    })
    .await;
    id
}

/// Cuts the cheap cluster off; returns the moment just before.
fn cut_off(hub: &Hub) -> DateTime<Utc> {
    let at = Utc::now();
    hub.sandbox(CHEAP).server.faults().unreachable(true);
    at
}

async fn wait_lost(hub: &Hub) -> DateTime<Utc> {
    eventually("the hub takes the cluster as lost", || async {
        hub.store.cluster_by_name(CHEAP).await.unwrap().lost_at
    })
    .await
}

async fn audit_mentions(hub: &Hub, needle: &str) -> bool {
    hub.store
        .audit_records_after(0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .any(|r| r.contains("\"clusters\"") && r.contains(needle))
}

async fn a_lost_cluster_is_billed_until_last_seen_and_its_deployment_fails_over(db: TestDb) {
    let hub = start(db, true).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    let tenant: TenantId = tenant.parse().unwrap();
    let background = hub.background();
    let id = deploy_ready(&hub, &key, tenant).await;

    let cut = cut_off(&hub);
    let lost_at = wait_lost(&hub).await;
    let cluster = hub.store.cluster_by_name(CHEAP).await.unwrap();
    let last_seen = cluster.last_seen_at.expect("seen before it was cut off");
    assert!(
        last_seen <= cut,
        "last seen {last_seen} after the cut {cut}"
    );
    assert!(lost_at > cut);

    // Billed until the hub last saw the pod, not until it was declared
    // lost, nor until the cluster answers again.
    let closed = intervals(&hub, tenant, id).await;
    assert_eq!(closed.len(), 1, "{closed:#?}");
    assert_eq!(closed[0].released_at, Some(last_seen));
    assert!(audit_mentions(&hub, "lost: unreachable for more than 2 s").await);

    // Placed by the hub: it moves to the other cloud, from the
    // ModelDeployment the hub kept (the lost cluster cannot be read).
    let moved = eventually("it fails over to the other cloud and runs", || async {
        let d = row(&hub, id).await;
        (d.cluster == DEAR && d.phase == Phase::Ready).then_some(d)
    })
    .await;
    assert_eq!(moved.ready_replicas, 1);
    let events = hub
        .store
        .deployment_events(Scope::All, tenant, id)
        .await
        .unwrap();
    let placed = events
        .iter()
        .find(|e| e.kind == EventKind::FailoverPlaced)
        .unwrap_or_else(|| panic!("no failover-placed event: {events:#?}"));
    assert_eq!(placed.from_cluster.as_deref(), Some(CHEAP));
    assert!(
        placed.reason.contains("has not answered"),
        "{}",
        placed.reason
    );
    let moves = events
        .iter()
        .filter(|e| e.kind == EventKind::FailoverPlaced)
        .count();

    // It answers again: the ModelDeployment that moved is deleted there,
    // and none of the time it was cut off is billed.
    let healed = Utc::now();
    hub.sandbox(CHEAP).server.faults().unreachable(false);
    eventually("the cluster is back", || async {
        let c = hub.store.cluster_by_name(CHEAP).await.unwrap();
        c.lost_at.is_none().then_some(())
    })
    .await;
    let old: Api<ModelDeployment> = Api::namespaced(hub.sandbox(CHEAP).kube.clone(), "mf-acme");
    eventually("the moved ModelDeployment is deleted there", || async {
        old.get_opt("chat").await.unwrap().is_none().then_some(())
    })
    .await;
    let all = eventually("no interval stays open on the old cluster", || async {
        let all = intervals(&hub, tenant, id).await;
        all.iter()
            .all(|i| i.cluster != CHEAP || i.released_at.is_some())
            .then_some(all)
    })
    .await;
    for i in all.iter().filter(|i| i.cluster == CHEAP) {
        let (from, to) = (i.allocated_at, i.released_at.unwrap());
        assert!(
            to <= cut || from >= healed,
            "billed while cut off: {from} – {to} (cut {cut}, healed {healed})"
        );
    }
    assert!(audit_mentions(&hub, "answers again").await);
    assert_eq!(row(&hub, id).await.cluster, DEAR, "it stays where it moved");
    let again = hub
        .store
        .deployment_events(Scope::All, tenant, id)
        .await
        .unwrap();
    let moves_now = again
        .iter()
        .filter(|e| e.kind == EventKind::FailoverPlaced)
        .count();
    assert_eq!(moves_now, moves, "it failed over once: {again:#?}");
    background.stop().await;
}

async fn a_lost_cluster_that_answers_again_is_billed_again_from_then(db: TestDb) {
    let hub = start(db, false).await;
    let (tenant, key) = hub.tenant("acme", support::roomy()).await;
    let tenant: TenantId = tenant.parse().unwrap();
    let background = hub.background();
    let id = deploy_ready(&hub, &key, tenant).await;

    let cut = cut_off(&hub);
    wait_lost(&hub).await;
    // Not shown as running while nobody can see it; with nowhere else to
    // go it stays, and says why.
    let d = row(&hub, id).await;
    assert_eq!((d.phase, d.ready_replicas), (Phase::Failed, 0));
    let message = d.status_message.unwrap_or_default();
    assert!(message.contains("has not answered"), "{message}");
    let shown = hub.get(&format!("/api/v1/deployments/{id}"), &key).await;
    assert_ne!(shown.body["phase"], "Ready", "{:#}", shown.body);
    let clusters = hub.get("/api/v1/clusters", &hub.admin).await;
    assert_eq!(clusters.status, StatusCode::OK, "{:#}", clusters.body);
    let listed = clusters.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == CHEAP)
        .cloned()
        .unwrap();
    assert!(listed["lostAt"].is_string(), "{listed:#}");

    let healed = Utc::now();
    hub.sandbox(CHEAP).server.faults().unreachable(false);
    let all = eventually("it runs and is billed again", || async {
        let ready = row(&hub, id).await.phase == Phase::Ready;
        let all = intervals(&hub, tenant, id).await;
        (ready && all.len() == 2 && all[1].released_at.is_none()).then_some(all)
    })
    .await;
    // The same pod, twice: until it was last seen, and from when it was
    // seen again; the time between is billed to nobody.
    assert_eq!(all[0].pod_uid, all[1].pod_uid);
    assert!(all[0].released_at.unwrap() <= cut);
    assert!(all[1].allocated_at >= healed);
    assert_eq!(row(&hub, id).await.cluster, CHEAP);
    // Recorded back once the pass that found it so has finished.
    eventually("the cluster is no longer lost", || async {
        let c = hub.store.cluster_by_name(CHEAP).await.unwrap();
        c.lost_at.is_none().then_some(())
    })
    .await;
    assert!(audit_mentions(&hub, "answers again").await);
    background.stop().await;
}

modelfleet_api::store_tests!(
    a_lost_cluster_is_billed_until_last_seen_and_its_deployment_fails_over,
    a_lost_cluster_that_answers_again_is_billed_again_from_then,
);
