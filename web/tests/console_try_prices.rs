//! The traffic figures' cost per million tokens for a deployment billed by
//! its tokens: the token price list's per-million input and output prices
//! once they are in force. Token prices only ever start at a whole hour to
//! come, so this runs on a simulated clock moved past that hour (this
//! binary's only test: the clock is the whole process's).

mod support;

use std::time::{Duration, SystemTime};

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use modelfleet_api::Role;
use modelfleet_api::store::Backend;
use modelfleet_api::store::testing::run;
use serde_json::json;
use support::hub::roomy;
use support::{Browser, Hub, user};

#[tokio::test]
async fn a_deployment_billed_by_tokens_shows_its_prices_per_million() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    let start = SystemTime::now();
    modelfleet_clock::set(&clock, start).unwrap();
    modelfleet_clock::simulate(&clock).unwrap();

    run(Backend::Sqlite, |db| async move {
        let hub = Hub::start(db).await;
        let (tenant, key) = hub.tenant("acme", roomy()).await;
        user(&hub, Some(tenant.parse().unwrap()), "dev", Role::Developer).await;
        let price = hub
            .post(
                "/api/v1/prices/tokens",
                &hub.admin,
                json!({"model": "llama-3.1-8b", "pricePerMillionInput": "0.50 USD",
                    "pricePerMillionOutput": "1.50 USD"}),
            )
            .await;
        assert_eq!(price.status, StatusCode::CREATED, "{:#}", price.body);
        let from: DateTime<Utc> = price.body["effectiveFrom"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let pricing = hub
            .call(
                Method::PUT,
                &format!("/api/v1/tenants/{tenant}/pricing"),
                Some(&hub.admin),
                Some(json!({"pricingModel": "tokens"})),
            )
            .await;
        assert!(pricing.status.is_success(), "{:#}", pricing.body);
        let deployed = hub
            .post(
                "/api/v1/deployments",
                &key,
                json!({"name": "assistant", "model": "llama-3.1-8b"}),
            )
            .await;
        assert_eq!(deployed.status, StatusCode::ACCEPTED, "{:#}", deployed.body);
        let id = deployed.body["deployment"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/deployments/{id}/traffic");

        // Before the price starts, the deployment is billed by device time
        // (and has answered nothing).
        let mut developer = Browser::new(&hub);
        developer.sign_in("dev").await;
        let figures = developer.get(&path).await;
        assert_eq!(figures.status, StatusCode::OK, "{}", figures.text());
        assert_eq!(figures.one("#traffic-requests"), "0");
        assert!(
            !figures.has("#traffic-cost [data-billed=tokens]"),
            "{}",
            figures.text()
        );

        // Once it has started: the price list's prices per million.
        let after = SystemTime::from(from) + Duration::from_secs(60);
        modelfleet_clock::set(&clock, after).unwrap();
        let mut developer = Browser::new(&hub);
        developer.sign_in("dev").await;
        let figures = developer.get(&path).await;
        assert_eq!(figures.status, StatusCode::OK, "{}", figures.text());
        assert_eq!(
            figures.one("#traffic-cost [data-billed=tokens]"),
            "0.50 USD per 1M input · 1.50 USD per 1M output"
        );
        assert!(figures.one("#traffic-cost").contains("billed by tokens"));
    })
    .await;
}
