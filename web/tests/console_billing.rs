//! The quotas and billing pages as a tenant admin, a developer and a
//! platform admin meet them: quota bars with the API's numbers, the month's
//! cost as SVG charts with exact tables equal to `/api/v1/usage`, invoices
//! with their lines and CSV/FOCUS downloads, the budget form (saved, and
//! refused with the API's message without saving), escaping of names, and
//! other tenants' pages answering 404. SQLite only.

mod support;

use axum::http::StatusCode;
use chrono::{TimeDelta, Utc};
use modelfleet_api::ids::{DeploymentId, TenantId};
use modelfleet_api::store::{NewInterval, PoolLocation};
use modelfleet_api::{Actor, Role};
use modelfleet_core::billing::{BillingPeriod, Capacity, UnixSeconds};
use modelfleet_core::fleet::Cloud;
use serde_json::{Value, json};
use support::hub::CLUSTER;
use support::{Browser, Hub, enrolled_staff, on_sqlite, tenant_with_admin, user};

const EVIL: &str = "<script>alert(1)</script> & <b>x</b>";

/// The page shows [`EVIL`] as text: escaped (askama writes `&#60;`, a
/// browser shows `<`), never as markup.
fn assert_escaped(html: &str) {
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the tenant's name is not on the page escaped"
    );
    assert!(!html.contains("<script>alert"), "markup from a name");
    assert!(!html.contains("<b>x</b>"), "markup from a name");
}

/// A tenant whose display name is markup, with a tenant admin
/// `<name>-admin`: `(id, API key)`.
async fn evil_tenant(hub: &Hub, name: &str) -> (TenantId, String) {
    let reply = hub
        .post(
            "/api/v1/tenants",
            &hub.admin,
            json!({"name": name, "displayName": EVIL, "quota": support::hub::roomy()}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    let key = hub
        .post(
            "/api/v1/api-keys",
            &hub.admin,
            json!({"name": "admin", "role": "tenant-admin", "tenant": id}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{:#}", key.body);
    let id: TenantId = id.parse().unwrap();
    user(hub, Some(id), &format!("{name}-admin"), Role::TenantAdmin).await;
    (id, key.body["token"].as_str().unwrap().to_owned())
}

/// Deploys `name` through the REST API: the reply's body.
async fn deploy(hub: &Hub, key: &str, name: &str) -> Value {
    let reply = hub
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": name, "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:#}", reply.body);
    reply.body
}

/// Records that the deployment's pod held its devices for a while this
/// month and is gone, as cluster sync would, priced at a catalog price.
async fn record_usage(hub: &Hub, tenant: TenantId, namespace: &str, deployed: &Value) {
    let plan = &deployed["plan"];
    let accelerator = plan["accelerator"].as_str().unwrap().to_owned();
    let pool = plan["pool"].as_str().unwrap().to_owned();
    let devices = plan["devicesPerReplica"].as_u64().unwrap_or(1) as u32;
    let price = hub
        .post(
            "/api/v1/prices",
            &hub.admin,
            json!({"cloud": "aws", "region": "us-east-1", "accelerator": accelerator,
                "pricePerDeviceHour": "3.7733 USD"}),
        )
        .await;
    assert!(price.status.is_success(), "{:#}", price.body);
    let id: DeploymentId = deployed["deployment"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Prices never apply to the past: the pod starts after the price does
    // and ends a second later (billed as the 60-second minimum), so its
    // cost is fixed once that second has passed.
    let from = Utc::now();
    let until = from + TimeDelta::seconds(1);
    let uid = format!("uid-{id}");
    let mut tx = hub.store.begin(&Actor::system("test")).await.unwrap();
    let added = tx
        .open_interval(&NewInterval {
            deployment: id,
            tenant,
            cluster: CLUSTER.to_owned(),
            namespace: namespace.to_owned(),
            pod_name: "pod-0".to_owned(),
            pod_uid: uid.clone(),
            node: "node-0".to_owned(),
            pool: pool.rsplit('/').next().unwrap().to_owned(),
            accelerator,
            devices,
            allocated_at: from,
            location: Some(PoolLocation {
                cloud: Cloud::Aws,
                region: "us-east-1".to_owned(),
                capacity: Capacity::OnDemand,
            }),
        })
        .await
        .unwrap();
    assert!(added);
    tx.close_interval(CLUSTER, &uid, until).await.unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
}

/// Sums the costs of `/api/v1/usage?groupBy=deployment` as the page does:
/// `"12.34 USD"`, in exact cents.
async fn api_month_total(hub: &Hub, key: &str) -> String {
    let usage = hub.get("/api/v1/usage?groupBy=deployment", key).await;
    assert_eq!(usage.status, StatusCode::OK, "{:#}", usage.body);
    let groups = usage.body["groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "{:#}", usage.body);
    let mut cents = 0i64;
    for g in groups {
        assert_eq!(g["cost"]["currency"], "USD");
        let (whole, frac) = g["cost"]["amount"]
            .as_str()
            .unwrap()
            .split_once('.')
            .unwrap();
        cents += whole.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap();
    }
    format!("{}.{:02} USD", cents / 100, cents % 100)
}

/// A platform admin with a second factor, signed in.
async fn platform_admin(hub: &Hub) -> Browser {
    enrolled_staff(hub, &hub.state, "ops", Role::PlatformAdmin).await
}

#[tokio::test]
async fn quota_bars_show_what_a_deployment_holds_against_each_limit() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let (_, key) = evil_tenant(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        let page = browser.get("/quotas").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let rows = page.texts("#quota-bars tbody tr");
        assert!(
            rows.iter()
                .any(|r| r.contains("Concurrent deployments") && r.contains("0 / 10")),
            "{rows:?}"
        );

        deploy(&hub, &key, "chat").await;
        let api = hub.get("/api/v1/quota", &key).await;
        assert_eq!(api.status, StatusCode::OK, "{:#}", api.body);

        let page = browser.get("/quotas").await;
        assert_eq!(page.status, StatusCode::OK);
        let numbers = page.texts("#quota-bars .quota-numbers");
        for limit in api.body["usage"].as_array().unwrap() {
            let want = format!(
                "{} / {}",
                limit["inUse"].as_str().unwrap(),
                limit["allowed"].as_str().unwrap()
            );
            assert!(numbers.contains(&want), "{want} not in {numbers:?}");
        }
        assert!(numbers.contains(&"1 / 10".to_owned()), "{numbers:?}");
        // Each set limit has a meter with the same numbers.
        assert!(
            page.attrs("#quota-bars meter", "max")
                .contains(&"10".to_owned())
        );
        assert!(
            page.attrs("#quota-bars meter", "value")
                .contains(&"1".to_owned())
        );
        assert!(
            page.attrs("#quota-bars meter", "max")
                .contains(&"32".to_owned())
        );
        // Kinds without a limit say so.
        assert!(
            numbers.iter().any(|n| n.ends_with("/ unlimited")),
            "{numbers:?}"
        );
        // The tenant's display name is text, not markup.
        assert_eq!(
            page.one("#tenant-name"),
            EVIL.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert_escaped(&page.text());
        assert!(!page.text().contains(" style="));
    })
    .await;
}

#[tokio::test]
async fn the_billing_page_charts_the_month_and_its_total_equals_the_api() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let (tenant, key) = evil_tenant(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        // Nothing used yet: said in words, no charts.
        let page = browser.get("/billing").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.has("#no-usage"));
        assert!(!page.has("svg.chart"));

        let deployed = deploy(&hub, &key, "chat").await;
        record_usage(&hub, tenant, "mf-acme", &deployed).await;
        let total = api_month_total(&hub, &key).await;

        let page = browser.get("/billing").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(!page.has("#no-usage"));
        assert_eq!(page.one("#month-total"), total);
        for figure in [
            "#usage-by-cloud",
            "#usage-by-accelerator",
            "#usage-by-deployment",
        ] {
            assert!(page.has(&format!("{figure} svg.chart rect")), "{figure}");
            assert!(page.has(&format!("{figure} svg.chart title")), "{figure}");
            assert!(
                !page
                    .attrs(&format!("{figure} svg.chart"), "aria-label")
                    .is_empty()
            );
            assert!(page.has(&format!("{figure} table")), "{figure}");
        }
        assert!(
            page.one("#usage-by-deployment table tbody")
                .contains("chat")
        );
        assert!(
            page.one("#usage-by-deployment table tbody")
                .contains(&total)
        );
        assert!(
            page.texts("#usage-by-deployment svg text")
                .contains(&"chat".to_owned())
        );
        assert!(page.one("#usage-by-cloud table tbody").contains("aws"));
        assert!(!page.text().contains(" style="), "inline style");
        assert_escaped(&page.text());

        // The month's usage downloads as CSV.
        let month = BillingPeriod::containing(UnixSeconds(Utc::now().timestamp())).to_string();
        assert!(
            page.attrs("#usage-csv", "href")
                .contains(&format!("/billing/usage.csv?month={month}"))
        );
        let csv = browser
            .get(&format!("/billing/usage.csv?month={month}"))
            .await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(
            csv.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(
            csv.headers["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment")
        );
        assert!(
            csv.text()
                .contains(deployed["deployment"]["id"].as_str().unwrap())
        );

        // Another month is empty; a month that is not one is refused.
        let page = browser.get("/billing?month=2020-01").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("#no-usage"));
        assert_eq!(page.one("#month-total"), "0.00 USD");
        let page = browser.get("/billing?month=2020-13").await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    })
    .await;
}

#[tokio::test]
async fn an_invoice_lists_its_lines_and_downloads_as_csv_and_focus() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let (tenant, key) = evil_tenant(&hub, "acme").await;
        let deployed = deploy(&hub, &key, "chat").await;
        record_usage(&hub, tenant, "mf-acme", &deployed).await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        let page = browser.get("/billing").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let rows = page.texts("#invoices tbody tr");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].contains("Draft"), "{rows:?}");
        let href = page.attrs("#invoices a.invoice-link", "href")[0].clone();

        let api = hub.get("/api/v1/invoices", &key).await;
        let id = api.body["items"][0]["id"].as_str().unwrap();
        assert_eq!(href, format!("/billing/invoices/{id}"));
        let invoice = hub.get(&format!("/api/v1/invoices/{id}"), &key).await;

        let page = browser.get(&href).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let lines = page.texts("#invoice-lines tbody tr");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(page.one("#invoice-lines .line-deployment"), "chat");
        assert!(
            lines[0].contains("aws") && lines[0].contains("us-east-1"),
            "{lines:?}"
        );
        assert!(lines[0].contains("3.7733 USD"), "{lines:?}");
        let total = format!(
            "{} {}",
            invoice.body["total"]["amount"].as_str().unwrap(),
            invoice.body["total"]["currency"].as_str().unwrap()
        );
        assert_eq!(page.one("#invoice-total"), total);
        assert_eq!(page.one("#invoice-lines .line-amount"), total);
        assert!(page.one("#invoice-header").contains("half up"));
        assert_escaped(&page.text());

        for (link, first) in [("invoice.csv", "invoice_id,"), ("focus.csv", "")] {
            let path = format!("{href}/{link}");
            assert!(page.attrs("a", "href").contains(&path), "{path}");
            let csv = browser.get(&path).await;
            assert_eq!(csv.status, StatusCode::OK, "{}", csv.text());
            assert!(
                csv.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/csv")
            );
            let disposition = csv.headers["content-disposition"].to_str().unwrap();
            assert!(
                disposition.starts_with("attachment; filename="),
                "{disposition}"
            );
            let body = csv.text();
            assert!(body.starts_with(first), "{body}");
            if link == "focus.csv" {
                let header = body.lines().next().unwrap();
                assert!(header.contains("BilledCost"), "{header}");
            }
        }

        // Another tenant finds nothing.
        tenant_with_admin(&hub, "other").await;
        let mut other = Browser::new(&hub);
        other.sign_in("other-admin").await;
        assert_eq!(other.get(&href).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            other.get(&format!("{href}/focus.csv")).await.status,
            StatusCode::NOT_FOUND
        );
    })
    .await;
}

#[tokio::test]
async fn a_budget_saved_through_the_form_shows_and_bad_input_saves_nothing() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let (tenant, key) = evil_tenant(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        let page = browser.get("/billing/budget").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.has("#budget-none"));
        assert!(page.has("#budget-form label[for=amount]"));

        let page = browser
            .post(
                "/billing/budget",
                &[
                    ("amount", "250.00"),
                    ("currency", "USD"),
                    ("refuse_at_limit", "on"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(page.location(), Some("/billing/budget"));
        let page = browser.get("/billing/budget").await;
        assert_eq!(page.one("#budget-amount"), "250.00 USD");
        assert!(page.has("#budget-refuses"));

        let page = browser.get("/billing").await;
        assert_eq!(page.one("#budget-amount"), "250.00 USD");
        assert!(page.has("#budget-bar meter"));

        // Refused: zero (the API's rule), a negative amount, a webhook
        // without its secret. Each says why and keeps what was typed.
        for (fields, says) in [
            (vec![("amount", "0"), ("currency", "USD")], "above zero"),
            (vec![("amount", "-5"), ("currency", "USD")], "negative"),
            (
                vec![("amount", "12.345"), ("currency", "USD")],
                "whole cents",
            ),
            (
                vec![
                    ("amount", "300"),
                    ("currency", "USD"),
                    ("webhook_url", "https://hooks.example.com/x"),
                ],
                "secret",
            ),
        ] {
            let page = browser.post("/billing/budget", &fields).await;
            assert_eq!(
                page.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}",
                page.text()
            );
            let error = page.one("#budget-error");
            assert!(error.contains(says), "{error}");
            assert_eq!(page.attrs("#amount", "value"), vec![fields[0].1.to_owned()]);
            // Nothing changed.
            assert_eq!(page.one("#budget-amount"), "250.00 USD");
        }
        let api = hub
            .get(&format!("/api/v1/tenants/{tenant}/budget"), &key)
            .await;
        assert_eq!(api.body["budget"]["amount"], "250.00", "{:#}", api.body);

        // A developer reads it but may not change it.
        user(&hub, Some(tenant), "dev", Role::Developer).await;
        let mut dev = Browser::new(&hub);
        dev.sign_in("dev").await;
        let page = dev.get("/billing/budget").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("#budget-read-only"));
        assert!(!page.has("#budget-form"));
        let page = dev
            .post(
                "/billing/budget",
                &[("amount", "1.00"), ("currency", "USD")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        let page = dev.post("/billing/budget/delete", &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());

        // The admin deletes it.
        let page = browser.post("/billing/budget/delete", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert!(browser.get("/billing/budget").await.has("#budget-none"));
    })
    .await;
}

#[tokio::test]
async fn other_tenants_pages_are_not_found_and_platform_admins_name_the_tenant() {
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let acme = tenant_with_admin(&hub, "acme").await;
        let other = tenant_with_admin(&hub, "other").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;
        for path in [
            "/billing",
            "/quotas",
            "/billing/budget",
            "/billing/usage.csv",
        ] {
            let page = browser.get(&format!("{path}?tenant={other}")).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
            let page = browser.get(&format!("{path}?tenant={acme}")).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
        }
        let page = browser
            .post(
                "/billing/budget",
                &[
                    ("tenant", &other.to_string()),
                    ("amount", "5.00"),
                    ("currency", "USD"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);

        let mut ops = platform_admin(&hub).await;
        let page = ops.get("/billing").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(
            page.attrs("#tenant-pick a", "href")
                .contains(&format!("/billing?tenant={acme}"))
        );
        let page = ops.get(&format!("/quotas?tenant={acme}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.has("#quota-bars"));
        let page = ops.get(&format!("/billing?tenant={acme}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.attrs("#usage-csv", "href")[0].contains(&format!("tenant={acme}")));
        // A platform admin sets a tenant's budget through the same form.
        let page = ops
            .post(
                "/billing/budget",
                &[
                    ("tenant", &acme.to_string()),
                    ("amount", "99.50"),
                    ("currency", "CNY"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert_eq!(
            page.location(),
            Some(format!("/billing/budget?tenant={acme}").as_str())
        );
        let page = ops.get(&format!("/billing/budget?tenant={acme}")).await;
        assert_eq!(page.one("#budget-amount"), "99.50 CNY");
    })
    .await;
}

#[tokio::test]
async fn the_budget_page_shows_the_webhook_masked_and_only_to_admins() {
    const HOOK: &str = "https://hooks.slack.com/services/T0001/B0002/Xyzzy-s3cret-T0ken";
    on_sqlite(|db| async move {
        let hub = Hub::start(db).await;
        let (tenant, key) = evil_tenant(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;
        let page = browser
            .post(
                "/billing/budget",
                &[
                    ("amount", "250.00"),
                    ("currency", "USD"),
                    ("webhook_url", HOOK),
                    ("webhook_secret", "whsec-0123456789abcdef"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());

        // The admin sees where alerts go, never the path, not even in the form.
        let page = browser.get("/billing/budget").await;
        assert_eq!(page.one("#budget-webhook"), "https://hooks.slack.com/…");
        assert!(!page.text().contains("s3cret-T0ken"), "{}", page.text());
        assert!(!page.text().contains("/services/"), "{}", page.text());
        assert_eq!(page.attrs("#webhook_url", "value"), vec![String::new()]);

        // Saving the form with the webhook fields empty keeps the webhook.
        let page = browser
            .post(
                "/billing/budget",
                &[("amount", "300.00"), ("currency", "USD")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let api = hub
            .get(&format!("/api/v1/tenants/{tenant}/budget"), &key)
            .await;
        assert_eq!(api.body["budget"]["amount"], "300.00", "{:#}", api.body);
        assert_eq!(
            api.body["webhook"], "https://hooks.slack.com/…",
            "{:#}",
            api.body
        );

        // A developer of the tenant sees the budget, nothing of the webhook.
        user(&hub, Some(tenant), "dev", Role::Developer).await;
        let mut dev = Browser::new(&hub);
        dev.sign_in("dev").await;
        let page = dev.get("/billing/budget").await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.one("#budget-amount"), "300.00 USD");
        assert!(!page.has("#budget-webhook"));
        assert!(!page.text().contains("hooks.slack.com"), "{}", page.text());

        // Ticking "remove" removes it.
        let page = browser
            .post(
                "/billing/budget",
                &[
                    ("amount", "300.00"),
                    ("currency", "USD"),
                    ("remove_webhook", "on"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        assert!(!browser.get("/billing/budget").await.has("#budget-webhook"));
        let webhook = hub
            .store
            .budget_webhook(hub.state.keyring(), tenant)
            .await
            .unwrap();
        assert!(webhook.is_none(), "the webhook is still there");
    })
    .await;
}
