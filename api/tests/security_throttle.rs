//! Issue 16, finding 4: unauthenticated load amplification. Sign-ins and
//! refused credentials had no rate limit, a sign-in's whole user name (up
//! to the body limit) went into the audit trail, and every refusal wrote
//! its own audit record. Now: token buckets per client address and per
//! account answer 429 with `Retry-After`; a name over 256 bytes is refused
//! before anything else; refusals from one address are one record per
//! window, with a count.
//!
//! Clients are told apart as behind an ingress: the peer is a trusted
//! proxy and `X-Forwarded-For` names the client. Buckets refill once an
//! hour here, so nothing depends on how fast the test runs.

mod support;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use modelfleet_api::ApiSettings;
use modelfleet_api::store::testing::TestDb;
use serde_json::{Value, json};
use support::{ADMIN_PASSWORD, Hub, Reply, test_settings};

const HOUR: u32 = 3600;

/// The test settings behind a trusted ingress, with every limit off and
/// every refusal recorded unless a test says otherwise.
fn behind_ingress() -> ApiSettings {
    ApiSettings {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        sign_in_refill_seconds: HOUR,
        sign_in_account_refill_seconds: HOUR,
        auth_failure_refill_seconds: HOUR,
        ..test_settings()
    }
}

/// A request from `client`, through the ingress.
fn from(
    client: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-forwarded-for", client);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let ingress: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(ingress));
    request
}

async fn sign_in(hub: &Hub, client: &str, username: &str, password: &str) -> Reply {
    let body = json!({"username": username, "password": password});
    hub.send(from(
        client,
        Method::POST,
        "/api/v1/sessions",
        None,
        Some(body),
    ))
    .await
}

/// Asserts a 429 problem with a `Retry-After` of whole seconds.
fn assert_limited(reply: &Reply) -> u64 {
    reply.problem(429);
    assert_eq!(
        reply.body["type"], "https://modelfleet.io/problems/rate-limited",
        "{:#}",
        reply.body
    );
    let seconds: u64 = reply.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=u64::from(HOUR)).contains(&seconds), "{seconds}");
    seconds
}

/// Every audit record, through the API, as the platform admin.
async fn trail(hub: &Hub) -> Vec<Value> {
    let reply = hub.get("/api/v1/audit?limit=1000", &hub.admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

fn from_client<'a>(records: &'a [Value], client: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| {
            r["sourceIPs"]
                .as_array()
                .is_some_and(|ips| ips.iter().any(|ip| ip == client))
        })
        .collect()
}

async fn a_sign_in_flood_from_one_address_gets_429_and_others_do_not(db: TestDb) {
    let settings = ApiSettings {
        sign_in_burst: 3,
        ..behind_ingress()
    };
    let hub = Hub::start_with_settings(db, settings).await;
    for n in 0..3 {
        let reply = sign_in(
            &hub,
            "203.0.113.1",
            &format!("guess{n}"),
            "Wrong-password-1",
        )
        .await;
        reply.problem(401);
    }
    assert_limited(&sign_in(&hub, "203.0.113.1", "guess3", "Wrong-password-1").await);
    // The right password does not get past the limit either.
    assert_limited(&sign_in(&hub, "203.0.113.1", "root", ADMIN_PASSWORD).await);
    // Another address has its own budget.
    sign_in(&hub, "203.0.113.2", "guess4", "Wrong-password-1")
        .await
        .problem(401);
    let reply = sign_in(&hub, "203.0.113.2", "root", ADMIN_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
}

async fn failed_sign_ins_to_one_account_are_limited_across_addresses(db: TestDb) {
    let settings = ApiSettings {
        sign_in_account_burst: 3,
        ..behind_ingress()
    };
    let hub = Hub::start_with_settings(db, settings).await;
    // The admin signs in from their usual address.
    let reply = sign_in(&hub, "198.51.100.10", "root", ADMIN_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    // Guesses from three addresses spend the account's budget…
    for n in 1..=3 {
        sign_in(&hub, &format!("203.0.113.{n}"), "root", "Wrong-password-1")
            .await
            .problem(401);
    }
    // …so a fourth address gets 429, even with the right password, and
    // the guesses stopped before the lockout's five.
    assert_limited(&sign_in(&hub, "203.0.113.4", "root", "Wrong-password-1").await);
    assert_limited(&sign_in(&hub, "203.0.113.5", "root", ADMIN_PASSWORD).await);
    // The admin's usual address is not held back by the account's limit,
    // and the account is not locked.
    let reply = sign_in(&hub, "198.51.100.10", "root", ADMIN_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
}

async fn refused_tokens_get_429_after_the_budget_before_any_lookup(db: TestDb) {
    let settings = ApiSettings {
        auth_failure_burst: 3,
        ..behind_ingress()
    };
    let hub = Hub::start_with_settings(db, settings).await;
    let list = |client: &str, token: &str| {
        hub.send(from(
            client,
            Method::GET,
            "/api/v1/tenants",
            Some(token),
            None,
        ))
    };
    for token in ["mf_nope", "mfs_nope", "garbage"] {
        list("203.0.113.1", token).await.problem(401);
    }
    assert_limited(&list("203.0.113.1", "mf_nope").await);
    // Spent: even a valid token from that address is not looked at.
    assert_limited(&list("203.0.113.1", &hub.admin).await);
    // Another address is not limited.
    let reply = list("203.0.113.2", &hub.admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
    list("203.0.113.2", "mf_nope").await.problem(401);
}

async fn an_over_long_user_name_is_refused_and_never_recorded(db: TestDb) {
    let hub = Hub::start_with_settings(db, behind_ingress()).await;
    let long = "x".repeat(300);
    sign_in(&hub, "203.0.113.1", &long, "Wrong-password-1")
        .await
        .problem(401);
    // A name of 256 bytes is still looked up (and refused as unknown).
    let longest = "y".repeat(256);
    sign_in(&hub, "203.0.113.1", &longest, "Wrong-password-1")
        .await
        .problem(401);
    let records = trail(&hub).await;
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains(&"x".repeat(257)),
        "a record holds the long name"
    );
    assert!(
        from_client(&records, "203.0.113.1").len() == 2,
        "both refusals are recorded: {records:#?}"
    );
}

async fn a_flood_of_refusals_costs_one_record_per_source_per_window(db: TestDb) {
    let settings = ApiSettings {
        refusal_window_seconds: 60,
        ..behind_ingress()
    };
    let hub = Hub::start_with_settings(db, settings).await;
    let client = "203.0.113.7";
    for _ in 0..20 {
        hub.send(from(
            client,
            Method::GET,
            "/api/v1/tenants",
            Some("mf_nope"),
            None,
        ))
        .await
        .problem(401);
    }
    for _ in 0..4 {
        sign_in(&hub, client, "root", "Wrong-password-1")
            .await
            .problem(401);
    }
    // Another address's first refusal is recorded at once.
    hub.send(from(
        "203.0.113.8",
        Method::GET,
        "/api/v1/tenants",
        Some("mf_nope"),
        None,
    ))
    .await
    .problem(401);
    assert_eq!(from_client(&trail(&hub).await, "203.0.113.8").len(), 1);
    // Until the window is over, one record for the flood: its first refusal.
    let records = trail(&hub).await;
    let flood = from_client(&records, client);
    assert_eq!(flood.len(), 1, "{flood:#?}");
    assert_eq!(flood[0]["responseStatus"]["code"], 401);
    // Each wrong password still counts toward the lockout.
    let root = hub
        .store
        .users(modelfleet_api::identity::Scope::All)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "root")
        .unwrap();
    assert_eq!(root.failed_logins, 4);

    // The window's end (here: the hub stopping) writes one record with
    // the count of the rest.
    hub.state.hub().flush_refusals(true).await;
    let records = trail(&hub).await;
    let flood = from_client(&records, client);
    assert_eq!(flood.len(), 2, "{flood:#?}");
    let summary = flood
        .iter()
        .find(|r| r["verb"] == "refused-repeatedly")
        .expect("a record counts the rest");
    let message = summary["responseStatus"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("23 more requests from {client} were refused")),
        "{message}"
    );
    assert_eq!(summary["annotations"]["modelfleet.io/refused-count"], "23");

    // A lock is always recorded on its own, whatever the window. (The
    // admin is locked out now: the trail is read from the store.)
    sign_in(&hub, client, "root", "Wrong-password-1")
        .await
        .problem(401);
    let records: Vec<Value> = hub
        .store
        .audit_records_after(0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let locked = from_client(&records, client).into_iter().any(|r| {
        r["annotations"]["modelfleet.io/changes"]
            .as_str()
            .is_some_and(|changes| changes.contains("lock users root"))
    });
    assert!(locked, "{records:#?}");
}

modelfleet_api::store_tests!(
    a_sign_in_flood_from_one_address_gets_429_and_others_do_not,
    failed_sign_ins_to_one_account_are_limited_across_addresses,
    refused_tokens_get_429_after_the_budget_before_any_lookup,
    an_over_long_user_name_is_refused_and_never_recorded,
    a_flood_of_refusals_costs_one_record_per_source_per_window,
);
