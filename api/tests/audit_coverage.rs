//! Every request to a write endpoint of the API — and every request refused
//! for who sent it — leaves exactly one audit record, found by the
//! `Audit-Id` the response carries, with the status the client saw. The
//! list of write endpoints comes from the OpenAPI document, so a new one
//! that this test does not exercise fails it.

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use modelfleet_api::AUDIT_ID_HEADER;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::audit::{Outcome, Record};
use serde_json::{Value, json};
use support::{ADMIN_PASSWORD, CLUSTER, Hub, Reply, roomy};

struct Coverage<'a> {
    hub: &'a Hub,
    /// `(METHOD, path template)` of every write request made.
    seen: BTreeSet<(String, String)>,
    templates: Vec<(String, String)>,
}

/// Write operations of the OpenAPI document: `(METHOD, template)`.
fn write_operations() -> Vec<(String, String)> {
    let doc = serde_json::to_value(modelfleet_api::openapi()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('?').next().unwrap().split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

impl Coverage<'_> {
    async fn records(&self) -> Vec<Record> {
        self.hub
            .store
            .audit_records_after(0, 100_000)
            .await
            .unwrap()
    }

    /// Sends one request, checks its status, and checks that exactly one
    /// record carries its audit id, with that status as the outcome.
    async fn check(&mut self, request: Request<Body>, expect: StatusCode) -> (Reply, Record) {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let reply = self.hub.send(request).await;
        assert_eq!(reply.status, expect, "{method} {path}: {:#}", reply.body);
        let audit_id = reply
            .headers
            .get(AUDIT_ID_HEADER)
            .unwrap_or_else(|| panic!("{method} {path}: no Audit-Id header"))
            .to_str()
            .unwrap()
            .to_owned();
        let mine: Vec<Record> = self
            .records()
            .await
            .into_iter()
            .filter(|r| r.event.audit_id == audit_id)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{method} {path} ({expect}): records {mine:#?}"
        );
        let record = mine.into_iter().next().unwrap();
        let status = &record.event.response_status;
        assert_eq!(
            status.code,
            Some(expect.as_u16()),
            "{method} {path}: {record:#?}"
        );
        let outcome = if expect.is_client_error() || expect.is_server_error() {
            Outcome::Failure
        } else {
            Outcome::Success
        };
        assert_eq!(status.status, outcome, "{method} {path}");
        assert_eq!(record.event.request_uri.as_deref(), Some(path.as_str()));
        if method != "GET" {
            let template = self
                .templates
                .iter()
                .find(|(m, t)| *m == method && matches(t, &path))
                .unwrap_or_else(|| panic!("{method} {path} is not a write endpoint of the API"));
            self.seen.insert(template.clone());
        }
        (reply, record)
    }
}

fn request(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => r
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

async fn every_write_request_is_recorded_once(db: TestDb) {
    let mut hub = Hub::start(db).await;
    let exports = tempfile::tempdir().unwrap();
    let target = modelfleet_api::audit::ExportTarget::dir(exports.path()).unwrap();
    hub.router = modelfleet_api::router(hub.state.clone().with_audit_target(target));
    let hub = hub;
    let (tenant, key) = hub.tenant("acme", roomy()).await;
    let admin = hub.admin.clone();
    let cluster = hub.get("/api/v1/clusters", &admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == CLUSTER)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = Coverage {
        hub: &hub,
        seen: BTreeSet::new(),
        templates: write_operations(),
    };
    use Method as M;
    use StatusCode as S;

    // Sessions: sign-in, a wrong password, sign-out, and signing out twice.
    let login = json!({"username": "root", "password": ADMIN_PASSWORD});
    let (reply, record) = c
        .check(
            request(M::POST, "/api/v1/sessions", None, Some(login)),
            S::CREATED,
        )
        .await;
    assert_eq!(
        (
            record.event.verb.as_str(),
            record.event.user.username.as_str()
        ),
        ("login", "root")
    );
    let session = reply.body["token"].as_str().unwrap().to_owned();
    let wrong = json!({"username": "root", "password": "not-the-password"});
    let (_, record) = c
        .check(
            request(M::POST, "/api/v1/sessions", None, Some(wrong)),
            S::UNAUTHORIZED,
        )
        .await;
    assert_eq!(record.event.verb, "login-failed");
    let end = "/api/v1/sessions/current";
    c.check(request(M::DELETE, end, Some(&session), None), S::NO_CONTENT)
        .await;
    let (_, record) = c
        .check(
            request(M::DELETE, end, Some(&session), None),
            S::UNAUTHORIZED,
        )
        .await;
    assert_eq!(record.event.user.username, "system:anonymous");
    c.check(request(M::DELETE, end, Some(&key), None), S::NOT_FOUND)
        .await;

    // Tenants and quotas.
    let tenants = "/api/v1/tenants";
    c.check(
        request(
            M::POST,
            tenants,
            Some(&admin),
            Some(json!({"name": "globex"})),
        ),
        S::CREATED,
    )
    .await;
    c.check(
        request(
            M::POST,
            tenants,
            Some(&key),
            Some(json!({"name": "initech"})),
        ),
        S::FORBIDDEN,
    )
    .await;
    c.check(
        request(
            M::POST,
            tenants,
            Some(&admin),
            Some(json!({"name": "Not A Name!"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let quota = format!("/api/v1/tenants/{tenant}/quota");
    let limits = json!({"totalDevices": 64, "deployments": 10});
    let (_, record) = c
        .check(
            request(M::PUT, &quota, Some(&admin), Some(limits.clone())),
            S::OK,
        )
        .await;
    assert_eq!(
        record.event.object_ref.namespace.as_deref(),
        Some(tenant.as_str())
    );
    c.check(
        request(M::PUT, &quota, Some(&key), Some(limits)),
        S::FORBIDDEN,
    )
    .await;

    // Users and API keys.
    let alice =
        json!({"username": "alice", "password": "Correct-horse-2024!", "role": "developer"});
    let alice = c
        .check(
            request(M::POST, "/api/v1/users", Some(&key), Some(alice)),
            S::CREATED,
        )
        .await
        .0
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let short = json!({"username": "bob", "password": "short", "role": "developer"});
    c.check(
        request(M::POST, "/api/v1/users", Some(&key), Some(short)),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let new_key = json!({"name": "ci", "role": "developer"});
    let (reply, record) = c
        .check(
            request(M::POST, "/api/v1/api-keys", Some(&key), Some(new_key)),
            S::CREATED,
        )
        .await;
    assert!(
        record.event.user.username.starts_with("apikey:"),
        "{record:#?}"
    );
    // The new key's token is nowhere in the trail.
    let token = reply.body["token"].as_str().unwrap();
    assert!(
        !serde_json::to_string(&c.records().await)
            .unwrap()
            .contains(token)
    );
    let id = reply.body["key"]["id"].as_str().unwrap().to_owned();
    c.check(
        request(
            M::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            Some(&key),
            None,
        ),
        S::OK,
    )
    .await;
    let nobody = uuid::Uuid::new_v4();
    c.check(
        request(
            M::DELETE,
            &format!("/api/v1/api-keys/{nobody}"),
            Some(&key),
            None,
        ),
        S::NOT_FOUND,
    )
    .await;

    // An idempotent retry is a request of its own: recorded once more.
    for _ in 0..2 {
        let mut r = request(
            M::POST,
            "/api/v1/api-keys",
            Some(&key),
            Some(json!({"name": "deploy-bot", "role": "developer"})),
        );
        r.headers_mut()
            .insert("idempotency-key", "retry-1".parse().unwrap());
        c.check(r, S::CREATED).await;
    }

    // Clusters and prices.
    let bad_kubeconfig = json!({"name": "c2", "cloud": "aws", "region": "us-west-2", "kubeconfig": "not: [a kubeconfig"});
    c.check(
        request(
            M::POST,
            "/api/v1/clusters",
            Some(&admin),
            Some(bad_kubeconfig.clone()),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    c.check(
        request(
            M::POST,
            "/api/v1/clusters",
            Some(&key),
            Some(bad_kubeconfig),
        ),
        S::FORBIDDEN,
    )
    .await;
    let sandbox = json!({"name": "c3", "cloud": "aws", "region": "us-west-2", "sandbox": true});
    c.check(
        request(M::POST, "/api/v1/clusters", Some(&admin), Some(sandbox)),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let price = format!("/api/v1/clusters/{cluster}/pools/p5-h100/price");
    let body = json!({"pricePerDeviceHour": "6.88 USD"});
    let (_, record) = c
        .check(
            request(M::PUT, &price, Some(&admin), Some(body.clone())),
            S::OK,
        )
        .await;
    assert_eq!(record.event.user.username, "root");
    c.check(
        request(M::PUT, &price, Some(&key), Some(body)),
        S::FORBIDDEN,
    )
    .await;
    c.check(
        request(M::DELETE, &price, Some(&admin), None),
        S::NO_CONTENT,
    )
    .await;
    let unknown = format!(
        "/api/v1/clusters/{}/pools/p5-h100/price",
        uuid::Uuid::new_v4()
    );
    c.check(
        request(M::DELETE, &unknown, Some(&admin), None),
        S::NOT_FOUND,
    )
    .await;
    // Removing a cluster: refused for the sandbox cluster, for a tenant,
    // and for one that does not exist; each refusal recorded.
    let this_cluster = format!("/api/v1/clusters/{cluster}");
    c.check(
        request(M::DELETE, &this_cluster, Some(&admin), None),
        S::CONFLICT,
    )
    .await;
    c.check(
        request(M::DELETE, &this_cluster, Some(&key), None),
        S::FORBIDDEN,
    )
    .await;
    c.check(
        request(
            M::DELETE,
            &format!("/api/v1/clusters/{}", uuid::Uuid::new_v4()),
            Some(&admin),
            None,
        ),
        S::NOT_FOUND,
    )
    .await;

    // Prices: a platform admin's from now on; refused to tenants and for
    // the past.
    let h100 = json!({"cloud": "aws", "region": "us-east-1", "accelerator": "h100-80gb",
        "pricePerDeviceHour": "6.88 USD"});
    let (_, record) = c
        .check(
            request(M::POST, "/api/v1/prices", Some(&admin), Some(h100.clone())),
            S::CREATED,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "prices");
    c.check(
        request(M::POST, "/api/v1/prices", Some(&key), Some(h100)),
        S::FORBIDDEN,
    )
    .await;
    let past = json!({"cloud": "aws", "region": "us-east-1", "accelerator": "h100-80gb",
        "pricePerDeviceHour": "6.00 USD", "effectiveFrom": "2020-01-01T00:00:00Z"});
    c.check(
        request(M::POST, "/api/v1/prices", Some(&admin), Some(past)),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Billing: a tenant admin's budget; the platform's discounts, credits
    // and exports. The webhook secret never reaches the trail.
    let budget = format!("/api/v1/tenants/{tenant}/budget");
    let webhook_secret = "whsec-0123456789abcdef";
    let (_, record) = c
        .check(
            request(
                M::PUT,
                &budget,
                Some(&key),
                Some(json!({"amount": "500.00 USD", "refuseAtLimit": true,
                    "webhookUrl": "https://hooks.example.com/mf", "webhookSecret": webhook_secret})),
            ),
            S::OK,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "budgets");
    c.check(
        request(
            M::PUT,
            &budget,
            Some(&key),
            Some(json!({"amount": "500.00 USD", "webhookUrl": "https://hooks.example.com/mf"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    c.check(request(M::DELETE, &budget, Some(&key), None), S::NO_CONTENT)
        .await;
    c.check(request(M::DELETE, &budget, Some(&key), None), S::NOT_FOUND)
        .await;
    Box::pin(source_credentials(&mut c, &tenant, &key)).await;
    Box::pin(input_screen(&mut c, &tenant, &key)).await;
    let discounts = format!("/api/v1/tenants/{tenant}/discounts");
    let aws15 = json!({"items": [{"scope": "aws", "basisPoints": 1500}]});
    let (_, record) = c
        .check(
            request(M::PUT, &discounts, Some(&admin), Some(aws15.clone())),
            S::OK,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "discounts");
    c.check(
        request(M::PUT, &discounts, Some(&key), Some(aws15)),
        S::FORBIDDEN,
    )
    .await;
    c.check(
        request(
            M::PUT,
            &discounts,
            Some(&admin),
            Some(json!({"items": [{"scope": "all", "basisPoints": 20000}]})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    Box::pin(token_pricing(&mut c, &tenant, &key, &admin)).await;
    let adjustments = format!("/api/v1/tenants/{tenant}/adjustments");
    let credit = json!({"kind": "credit", "amount": "10.00 USD", "description": "SLA credit"});
    let (_, record) = c
        .check(
            request(M::POST, &adjustments, Some(&admin), Some(credit.clone())),
            S::CREATED,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "adjustments");
    c.check(
        request(M::POST, &adjustments, Some(&key), Some(credit)),
        S::FORBIDDEN,
    )
    .await;
    c.check(
        request(
            M::POST,
            &adjustments,
            Some(&admin),
            Some(json!({"kind": "gift", "amount": "10.00 USD", "description": "x"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let billing_exports = "/api/v1/billing/exports";
    c.check(
        request(
            M::POST,
            billing_exports,
            Some(&admin),
            Some(json!({"period": "2026-01"})),
        ),
        S::CREATED,
    )
    .await;
    c.check(
        request(
            M::POST,
            billing_exports,
            Some(&key),
            Some(json!({"period": "2026-01"})),
        ),
        S::FORBIDDEN,
    )
    .await;
    c.check(
        request(
            M::POST,
            billing_exports,
            Some(&admin),
            Some(json!({"period": "2026-13"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let trail = serde_json::to_string(&c.records().await).unwrap();
    assert!(
        !trail.contains(webhook_secret),
        "a webhook secret reached the audit trail"
    );

    // Plans compute and change nothing, and are still recorded.
    let plans = "/api/v1/plans";
    c.check(
        request(
            M::POST,
            plans,
            Some(&key),
            Some(json!({"model": "llama-3.1-8b"})),
        ),
        S::OK,
    )
    .await;
    c.check(
        request(
            M::POST,
            plans,
            Some(&key),
            Some(json!({"model": "no-such-model"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    // So do the hub's reads of a model's files for a tenant (refused here
    // before any request: an object store is read only with a source
    // credential the tenant keeps, and none is named).
    c.check(
        request(
            M::POST,
            "/api/v1/models/inspect",
            Some(&key),
            Some(json!({"source": "s3://acme-models/mine"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Deployments: create, a taken name, resize, a bad size, delete twice.
    let chat = json!({"name": "chat", "model": "llama-3.1-8b"});
    let (reply, record) = c
        .check(
            request(
                M::POST,
                "/api/v1/deployments",
                Some(&key),
                Some(chat.clone()),
            ),
            S::ACCEPTED,
        )
        .await;
    assert_eq!(
        (
            record.event.verb.as_str(),
            record.event.object_ref.resource.as_str()
        ),
        ("create", "deployments")
    );
    assert_eq!(record.event.object_ref.name.as_deref(), Some("chat"));
    let d = reply.body["deployment"]["id"].as_str().unwrap().to_owned();
    c.check(
        request(M::POST, "/api/v1/deployments", Some(&key), Some(chat)),
        S::CONFLICT,
    )
    .await;
    let path = format!("/api/v1/deployments/{d}");
    c.check(
        request(M::PATCH, &path, Some(&key), Some(json!({"replicas": 2}))),
        S::OK,
    )
    .await;
    c.check(
        request(
            M::PATCH,
            &path,
            Some(&key),
            Some(json!({"replicas": 100000})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    c.check(request(M::DELETE, &path, Some(&key), None), S::ACCEPTED)
        .await;
    c.check(request(M::DELETE, &path, Some(&key), None), S::NOT_FOUND)
        .await;

    // Exports: by a platform admin, and refused to a tenant's admin.
    let (reply, record) = c
        .check(
            request(
                M::POST,
                "/api/v1/audit/exports",
                Some(&admin),
                Some(json!({})),
            ),
            S::CREATED,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "audit/exports");
    assert!(
        reply.body["records"].as_u64().unwrap() > 10,
        "{:#}",
        reply.body
    );
    c.check(
        request(
            M::POST,
            "/api/v1/audit/exports",
            Some(&key),
            Some(json!({})),
        ),
        S::FORBIDDEN,
    )
    .await;

    // Refused for who sent it: no token at all, and a read beyond one's role.
    let (_, record) = c
        .check(
            request(
                M::POST,
                "/api/v1/deployments",
                None,
                Some(json!({"name": "x", "model": "llama-3.1-8b"})),
            ),
            S::UNAUTHORIZED,
        )
        .await;
    assert_eq!(record.event.user.groups, ["system:unauthenticated"]);
    c.check(
        request(M::GET, "/api/v1/clusters", Some(&key), None),
        S::FORBIDDEN,
    )
    .await;

    // A second factor: enrolment by a signed-in person, refused to an API
    // key; a wrong code and the right one.
    let login = json!({"username": "root", "password": ADMIN_PASSWORD});
    let session = c
        .check(
            request(M::POST, "/api/v1/sessions", None, Some(login)),
            S::CREATED,
        )
        .await
        .0
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (reply, record) = c
        .check(
            request(M::POST, "/api/v1/users/me/totp", Some(&session), None),
            S::CREATED,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "users");
    let secret = reply.body["secret"].as_str().unwrap().to_owned();
    let trail = serde_json::to_string(&c.records().await).unwrap();
    assert!(
        !trail.contains(&secret),
        "a TOTP secret reached the audit trail"
    );
    c.check(
        request(M::POST, "/api/v1/users/me/totp", Some(&key), None),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let confirm = "/api/v1/users/me/totp/confirm";
    c.check(
        request(
            M::POST,
            confirm,
            Some(&session),
            Some(json!({"code": "000000x"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let raw = modelfleet_api::identity::totp::from_base32(&secret).unwrap();
    let code = modelfleet_api::identity::totp::code_at(&raw, chrono::Utc::now().timestamp());
    c.check(
        request(
            M::POST,
            confirm,
            Some(&session),
            Some(json!({"code": code})),
        ),
        S::OK,
    )
    .await;

    // An account's life: an administrator changes it, resets its password
    // (the person then chooses their own), resets a second factor with
    // their own, ends its sessions and deletes it; a tenant asks a second
    // factor of its admins.
    let user = format!("/api/v1/users/{alice}");
    let verb = |r: Record| r.event.verb;
    let (_, r) = c
        .check(
            request(M::PATCH, &user, Some(&key), Some(json!({"role": "viewer"}))),
            S::OK,
        )
        .await;
    assert_eq!(verb(r), "update");
    c.check(
        request(M::PATCH, &user, Some(&key), Some(json!({}))),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let (_, r) = c
        .check(
            request(M::POST, &format!("{user}/unlock"), Some(&key), None),
            S::OK,
        )
        .await;
    assert_eq!(verb(r), "unlock");
    let temporary = json!({"newPassword": "Temporary-horse-77"});
    let (_, r) = c
        .check(
            request(
                M::PUT,
                &format!("{user}/password"),
                Some(&key),
                Some(temporary),
            ),
            S::OK,
        )
        .await;
    assert_eq!(verb(r), "reset-password");
    let login = json!({"username": "alice", "password": "Temporary-horse-77"});
    let alice_session = c
        .check(
            request(M::POST, "/api/v1/sessions", None, Some(login)),
            S::CREATED,
        )
        .await
        .0
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = "/api/v1/users/me/password";
    let wrong =
        json!({"currentPassword": "Not-her-password-1", "newPassword": "Her-own-choice-2026"});
    c.check(
        request(M::POST, mine, Some(&alice_session), Some(wrong)),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let change =
        json!({"currentPassword": "Temporary-horse-77", "newPassword": "Her-own-choice-2026"});
    let (_, r) = c
        .check(
            request(M::POST, mine, Some(&alice_session), Some(change)),
            S::OK,
        )
        .await;
    assert_eq!(verb(r), "change-password");
    let (reply, r) = c
        .check(
            request(M::DELETE, &format!("{user}/sessions"), Some(&key), None),
            S::OK,
        )
        .await;
    // Her session after she chose her password.
    assert_eq!(reply.body["ended"], 1, "{:#}", reply.body);
    assert_eq!(verb(r), "end-sessions");
    let reset_totp = format!("{user}/totp/reset");
    c.check(
        request(
            M::POST,
            &reset_totp,
            Some(&key),
            Some(json!({"code": "123456"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let next = modelfleet_api::identity::totp::code_at(&raw, chrono::Utc::now().timestamp() + 30);
    let (_, r) = c
        .check(
            request(
                M::POST,
                &reset_totp,
                Some(&session),
                Some(json!({"code": next})),
            ),
            S::OK,
        )
        .await;
    assert_eq!(verb(r), "reset-totp");
    let policy = format!("/api/v1/tenants/{tenant}/second-factor");
    c.check(
        request(
            M::PUT,
            &policy,
            Some(&key),
            Some(json!({"roles": ["tenant-admin"]})),
        ),
        S::OK,
    )
    .await;
    c.check(
        request(
            M::PUT,
            &policy,
            Some(&key),
            Some(json!({"roles": ["platform-admin"]})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    let (_, r) = c
        .check(request(M::DELETE, &user, Some(&key), None), S::NO_CONTENT)
        .await;
    assert_eq!(verb(r), "delete");
    c.check(request(M::DELETE, &user, Some(&key), None), S::NOT_FOUND)
        .await;

    let missing: Vec<_> = c
        .templates
        .iter()
        .filter(|t| !c.seen.contains(*t))
        .collect();
    assert!(
        missing.is_empty(),
        "write endpoints not exercised: {missing:?}"
    );

    // Reads of one's own scope are not written to the trail.
    let before = c.records().await.len();
    let reply = hub.get("/api/v1/deployments", &key).await;
    assert_eq!(reply.status, S::OK);
    assert_eq!(c.records().await.len(), before);

    let chain = hub.store.verify_audit().await.unwrap();
    assert!(chain.intact(), "{chain:?}");
}

/// Source credentials: added, replaced, refused, removed; their values
/// never reach the trail. Boxed: the test's one future would outgrow the
/// stack.
async fn source_credentials(c: &mut Coverage<'_>, tenant: &str, key: &str) {
    use Method as M;
    use StatusCode as S;
    let credential = format!("/api/v1/tenants/{tenant}/source-credentials/store");
    let store_secret = "audit-coverage/secret-access-key";
    let keys = json!({"keys": {"AWS_ACCESS_KEY_ID": "AKIAAUDITCOVERAGE1", "AWS_SECRET_ACCESS_KEY": store_secret}});
    let (_, record) = c
        .check(
            request(M::PUT, &credential, Some(key), Some(keys.clone())),
            S::CREATED,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "source-credentials");
    assert_eq!(record.event.verb, "create");
    let (_, record) = c
        .check(request(M::PUT, &credential, Some(key), Some(keys)), S::OK)
        .await;
    assert_eq!(record.event.verb, "update");
    c.check(
        request(
            M::PUT,
            &credential,
            Some(key),
            Some(json!({"keys": {"AWS_SECRET_ACCESS_KEY": store_secret}})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
    c.check(request(M::DELETE, &credential, Some(key), None), S::OK)
        .await;
    c.check(
        request(M::DELETE, &credential, Some(key), None),
        S::NOT_FOUND,
    )
    .await;
    assert!(
        !serde_json::to_string(&c.records().await)
            .unwrap()
            .contains(store_secret)
    );
}

/// The gateway's input screen: a tenant admin sets it; a bad pattern is
/// refused and recorded as such.
async fn input_screen(c: &mut Coverage<'_>, tenant: &str, key: &str) {
    use Method as M;
    use StatusCode as S;
    let screen = format!("/api/v1/tenants/{tenant}/input-screen");
    let (_, record) = c
        .check(
            request(
                M::PUT,
                &screen,
                Some(key),
                Some(json!({"maxPromptBytes": 4096, "denyPatterns": ["forbidden"]})),
            ),
            S::OK,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "input-screens");
    c.check(
        request(
            M::PUT,
            &screen,
            Some(key),
            Some(json!({"denyPatterns": ["(unclosed"]})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
}

/// A change that cannot be audited does not happen: with the chain's head
/// gone (so no record can be appended), creating a tenant fails and leaves
/// no tenant, and the refused request shows in the metric an alert watches.
async fn a_change_that_cannot_be_audited_does_not_happen(db: TestDb) {
    use sqlx::Connection as _;
    let url = db.url.clone();
    let hub = Hub::start(db).await;
    let sql = "DELETE FROM audit_head";
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{url}"))
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let reply = hub
        .post("/api/v1/tenants", &hub.admin, json!({"name": "unaudited"}))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{:#}",
        reply.body
    );
    let tenants = hub.get("/api/v1/tenants", &hub.admin).await;
    assert!(
        tenants.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "unaudited"),
        "{:#}",
        tenants.body
    );
    let metrics = hub.call(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(
        text.contains("modelfleet_hub_audit_write_failures_total 1"),
        "{text}"
    );
}

modelfleet_api::store_tests!(
    every_write_request_is_recorded_once,
    a_change_that_cannot_be_audited_does_not_happen,
);

/// Token prices (on whole hours) and a tenant's pricing model: platform
/// admins' changes, refused to tenants and for bad input.
async fn token_pricing(c: &mut Coverage<'_>, tenant: &str, key: &str, admin: &str) {
    use Method as M;
    use StatusCode as S;
    // Token prices likewise, on whole hours.
    let tokens = json!({"model": "llama-3.1-8b", "pricePerMillionInput": "0.50 USD",
        "pricePerMillionOutput": "1.50 USD"});
    let (_, record) = c
        .check(
            request(
                M::POST,
                "/api/v1/prices/tokens",
                Some(admin),
                Some(tokens.clone()),
            ),
            S::CREATED,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "tokenprices");
    c.check(
        request(M::POST, "/api/v1/prices/tokens", Some(key), Some(tokens)),
        S::FORBIDDEN,
    )
    .await;
    let off_hour = json!({"model": "llama-3.1-8b", "pricePerMillionInput": "0.50 USD",
        "pricePerMillionOutput": "1.50 USD", "effectiveFrom": "2099-01-01T00:30:00Z"});
    c.check(
        request(
            M::POST,
            "/api/v1/prices/tokens",
            Some(admin),
            Some(off_hour),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;

    let pricing = format!("/api/v1/tenants/{tenant}/pricing");
    let on_tokens = json!({"pricingModel": "tokens"});
    let (_, record) = c
        .check(
            request(M::PUT, &pricing, Some(admin), Some(on_tokens.clone())),
            S::OK,
        )
        .await;
    assert_eq!(record.event.object_ref.resource, "pricingmodel");
    c.check(
        request(M::PUT, &pricing, Some(key), Some(on_tokens)),
        S::FORBIDDEN,
    )
    .await;
    c.check(
        request(
            M::PUT,
            &pricing,
            Some(admin),
            Some(json!({"pricingModel": "free"})),
        ),
        S::UNPROCESSABLE_ENTITY,
    )
    .await;
}
