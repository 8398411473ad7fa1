//! Quota races: many admissions (or resizes) at once must never together
//! exceed a limit, on either backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Barrier;

use modelfleet_core::quota::{Limit, Quota};

use super::{member, platform, tenant};
use crate::identity::{Role, Scope};
use crate::store::testing::TestDb;
use crate::store::{DeploymentRequest, Store, StoreError};

/// How long a winning transaction stays open before it commits.
const HOLD: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Tally {
    admitted: AtomicU32,
    rejected: AtomicU32,
}

/// 200 concurrent admissions of 3-device deployments against a quota of 16
/// H100 devices: exactly 5 fit (15 devices), 195 are refused by that limit,
/// and the one device left over is not given to anyone.
async fn two_hundred_concurrent_admissions_admit_exactly_what_fits(db: TestDb) {
    let store = &db.store;
    let a = tenant(
        store,
        "acme",
        Quota::unlimited().accelerator_devices("h100-80gb", 16),
    )
    .await;
    let tally = Arc::new(Tally::default());
    let start = Arc::new(Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (store, tally, start) = (store.clone(), tally.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut tx = store.begin(&member(a.id, Role::Developer)).await.unwrap();
                let request = DeploymentRequest::test(&format!("d{i}"), 3);
                match tx.admit_deployment(a.id, request).await {
                    Ok(_) => {
                        // Hold the transaction open a little, as the hub
                        // does while it audits: without the tenant lock,
                        // others would now count without this row.
                        tokio::time::sleep(HOLD).await;
                        tx.commit().await.unwrap();
                        tally.admitted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(StoreError::Quota(q)) => {
                        assert_eq!(q.limit, Limit::AcceleratorDevices("h100-80gb".into()));
                        tx.rollback().await.unwrap();
                        tally.rejected.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(other) => panic!("admission {i} failed: {other:?}"),
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(tally.admitted.load(Ordering::SeqCst), 5);
    assert_eq!(tally.rejected.load(Ordering::SeqCst), 195);
    let usage = store.usage(Scope::All, a.id).await.unwrap();
    assert_eq!((usage.devices_of("h100-80gb"), usage.deployments), (15, 5));
}

/// 40 one-device deployments under a 50-device total, then 40 concurrent
/// resizes to 2 replicas: exactly 10 can grow.
async fn concurrent_resizes_grow_exactly_what_fits(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::unlimited().total_devices(50)).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let d = tx
            .admit_deployment(a.id, DeploymentRequest::test(&format!("d{i}"), 1))
            .await
            .unwrap();
        ids.push(d.id);
    }
    tx.commit().await.unwrap();
    let grown = Arc::new(AtomicU32::new(0));
    let start = Arc::new(Barrier::new(ids.len()));
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let (store, grown, start): (Store, _, _) =
                (store.clone(), grown.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut tx = store.begin(&member(a.id, Role::Developer)).await.unwrap();
                match tx.resize_deployment(id, 2).await {
                    Ok(_) => {
                        tokio::time::sleep(HOLD).await;
                        tx.commit().await.unwrap();
                        grown.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(StoreError::Quota(q)) => assert_eq!(q.limit, Limit::TotalDevices),
                    Err(other) => panic!("resize failed: {other:?}"),
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(grown.load(Ordering::SeqCst), 10);
    assert_eq!(
        store.usage(Scope::All, a.id).await.unwrap().total_devices(),
        50
    );
}

crate::store_tests!(
    two_hundred_concurrent_admissions_admit_exactly_what_fits,
    concurrent_resizes_grow_exactly_what_fits,
);
