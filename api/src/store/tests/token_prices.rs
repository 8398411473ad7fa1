//! Token prices and pricing models in the store: admins set token prices
//! on whole hours not yet begun, audited; bad ones are refused and change
//! nothing; a tenant on token pricing is invoiced its metered tokens
//! beside device time, its budget counts them, and another tenant reads
//! none of it.

use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_core::billing::{BillingPeriod, Capacity, PriceCatalog, UnixSeconds};
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::quota::Quota;

use super::{member, platform, tenant, usd};
use crate::billing;
use crate::identity::{Role, Scope};
use crate::ids::{PriceId, RequestId, TenantId};
use crate::secret::{Keyring, SecretKey};
use crate::store::testing::TestDb;
use crate::store::{
    Deployment, DeploymentRequest, NewBudget, NewInterval, NewTokenPrice, PoolLocation,
    PricingModel, Store, StoreError, TokenRecord, next_whole_hour, now, on_conn, period_times,
};

const MODEL: &str = "llama-3.1-70b";

fn price(effective_from: Option<DateTime<Utc>>) -> NewTokenPrice {
    NewTokenPrice {
        model: MODEL.to_owned(),
        per_million_input: usd("0.50"),
        per_million_output: usd("1.50"),
        effective_from,
    }
}

async fn admins_set_token_prices_on_whole_hours_and_each_is_audited(db: TestDb) {
    let store = &db.store;
    let next = next_whole_hour(Utc::now() + TimeDelta::seconds(1));
    let later = next + TimeDelta::days(2);
    let mut tx = store.begin(&platform()).await.unwrap();
    let first = tx.set_token_price(&price(None)).await.unwrap();
    let cheaper = NewTokenPrice {
        per_million_input: usd("0.40"),
        ..price(Some(later))
    };
    tx.set_token_price(&cheaper).await.unwrap();
    tx.commit().await.unwrap();
    // Absent, the price starts at the next whole hour.
    assert!(first.effective_from >= Utc::now() - TimeDelta::hours(1));
    assert_eq!(first.effective_from, next_whole_hour(first.effective_from));

    let catalog = store.token_price_catalog().await.unwrap();
    let input_at = |t: DateTime<Utc>| {
        catalog
            .price_at(MODEL, UnixSeconds(t.timestamp()))
            .map(|p| p.per_million_input)
    };
    assert_eq!(input_at(first.effective_from), Some(usd("0.50")));
    assert_eq!(input_at(later - TimeDelta::seconds(1)), Some(usd("0.50")));
    assert_eq!(input_at(later), Some(usd("0.40")));
    assert_eq!(input_at(first.effective_from - TimeDelta::seconds(1)), None);

    let records = store.audit_records_after(0, 100).await.unwrap();
    let last = &records.last().unwrap().event;
    assert_eq!(
        (last.verb.as_str(), last.object_ref.resource.as_str()),
        ("create", "tokenprices")
    );
    assert!(last.annotations["modelfleet.io/changes"].contains(MODEL));
}

async fn bad_token_prices_are_refused_and_change_nothing(db: TestDb) {
    let store = &db.store;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let next = next_whole_hour(Utc::now() + TimeDelta::seconds(1)) + TimeDelta::hours(1);
    let mut taken = store.begin(&platform()).await.unwrap();
    taken.set_token_price(&price(Some(next))).await.unwrap();
    taken.commit().await.unwrap();
    let before = store.audit_records_after(0, 1000).await.unwrap().len();
    let mixed = NewTokenPrice {
        per_million_output: Money::parse_amount("7", Currency::Cny).unwrap(),
        ..price(Some(next + TimeDelta::hours(1)))
    };
    let negative = NewTokenPrice {
        per_million_input: Money::from_micros(-10_000, Currency::Usd),
        ..price(Some(next + TimeDelta::hours(1)))
    };
    let unknown = NewTokenPrice {
        model: "gpt-9-imaginary".to_owned(),
        ..price(None)
    };
    let cases = [
        (member(acme.id, Role::TenantAdmin), price(None), "role"),
        (
            platform(),
            price(Some(next + TimeDelta::minutes(30))),
            "whole hour",
        ),
        (
            platform(),
            price(Some(next - TimeDelta::hours(3))),
            "not yet begun",
        ),
        (platform(), mixed, "one currency"),
        (platform(), negative, "negative"),
        (platform(), unknown, "model catalog"),
        (platform(), price(Some(next)), "token price"),
    ];
    for (actor, new, expect) in cases {
        let mut tx = store.begin(&actor).await.unwrap();
        let err = tx.set_token_price(&new).await.unwrap_err();
        drop(tx);
        let text = err.to_string();
        match (&err, expect) {
            (StoreError::Forbidden | StoreError::NotFound(_), "role") => {}
            (StoreError::Conflict { .. }, "token price") => {}
            (StoreError::Invalid { .. }, _) => {
                assert!(text.contains(expect), "{expect}: {text}")
            }
            _ => panic!("{expect}: unexpected {err:?}"),
        }
    }
    assert_eq!(store.token_prices().await.unwrap().len(), 1);
    let after = store.audit_records_after(0, 1000).await.unwrap().len();
    assert_eq!(before, after, "a refused price leaves no record");
    // Rows never change.
    let mut tx = store.begin(&platform()).await.unwrap();
    let changed = on_conn!(tx.conn(), c => sqlx::query(
        "UPDATE token_prices SET micros_per_million_input = 0")
        .execute(c).await.map(|_| ()));
    assert!(changed.is_err(), "token prices are append-only");
}

/// A token price for `MODEL` in force since the start of this month, as
/// no admin can set one (prices go forward only).
async fn price_since_month_start(store: &Store) -> DateTime<Utc> {
    let period = BillingPeriod::containing(UnixSeconds(now().timestamp()));
    let (start, _) = period_times(period).unwrap();
    let mut tx = store.begin(&platform()).await.unwrap();
    on_conn!(tx.conn(), c => sqlx::query(
        "INSERT INTO token_prices (id, model, currency, micros_per_million_input, \
         micros_per_million_output, effective_from, created_at) VALUES ($1, $2, 'USD', 500000, 1500000, $3, $3)")
        .bind(PriceId::new()).bind(MODEL).bind(start)
        .execute(c).await.map(|_| ()))
    .unwrap();
    tx.commit().await.unwrap();
    start
}

async fn deploy(store: &Store, tenant: TenantId, name: &str) -> Deployment {
    let mut tx = store.begin(&platform()).await.unwrap();
    let d = tx
        .admit_deployment(tenant, DeploymentRequest::test(name, 1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    d
}

fn record(d: &Deployment, at: DateTime<Utc>, input: u64, output: u64) -> TokenRecord {
    TokenRecord {
        request: RequestId::new(),
        tenant: d.tenant,
        deployment: d.id,
        api_key: None,
        model: d.model.clone(),
        cluster: d.cluster.clone(),
        operation: "chat".to_owned(),
        status: 200,
        input_tokens: input,
        output_tokens: output,
        at,
        first_token_ms: None,
        duration_ms: None,
    }
}

async fn a_tenant_on_token_pricing_is_invoiced_its_tokens_and_its_budget_counts_them(db: TestDb) {
    let store = &db.store;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let globex = tenant(store, "globex", Quota::unlimited()).await;
    let month_start = price_since_month_start(store).await;
    // Device prices, so device time of the month before the token price
    // (none: it is in force all month) would be rated.
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.seed_prices(&PriceCatalog::from_fleet(&Fleet::example(), UnixSeconds(0)).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let chat = deploy(store, acme.id, "chat").await;
    let theirs = deploy(store, globex.id, "chat").await;
    // A replica held all month so far: billed by tokens instead.
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.open_interval(&NewInterval {
        deployment: chat.id,
        tenant: acme.id,
        cluster: chat.cluster.clone(),
        namespace: chat.namespace.clone(),
        pod_name: "pod-1".into(),
        pod_uid: "uid-1".into(),
        node: "node-1".into(),
        pool: chat.pool.clone(),
        accelerator: chat.accelerator.clone(),
        devices: 1,
        allocated_at: month_start,
        location: Some(PoolLocation {
            cloud: Cloud::Aws,
            region: "us-east-1".into(),
            capacity: Capacity::OnDemand,
        }),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let at = now();
    store
        .record_tokens(&[
            record(&chat, at, 1_500_000, 600_000),
            record(&chat, at, 500_000, 400_000),
            record(&theirs, at, 9_000_000, 9_000_000),
        ])
        .await
        .unwrap();
    let period = BillingPeriod::containing(UnixSeconds(at.timestamp()));

    // On time pricing (the default): device time, no token lines.
    assert_eq!(
        store.pricing_model(Scope::All, acme.id).await.unwrap(),
        PricingModel::Time
    );
    let drafts = billing::invoices(store, Scope::Tenant(acme.id), acme.id, period)
        .await
        .unwrap();
    let lines = &drafts[0].invoice.lines;
    assert!(lines.iter().all(|l| l.tokens.is_none()), "{lines:#?}");

    // Only platform admins change it; audited.
    let mut tx = store
        .begin(&member(acme.id, Role::TenantAdmin))
        .await
        .unwrap();
    assert!(
        tx.set_pricing_model(acme.id, PricingModel::Tokens)
            .await
            .is_err()
    );
    drop(tx);
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_pricing_model(acme.id, PricingModel::Tokens)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let records = store.audit_records_after(0, 1000).await.unwrap();
    let last = &records.last().unwrap().event;
    assert_eq!(last.object_ref.resource, "pricingmodel");
    // Another tenant cannot read it.
    assert!(matches!(
        store.pricing_model(Scope::Tenant(globex.id), acme.id).await,
        Err(StoreError::NotFound(_))
    ));

    // 2 000 000 input × 0.50 = 1.00; 1 000 000 output × 1.50 = 1.50; no
    // device line: the model has been token-priced all month.
    let drafts = billing::invoices(store, Scope::Tenant(acme.id), acme.id, period)
        .await
        .unwrap();
    assert_eq!(drafts.len(), 1);
    let invoice = &drafts[0].invoice;
    let got: Vec<_> = invoice
        .lines
        .iter()
        .map(|l| {
            let t = l.tokens.as_ref().expect("only token lines");
            (t.direction.name(), t.tokens, l.amount)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("input", 2_000_000, usd("1.00")),
            ("output", 1_000_000, usd("1.50"))
        ]
    );
    assert_eq!(invoice.total, usd("2.50"));

    // The budget counts them: 2.50 spent of 2.00 refuses.
    let keyring = Keyring::new(SecretKey::generate().unwrap());
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.set_budget(
        &keyring,
        acme.id,
        &NewBudget {
            per_month: usd("2.00"),
            refuse_at_limit: true,
            webhook: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let status = billing::budget_status(store, Scope::All, acme.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.spent, usd("2.50"));
    let refusal = billing::budget_refusal(store, acme.id).await.unwrap();
    assert!(refusal.unwrap().contains("2.00 USD"));
    // Globex is on time pricing: its tokens cost it nothing extra.
    assert_eq!(
        billing::budget_refusal(store, globex.id).await.unwrap(),
        None
    );
}

/// The console's figures: counts over the window, timings from streamed
/// answers, another tenant's deployment not found.
async fn a_deployments_traffic_counts_its_window_and_takes_percentiles_of_timings(db: TestDb) {
    let store = &db.store;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let globex = tenant(store, "globex", Quota::unlimited()).await;
    let chat = deploy(store, acme.id, "chat").await;
    let other = deploy(store, acme.id, "other").await;
    let to = now();
    let from = to - TimeDelta::minutes(15);
    let mut rows = Vec::new();
    // 100 streamed answers: TTFT 1..=100 ms, 11 output tokens over a
    // further 10 × (1..=100) ms, so TPOT 1..=100 ms.
    for i in 1..=100u32 {
        let mut r = record(&chat, to - TimeDelta::seconds(i64::from(i)), 5, 11);
        r.first_token_ms = Some(i);
        r.duration_ms = Some(i + 10 * i);
        rows.push(r);
    }
    // A plain answer (no first token), an error, one outside the window
    // and one of another deployment: counted or not, never timed.
    let mut plain = record(&chat, to - TimeDelta::seconds(1), 7, 3);
    plain.duration_ms = Some(900);
    let mut refused = record(&chat, to - TimeDelta::seconds(2), 1, 1);
    refused.status = 499;
    refused.first_token_ms = Some(10_000);
    refused.duration_ms = Some(10_000);
    let old = record(&chat, from - TimeDelta::seconds(1), 1000, 1000);
    let elsewhere = record(&other, to - TimeDelta::seconds(1), 1000, 1000);
    rows.extend([plain, refused, old, elsewhere]);
    store.record_tokens(&rows).await.unwrap();

    let seen = store
        .deployment_traffic(Scope::Tenant(acme.id), chat.id, from, to)
        .await
        .unwrap();
    assert_eq!(seen.requests, 102);
    assert_eq!(seen.errors, 1);
    assert_eq!(seen.input_tokens, 100 * 5 + 7 + 1);
    assert_eq!(seen.output_tokens, 100 * 11 + 3 + 1);
    let ttft = seen.ttft_ms.expect("streamed answers were timed");
    assert_eq!(
        (ttft.samples, ttft.p50, ttft.p90, ttft.p99),
        (100, 50.0, 90.0, 99.0)
    );
    let tpot = seen.tpot_ms.expect("answers of 11 tokens have a TPOT");
    assert_eq!((tpot.samples, tpot.p50, tpot.p99), (100, 50.0, 99.0));

    // No traffic: zero counts and no percentiles.
    let quiet = store
        .deployment_traffic(Scope::All, other.id, to, to + TimeDelta::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        (quiet.requests, quiet.ttft_ms, quiet.tpot_ms),
        (0, None, None)
    );

    // Another tenant cannot read it.
    assert!(matches!(
        store
            .deployment_traffic(Scope::Tenant(globex.id), chat.id, from, to)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

crate::store_tests!(
    a_deployments_traffic_counts_its_window_and_takes_percentiles_of_timings,
    admins_set_token_prices_on_whole_hours_and_each_is_audited,
    bad_token_prices_are_refused_and_change_nothing,
    a_tenant_on_token_pricing_is_invoiced_its_tokens_and_its_budget_counts_them,
);
