//! The price catalog in the store: admins set prices that apply from now
//! on, every price set is audited, rows never change, and seeding from a
//! fleet fills only keys nobody priced.

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::billing::{Capacity, PriceKey, PriceSource, UnixSeconds};
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::quota::Quota;

use super::{member, platform, tenant, usd};
use crate::identity::Role;
use crate::store::testing::TestDb;
use crate::store::{NewPrice, StoreError};

fn h100() -> PriceKey {
    PriceKey::new(Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand)
}

async fn admins_set_prices_from_now_on_and_each_is_audited(db: TestDb) {
    let store = &db.store;
    let later = Utc::now() + TimeDelta::days(3);
    let mut tx = store.begin(&platform()).await.unwrap();
    let now_price = tx
        .set_price(&NewPrice {
            key: h100(),
            per_device_hour: usd("6.88"),
            effective_from: None,
        })
        .await
        .unwrap();
    tx.set_price(&NewPrice {
        key: h100(),
        per_device_hour: usd("6.50"),
        effective_from: Some(later),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(now_price.price.source, PriceSource::Admin);

    // The catalog rates with the price in force at each time.
    let catalog = store.price_catalog().await.unwrap();
    let at = |t: DateTime<Utc>| {
        catalog
            .price_at(&h100(), UnixSeconds(t.timestamp()))
            .map(|p| p.per_device_hour)
    };
    assert_eq!(at(Utc::now() + TimeDelta::hours(1)), Some(usd("6.88")));
    assert_eq!(at(later + TimeDelta::hours(1)), Some(usd("6.50")));

    // One transaction, one record, naming both prices.
    let records = store.audit_records_after(0, 100).await.unwrap();
    let last = &records.last().unwrap().event;
    assert_eq!(
        (last.verb.as_str(), last.object_ref.resource.as_str()),
        ("create", "prices")
    );
    assert!(
        last.annotations["modelfleet.io/changes"].contains("aws/us-east-1/h100-80gb/on-demand")
    );
}

async fn bad_prices_are_refused_and_change_nothing(db: TestDb) {
    let store = &db.store;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let before = store.audit_records_after(0, 100).await.unwrap().len();
    let attempt = |actor, new: NewPrice| async move {
        let mut tx = store.begin(&actor).await.unwrap();
        tx.set_price(&new).await
    };
    let good = NewPrice {
        key: h100(),
        per_device_hour: usd("6.88"),
        effective_from: None,
    };
    let cases = [
        (member(acme.id, Role::TenantAdmin), good.clone(), "role"),
        (
            platform(),
            NewPrice {
                effective_from: Some(Utc::now() - TimeDelta::hours(1)),
                ..good.clone()
            },
            "effectiveFrom",
        ),
        (
            platform(),
            NewPrice {
                key: PriceKey::new(Cloud::Aws, "us-east-1", "no-such-gpu", Capacity::Spot),
                ..good.clone()
            },
            "accelerator",
        ),
        (
            platform(),
            NewPrice {
                key: PriceKey::new(Cloud::Aws, "US East", "h100-80gb", Capacity::Spot),
                ..good.clone()
            },
            "region",
        ),
        (
            platform(),
            NewPrice {
                per_device_hour: Money::from_micros(-1, Currency::Usd),
                ..good.clone()
            },
            "pricePerDeviceHour",
        ),
    ];
    for (actor, new, field) in cases {
        match attempt(actor, new).await {
            Err(StoreError::Forbidden) if field == "role" => {}
            Err(StoreError::Invalid { field: f, .. }) if f == field => {}
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(store.prices().await.unwrap().is_empty());
    assert_eq!(
        store.audit_records_after(0, 100).await.unwrap().len(),
        before
    );

    // The same key and time twice is a conflict, not an overwrite.
    let at = Some(Utc::now() + TimeDelta::days(1));
    let new = NewPrice {
        effective_from: at,
        ..good
    };
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_price(&new).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin(&platform()).await.unwrap();
    assert!(matches!(
        tx.set_price(&new).await,
        Err(StoreError::Conflict { .. })
    ));
    drop(tx);

    // Prices are kept to the second: another time within the same second
    // is the same time, and the catalog billing rates with stays whole.
    let second = DateTime::from_timestamp((Utc::now() + TimeDelta::days(2)).timestamp(), 0);
    for millis in [100, 900] {
        let mut tx = store.begin(&platform()).await.unwrap();
        let set = tx
            .set_price(&NewPrice {
                effective_from: second.map(|s| s + TimeDelta::milliseconds(millis)),
                ..new.clone()
            })
            .await;
        match (millis, set) {
            (100, Ok(stored)) => {
                assert_eq!(Some(stored.effective_from), second, "kept to the second");
                tx.commit().await.unwrap();
            }
            (900, Err(StoreError::Conflict { .. })) => {}
            (_, other) => panic!("{millis} ms: {other:?}"),
        }
    }
    store.price_catalog().await.expect("the catalog is whole");
    let stored = store.prices().await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert!(
        stored
            .iter()
            .all(|p| p.effective_from.timestamp_subsec_nanos() == 0),
        "{stored:#?}"
    );
}

async fn seeding_fills_only_unpriced_keys(db: TestDb) {
    let store = &db.store;
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_price(&NewPrice {
        key: PriceKey::new(Cloud::Aws, "us-east-1", "h100-80gb", Capacity::OnDemand),
        per_device_hour: usd("5.00"),
        effective_from: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let catalog = modelfleet_core::billing::PriceCatalog::from_fleet(
        &Fleet::example(),
        UnixSeconds(Utc::now().timestamp()),
    )
    .unwrap();
    let mut tx = store.begin(&platform()).await.unwrap();
    let added = tx.seed_prices(&catalog).await.unwrap();
    tx.commit().await.unwrap();
    assert!(added > 0);
    // Seeding again (a restart) adds nothing.
    let mut tx = store.begin(&platform()).await.unwrap();
    assert_eq!(tx.seed_prices(&catalog).await.unwrap(), 0);
    tx.commit().await.unwrap();

    let prices = store.prices().await.unwrap();
    let h100: Vec<_> = prices
        .iter()
        .filter(|p| {
            p.price.key.accelerator == "h100-80gb"
                && p.price.key.region == "us-east-1"
                && p.price.key.capacity == Capacity::OnDemand
        })
        .collect();
    assert_eq!(
        h100.len(),
        1,
        "the admin's price stays the only one: {h100:#?}"
    );
    assert_eq!(h100[0].price.source, PriceSource::Admin);
    assert!(prices.iter().any(|p| p.price.source == PriceSource::Default
        && p.price.per_device_hour.currency() == Currency::Cny));
}

async fn prices_never_change_in_the_database(db: TestDb) {
    let store = &db.store;
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_price(&NewPrice {
        key: h100(),
        per_device_hour: usd("6.88"),
        effective_from: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for sql in [
        "UPDATE prices SET micros_per_device_hour = 1",
        "DELETE FROM prices",
    ] {
        let mut tx = store.begin(&platform()).await.unwrap();
        let err = super::audit::raw(tx.conn(), sql).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        store.prices().await.unwrap()[0].price.per_device_hour,
        usd("6.88")
    );
}

crate::store_tests!(
    admins_set_prices_from_now_on_and_each_is_audited,
    bad_prices_are_refused_and_change_nothing,
    seeding_fills_only_unpriced_keys,
    prices_never_change_in_the_database,
);
