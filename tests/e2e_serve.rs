//! End to end: `modelfleet serve` started in process, driven over HTTP as a
//! tenant's scripts would drive it. A platform admin signs in with the
//! credentials of the first start and creates a tenant with a quota; the
//! tenant deploys `llama-3.1-70b` through the REST API, it lands on the
//! cheapest feasible pool across the four clouds' sandbox clusters, the
//! real operator brings it to Ready, it is scaled and deleted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kube::Api;
use modelfleet::hub::CREDENTIALS_FILE;
use modelfleet_api::identity::totp;
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::fleet::Fleet;
use modelfleet_core::money::Money;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod serve;
use serve::{Http, WAIT, credentials, start};

/// A plan's hourly cost in USD micros, at the example fleet's rates.
fn usd_micros(cost: &Value) -> i128 {
    let money: Money = serde_json::from_value(cost.clone()).unwrap();
    Fleet::example()
        .exchange_rates
        .comparable_micros(money)
        .expect("the example fleet prices every currency")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_deploys_a_70b_model_through_the_api_and_it_becomes_ready() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    let http = Http {
        base: hub.url.clone(),
        client: reqwest::Client::new(),
    };

    // The first start wrote the admin's and the demo tenant's credentials,
    // readable by the owner only, and a kubeconfig per sandbox cluster.
    let creds = credentials(data.path());
    assert_eq!(
        creds.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "admin_password",
            "admin_user",
            "api_key",
            "tenant",
            "tenant_password",
            "tenant_user"
        ]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.path().join(CREDENTIALS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let clouds: BTreeSet<_> = hub
        .clusters
        .iter()
        .map(|c| {
            assert!(data.path().join(format!("{}.kubeconfig", c.name)).exists());
            c.name.split('-').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        clouds.len(),
        4,
        "a sandbox cluster on every cloud: {clouds:?}"
    );

    // The demo tenant's key works as written.
    let (status, demo) = http.get("/api/v1/quota", &creds["api_key"]).await;
    assert_eq!(status, StatusCode::OK, "{demo:#}");

    // The admin signs in and creates a tenant with a quota of 16 devices.
    let (status, session) = http
        .post(
            "/api/v1/sessions",
            "",
            json!({"username": creds["admin_user"], "password": creds["admin_password"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session:#}");
    let admin = session["token"].as_str().unwrap().to_owned();
    // The password in the file was a first step: the admin's session can
    // only choose their own first, then enrol a second factor.
    let (status, refused) = http
        .post("/api/v1/tenants", &admin, json!({"name": "early"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused:#}");
    assert_eq!(
        refused["type"], "https://modelfleet.io/problems/password-change-required",
        "{refused:#}"
    );
    let (status, changed) = http
        .post(
            "/api/v1/users/me/password",
            &admin,
            json!({"currentPassword": creds["admin_password"], "newPassword": "Platform-own-choice-2026"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed:#}");
    let (status, refused) = http
        .post("/api/v1/tenants", &admin, json!({"name": "early"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused:#}");
    assert_eq!(
        refused["type"], "https://modelfleet.io/problems/second-factor-required",
        "{refused:#}"
    );
    let (status, begun) = http
        .post("/api/v1/users/me/totp", &admin, json!(null))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{begun:#}");
    let secret = totp::from_base32(begun["secret"].as_str().unwrap()).unwrap();
    let code = totp::code_at(&secret, chrono::Utc::now().timestamp());
    let (status, confirmed) = http
        .post(
            "/api/v1/users/me/totp/confirm",
            &admin,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed:#}");
    let (status, tenant) = http
        .post(
            "/api/v1/tenants",
            &admin,
            json!({"name": "acme", "quota": {"totalDevices": 16, "deployments": 4}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tenant:#}");
    let (status, key) = http
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({"name": "ci", "role": "developer", "tenant": tenant["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key:#}");
    let key = key["token"].as_str().unwrap().to_owned();

    // Plans span every cloud; the first is the cheapest the quota allows.
    let (status, plans) = http
        .post("/api/v1/plans", &key, json!({"model": "llama-3.1-70b"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{plans:#}");
    let plans = plans["plans"].as_array().unwrap().clone();
    let plan_clouds: BTreeSet<_> = plans
        .iter()
        .map(|p| {
            p["pool"]
                .as_str()
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(plan_clouds.len(), 4, "{plan_clouds:?}");
    let cheapest = plans
        .iter()
        .filter(|p| p["quota"]["allowed"] == true)
        .min_by_key(|p| usd_micros(&p["costPerHour"]))
        .unwrap();

    let (status, created) = http
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "llama70", "model": "llama-3.1-70b"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created:#}");
    assert_eq!(created["plan"]["pool"], cheapest["pool"], "{created:#}");
    let id = created["deployment"]["id"].as_str().unwrap().to_owned();
    let cluster_name = created["deployment"]["cluster"]
        .as_str()
        .unwrap()
        .to_owned();
    let cluster = hub
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .expect("placed on one of serve's clusters");

    let ready = http
        .wait_for(&id, &key, "Ready", |d| d["phase"] == "Ready")
        .await;
    assert_eq!(ready["readyReplicas"], 1);

    // Two replicas: the operator scales the workload, the hub sees it.
    let (status, scaled) = http
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/deployments/{id}"),
            &key,
            Some(json!({"replicas": 2})),
        )
        .await;
    assert!(status.is_success(), "{scaled:#}");
    http.wait_for(&id, &key, "two ready replicas", |d| {
        d["phase"] == "Ready" && d["readyReplicas"] == 2
    })
    .await;

    // Delete: the ModelDeployment leaves its cluster and the API forgets it.
    let (status, body) = http
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/deployments/{id}"),
            &key,
            None,
        )
        .await;
    assert!(status.is_success(), "{body:#}");
    let mds: Api<ModelDeployment> = Api::namespaced(cluster.client(), "mf-acme");
    let deadline = Instant::now() + WAIT;
    while mds.get_opt("llama70").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the ModelDeployment was never removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The record stays, marked deleted, and the list no longer shows it.
    let (status, gone) = http.get(&format!("/api/v1/deployments/{id}"), &key).await;
    assert_eq!(status, StatusCode::OK, "{gone:#}");
    assert!(gone["deletedAt"].is_string(), "{gone:#}");
    let (_, listed) = http.get("/api/v1/deployments", &key).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["id"] != id.as_str()),
        "{listed:#}"
    );

    // The fleet file's prices are the catalog's defaults, marked as such.
    let (status, prices) = http.get("/api/v1/prices", &key).await;
    assert_eq!(status, StatusCode::OK, "{prices:#}");
    let items = prices["items"].as_array().unwrap();
    assert!(
        items.iter().any(|p| p["source"] == "default"
            && p["inForce"] == true
            && p["pricePerDeviceHour"]["currency"] == "CNY"),
        "{prices:#}"
    );

    // The deployment's device time is billed: usage and a draft invoice
    // at the catalog's prices.
    let (status, usage) = http.get("/api/v1/usage?groupBy=deployment", &key).await;
    assert_eq!(status, StatusCode::OK, "{usage:#}");
    let group = usage["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == id.as_str())
        .unwrap_or_else(|| panic!("no usage of {id}: {usage:#}"));
    assert!(group["deviceSeconds"].as_u64().unwrap() >= 60, "{usage:#}");
    let (status, invoices) = http.get("/api/v1/invoices", &key).await;
    assert_eq!(status, StatusCode::OK, "{invoices:#}");
    assert_eq!(invoices["items"][0]["status"], "draft", "{invoices:#}");

    // The audit trail has the whole story, with where each request came
    // from, and the compliance report is a PDF an auditor can file.
    let (status, trail) = http
        .get("/api/v1/audit?resource=deployments&verb=delete", &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{trail:#}");
    let deleted = &trail["items"][0];
    assert_eq!(deleted["objectRef"]["name"], "llama70", "{trail:#}");
    assert_eq!(deleted["responseStatus"]["code"], 202, "{trail:#}");
    assert_eq!(deleted["sourceIPs"][0], "127.0.0.1", "{trail:#}");
    let (status, chain) = http.get("/api/v1/audit/verify", &admin).await;
    assert_eq!(status, StatusCode::OK, "{chain:#}");
    assert_eq!(chain["intact"], true, "{chain:#}");
    let pdf = http
        .client
        .get(format!(
            "{}/api/v1/compliance/mlps-l3?format=pdf",
            http.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));

    hub.shutdown().await;
}

/// How long the hub lets a deployment it placed be missing from its
/// cluster before it applies it again (`MISSING_FOR` in
/// api/src/sync/cluster.rs).
const MISSING_FOR: Duration = Duration::from_secs(15);

/// The deployments of `tenant_namespace` in every sandbox cluster of
/// `hub`: (cluster, ModelDeployment uid).
async fn model_deployments(
    hub: &modelfleet::hub::RunningHub,
    namespace: &str,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for cluster in &hub.clusters {
        let mds: Api<ModelDeployment> = Api::namespaced(cluster.client(), namespace);
        for md in mds.list(&Default::default()).await.unwrap().items {
            found.push((cluster.name.clone(), md.metadata.uid.unwrap_or_default()));
        }
    }
    found
}

/// The rows of this month's usage export (one per replica interval) of
/// deployment `id`: its fields up to the interval's end (those after it,
/// what is billed, grow while the interval is open).
async fn usage_rows(http: &Http, key: &str, id: &str) -> Vec<Vec<String>> {
    let (status, csv) = http.get("/api/v1/usage/export", key).await;
    assert_eq!(status, StatusCode::OK, "{csv:#}");
    let csv = csv.as_str().expect("CSV text");
    csv.lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .take(12)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|fields| fields.get(1).map(String::as_str) == Some(id))
        .collect()
}

/// A restart on the same data directory keeps the first credentials and
/// creates no more, and resumes the sandbox clusters where they stopped:
/// the deployment placed before is the same object (same uid), still
/// Ready, never applied again, its replica still in the one usage interval
/// it was in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_first_credentials_and_brings_deployments_back() {
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    assert!(hub.initial_credentials.is_some());
    let first = std::fs::read_to_string(data.path().join(CREDENTIALS_FILE)).unwrap();
    let creds = credentials(data.path());
    let key = &creds["api_key"];
    let http = Http {
        base: hub.url.clone(),
        client: reqwest::Client::new(),
    };
    let (status, created) = http
        .post(
            "/api/v1/deployments",
            key,
            json!({"name": "chat", "model": "llama-3.1-8b"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created:#}");
    let id = created["deployment"]["id"].as_str().unwrap().to_owned();
    http.wait_for(&id, key, "Ready", |d| d["phase"] == "Ready")
        .await;
    // Its replica is billed from one open interval.
    let deadline = Instant::now() + WAIT;
    let interval = loop {
        let rows = usage_rows(&http, key, &id).await;
        if let [row] = rows.as_slice() {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "no usage interval: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let placed = model_deployments(&hub, "mf-demo").await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    hub.shutdown().await;
    // Each sandbox cluster's objects were written into the data directory,
    // for its owner alone.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = data.path().join(modelfleet::embedded::SNAPSHOT_DIR);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let snapshot = dir.join(format!("{}.json", placed[0].0));
        let mode = std::fs::metadata(&snapshot).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let hub = start(data.path()).await;
    let restarted = Instant::now();
    assert!(hub.initial_credentials.is_none(), "created only once");
    let again = std::fs::read_to_string(data.path().join(CREDENTIALS_FILE)).unwrap();
    assert_eq!(first, again);
    // The sealing key and database survived: the old API key still works.
    let http = Http {
        base: hub.url.clone(),
        client: reqwest::Client::new(),
    };
    let (status, body) = http.get("/api/v1/quota", key).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    // Its sandbox cluster came back with its objects: the same
    // ModelDeployment, at once.
    assert_eq!(model_deployments(&hub, "mf-demo").await, placed);
    // For longer than the hub waits before applying a missing deployment
    // again (and than a few of its sync passes), it stays Ready, the same
    // object, never applied again, never refused.
    let watched = MISSING_FOR + 3 * modelfleet_api::sync::RESYNC;
    loop {
        let (status, deployment) = http.get(&format!("/api/v1/deployments/{id}"), key).await;
        assert_eq!(status, StatusCode::OK, "{deployment:#}");
        assert_eq!(deployment["phase"], "Ready", "{deployment:#}");
        assert_eq!(deployment["readyReplicas"], 1, "{deployment:#}");
        let (status, trail) = http
            .get("/api/v1/audit?resource=deployments&verb=update", key)
            .await;
        assert_eq!(status, StatusCode::OK, "{trail:#}");
        let unexpected: Vec<&Value> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["responseStatus"]["code"] == 422
                    || r["responseStatus"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("applied again"))
            })
            .collect();
        assert!(unexpected.is_empty(), "{unexpected:#?}");
        assert_eq!(model_deployments(&hub, "mf-demo").await, placed);
        if restarted.elapsed() > watched {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, deployment) = http.get(&format!("/api/v1/deployments/{id}"), key).await;
    assert!(
        !deployment.to_string().contains("applied again by the hub"),
        "{deployment:#}"
    );
    // The replica kept running: still the one interval, still open (a
    // replica the restart had lost would have closed it and opened
    // another).
    assert_eq!(
        interval.get(11).map(String::as_str),
        Some(""),
        "open: {interval:?}"
    );
    let rows = usage_rows(&http, key, &id).await;
    assert_eq!(rows, [interval], "one interval, as before");
    hub.shutdown().await;
}

/// A sandbox cluster's snapshot that cannot be loaded stops `serve` with
/// the file's name and what to do, and is left as it was: never taken for
/// an empty cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_sandbox_snapshot_stops_serve_and_names_the_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    modelfleet::embedded::open_snapshot_dir(data.path()).unwrap();
    let names: Vec<String> = modelfleet::hub::clusters_of(&Fleet::example())
        .into_keys()
        .collect();
    for name in &names {
        let path = modelfleet::embedded::snapshot_file(data.path(), name).unwrap();
        std::fs::write(&path, b"{\"format\": 1, \"resourceVer").unwrap();
    }
    let options = modelfleet::hub::HubOptions::new(data.path(), ([127, 0, 0, 1], 0).into());
    let error = match modelfleet::hub::RunningHub::start(options).await {
        Ok(_) => panic!("serve started over a corrupt snapshot"),
        Err(e) => format!("{e:#}"),
    };
    let first = modelfleet::embedded::snapshot_file(data.path(), &names[0]).unwrap();
    assert!(
        error.contains(&first.display().to_string()),
        "the file is named: {error}"
    );
    assert!(error.contains("move it away"), "{error}");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        b"{\"format\": 1, \"resourceVer",
        "left as it was"
    );
}
