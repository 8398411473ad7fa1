//! Tokens become money through the REST API: platform admins set token
//! prices (whole hours, audited) and put a tenant on token pricing; the
//! tenant's invoice, FOCUS export and usage report then carry its tokens
//! (by model and by API key), and another tenant sees none of it; a spent
//! `refuseAtLimit` budget stops inference with OpenAI's
//! `insufficient_quota`. Each test runs on SQLite and, when
//! `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, TimeDelta, Utc};
use modelfleet_api::ids::{ApiKeyId, DeploymentId, RequestId, TenantId};
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::store::{TokenRecord, next_whole_hour};
use serde_json::{Value, json};
use support::{Hub, eventually, l40s_hub};

const MODEL: &str = "llama-3.1-8b";

/// A deployment of the 8B model (no need for it to be Ready: its tokens
/// are written as the gateway writes them).
async fn deploy(hub: &Hub, key: &str, name: &str) -> DeploymentId {
    let reply = hub
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": name, "model": MODEL}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    reply.body["deployment"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn tokens(
    tenant: &str,
    deployment: DeploymentId,
    key: Option<ApiKeyId>,
    at: DateTime<Utc>,
    input: u64,
    output: u64,
) -> TokenRecord {
    TokenRecord {
        request: RequestId::new(),
        tenant: tenant.parse::<TenantId>().unwrap(),
        deployment,
        api_key: key,
        model: MODEL.to_owned(),
        cluster: "aws-a".to_owned(),
        operation: "chat".to_owned(),
        status: 200,
        input_tokens: input,
        output_tokens: output,
        at,
        first_token_ms: None,
        duration_ms: None,
    }
}

fn token_group<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no token group {key}: {report:#}"))
}

async fn a_tenant_on_token_pricing_is_billed_its_tokens_and_no_one_else_sees_them(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (acme, acme_key) = hub.tenant("acme", support::roomy()).await;
    let (globex, globex_key) = hub.tenant("globex", support::roomy()).await;

    // Token prices: platform admins only, on whole hours, in one currency.
    let price = json!({"model": MODEL, "pricePerMillionInput": "0.50 USD",
        "pricePerMillionOutput": "1.50 USD"});
    let refused = hub
        .post("/api/v1/prices/tokens", &acme_key, price.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:#}", refused.body);
    let off_hour = next_whole_hour(Utc::now()) + TimeDelta::minutes(90);
    let mut bad = price.clone();
    bad["effectiveFrom"] = json!(off_hour.to_rfc3339());
    let refused = hub.post("/api/v1/prices/tokens", &hub.admin, bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.problem(422).contains("whole hour"),
        "{:#}",
        refused.body
    );
    let created = hub.post("/api/v1/prices/tokens", &hub.admin, price).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let hour: DateTime<Utc> = created.body["effectiveFrom"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(hour, next_whole_hour(hour));
    // Tenants read the catalog.
    let list = hub.get("/api/v1/prices/tokens", &globex_key).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"][0]["model"], MODEL);
    assert_eq!(
        list.body["items"][0]["pricePerMillionOutput"]["amount"],
        "1.50"
    );

    // Acme goes on token pricing: platform admins only.
    let pricing = format!("/api/v1/tenants/{acme}/pricing");
    let tokens_model = json!({"pricingModel": "tokens"});
    let refused = hub
        .call(
            Method::PUT,
            &pricing,
            Some(&acme_key),
            Some(tokens_model.clone()),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:#}", refused.body);
    let wrong = hub
        .call(
            Method::PUT,
            &pricing,
            Some(&hub.admin),
            Some(json!({"pricingModel": "per-call"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let set = hub
        .call(Method::PUT, &pricing, Some(&hub.admin), Some(tokens_model))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:#}", set.body);
    assert_eq!(
        hub.get(&pricing, &acme_key).await.body["pricingModel"],
        "tokens"
    );
    assert_eq!(
        hub.get(&pricing, &globex_key).await.status,
        StatusCode::NOT_FOUND
    );

    // Acme's batch key and a signed-in user call "chat"; globex calls its own.
    let batch = hub
        .post(
            "/api/v1/api-keys",
            &acme_key,
            json!({"name": "batch", "role": "developer"}),
        )
        .await;
    assert_eq!(batch.status, StatusCode::CREATED, "{:#}", batch.body);
    let batch_id: ApiKeyId = batch.body["key"]["id"].as_str().unwrap().parse().unwrap();
    let chat = deploy(&hub, &acme_key, "chat").await;
    let theirs = deploy(&hub, &globex_key, "theirs").await;
    let at = hour + TimeDelta::minutes(5);
    hub.store
        .record_tokens(&[
            tokens(&acme, chat, Some(batch_id), at, 1_500_000, 600_000),
            tokens(&acme, chat, Some(batch_id), at, 500_000, 400_000),
            tokens(&acme, chat, None, at, 1_000_000, 0),
            tokens(&globex, theirs, None, at, 7_000_000, 7_000_000),
        ])
        .await
        .unwrap();

    // The usage report, by key and by model: requests, tokens, their cost.
    let range = format!(
        "from={}&to={}",
        (hour - TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (hour + TimeDelta::hours(2)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let by_key = hub
        .get(&format!("/api/v1/usage?groupBy=key&{range}"), &acme_key)
        .await;
    assert_eq!(by_key.status, StatusCode::OK, "{:#}", by_key.body);
    let key = token_group(&by_key.body, &batch_id.to_string());
    assert_eq!(key["name"], "batch");
    assert_eq!(
        (&key["requests"], &key["inputTokens"], &key["outputTokens"]),
        (&json!(2), &json!(2_000_000), &json!(1_000_000))
    );
    // 2 000 000 × 0.50 + 1 000 000 × 1.50 = 2.50.
    assert_eq!(key["cost"]["amount"], "2.50", "{key:#}");
    let console = token_group(&by_key.body, "none");
    assert_eq!(console["cost"]["amount"], "0.50");
    assert_eq!(by_key.body["tokens"].as_array().unwrap().len(), 2);
    assert!(by_key.body["groups"].as_array().unwrap().is_empty());
    let by_model = hub
        .get(&format!("/api/v1/usage?groupBy=model&{range}"), &acme_key)
        .await;
    let model = token_group(&by_model.body, MODEL);
    assert_eq!(
        (
            &model["requests"],
            &model["inputTokens"],
            &model["cost"]["amount"]
        ),
        (&json!(3), &json!(3_000_000), &json!("3.00"))
    );
    // Globex sees its own tokens, unpriced (it is on time pricing), and
    // never acme's.
    let own = hub
        .get(&format!("/api/v1/usage?groupBy=model&{range}"), &globex_key)
        .await;
    let model = token_group(&own.body, MODEL);
    assert_eq!(model["inputTokens"], 7_000_000);
    assert!(model["cost"].is_null(), "{model:#}");
    let peek = hub
        .get(
            &format!("/api/v1/usage?groupBy=key&tenant={acme}&{range}"),
            &globex_key,
        )
        .await;
    assert!(
        peek.status.is_client_error(),
        "another tenant's usage: {:#}",
        peek.body
    );
    assert!(!peek.body.to_string().contains("batch"));

    // The invoice of the month the hour is in: two token lines.
    let period = hour.format("%Y-%m").to_string();
    let invoices = hub
        .get(&format!("/api/v1/invoices?period={period}"), &acme_key)
        .await;
    assert_eq!(invoices.status, StatusCode::OK, "{:#}", invoices.body);
    let id = invoices.body["items"][0]["id"].as_str().unwrap().to_owned();
    let invoice = hub.get(&format!("/api/v1/invoices/{id}"), &acme_key).await;
    let lines = invoice.body["lines"].as_array().unwrap();
    let got: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["tokenDirection"].as_str().unwrap(),
                l["tokens"].as_u64().unwrap(),
                l["amount"]["amount"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("input", 3_000_000, "1.50"), ("output", 1_000_000, "1.50")]
    );
    assert_eq!(invoice.body["total"]["amount"], "3.00");
    let (status, _, focus) = hub
        .download(
            &format!("/api/v1/invoices/{id}/export?format=focus"),
            &acme_key,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let focus = String::from_utf8(focus).unwrap();
    assert!(
        focus.contains(",3000000,Tokens,3.000000,1000000 Tokens,"),
        "{focus}"
    );
    // Globex cannot read acme's invoice.
    let theirs = hub
        .get(&format!("/api/v1/invoices/{id}"), &globex_key)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

/// The gateway chat request a client sends.
async fn chat(hub: &Hub, key: &str) -> support::Reply {
    hub.post(
        "/v1/chat/completions",
        key,
        json!({"model": "assistant", "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await
}

async fn a_spent_budget_stops_inference_with_insufficient_quota(db: TestDb) {
    let hub = l40s_hub(db).await;
    let (acme, key) = hub.tenant("acme", support::roomy()).await;
    deploy_named(&hub, &key, "assistant").await;
    eventually("the deployment answers through the gateway", || async {
        (chat(&hub, &key).await.status == StatusCode::OK).then_some(())
    })
    .await;

    // This month's spend reaches the budget (a charge stands in for the
    // month's usage), and the budget refuses at its limit.
    let charge = hub
        .post(
            &format!("/api/v1/tenants/{acme}/adjustments"),
            &hub.admin,
            json!({"kind": "charge", "amount": "10.00 USD", "description": "support plan"}),
        )
        .await;
    assert_eq!(charge.status, StatusCode::CREATED, "{:#}", charge.body);
    let budget = hub
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{acme}/budget"),
            Some(&key),
            Some(json!({"amount": "5.00 USD", "refuseAtLimit": true})),
        )
        .await;
    assert_eq!(budget.status, StatusCode::OK, "{:#}", budget.body);

    // Within the gateway's few seconds of caching, requests stop.
    let refused = eventually("the gateway refuses over budget", || async {
        let reply = chat(&hub, &key).await;
        (reply.status == StatusCode::TOO_MANY_REQUESTS).then_some(reply)
    })
    .await;
    let error = &refused.body["error"];
    assert_eq!(error["type"], "insufficient_quota", "{:#}", refused.body);
    assert_eq!(error["code"], "insufficient_quota");
    assert!(error["param"].is_null());
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("5.00 USD"), "{message}");

    // Raised, it answers again.
    let raised = hub
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{acme}/budget"),
            Some(&key),
            Some(json!({"amount": "50.00 USD", "refuseAtLimit": true})),
        )
        .await;
    assert_eq!(raised.status, StatusCode::OK);
    eventually("the gateway answers within the raised budget", || async {
        (chat(&hub, &key).await.status == StatusCode::OK).then_some(())
    })
    .await;
}

async fn deploy_named(hub: &Hub, key: &str, name: &str) {
    deploy(hub, key, name).await;
}

modelfleet_api::store_tests!(
    a_tenant_on_token_pricing_is_billed_its_tokens_and_no_one_else_sees_them,
    a_spent_budget_stops_inference_with_insufficient_quota,
);
