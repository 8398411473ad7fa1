//! What cluster sync and failover write: device intervals (each pod once,
//! closed once), deployment events, status guarded by revision, and moves
//! that release and admit in one transaction.

use modelfleet_core::crd::{Phase, PodWeights, WeightsFrom};

use chrono::TimeDelta;
use modelfleet_core::precision::Precision;
use modelfleet_core::quota::{Limit, Quota};

use super::{member, platform, tenant, usd};
use crate::identity::{Role, Scope};
use crate::ids::DeploymentId;
use crate::store::testing::TestDb;
use crate::store::{
    DeploymentRequest, DeploymentStatus, EventKind, NewEvent, NewInterval, Relocation, StoreError,
    now,
};

fn interval(d: &crate::store::Deployment, uid: &str) -> NewInterval {
    NewInterval {
        deployment: d.id,
        tenant: d.tenant,
        cluster: d.cluster.clone(),
        namespace: d.namespace.clone(),
        pod_name: format!("pod-{uid}"),
        pod_uid: uid.into(),
        node: "node-1".into(),
        pool: d.pool.clone(),
        accelerator: d.accelerator.clone(),
        devices: d.devices_per_replica,
        allocated_at: now() - TimeDelta::seconds(30),
        location: None,
    }
}

async fn intervals_are_recorded_once_and_closed_once(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::unlimited()).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    let d = tx
        .admit_deployment(a.id, DeploymentRequest::test("llama", 8))
        .await
        .unwrap();
    assert!(tx.open_interval(&interval(&d, "u1")).await.unwrap());
    assert!(
        !tx.open_interval(&interval(&d, "u1")).await.unwrap(),
        "the same pod again adds nothing"
    );
    assert!(tx.open_interval(&interval(&d, "u2")).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(store.open_intervals(&d.cluster).await.unwrap().len(), 2);
    assert!(store.open_intervals("elsewhere").await.unwrap().is_empty());

    let mut tx = store.begin(&platform()).await.unwrap();
    // A clock that says earlier than the start closes it at its start.
    let early = now() - TimeDelta::hours(1);
    assert!(tx.close_interval(&d.cluster, "u1", early).await.unwrap());
    assert!(
        !tx.close_interval(&d.cluster, "u1", now()).await.unwrap(),
        "an end, once written, stays"
    );
    tx.commit().await.unwrap();
    let all = store
        .deployment_intervals(Scope::All, a.id, d.id)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let closed = all.iter().find(|i| i.pod_uid == "u1").unwrap();
    assert_eq!(closed.released_at, Some(closed.allocated_at));
    assert_eq!(closed.devices, 8);
    assert!(
        all.iter()
            .any(|i| i.pod_uid == "u2" && i.released_at.is_none())
    );

    // Another tenant sees none of them and cannot write them.
    let b = tenant(store, "other", Quota::unlimited()).await;
    assert!(matches!(
        store
            .deployment_intervals(Scope::Tenant(b.id), a.id, d.id)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let mut tx = store.begin(&member(b.id, Role::TenantAdmin)).await.unwrap();
    assert!(tx.open_interval(&interval(&d, "u3")).await.is_err());
    assert!(tx.close_interval(&d.cluster, "u2", now()).await.is_err());
}

async fn a_move_releases_and_admits_in_one_step(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::unlimited().total_devices(8)).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    let d = tx
        .admit_deployment(a.id, DeploymentRequest::test("llama", 8))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let to = |devices| Relocation {
        cluster: "aliyun-hz".into(),
        pool: "gn8-h100".into(),
        accelerator: "h100-80gb".into(),
        devices_per_replica: devices,
        precision: Precision::Bf16,
        replica_cost_per_hour: usd("20"),
    };

    // Sixteen devices do not fit 8 even with its own 8 released.
    let mut tx = store.begin(&platform()).await.unwrap();
    match tx.move_deployment(d.id, Some(d.revision), &to(16)).await {
        Err(StoreError::Quota(q)) => assert_eq!(q.limit, Limit::TotalDevices),
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    tx.rollback().await.unwrap();
    let unchanged = store.deployment(Scope::All, d.id).await.unwrap();
    assert_eq!(unchanged, d, "a refused move changes nothing");

    // A stale revision is refused: the row changed since it was read.
    let mut tx = store.begin(&platform()).await.unwrap();
    assert!(matches!(
        tx.move_deployment(d.id, Some(d.revision + 1), &to(8)).await,
        Err(StoreError::Conflict { .. })
    ));
    drop(tx);

    // Eight devices move although the quota never had room for both.
    let mut tx = store.begin(&platform()).await.unwrap();
    let moved = tx
        .move_deployment(d.id, Some(d.revision), &to(8))
        .await
        .unwrap();
    tx.record_event(&NewEvent {
        deployment: d.id,
        tenant: a.id,
        kind: EventKind::FailoverPlaced,
        from: Some((d.cluster.clone(), d.pool.clone())),
        to: Some(("aliyun-hz".into(), "gn8-h100".into())),
        reason: "unschedulable".into(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (
            moved.cluster.as_str(),
            moved.pool.as_str(),
            moved.phase.as_str()
        ),
        ("aliyun-hz", "gn8-h100", "Pending")
    );
    assert_eq!(moved.replica_cost_per_hour, usd("20"));
    assert!(moved.resource_uid.is_none() && moved.unschedulable_since.is_none());
    assert_eq!(
        store.usage(Scope::All, a.id).await.unwrap().total_devices(),
        8
    );
    let events = store
        .deployment_events(Scope::All, a.id, d.id)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].to_pool.as_deref(), Some("gn8-h100"));
}

async fn sync_status_is_guarded_by_revision(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::unlimited()).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    let d = tx
        .admit_deployment(a.id, DeploymentRequest::test("llama", 8))
        .await
        .unwrap();
    let stuck = DeploymentStatus {
        phase: Phase::Scheduling,
        ready_replicas: 0,
        message: Some("0/1 nodes are available".into()),
        resource_uid: Some("uid-1".into()),
        conditions: None,
        endpoint: None,
        unschedulable: true,
        weights: None,
    };
    let first = tx
        .record_synced_status(d.id, d.revision, &stuck)
        .await
        .unwrap()
        .expect("current revision");
    let since = first.unschedulable_since.expect("flagged");
    assert!(
        tx.record_synced_status(d.id, d.revision, &stuck)
            .await
            .unwrap()
            .is_none(),
        "an observation of an older revision is dropped"
    );
    let again = tx
        .record_synced_status(d.id, first.revision, &stuck)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.unschedulable_since,
        Some(since),
        "kept while it lasts"
    );
    let weights = vec![PodWeights {
        pod: "llama-0".into(),
        from: WeightsFrom::NodeCache,
        bytes: 16_060_522_752,
    }];
    let recovered = DeploymentStatus {
        phase: Phase::Ready,
        ready_replicas: 1,
        unschedulable: false,
        weights: Some(weights.clone()),
        ..stuck.clone()
    };
    let ready = tx
        .record_synced_status(d.id, again.revision, &recovered)
        .await
        .unwrap()
        .unwrap();
    assert!(ready.unschedulable_since.is_none());
    assert_eq!(
        ready.weights, weights,
        "where the weights came from is kept"
    );
    let kept = tx
        .record_synced_status(
            d.id,
            ready.revision,
            &DeploymentStatus {
                weights: None,
                ..recovered
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.weights, weights, "None keeps what was recorded");
    tx.commit().await.unwrap();
    assert!(store.unschedulable_deployments().await.unwrap().is_empty());
}

/// A cluster is removed only once it holds nothing: not while it holds a
/// live deployment (named in the refusal), not while a deleted one's
/// replica is still open, never a sandbox cluster; and only by a platform
/// admin. The removal is audited with the change.
async fn a_cluster_is_removed_only_once_it_holds_nothing(db: TestDb) {
    use crate::store::NewCluster;
    use crate::{Keyring, Secret, SecretKey};
    use modelfleet_core::fleet::Cloud;
    let store = &db.store;
    let keyring = Keyring::new(SecretKey::generate().unwrap());
    let mut tx = store.begin(&platform()).await.unwrap();
    let sandbox = tx
        .register_cluster(
            NewCluster {
                name: "sandbox-a".into(),
                cloud: Cloud::Aws,
                region: "us-east-1".into(),
                kubeconfig: None,
            },
            &keyring,
        )
        .await
        .unwrap();
    let cluster = tx
        .register_cluster(
            NewCluster {
                name: "aws-us-east-1".into(),
                cloud: Cloud::Aws,
                region: "us-east-1".into(),
                kubeconfig: Some(Secret::new("apiVersion: v1\nkind: Config\n".to_owned())),
            },
            &keyring,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let a = tenant(store, "acme", Quota::unlimited()).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    let d = tx
        .admit_deployment(a.id, DeploymentRequest::test("llama", 8))
        .await
        .unwrap();
    assert!(tx.open_interval(&interval(&d, "u1")).await.unwrap());
    tx.commit().await.unwrap();

    let remove = |id| async move {
        let mut tx = store.begin(&platform()).await.unwrap();
        let removed = tx.remove_cluster(id).await;
        if removed.is_ok() {
            tx.commit().await.unwrap();
        }
        removed
    };
    let refused = remove(cluster.id).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::InUse { reason, .. }
            if reason.contains("1 deployment(s) (acme/llama)")),
        "{refused}"
    );
    let refused = remove(sandbox.id).await.unwrap_err();
    assert!(refused.to_string().contains("sandbox"), "{refused}");
    // Not a tenant's to remove.
    let mut tx = store.begin(&member(a.id, Role::TenantAdmin)).await.unwrap();
    assert!(matches!(
        tx.remove_cluster(cluster.id).await,
        Err(StoreError::Forbidden)
    ));
    drop(tx);

    // Deleted, but its replica not yet seen gone: still refused.
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.release_deployment(d.id).await.unwrap();
    tx.commit().await.unwrap();
    let refused = remove(cluster.id).await.unwrap_err();
    assert!(refused.to_string().contains("1 replica(s)"), "{refused}");
    let mut tx = store.begin(&platform()).await.unwrap();
    assert!(tx.close_interval(&d.cluster, "u1", now()).await.unwrap());
    tx.commit().await.unwrap();

    let removed = remove(cluster.id).await.unwrap();
    assert_eq!(removed.name, "aws-us-east-1");
    assert!(matches!(
        store.cluster(cluster.id).await,
        Err(StoreError::NotFound(_))
    ));
    // The deployment's history keeps the cluster's name.
    let history = store
        .deployment_intervals(Scope::All, a.id, d.id)
        .await
        .unwrap();
    assert_eq!(history[0].cluster, "aws-us-east-1");
    let records = store.audit_records_after(0, 10_000).await.unwrap();
    assert!(records.iter().any(|r| r.event.verb == "delete"
        && r.event.object_ref.resource == "clusters"
        && r.event.object_ref.name.as_deref() == Some("aws-us-east-1")));
    assert!(matches!(
        remove(cluster.id).await,
        Err(StoreError::NotFound(_))
    ));
}

/// What a sync pass reads the rows its objects name with: live, released
/// and moved rows in one query, ids with no row left out, and as many ids
/// as a large cluster names (one parameter, far from any limit).
async fn deployments_by_id_reads_every_named_row_at_once(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::unlimited()).await;
    let b = tenant(store, "globex", Quota::unlimited()).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    let live = tx
        .admit_deployment(a.id, DeploymentRequest::test("live", 1))
        .await
        .unwrap();
    let released = tx
        .admit_deployment(a.id, DeploymentRequest::test("released", 1))
        .await
        .unwrap();
    let moved = tx
        .admit_deployment(
            b.id,
            DeploymentRequest {
                cluster: "elsewhere".into(),
                ..DeploymentRequest::test("moved", 1)
            },
        )
        .await
        .unwrap();
    let released = tx.release_deployment(released.id).await.unwrap();
    tx.commit().await.unwrap();

    assert!(store.deployments_by_id(&[]).await.unwrap().is_empty());
    let mut ids: Vec<DeploymentId> = (0..5000).map(|_| DeploymentId::new()).collect();
    ids.extend([moved.id, released.id, live.id, live.id]);
    let mut found = store.deployments_by_id(&ids).await.unwrap();
    found.sort_by(|x, y| x.name.cmp(&y.name));
    // Each as `deployment` reads it, whichever tenant and cluster.
    let mut expected = Vec::new();
    for id in [live.id, moved.id, released.id] {
        expected.push(store.deployment(Scope::All, id).await.unwrap());
    }
    assert_eq!(found, expected);
    assert!(found[2].deleted_at.is_some());
    assert_eq!(found[1].cluster, "elsewhere");
}

crate::store_tests!(
    deployments_by_id_reads_every_named_row_at_once,
    intervals_are_recorded_once_and_closed_once,
    a_move_releases_and_admits_in_one_step,
    a_cluster_is_removed_only_once_it_holds_nothing,
    sync_status_is_guarded_by_revision,
);
