use modelfleet_core::quota::Quota;

use super::{member, platform, tenant};
use crate::identity::{Role, Scope};
use crate::store::testing::TestDb;
use crate::store::{NewTenant, StoreError};

async fn tenants_are_created_and_confined(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::nothing()).await;
    let b = tenant(store, "globex", Quota::unlimited()).await;

    assert_eq!(store.tenant(Scope::All, a.id).await.unwrap(), a);
    assert_eq!(store.tenant_by_name(Scope::All, "globex").await.unwrap(), b);
    let all = store.tenants(Scope::All).await.unwrap();
    assert_eq!(all, vec![a.clone(), b.clone()]);

    // Tenant A's scope sees A only; B is not found rather than forbidden.
    let scope_a = Scope::Tenant(a.id);
    assert_eq!(store.tenants(scope_a).await.unwrap(), vec![a.clone()]);
    assert!(matches!(
        store.tenant(scope_a, b.id).await,
        Err(StoreError::NotFound("tenant"))
    ));
    assert!(matches!(
        store.tenant_by_name(scope_a, "globex").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.quota(scope_a, b.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.quota(scope_a, a.id).await.unwrap(), Quota::nothing());
}

async fn tenant_creation_is_validated_and_admin_only(db: TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", Quota::nothing()).await;
    let new = |name: &str| NewTenant {
        name: name.into(),
        display_name: "X".into(),
        quota: Quota::unlimited(),
    };

    let mut tx = store.begin(&platform()).await.unwrap();
    let err = tx.create_tenant(new("acme")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { kind: "tenant", .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "tenant \"acme\" already exists");
    drop(tx);

    let mut tx = store.begin(&platform()).await.unwrap();
    for bad in ["Acme", "-acme", "acme_bank", "", &"a".repeat(41)] {
        let err = tx.create_tenant(new(bad)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid { field: "name", .. }),
            "{bad:?}: {err:?}"
        );
    }
    let bad_quota = NewTenant {
        quota: Quota::unlimited().accelerator_devices("h1000", 4),
        ..new("initech")
    };
    let err = tx.create_tenant(bad_quota).await.unwrap_err();
    assert!(
        err.to_string().contains("unknown accelerator \"h1000\""),
        "{err}"
    );
    tx.rollback().await.unwrap();

    let mut tx = store.begin(&member(a.id, Role::TenantAdmin)).await.unwrap();
    assert!(matches!(
        tx.create_tenant(new("initech")).await,
        Err(StoreError::Forbidden)
    ));
    drop(tx);
    assert_eq!(store.tenants(Scope::All).await.unwrap().len(), 1);
}

async fn a_dropped_transaction_changes_nothing(db: TestDb) {
    let store = &db.store;
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.create_tenant(NewTenant {
        name: "ghost".into(),
        display_name: "Ghost".into(),
        quota: Quota::unlimited(),
    })
    .await
    .unwrap();
    assert_eq!(tx.changes().len(), 1);
    assert_eq!(tx.changes()[0].verb, "create");
    assert_eq!(tx.changes()[0].resource, "tenants");
    drop(tx);
    assert!(store.tenants(Scope::All).await.unwrap().is_empty());
    // The store is usable afterwards: the writer was returned.
    tenant(store, "real", Quota::unlimited()).await;
}

async fn reopening_applies_no_migration_twice(db: TestDb) {
    tenant(&db.store, "acme", Quota::unlimited()).await;
    crate::store::migrate(&db.url).await.unwrap();
    let again = crate::store::Store::connect(&db.url).await.unwrap();
    assert_eq!(again.tenants(Scope::All).await.unwrap().len(), 1);
    again.close().await;
}

crate::store_tests!(
    tenants_are_created_and_confined,
    tenant_creation_is_validated_and_admin_only,
    a_dropped_transaction_changes_nothing,
    reopening_applies_no_migration_twice,
);
