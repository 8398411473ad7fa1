//! Issue 16, finding 9: behind a proxy the audit trail recorded the proxy's
//! address. With `--trusted-proxies`, a request that comes through one is
//! recorded as coming from the client `X-Forwarded-For` names; from anyone
//! else the header is ignored, so a client cannot make the trail say it
//! came from somewhere else.

mod support;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use modelfleet_api::ApiSettings;
use modelfleet_api::http::AUDIT_ID_HEADER;
use modelfleet_api::store::testing::TestDb;
use serde_json::json;
use support::{Hub, test_settings};

/// Creates a tenant as the platform admin, from `peer`, claiming
/// `forwarded`; returns the addresses its audit record holds.
async fn recorded_source(hub: &Hub, name: &str, peer: &str, forwarded: &str) -> Vec<String> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/tenants")
        .header(header::AUTHORIZATION, format!("Bearer {}", hub.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-for", forwarded)
        .body(Body::from(json!({"name": name}).to_string()))
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let reply = hub.send(request).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:#}", reply.body);
    let audit_id = reply.headers[AUDIT_ID_HEADER].to_str().unwrap().to_owned();
    let records = hub.store.audit_records_after(0, 100_000).await.unwrap();
    let record = records
        .into_iter()
        .find(|r| r.event.audit_id == audit_id)
        .expect("the request is audited");
    record.event.source_ips
}

async fn the_trail_records_the_client_behind_a_trusted_proxy_only(db: TestDb) {
    let settings = ApiSettings {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..test_settings()
    };
    let hub = Hub::start_with_settings(db, settings).await;

    // Through the ingress (10.1.2.3): the client it saw.
    assert_eq!(
        recorded_source(&hub, "through-proxy", "10.1.2.3:40000", "203.0.113.9").await,
        ["203.0.113.9"]
    );
    // Straight from a client that claims to be someone else: the client.
    assert_eq!(
        recorded_source(&hub, "spoofed", "198.51.100.7:40000", "203.0.113.9").await,
        ["198.51.100.7"]
    );
}

modelfleet_api::store_tests!(the_trail_records_the_client_behind_a_trusted_proxy_only);
