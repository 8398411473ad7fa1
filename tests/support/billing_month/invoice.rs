//! December's invoice through the API, and its comparison with the hand
//! arithmetic.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::hand::amount;
use super::hub::Hub;
use super::{Outcome, expected_invoice};

/// deployment, cloud, region, capacity, device-seconds, unit price and
/// amount in micro-dollars.
type LineKey = (String, String, String, String, i128, i128, i128);

/// December's invoice of `tenant`, with what differs between two runs (ids,
/// times of writing) left out.
pub async fn invoice(hub: &Hub, key: &str, tenant: &str) -> (StatusCode, Value, Option<Value>) {
    let (status, list) = hub
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/invoices?tenant={tenant}&period=2026-12"),
            key,
            None,
        )
        .await;
    if status != StatusCode::OK {
        return (status, list, None);
    }
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "one December invoice: {list:#}");
    let id = items[0]["id"].as_str().expect("the invoice has an id");
    let (status, body) = hub
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/invoices/{id}"),
            key,
            None,
        )
        .await;
    if status != StatusCode::OK {
        return (status, body, None);
    }
    assert_eq!(
        items[0]["total"], body["total"],
        "the list and the invoice agree on the total"
    );
    let keep = |v: &Value, fields: &[&str]| -> Value {
        Value::Object(
            fields
                .iter()
                .map(|f| ((*f).to_owned(), v.get(*f).cloned().unwrap_or(Value::Null)))
                .collect(),
        )
    };
    let mut lines: Vec<Value> = body["lines"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| {
            keep(
                l,
                &[
                    "category",
                    "deploymentName",
                    "cloud",
                    "region",
                    "accelerator",
                    "capacity",
                    "deviceSeconds",
                    "unitPrice",
                    "listAmount",
                    "discountAmount",
                    "amount",
                    "chargeStart",
                    "chargeEnd",
                ],
            )
        })
        .collect();
    lines.sort_by_key(|l| l.to_string());
    let mut normal = keep(
        &body,
        &[
            "period",
            "currency",
            "status",
            "listTotal",
            "discountTotal",
            "total",
        ],
    );
    normal["lines"] = Value::Array(lines);
    (status, body, Some(normal))
}

/// Asserts the invoice is the hand-computed one, to the cent.
pub fn assert_invoice_is_the_hand_computed_one(outcome: &Outcome) {
    let hand = expected_invoice(outcome.alpha_devices, outcome.bravo_devices);
    let total: i128 = hand.iter().map(|l| l.cents).sum();
    let Some(invoice) = &outcome.invoice else {
        panic!(
            "December's invoice could not be read ({}): {:#}\n\
             (the replica intervals were exactly the scenario's: {:#?})\n\
             by hand it is {} USD: {hand:#?}",
            outcome.invoice_status,
            outcome.invoice_body,
            outcome.intervals,
            amount(total)
        );
    };
    assert_eq!(invoice["currency"], "USD", "{invoice:#}");
    assert_eq!(invoice["period"], "2026-12", "{invoice:#}");
    let usage: Vec<&Value> = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["category"].as_str().is_some_and(|c| c == "Usage"))
        .collect();
    let mut seen: Vec<LineKey> = usage
        .iter()
        .map(|l| {
            (
                l["deploymentName"].as_str().unwrap_or_default().to_owned(),
                l["cloud"].as_str().unwrap_or_default().to_owned(),
                l["region"].as_str().unwrap_or_default().to_owned(),
                l["capacity"].as_str().unwrap_or_default().to_owned(),
                l["deviceSeconds"].as_i64().map_or(-1, i128::from),
                micros(&l["unitPrice"]),
                micros(&l["amount"]),
            )
        })
        .collect();
    let mut want: Vec<LineKey> = hand
        .iter()
        .map(|l| {
            (
                l.deployment.to_owned(),
                l.cloud.to_owned(),
                l.region.to_owned(),
                l.capacity.to_owned(),
                l.device_seconds,
                l.unit_price_micros,
                l.cents * 10_000,
            )
        })
        .collect();
    seen.sort();
    want.sort();
    assert_eq!(
        seen, want,
        "the usage lines, by hand: {hand:#?}\ninvoice: {invoice:#}"
    );
    assert_eq!(
        invoice["total"],
        json!({"amount": amount(total), "currency": "USD"}),
        "the total, by hand {} USD: {invoice:#}",
        amount(total)
    );
    let categories: Vec<&Value> = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["category"])
        .collect();
    assert!(
        categories.iter().all(|c| *c == "Usage"),
        "the amounts are right, but the invoice API's contract writes the category \
         \"usage\": {categories:?}"
    );
}

/// `{"amount": "1.8617", "currency": "USD"}` → 1 861 700 micro-dollars;
/// -1 for anything else (which then shows in the failed comparison).
fn micros(money: &Value) -> i128 {
    if money["currency"] != "USD" {
        return -1;
    }
    serde_json::from_value::<modelfleet_core::money::Money>(money.clone())
        .map_or(-1, |m| i128::from(m.micros()))
}
