use modelfleet_core::crd::Phase;
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::quota::{Limit, Quota};

use super::{member, platform, tenant, usd};
use crate::identity::{Role, Scope};
use crate::store::testing::TestDb;
use crate::store::{DeploymentRequest, DeploymentStatus, StoreError};

fn quota() -> Quota {
    Quota::unlimited()
        .accelerator_devices("h100-80gb", 16)
        .accelerator_devices("ascend-910b", 8)
        .total_devices(20)
        .deployments(4)
        .max_model_params(ParamCount::billions(100))
        .spend_per_hour(usd("60"))
}

async fn admission_checks_every_limit_and_says_which(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", quota()).await;
    let dev = member(a.id, Role::Developer);
    let mut tx = store.begin(&dev).await.unwrap();
    let first = tx
        .admit_deployment(
            a.id,
            DeploymentRequest {
                replicas: 3,
                ..DeploymentRequest::test("llama", 4)
            },
        )
        .await
        .unwrap();
    assert_eq!(first.phase, Phase::Pending);
    assert_eq!(first.replica_cost_per_hour, usd("12"));

    let reject = |err: StoreError| match err {
        StoreError::Quota(q) => q,
        other => panic!("expected a quota rejection, got {other:?}"),
    };
    let q = reject(
        tx.admit_deployment(a.id, DeploymentRequest::test("big", 8))
            .await
            .unwrap_err(),
    );
    assert_eq!(q.limit, Limit::AcceleratorDevices("h100-80gb".into()));
    assert_eq!(
        q.to_string(),
        "quota exceeded: h100-80gb devices — 12 of 16 in use, this deployment needs 8"
    );
    let npu = |name: &str, devices| DeploymentRequest {
        accelerator: "ascend-910b".into(),
        replica_cost_per_hour: Money::parse_amount("10", Currency::Cny).unwrap(),
        ..DeploymentRequest::test(name, devices)
    };
    let q = reject(tx.admit_deployment(a.id, npu("npu", 9)).await.unwrap_err());
    assert_eq!(q.limit, Limit::AcceleratorDevices("ascend-910b".into()));
    tx.admit_deployment(a.id, npu("npu", 8)).await.unwrap();
    // 12 + 8 = 20 devices: the total is full even though h100 has room.
    let q = reject(
        tx.admit_deployment(a.id, DeploymentRequest::test("one", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(q.limit, Limit::TotalDevices);
    tx.commit().await.unwrap();

    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_quota(a.id, &quota().total_devices(100))
        .await
        .unwrap();
    let q = reject(
        tx.admit_deployment(
            a.id,
            DeploymentRequest {
                model_params: ParamCount::billions(175),
                ..DeploymentRequest::test("gpt3", 1)
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(q.limit, Limit::ModelSize);
    // 36 USD/h in use (3 replicas × 12); 25 more would pass the 60 ceiling
    // although the 4 devices still fit.
    let q = reject(
        tx.admit_deployment(
            a.id,
            DeploymentRequest {
                replica_cost_per_hour: usd("25"),
                ..DeploymentRequest::test("pricey", 4)
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(q.limit, Limit::SpendPerHour(Currency::Usd));
    assert_eq!(
        q.to_string(),
        "quota exceeded: hourly spend in USD — 36.00 USD of 60.00 USD in use, this deployment needs 25.00 USD"
    );
    tx.admit_deployment(a.id, DeploymentRequest::test("small", 1))
        .await
        .unwrap();
    tx.admit_deployment(a.id, DeploymentRequest::test("small-2", 1))
        .await
        .unwrap();
    let q = reject(
        tx.admit_deployment(a.id, DeploymentRequest::test("fifth", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(q.limit, Limit::Deployments);
    // Rejections leave the transaction usable, with nothing inserted.
    tx.commit().await.unwrap();
    let usage = store.usage(Scope::Tenant(a.id), a.id).await.unwrap();
    assert_eq!(usage.deployments, 4);
    assert_eq!(usage.devices_of("h100-80gb"), 14);
    assert_eq!(usage.devices_of("ascend-910b"), 8);
    assert_eq!(usage.spend_of(Currency::Usd), 42_000_000);
    assert_eq!(usage.spend_of(Currency::Cny), 10_000_000);
}

async fn names_are_unique_among_live_deployments(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::unlimited()).await;
    let b = tenant(store, "globex", Quota::unlimited()).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    let first = tx
        .admit_deployment(a.id, DeploymentRequest::test("llama", 1))
        .await
        .unwrap();
    assert!(matches!(
        tx.admit_deployment(a.id, DeploymentRequest::test("llama", 1))
            .await,
        Err(StoreError::Conflict {
            kind: "deployment",
            ..
        })
    ));
    // Another tenant may use the same name.
    tx.admit_deployment(b.id, DeploymentRequest::test("llama", 1))
        .await
        .unwrap();
    let released = tx.release_deployment(first.id).await.unwrap();
    assert_eq!(released.phase, Phase::Deleting);
    assert!(released.deleted_at.is_some());
    // Released, the name is free again.
    let second = tx
        .admit_deployment(a.id, DeploymentRequest::test("llama", 1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let found = store
        .deployment_by_name(Scope::Tenant(a.id), a.id, "llama")
        .await
        .unwrap();
    assert_eq!(found.id, second.id);
    assert_eq!(
        store
            .deployments(Scope::Tenant(a.id), false)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .deployments(Scope::Tenant(a.id), true)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.deployments(Scope::All, false).await.unwrap().len(), 2);
}

async fn resize_and_release_are_confined_and_rechecked(db: TestDb) {
    let store = &db.store;
    let a = tenant(
        store,
        "acme",
        Quota::unlimited().accelerator_devices("h100-80gb", 8),
    )
    .await;
    let b = tenant(store, "globex", Quota::unlimited()).await;
    let dev_a = member(a.id, Role::Developer);
    let mut tx = store.begin(&dev_a).await.unwrap();
    let d = tx
        .admit_deployment(a.id, DeploymentRequest::test("llama", 2))
        .await
        .unwrap();
    let grown = tx.resize_deployment(d.id, 4).await.unwrap();
    assert_eq!((grown.replicas, grown.revision), (4, 2));
    let err = tx.resize_deployment(d.id, 5).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "quota exceeded: h100-80gb devices — 8 of 8 in use, this change needs 2 more"
    );
    assert_eq!(tx.resize_deployment(d.id, 0).await.unwrap().replicas, 0);
    tx.commit().await.unwrap();

    // Tenant B cannot see, resize or release A's deployment; a viewer of A
    // may see it but change nothing.
    for (actor, expected) in [
        (member(b.id, Role::TenantAdmin), "deployment not found"),
        (member(a.id, Role::Viewer), "your role does not allow this"),
        (member(a.id, Role::Auditor), "your role does not allow this"),
    ] {
        let mut tx = store.begin(&actor).await.unwrap();
        assert_eq!(
            tx.resize_deployment(d.id, 1).await.unwrap_err().to_string(),
            expected
        );
        assert_eq!(
            tx.release_deployment(d.id).await.unwrap_err().to_string(),
            expected
        );
        assert!(tx.changes().is_empty());
    }
    assert!(matches!(
        store.deployment(Scope::Tenant(b.id), d.id).await,
        Err(StoreError::NotFound("deployment"))
    ));
    let mut tx = store.begin(&member(b.id, Role::TenantAdmin)).await.unwrap();
    assert!(matches!(
        tx.admit_deployment(a.id, DeploymentRequest::test("sneaky", 1))
            .await,
        Err(StoreError::NotFound("tenant"))
    ));
    drop(tx);

    // Cluster sync records status; release frees the quota at once.
    let mut tx = store.begin(&platform()).await.unwrap();
    let status = DeploymentStatus {
        phase: Phase::Ready,
        ready_replicas: 0,
        message: Some("scaled to zero".into()),
        resource_uid: Some("5f0c-uid".into()),
        conditions: None,
        endpoint: None,
        unschedulable: false,
        weights: None,
    };
    let synced = tx.record_deployment_status(d.id, &status).await.unwrap();
    assert_eq!(
        (synced.phase.as_str(), synced.resource_uid.as_deref()),
        ("Ready", Some("5f0c-uid"))
    );
    tx.release_deployment(d.id).await.unwrap();
    assert!(matches!(
        tx.release_deployment(d.id).await,
        Err(StoreError::NotFound(_))
    ));
    tx.commit().await.unwrap();
    assert_eq!(
        store.usage(Scope::All, a.id).await.unwrap().total_devices(),
        0
    );
    let kept = store.deployment(Scope::Tenant(a.id), d.id).await.unwrap();
    assert_eq!(kept.created_at, d.created_at, "times read back exactly");
}

async fn bad_requests_change_nothing(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::unlimited()).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    for (bad, field) in [
        (DeploymentRequest::test("Not_A_Name", 1), "name"),
        (DeploymentRequest::test("zero", 0), "replicas"),
        (
            DeploymentRequest {
                replicas: 0,
                ..DeploymentRequest::test("none", 1)
            },
            "replicas",
        ),
        (
            DeploymentRequest {
                accelerator: "tpu-v5".into(),
                ..DeploymentRequest::test("tpu", 1)
            },
            "accelerator",
        ),
        (
            DeploymentRequest {
                pool: " ".into(),
                ..DeploymentRequest::test("nopool", 1)
            },
            "pool",
        ),
        (
            DeploymentRequest {
                replica_cost_per_hour: Money::from_micros(-1, Currency::Usd),
                ..DeploymentRequest::test("neg", 1)
            },
            "cost",
        ),
    ] {
        match tx.admit_deployment(a.id, bad).await {
            Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    assert!(tx.changes().is_empty());
    tx.commit().await.unwrap();
    assert!(
        store
            .deployments(Scope::All, true)
            .await
            .unwrap()
            .is_empty()
    );
}

crate::store_tests!(
    admission_checks_every_limit_and_says_which,
    names_are_unique_among_live_deployments,
    resize_and_release_are_confined_and_rechecked,
    bad_requests_change_nothing,
);
