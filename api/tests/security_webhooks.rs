//! Issue 16, finding 7: budget webhooks as an attacker would try them.
//!
//! - The webhook URL (for Slack-style hooks, the URL *is* the secret) is
//!   shown only to those who may manage the tenant, and only as scheme and
//!   host; viewers see nothing of it.
//! - A URL whose host is a literal non-public address (NAT64 and 6to4
//!   wrappings of private IPv4, IPv4-mapped IPv6, benchmarking and
//!   reserved IPv4 ranges, …) is refused when the budget is set.
//! - The webhook client ignores `HTTP(S)_PROXY`: a proxy would resolve the
//!   receiver's name again, behind the hub's address check.
//! - An alert whose attempts run out is tried again on a later pass, and a
//!   receiver that never answers delays neither invoicing nor another
//!   tenant's alert.
//!
//! The receivers are real HTTP servers on loopback; the hubs that post to
//! them allow private addresses, as `--webhook-allow-private-addresses`
//! does. Each database test runs on SQLite and, when
//! `MODELFLEET_TEST_DATABASE_URL` is set, on PostgreSQL.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use modelfleet_api::billing::schedule;
use modelfleet_api::billing::webhook::{Retry, WebhookSender};
use modelfleet_api::ids::TenantId;
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::{Actor, ApiSettings, Scope};
use modelfleet_core::billing::{BillingPeriod, UnixSeconds};
use modelfleet_core::fleet::Cloud;
use serde_json::{Value, json};
use support::{CLUSTER, Hub, SandboxSpec, eventually, fleet, roomy, test_settings};
use tokio::sync::Notify;

const SECRET: &str = "whsec-test-0123456789";
/// A Slack-style URL: whoever has it can post to the channel.
const SLACK_URL: &str = "https://hooks.slack.com/services/T0001/B0002/Xyzzy-s3cret-T0ken";

async fn start(db: TestDb, settings: ApiSettings) -> Hub {
    let spec = SandboxSpec {
        name: CLUSTER,
        cloud: Cloud::Aws,
        region: "us-east-1",
        fleet: fleet(),
        operator: None,
    };
    Hub::start_clusters(db, vec![spec], settings).await
}

/// A hub whose webhooks may post to loopback, where the tests' receivers are.
async fn start_allowing_loopback(db: TestDb) -> Hub {
    let settings = ApiSettings {
        webhook_allow_private_addresses: true,
        ..test_settings()
    };
    start(db, settings).await
}

/// An API key of `role` in `tenant`.
async fn key(hub: &Hub, tenant: &str, role: &str) -> String {
    let reply = hub
        .post(
            "/api/v1/api-keys",
            &hub.admin,
            json!({"name": role, "role": role, "tenant": tenant}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    reply.body["token"].as_str().unwrap().to_owned()
}

async fn set_budget(hub: &Hub, tenant: &str, key: &str, url: &str) {
    let reply = hub
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/budget"),
            Some(key),
            Some(json!({"amount": "100.00 USD", "webhookUrl": url, "webhookSecret": SECRET})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    assert!(
        !reply.body.to_string().contains("s3cret-T0ken"),
        "the answer to setting the budget repeats the URL: {:#}",
        reply.body
    );
}

async fn the_webhook_url_is_shown_masked_and_only_to_admins(db: TestDb) {
    let hub = start(db, test_settings()).await;
    let (tenant, admin) = hub.tenant("acme", roomy()).await;
    set_budget(&hub, &tenant, &admin, SLACK_URL).await;
    let budget = format!("/api/v1/tenants/{tenant}/budget");

    // Those who may manage the tenant see where alerts go, not the path.
    for (who, token) in [("tenant admin", &admin), ("platform admin", &hub.admin)] {
        let reply = hub.get(&budget, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        let text = reply.body.to_string();
        assert!(
            !text.contains("s3cret-T0ken") && !text.contains("/services/"),
            "{who} was shown the webhook's path: {text}"
        );
        assert_eq!(
            reply.body["webhook"], "https://hooks.slack.com/…",
            "{who}: {:#}",
            reply.body
        );
    }
    // Everyone else who reads the tenant sees the budget, not the webhook.
    for role in ["viewer", "developer"] {
        let token = key(&hub, &tenant, role).await;
        let reply = hub.get(&budget, &token).await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        assert_eq!(reply.body["budget"]["amount"], "100.00");
        let text = reply.body.to_string();
        assert!(
            !text.contains("hooks.slack.com") && !text.contains("s3cret-T0ken"),
            "a {role} was shown the webhook: {text}"
        );
    }
}

async fn literal_private_receivers_are_refused_when_the_budget_is_set(db: TestDb) {
    let hub = start(db, test_settings()).await;
    let (tenant, admin) = hub.tenant("acme", roomy()).await;
    let budget = format!("/api/v1/tenants/{tenant}/budget");
    for url in [
        // NAT64 (64:ff9b::/96) around 169.254.169.254, the metadata service.
        "http://[64:ff9b::a9fe:a9fe]/hook",
        // 6to4 (2002::/16) around 127.0.0.1.
        "http://[2002:7f00:1::1]/hook",
        // IPv4-mapped IPv6 around 10.0.0.7.
        "http://[::ffff:10.0.0.7]/hook",
        // Benchmarking (198.18.0.0/15) and reserved (240.0.0.0/4) IPv4.
        "http://198.18.0.1/hook",
        "http://198.19.255.254/hook",
        "http://240.0.0.1/hook",
        // Loopback written as a number, and by name.
        "http://2130706433/hook",
        "http://localhost:8080/hook",
    ] {
        let reply = hub
            .call(
                Method::PUT,
                &budget,
                Some(&admin),
                Some(json!({"amount": "10.00 USD", "webhookUrl": url, "webhookSecret": SECRET})),
            )
            .await;
        let detail = reply.problem(422);
        assert!(detail.contains("not a public address"), "{url}: {detail}");
        assert_eq!(reply.body["field"], "webhookUrl", "{url}: {:#}", reply.body);
    }
    // Nothing was set.
    hub.get(&budget, &admin).await.problem(404);
}

/// A receiver on loopback: it answers `status` (changeable) and counts
/// what it gets.
#[derive(Clone)]
struct Receiver {
    url: String,
    status: Arc<Mutex<StatusCode>>,
    hits: Arc<Mutex<usize>>,
}

async fn receiver(status: StatusCode) -> Receiver {
    let status = Arc::new(Mutex::new(status));
    let hits = Arc::new(Mutex::new(0));
    let (s, h) = (status.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (s, h) = (s.clone(), h.clone());
            async move {
                *h.lock().unwrap() += 1;
                *s.lock().unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, status, hits }
}

/// A receiver that takes each request and answers only once `release` is
/// notified: a webhook that hangs.
async fn hanging_receiver(release: Arc<Notify>) -> (String, Arc<Mutex<usize>>) {
    let hits = Arc::new(Mutex::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (h, release) = (h.clone(), release.clone());
            async move {
                *h.lock().unwrap() += 1;
                release.notified().await;
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// Raises `tenant`'s 80 % alert for this month, as the budget check does
/// when the spend gets there.
async fn raise_alert(hub: &Hub, tenant: &str) {
    let tenant: TenantId = tenant.parse().unwrap();
    let budget = hub
        .store
        .budget(Scope::All, tenant)
        .await
        .unwrap()
        .expect("the tenant has a budget");
    let period = BillingPeriod::containing(UnixSeconds(chrono::Utc::now().timestamp()));
    let mut tx = hub.store.begin(&Actor::system("billing")).await.unwrap();
    let raised = tx
        .raise_budget_alert(&budget, period, 80, budget.per_month, true)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(raised.is_some());
}

/// The tenant's one alert, as its admin sees it.
async fn the_alert(hub: &Hub, tenant: &str, key: &str) -> Value {
    let reply = hub
        .get(&format!("/api/v1/tenants/{tenant}/budget/alerts"), key)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{:#}", reply.body);
    items[0].clone()
}

fn sender(attempts: u32, timeout: Duration) -> WebhookSender {
    WebhookSender::new(Retry {
        attempts,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        timeout,
    })
    .unwrap()
    .allowing_private_addresses()
}

async fn an_alert_whose_attempts_ran_out_is_tried_again_on_a_later_pass(db: TestDb) {
    let hub = start_allowing_loopback(db).await;
    let (tenant, admin) = hub.tenant("acme", roomy()).await;
    let down = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    set_budget(&hub, &tenant, &admin, &down.url).await;
    raise_alert(&hub, &tenant).await;
    let sender = sender(2, Duration::from_secs(5));

    // The receiver is down for the whole first pass.
    schedule::pass(hub.state.hub(), &sender).await;
    let alert = eventually("the first pass's two attempts are recorded", || async {
        let alert = the_alert(&hub, &tenant, &admin).await;
        (alert["attempts"] == 2).then_some(alert)
    })
    .await;
    assert_eq!(
        alert["delivery"], "pending",
        "an alert was given up on after one pass: {alert:#}"
    );
    assert!(
        alert["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503")),
        "{alert:#}"
    );
    assert_eq!(*down.hits.lock().unwrap(), 2);

    // It is back: a later pass delivers the same alert.
    *down.status.lock().unwrap() = StatusCode::NO_CONTENT;
    let alert = eventually("a later pass delivers the alert", || async {
        schedule::pass(hub.state.hub(), &sender).await;
        let alert = the_alert(&hub, &tenant, &admin).await;
        (alert["delivery"] == "delivered").then_some(alert)
    })
    .await;
    assert_eq!(alert["attempts"], 3, "{alert:#}");
    assert_eq!(*down.hits.lock().unwrap(), 3);
}

async fn a_hanging_receiver_delays_neither_invoicing_nor_other_tenants(db: TestDb) {
    let hub = start_allowing_loopback(db).await;
    let release = Arc::new(Notify::new());
    let (hanging, hanging_hits) = hanging_receiver(release.clone()).await;
    let fine = receiver(StatusCode::NO_CONTENT).await;
    let (slow, slow_admin) = hub.tenant("slow", roomy()).await;
    let (quick, quick_admin) = hub.tenant("quick", roomy()).await;
    set_budget(&hub, &slow, &slow_admin, &hanging).await;
    set_budget(&hub, &quick, &quick_admin, &fine.url).await;
    raise_alert(&hub, &slow).await;
    raise_alert(&hub, &quick).await;
    // One attempt that would wait for an answer far longer than the test.
    let sender = sender(1, Duration::from_secs(600));

    // The pass (invoices, budget checks) ends while the post still hangs.
    let finished = tokio::time::timeout(
        Duration::from_secs(60),
        schedule::pass(hub.state.hub(), &sender),
    )
    .await;
    assert!(
        finished.is_ok(),
        "the billing pass waited on a webhook that does not answer"
    );
    // The other tenant's alert goes out meanwhile.
    eventually("the other tenant's alert is delivered", || async {
        let alert = the_alert(&hub, &quick, &quick_admin).await;
        (alert["delivery"] == "delivered").then_some(())
    })
    .await;
    assert_eq!(*fine.hits.lock().unwrap(), 1);
    eventually("the hanging receiver got its post", || async {
        (*hanging_hits.lock().unwrap() == 1).then_some(())
    })
    .await;
    assert_eq!(
        the_alert(&hub, &slow, &slow_admin).await["delivery"],
        "pending"
    );

    // Once it answers, its alert is recorded as delivered.
    release.notify_waiters();
    eventually("the hanging receiver's alert is delivered", || async {
        release.notify_waiters();
        let alert = the_alert(&hub, &slow, &slow_admin).await;
        (alert["delivery"] == "delivered").then_some(())
    })
    .await;
}

modelfleet_api::store_tests!(
    the_webhook_url_is_shown_masked_and_only_to_admins,
    literal_private_receivers_are_refused_when_the_budget_is_set,
    an_alert_whose_attempts_ran_out_is_tried_again_on_a_later_pass,
    a_hanging_receiver_delays_neither_invoicing_nor_other_tenants,
);

/// The environment variable that tells the child below where to post.
const CHILD_RECEIVER_ENV: &str = "MODELFLEET_TEST_PROXY_CHILD_RECEIVER";

/// Run only as a child of
/// [`the_webhook_client_ignores_proxy_variables`], whose environment names
/// a proxy (a variable cannot be set in this process: `set_var` is unsafe).
#[test]
#[ignore = "run as a child process by the_webhook_client_ignores_proxy_variables"]
fn post_with_a_proxy_in_the_environment() {
    let url = std::env::var(CHILD_RECEIVER_ENV).expect("run by the proxy test");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let done = runtime.block_on(sender(1, Duration::from_secs(30)).deliver(
        &url,
        SECRET.as_bytes(),
        "proxy-1",
        b"{}",
    ));
    assert!(done.is_ok(), "{done:?}");
}

#[tokio::test]
async fn the_webhook_client_ignores_proxy_variables() {
    let target = receiver(StatusCode::NO_CONTENT).await;
    // A "proxy" that counts the connections it gets and drops them.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(Mutex::new(0usize));
    let counted = proxied.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = proxy.accept().await {
            *counted.lock().unwrap() += 1;
            drop(socket);
        }
    });

    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.args([
        "--exact",
        "post_with_a_proxy_in_the_environment",
        "--ignored",
        "--nocapture",
    ]);
    for name in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        child.env(name, &proxy_url);
    }
    child
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env(CHILD_RECEIVER_ENV, &target.url);
    let output = tokio::task::spawn_blocking(move || child.output())
        .await
        .unwrap()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        *proxied.lock().unwrap(),
        0,
        "the webhook went through the proxy the environment named: {printed}"
    );
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("1 passed"),
        "the child ran no test: {printed}"
    );
    assert_eq!(*target.hits.lock().unwrap(), 1, "{printed}");
}
