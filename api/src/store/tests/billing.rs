//! Billing in the store: recorded intervals are invoiced at the catalog's
//! prices with the tenant's discount, a month is issued once and never
//! changes, budgets raise each alert once, and bad discounts, budgets and
//! adjustments are refused without changing anything.

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::billing::{
    Adjustment, BillingPeriod, Capacity, Discount, DiscountScope, Price, PriceCatalog, PriceKey,
    PriceSource, UnixSeconds,
};
use modelfleet_core::fleet::Cloud;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::quota::Quota;

use super::{member, platform, tenant, usd};
use crate::billing;
use crate::identity::{Role, Scope};
use crate::secret::{Keyring, Secret, SecretKey};
use crate::store::testing::TestDb;
use crate::store::{
    Deployment, DeploymentRequest, NewBudget, NewInterval, PoolLocation, Store, StoreError, now,
};

fn h100() -> PriceKey {
    PriceKey::new(Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand)
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Prices H100 on AWS from 2026-01-01 at `price` per device-hour.
async fn seed_price(store: &Store, price: &str) {
    let mut catalog = PriceCatalog::new();
    catalog
        .insert(Price {
            key: h100(),
            per_device_hour: usd(price),
            effective_from: UnixSeconds::from_utc(2026, 1, 1, 0, 0, 0).unwrap(),
            source: PriceSource::Default,
        })
        .unwrap();
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.seed_prices(&catalog).await.unwrap();
    tx.commit().await.unwrap();
}

fn interval(d: &Deployment, uid: &str, from: DateTime<Utc>) -> NewInterval {
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
        allocated_at: from,
        location: Some(PoolLocation {
            cloud: Cloud::Aws,
            region: "us-east-1".into(),
            capacity: Capacity::OnDemand,
        }),
    }
}

async fn deploy(store: &Store, tenant: crate::ids::TenantId, devices: u32) -> Deployment {
    let mut tx = store.begin(&platform()).await.unwrap();
    let d = tx
        .admit_deployment(tenant, DeploymentRequest::test("llama", devices))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    d
}

async fn use_devices(store: &Store, d: &Deployment, uid: &str, from: &str, to: Option<&str>) {
    let mut tx = store.begin(&platform()).await.unwrap();
    assert!(tx.open_interval(&interval(d, uid, at(from))).await.unwrap());
    if let Some(to) = to {
        assert!(tx.close_interval(&d.cluster, uid, at(to)).await.unwrap());
    }
    tx.commit().await.unwrap();
}

async fn a_past_month_is_issued_once_and_never_changes(db: TestDb) {
    let store = &db.store;
    seed_price(store, "6.8833").await;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let d = deploy(store, acme.id, 8).await;
    // 2 h 30 min and 45 s (billed 60 s) on 8 devices in September 2026,
    // and an hour that crosses into October.
    use_devices(
        store,
        &d,
        "a",
        "2026-09-10T10:00:00Z",
        Some("2026-09-10T12:30:00Z"),
    )
    .await;
    use_devices(
        store,
        &d,
        "b",
        "2026-09-11T08:00:00Z",
        Some("2026-09-11T08:00:45Z"),
    )
    .await;
    use_devices(
        store,
        &d,
        "c",
        "2026-09-30T23:30:00Z",
        Some("2026-10-01T00:30:00Z"),
    )
    .await;
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_discounts(
        acme.id,
        &[Discount::new(DiscountScope::Cloud(Cloud::Aws), 1250).unwrap()],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let september = BillingPeriod::new(2026, 9).unwrap();
    let issued = billing::invoices(store, Scope::All, acme.id, september)
        .await
        .unwrap();
    assert_eq!(issued.len(), 1);
    let first = &issued[0];
    assert!(
        first.finalized_at.is_some(),
        "a month long past is issued when asked for"
    );
    // Device-seconds: 8 × (9000 + 60 + 1800) = 86 880.
    // List: 86 880 × 6.8833 / 3600 = 166.117 04 → 166.12 USD.
    // Discount 12.5 %: 20.764 63 → 20.76; billed 145.36 USD.
    let line = &first.invoice.lines[0];
    assert_eq!(line.usage.as_ref().unwrap().device_seconds, 86_880);
    assert_eq!(first.invoice.list_total, usd("166.12"));
    assert_eq!(first.invoice.discount_total, usd("20.76"));
    assert_eq!(first.invoice.total, usd("145.36"));

    // Usage observed late, and a new discount, change nothing issued.
    use_devices(
        store,
        &d,
        "late",
        "2026-09-20T00:00:00Z",
        Some("2026-09-21T00:00:00Z"),
    )
    .await;
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_discounts(acme.id, &[]).await.unwrap();
    tx.commit().await.unwrap();
    let again = billing::invoices(store, Scope::All, acme.id, september)
        .await
        .unwrap();
    assert_eq!(again, issued);
    let by_id = billing::invoice(store, Scope::Tenant(acme.id), first.id, &[acme.id])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.invoice, first.invoice);
    // Another tenant cannot see it.
    let other = tenant(store, "other", Quota::unlimited()).await;
    assert!(
        billing::invoice(store, Scope::Tenant(other.id), first.id, &[other.id])
            .await
            .unwrap()
            .is_none()
    );
    // Issuing again writes nothing; the database refuses changes.
    let mut tx = store.begin(&platform()).await.unwrap();
    let stored = tx.finalize_month(acme.id, september, &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored[0].invoice, first.invoice);
    for sql in [
        "UPDATE invoices SET total_micros = 0",
        "DELETE FROM invoices",
    ] {
        let mut tx = store.begin(&platform()).await.unwrap();
        let err = super::audit::raw(tx.conn(), sql).await.unwrap_err();
        assert!(err.to_string().contains("never changed"), "{sql}: {err}");
    }
    // The issue is audited as the hub's billing.
    let records = store.audit_records_after(0, 1000).await.unwrap();
    assert!(records.iter().any(|r| r.event.verb == "create"
        && r.event.object_ref.resource == "invoices"
        && r.event.user.username == "system:billing"));
}

async fn discounts_budgets_and_adjustments_are_checked_and_audited(db: TestDb) {
    let store = &db.store;
    let keyring = Keyring::new(SecretKey::generate().unwrap());
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let admin = member(acme.id, Role::TenantAdmin);
    let count = || async { store.audit_records_after(0, 10_000).await.unwrap().len() };
    let before = count().await;

    // Discounts are the platform's to set, within 0–100 %.
    let mut tx = store.begin(&admin).await.unwrap();
    let d = Discount::new(DiscountScope::All, 500).unwrap();
    assert!(matches!(
        tx.set_discounts(acme.id, &[d]).await,
        Err(StoreError::Forbidden)
    ));
    tx.rollback().await.unwrap();
    let mut tx = store.begin(&platform()).await.unwrap();
    let too_much = Discount {
        scope: DiscountScope::All,
        percent_basis_points: 10_001,
    };
    let err = tx.set_discounts(acme.id, &[too_much]).await.unwrap_err();
    assert!(err.to_string().contains("10000"), "{err}");
    tx.rollback().await.unwrap();

    // Budgets: a tenant admin's; bad webhooks are refused.
    let budget = |url: Option<&str>, secret: &str| NewBudget {
        per_month: usd("1000.00"),
        refuse_at_limit: true,
        webhook: url.map(|u| (u.to_owned(), Secret::new(secret))),
    };
    for (url, secret, field) in [
        (
            Some("ftp://hooks.example.com/x"),
            "0123456789abcdef",
            "webhookUrl",
        ),
        (
            Some("https://user:pw@hooks.example.com/x"),
            "0123456789abcdef",
            "webhookUrl",
        ),
        (
            Some("https://hooks.example.com/x"),
            "short",
            "webhookSecret",
        ),
    ] {
        let mut tx = store.begin(&admin).await.unwrap();
        match tx.set_budget(&keyring, acme.id, &budget(url, secret)).await {
            Err(StoreError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{url:?} {secret:?}: {other:?}"),
        }
        tx.rollback().await.unwrap();
    }
    let mut tx = store.begin(&admin).await.unwrap();
    let zero = NewBudget {
        per_month: Money::zero(Currency::Usd),
        ..budget(None, "")
    };
    assert!(tx.set_budget(&keyring, acme.id, &zero).await.is_err());
    tx.rollback().await.unwrap();
    assert!(store.budget(Scope::All, acme.id).await.unwrap().is_none());
    assert_eq!(count().await, before, "refusals change nothing");

    let mut tx = store.begin(&admin).await.unwrap();
    tx.set_budget(
        &keyring,
        acme.id,
        &budget(Some("https://hooks.example.com/x"), "0123456789abcdef"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (url, secret) = store
        .budget_webhook(&keyring, acme.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(url, "https://hooks.example.com/x");
    assert_eq!(secret.expose(), "0123456789abcdef");
    // Another tenant's admin does not see it.
    let other = tenant(store, "other", Quota::unlimited()).await;
    assert!(
        store
            .budget(Scope::Tenant(other.id), acme.id)
            .await
            .is_err()
    );

    // Adjustments: on an open month only, platform admins only.
    let current = BillingPeriod::containing(UnixSeconds(now().timestamp()));
    let credit = Adjustment {
        description: "=HYPERLINK(\"x\") credit for the outage".into(),
        amount: Money::from_micros(-usd("25.00").micros(), Currency::Usd),
    };
    let mut tx = store.begin(&platform()).await.unwrap();
    let past = BillingPeriod::new(2026, 1).unwrap();
    let err = tx.add_adjustment(acme.id, past, &credit).await.unwrap_err();
    assert!(err.to_string().contains("final"), "{err}");
    let fraction = Adjustment {
        amount: Money::from_micros(-5_000, Currency::Usd),
        ..credit.clone()
    };
    assert!(
        tx.add_adjustment(acme.id, current, &fraction)
            .await
            .is_err()
    );
    tx.add_adjustment(acme.id, current, &credit).await.unwrap();
    tx.commit().await.unwrap();
    let drafts = billing::invoices(store, Scope::All, acme.id, current)
        .await
        .unwrap();
    assert_eq!(drafts.len(), 1);
    assert!(drafts[0].finalized_at.is_none());
    assert_eq!(drafts[0].invoice.total.micros(), -25_000_000);
    let csv = modelfleet_core::billing::invoice_csv(&drafts[0].invoice, "x");
    assert!(
        csv.contains(",\"'=HYPERLINK("),
        "formulas are made inert: {csv}"
    );
    assert!(csv.contains(",-25.00,"), "amounts stay numbers: {csv}");

    // Discount, budget and adjustment: one record each.
    let records = store.audit_records_after(0, 10_000).await.unwrap();
    for resource in ["budgets", "adjustments"] {
        assert!(
            records
                .iter()
                .any(|r| r.event.object_ref.resource == resource),
            "no record of {resource}"
        );
    }
}

async fn budgets_alert_once_per_threshold_and_can_refuse(db: TestDb) {
    let store = &db.store;
    let keyring = Keyring::new(SecretKey::generate().unwrap());
    seed_price(store, "1000").await;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let d = deploy(store, acme.id, 8).await;
    assert!(
        billing::budget_refusal(store, acme.id)
            .await
            .unwrap()
            .is_none()
    );
    let current = BillingPeriod::containing(UnixSeconds(now().timestamp()));
    let (start, _) = crate::store::period_times(current).unwrap();
    // Held since the month began (at least a second: 8 × 1000 / 3600 > 2 USD).
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.open_interval(&interval(&d, "run", start - TimeDelta::seconds(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store
        .begin(&member(acme.id, Role::TenantAdmin))
        .await
        .unwrap();
    tx.set_budget(
        &keyring,
        acme.id,
        &NewBudget {
            per_month: usd("1.00"),
            refuse_at_limit: false,
            webhook: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let first = billing::check_budgets(store).await.unwrap();
    assert_eq!(first.raised.len(), 2, "80 % and 100 % at once");
    let second = billing::check_budgets(store).await.unwrap();
    assert!(second.raised.is_empty(), "each threshold once a month");
    let alerts = store
        .budget_alerts(Scope::Tenant(acme.id), acme.id)
        .await
        .unwrap();
    let mut thresholds: Vec<i32> = alerts.iter().map(|a| a.threshold).collect();
    thresholds.sort_unstable();
    assert_eq!(thresholds, [80, 100]);
    assert!(
        alerts
            .iter()
            .all(|a| a.delivery == "none" && a.period == current.to_string())
    );
    assert!(
        billing::budget_refusal(store, acme.id)
            .await
            .unwrap()
            .is_none(),
        "not asked to refuse"
    );

    let mut tx = store
        .begin(&member(acme.id, Role::TenantAdmin))
        .await
        .unwrap();
    tx.set_budget(
        &keyring,
        acme.id,
        &NewBudget {
            per_month: usd("1.00"),
            refuse_at_limit: true,
            webhook: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let refusal = billing::budget_refusal(store, acme.id)
        .await
        .unwrap()
        .unwrap();
    assert!(refusal.contains("1.00 USD"), "{refusal}");
    let status = billing::budget_status(store, Scope::Tenant(acme.id), acme.id)
        .await
        .unwrap()
        .unwrap();
    assert!(status.percent_used >= 100, "{status:?}");
}

crate::store_tests!(
    a_past_month_is_issued_once_and_never_changes,
    discounts_budgets_and_adjustments_are_checked_and_audited,
    budgets_alert_once_per_threshold_and_can_refuse,
);
