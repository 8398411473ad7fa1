//! Billing through the API, against a sandbox cluster: a deployment's
//! device time becomes usage and a draft invoice at the catalog's price
//! with the tenant's discount; plans show the same hourly cost billing
//! charges; the FOCUS export has the specification's columns and types and
//! its BilledCost sums to the invoice; a budget raises signed webhook
//! alerts and can refuse new deployments; bad input and other tenants'
//! invoices get clear refusals. Each test runs on SQLite and, when
//! `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use modelfleet_api::billing::webhook::{Retry, SIGNATURE_HEADER, WebhookSender, verify};
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::billing::FOCUS_COLUMNS;
use serde_json::{Value, json};
use support::{Hub, eventually, l40s_hub_with, roomy, test_settings};

const CLUSTER: &str = "aws-a";
const POOL: &str = "aws-a/l40s";
const SECRET: &str = "whsec-test-0123456789";

/// Minor units (cents) of a money JSON value: `{"amount": "12.34"}`.
fn cents(money: &Value) -> i64 {
    let text = money["amount"].as_str().unwrap();
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<2}");
    assert!(
        frac[2..].bytes().all(|b| b == b'0'),
        "not whole cents: {text}"
    );
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    sign * (whole.trim_start_matches('-').parse::<i64>().unwrap() * 100
        + frac[..2].parse::<i64>().unwrap())
}

/// One AWS cluster with an L40S pool whose nodes say 1.80 USD: the
/// catalog's price must win over it.
/// One AWS cluster with an L40S pool whose nodes say 1.80 USD: the
/// catalog's price must win over it.
async fn start(db: TestDb) -> Hub {
    // The budget test's receiver listens on loopback.
    let settings = modelfleet_api::ApiSettings {
        webhook_allow_private_addresses: true,
        ..test_settings()
    };
    l40s_hub_with(db, settings).await
}

/// Prices the L40S pool at a catalog price with many decimals.
async fn price_l40s(hub: &Hub) {
    let reply = hub
        .post(
            "/api/v1/prices",
            &hub.admin,
            json!({"cloud": "aws", "region": "us-east-1", "accelerator": "l40s",
                "pricePerDeviceHour": "3.7733 USD"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
}

/// Deploys the 8B model on the L40S pool, waits until its device time is
/// recorded, deletes it and waits until the time is closed: the usage is
/// then fixed, so amounts can be compared across requests.
async fn use_and_release(hub: &Hub, key: &str) -> String {
    let reply = hub
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": "chat", "model": "llama-3.1-8b", "placement": {"pool": POOL}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    let id = reply.body["deployment"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/usage?groupBy=deployment&deployment={id}");
    eventually("the deployment's device time to be recorded", || async {
        let reply = hub.get(&path, key).await;
        (reply.status == StatusCode::OK && !reply.body["groups"].as_array()?.is_empty())
            .then_some(())
    })
    .await;
    let gone = hub
        .call(
            Method::DELETE,
            &format!("/api/v1/deployments/{id}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::ACCEPTED, "{:#}", gone.body);
    eventually("the device time to be closed", || async {
        let open = hub.store.open_intervals(CLUSTER).await.unwrap();
        open.is_empty().then_some(())
    })
    .await;
    id
}

async fn usage_invoices_and_focus_agree_to_the_cent(db: TestDb) {
    let hub = start(db).await;
    let background = hub.sync_only();
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    price_l40s(&hub).await;
    let discount = hub
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/discounts"),
            Some(&hub.admin),
            Some(json!({"items": [{"scope": "aws", "basisPoints": 1500}]})),
        )
        .await;
    assert_eq!(discount.status, StatusCode::OK, "{:#}", discount.body);

    // Plans price the pool as billing will: the catalog's price, less 15 %.
    let plans = hub
        .post(
            "/api/v1/plans",
            &key,
            json!({"model": "llama-3.1-8b", "placement": {"pool": POOL}}),
        )
        .await;
    assert_eq!(plans.status, StatusCode::OK, "{:#}", plans.body);
    let plan = &plans.body["plans"][0];
    assert_eq!(plan["pricePerDeviceHour"]["amount"], "3.7733");
    let devices = plan["devicesPerReplica"].as_u64().unwrap();
    let list_micros = 3_773_300 * devices as i64;
    assert!(plan["costPerHour"]["amount"].is_string(), "{plan:#}");
    assert_eq!(plan["discountBasisPoints"], 1500);
    // list − round_half_up(list × 15 %) to the cent, as an invoice line is.
    let list_cents = (list_micros + 5_000) / 10_000;
    let discount_cents = (list_micros * 1500 / 10_000 + 5_000) / 10_000;
    assert_eq!(
        cents(&plan["billedCostPerHour"]),
        list_cents - discount_cents
    );

    let deployment = use_and_release(&hub, &key).await;

    // Usage by deployment is one group, the same as the invoice's one line.
    let usage = hub.get("/api/v1/usage?groupBy=deployment", &key).await;
    assert_eq!(usage.status, StatusCode::OK, "{:#}", usage.body);
    let group = &usage.body["groups"][0];
    assert_eq!(group["key"], deployment.as_str());
    assert_eq!(group["name"], "chat");
    let device_seconds = group["deviceSeconds"].as_u64().unwrap();
    assert!(
        device_seconds >= 60 * devices,
        "the 60-second minimum applies"
    );

    let list = hub.get("/api/v1/invoices", &key).await;
    assert_eq!(list.status, StatusCode::OK, "{:#}", list.body);
    let summary = &list.body["items"][0];
    assert_eq!(summary["status"], "draft");
    assert_eq!(summary["tenantId"], tenant.as_str());
    let id = summary["id"].as_str().unwrap();
    let invoice = hub.get(&format!("/api/v1/invoices/{id}"), &key).await;
    assert_eq!(invoice.status, StatusCode::OK, "{:#}", invoice.body);
    let lines = invoice.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["deploymentId"], deployment.as_str());
    assert_eq!(line["capacity"], "on-demand");
    assert_eq!(line["unitPrice"]["amount"], "3.7733");
    assert_eq!(line["deviceSeconds"].as_u64().unwrap(), device_seconds);
    // The line by hand: device-seconds × price / 3600, rounded half up.
    let exact = i128::from(device_seconds as i64) * 3_773_300;
    let list_cents = ((exact + 3600 * 5_000) / (3600 * 10_000)) as i64;
    let discount_cents = ((exact * 1500 + 3600 * 10_000 * 5_000) / (3600 * 10_000 * 10_000)) as i64;
    assert_eq!(cents(&line["listAmount"]), list_cents);
    assert_eq!(cents(&line["discountAmount"]), discount_cents);
    assert_eq!(cents(&invoice.body["total"]), list_cents - discount_cents);
    assert_eq!(cents(&group["cost"]), list_cents - discount_cents);

    // FOCUS: the columns in order, typed values, BilledCost sums to the total.
    let focus = hub
        .download(&format!("/api/v1/invoices/{id}/export?format=focus"), &key)
        .await;
    assert_eq!(focus.0, StatusCode::OK);
    assert!(
        focus.1["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = String::from_utf8(focus.2).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, FOCUS_COLUMNS);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut billed = 0i64;
    for row in reader.records() {
        let row = row.unwrap();
        billed += cents(&json!({"amount": row[col("BilledCost")]}));
        for numeric in [
            "EffectiveCost",
            "ListCost",
            "ListUnitPrice",
            "ConsumedQuantity",
            "PricingQuantity",
        ] {
            let v = &row[col(numeric)];
            assert!(
                v.is_empty() || v.parse::<f64>().is_ok(),
                "{numeric} = {v:?} is not a number"
            );
        }
        for time in [
            "BillingPeriodStart",
            "BillingPeriodEnd",
            "ChargePeriodStart",
            "ChargePeriodEnd",
        ] {
            assert!(
                chrono::DateTime::parse_from_rfc3339(&row[col(time)]).is_ok(),
                "{time} = {:?} is not ISO 8601",
                &row[col(time)]
            );
        }
        assert_eq!(&row[col("BillingCurrency")], "USD");
        assert_eq!(&row[col("ChargeCategory")], "Usage");
        assert_eq!(&row[col("ServiceProvider")], "aws");
    }
    assert_eq!(billed, cents(&invoice.body["total"]));

    // The invoice CSV and the usage CSV download too.
    let csv = hub
        .download(&format!("/api/v1/invoices/{id}/export"), &key)
        .await;
    assert_eq!(csv.0, StatusCode::OK);
    assert!(String::from_utf8(csv.2).unwrap().starts_with("invoice_id,"));
    let usage_csv = hub.download("/api/v1/usage/export", &key).await;
    assert_eq!(usage_csv.0, StatusCode::OK);
    assert!(
        String::from_utf8(usage_csv.2)
            .unwrap()
            .contains(&deployment)
    );

    // Another tenant finds nothing; a viewer of this one reads it.
    let (_, other) = hub.tenant("other", roomy()).await;
    hub.get(&format!("/api/v1/invoices/{id}"), &other)
        .await
        .problem(404);
    background.stop().await;
}

async fn bad_billing_input_is_refused_and_changes_nothing(db: TestDb) {
    let hub = Hub::start(db).await;
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    let before = hub
        .store
        .audit_records_after(0, 100_000)
        .await
        .unwrap()
        .len();
    for (path, needle) in [
        ("/api/v1/usage?groupBy=week", "groupBy"),
        (
            "/api/v1/usage?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
            "after",
        ),
        (
            "/api/v1/usage?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "366",
        ),
        ("/api/v1/usage?accelerator=tpu-v9", "catalog"),
        ("/api/v1/invoices?period=2026-13", "period"),
        ("/api/v1/usage/export?period=November", "period"),
    ] {
        let detail = hub.get(path, &key).await.problem(422);
        assert!(detail.contains(needle), "{path}: {detail}");
    }
    hub.get("/api/v1/invoices/not-an-id", &key)
        .await
        .problem(404);
    hub.get("/api/v1/usage?week=1", &key).await.problem(400);
    let budget = format!("/api/v1/tenants/{tenant}/budget");
    for (body, needle) in [
        (json!({"amount": "0.00 USD"}), "above zero"),
        (json!({"amount": "10.001 USD"}), "whole cents"),
        (
            json!({"amount": "10 USD", "webhookUrl": "ftp://x", "webhookSecret": SECRET}),
            "http",
        ),
        (
            json!({"amount": "10 USD", "webhookSecret": SECRET}),
            "webhookUrl",
        ),
    ] {
        let detail = hub
            .call(Method::PUT, &budget, Some(&key), Some(body.clone()))
            .await
            .problem(422);
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    hub.get(&budget, &key).await.problem(404);
    let records = hub.store.audit_records_after(0, 100_000).await.unwrap();
    assert!(
        records[before..]
            .iter()
            .all(|r| r.event.response_status.code.is_some_and(|c| c >= 400)),
        "only refusals were recorded"
    );
}

/// Two prices for one key within one second: prices are kept to the
/// second, so the second is a conflict (409) and changes nothing, and the
/// catalog billing rates with stays whole. (Sub-seconds were kept once, so
/// both rows were stored, the catalog could no longer be built and every
/// usage, invoice and budget call answered 500.)
async fn a_price_set_twice_in_one_second_is_a_conflict(db: TestDb) {
    let hub = Hub::start(db).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let price = |effective_from: Option<String>| {
        let mut body = json!({"cloud": "aws", "region": "us-east-1", "accelerator": "l40s",
            "pricePerDeviceHour": "3.00 USD"});
        if let Some(at) = effective_from {
            body["effectiveFrom"] = json!(at);
        }
        body
    };
    let hour = chrono::Utc::now().timestamp() + 3600;
    let later = chrono::DateTime::from_timestamp(hour, 0).unwrap();
    let at = |millis: u32| {
        (later + chrono::TimeDelta::milliseconds(i64::from(millis)))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let first = hub
        .post("/api/v1/prices", &hub.admin, price(Some(at(250))))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:#}", first.body);
    let detail = hub
        .post("/api/v1/prices", &hub.admin, price(Some(at(750))))
        .await
        .problem(409);
    assert!(detail.contains("price"), "{detail}");
    assert_eq!(
        first.body["effectiveFrom"],
        later.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "kept to the second"
    );

    // Twice "now", back to back: the same second, unless the clock ticked
    // over between the two; then once more.
    let mut refused = false;
    for _ in 0..5 {
        let first = hub.post("/api/v1/prices", &hub.admin, price(None)).await;
        assert_eq!(first.status, StatusCode::CREATED, "{:#}", first.body);
        let again = hub.post("/api/v1/prices", &hub.admin, price(None)).await;
        if again.status == StatusCode::CONFLICT {
            again.problem(409);
            refused = true;
            break;
        }
        assert_eq!(again.status, StatusCode::CREATED, "{:#}", again.body);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(refused, "two prices within one second were both stored");

    hub.store
        .price_catalog()
        .await
        .expect("the catalog is whole");
    for path in ["/api/v1/prices", "/api/v1/usage", "/api/v1/invoices"] {
        let reply = hub.get(path, &key).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:#}", reply.body);
    }
    let plans = hub
        .post("/api/v1/plans", &key, json!({"model": "llama-3.1-8b"}))
        .await;
    assert_eq!(plans.status, StatusCode::OK, "{:#}", plans.body);
}

/// Each request a receiver got: its headers and body.
type Deliveries = Vec<(HeaderMap, Vec<u8>)>;

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Deliveries>>);

async fn a_budget_alerts_its_webhook_and_refuses_at_the_limit(db: TestDb) {
    // A receiver on loopback that records what it is sent.
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(r): axum::extract::State<Received>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    r.0.lock().unwrap().push((headers, body.to_vec()));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let hub = start(db).await;
    let background = hub.sync_only();
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    price_l40s(&hub).await;
    let budget = format!("/api/v1/tenants/{tenant}/budget");
    let set = hub
        .call(
            Method::PUT,
            &budget,
            Some(&key),
            Some(json!({"amount": "0.01 USD", "refuseAtLimit": true,
                "webhookUrl": url, "webhookSecret": SECRET})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:#}", set.body);
    assert!(
        !set.body.to_string().contains(SECRET),
        "the secret is never shown"
    );
    use_and_release(&hub, &key).await;

    let sender = WebhookSender::new(Retry {
        attempts: 2,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
    .allowing_private_addresses();
    for delivery in modelfleet_api::billing::schedule::pass(hub.state.hub(), &sender).await {
        delivery.await.unwrap();
    }
    let got = received.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one post per threshold");
    let mut thresholds = Vec::new();
    for (headers, body) in &got {
        let signature = headers[SIGNATURE_HEADER].to_str().unwrap();
        assert!(
            verify(SECRET.as_bytes(), signature, body),
            "signed with the secret"
        );
        assert!(!verify(b"another-secret-entirely", signature, body));
        let alert: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(alert["tenantId"], tenant.as_str());
        assert_eq!(alert["budget"]["amount"], "0.01");
        thresholds.push(alert["thresholdPercent"].as_i64().unwrap());
    }
    thresholds.sort_unstable();
    assert_eq!(thresholds, [80, 100]);
    // A second pass raises and sends nothing more.
    let deliveries = modelfleet_api::billing::schedule::pass(hub.state.hub(), &sender).await;
    assert!(deliveries.is_empty());
    assert_eq!(received.0.lock().unwrap().len(), 2);
    let alerts = hub.get(&format!("{budget}/alerts"), &key).await;
    assert!(
        alerts.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["delivery"] == "delivered"),
        "{:#}",
        alerts.body
    );

    // Spent: a new deployment is refused, and nothing is admitted.
    let refused = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "more", "model": "llama-3.1-8b", "placement": {"pool": POOL}}),
        )
        .await;
    let detail = refused.problem(403);
    assert!(detail.contains("budget of 0.01 USD is spent"), "{detail}");
    let listed = hub.get("/api/v1/deployments", &key).await;
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["name"] != "more")
    );
    background.stop().await;
}

modelfleet_api::store_tests!(
    usage_invoices_and_focus_agree_to_the_cent,
    bad_billing_input_is_refused_and_changes_nothing,
    a_budget_alerts_its_webhook_and_refuses_at_the_limit,
    a_price_set_twice_in_one_second_is_a_conflict,
);
