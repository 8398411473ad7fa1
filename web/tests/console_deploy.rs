//! The one-click path through the console's pages, read as HTML: the
//! catalog, a model's ranked plans, Deploy, the deployment page following
//! it to Ready, scaling and deleting with confirmation, and what a refused
//! form says.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use modelfleet_api::config::ApiSettings;
use modelfleet_api::identity::{Actor, Scope};
use modelfleet_api::store::testing::{TestDb, run};
use modelfleet_api::store::{Backend, DeploymentStatus};
use modelfleet_core::crd::{PodWeights, WeightsFrom};
use modelfleet_core::fleet::{Cloud, Fleet};
use modelfleet_fetch::testing::{FakeHub, Repo, tiny_model};
use serde_json::Value;
use support::hub::{SandboxSpec, eventually, test_settings};
use support::{Browser, Hub, tenant_with_admin};

/// One AWS cluster with the real operator in it, requiring the hub's
/// admission, and room for a 70B model.
async fn hub(db: TestDb) -> Hub {
    let fleet = Fleet::from_yaml(
        "pools:\n\
         - {cloud: aws, region: us-east-1, cluster: aws-a, name: h100, accelerator: h100-80gb, \
            devicesPerNode: 8, nodesTotal: 2, nodesFree: 2, pricePerDeviceHour: \"4.10 USD\"}\n\
         - {cloud: aws, region: us-east-1, cluster: aws-a, name: a10, accelerator: a10, \
            devicesPerNode: 1, nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: \"0.80 USD\"}\n",
    )
    .unwrap();
    let spec = SandboxSpec {
        name: "aws-a",
        cloud: Cloud::Aws,
        region: "us-east-1",
        fleet,
        operator: Some(true),
    };
    Hub::start_clusters(db, vec![spec], test_settings()).await
}

#[tokio::test]
async fn one_click_deploys_a_70b_model_and_its_page_follows_it_to_ready() {
    run(Backend::Sqlite, |db| async move {
        let hub = hub(db).await;
        let background = hub.background();
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        // The catalog: every model from 1B to 180B as a card, dense and MoE.
        let page = browser.get("/deploy").await;
        assert_eq!(page.status, StatusCode::OK);
        let models = page.attrs(".card", "data-model");
        for id in [
            "llama-3.2-1b",
            "llama-3.1-70b",
            "mixtral-8x7b",
            "deepseek-v3",
            "falcon-180b",
        ] {
            assert!(
                models.contains(&id.to_owned()),
                "{id} missing from {models:?}"
            );
        }
        let card = page.one(".card[data-model=\"llama-3.1-70b\"]");
        assert!(card.contains("70.55B") && card.contains("142 GB"), "{card}");
        assert!(
            page.one(".card[data-model=\"mixtral-8x7b\"] .badge")
                .contains("Mixture")
        );

        // The model's page: ranked plans with the hourly cost, and why the
        // small pool was passed over.
        let href = page.attrs(".card[data-model=\"llama-3.1-70b\"] a.deploy-model", "href");
        assert_eq!(href, ["/deploy/llama-3.1-70b"]);
        let page = browser.get("/deploy/llama-3.1-70b").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let plans = page.texts("table#plans tbody tr");
        assert!(!plans.is_empty(), "{}", page.text());
        assert!(
            plans[0].contains("h100-80gb") && plans[0].contains("USD"),
            "{}",
            plans[0]
        );
        assert!(plans[0].contains("fits"), "{}", plans[0]);
        let rejections = page.texts("#rejections tbody tr");
        assert!(
            rejections.iter().any(|r| r.contains("a10")),
            "{rejections:?}"
        );
        assert!(page.has("details#advanced"));
        let name = page.attrs("#deploy-name", "value").remove(0);
        assert!(name.starts_with("llama-3-1-70b-"), "{name}");

        // One click: the form as rendered, nothing changed.
        let page = browser
            .post("/deploy/llama-3.1-70b", &[("name", &name)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let location = page.location().unwrap().to_owned();
        assert!(location.starts_with("/deployments/"), "{location}");

        let page = browser.get(&location).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.one("#deployment-name").split_whitespace().next(),
            Some(name.as_str())
        );
        assert!(page.text().contains("/static/htmx.min.js"));
        // While it is not Ready, the live part polls itself.
        let live_url = format!("{location}/live");
        let ready = eventually("the deployment page says Ready", || {
            let mut b = browser.clone();
            let url = live_url.clone();
            async move {
                let page = b.get(&url).await;
                (page.one("#phase") == "Ready").then_some(page)
            }
        })
        .await;
        assert_eq!(ready.one("#ready-replicas"), "1");
        assert!(
            ready.attrs("#live", "hx-get").is_empty(),
            "a settled page stops polling"
        );
        assert_eq!(
            ready.texts("ol.progress li.done"),
            ["Planning", "Scheduling", "Loading", "Ready"]
        );
        assert!(
            ready.one("#endpoint").starts_with("http://"),
            "{}",
            ready.text()
        );
        assert!(
            ready
                .texts("#conditions tbody tr")
                .iter()
                .any(|r| r.contains("Ready True"))
        );

        // The page polled every 2 s never calls the cluster: what it shows
        // is what cluster sync recorded. With sync stopped, the hub's only
        // client of the cluster counts every request it sends.
        background.stop().await;
        let calls = count_cluster_calls(&hub, "aws-a", Cloud::Aws, "us-east-1");
        for _ in 0..5 {
            let page = browser.get(&live_url).await;
            assert_eq!(page.one("#phase"), "Ready");
            assert!(page.one("#endpoint").starts_with("http://"));
            let page = browser.get(&location).await;
            assert_eq!(page.status, StatusCode::OK);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "the deployment page called its cluster"
        );

        // Where each replica's weights came from, as sync recorded it
        // (the sandbox's simulated fetch reports none; the real one does).
        assert!(!ready.has("#weights"), "none recorded yet");
        let id: modelfleet_api::ids::DeploymentId = location
            .trim_start_matches("/deployments/")
            .parse()
            .unwrap();
        let current = hub.store.deployment(Scope::All, id).await.unwrap();
        let mut tx = hub.store.begin(&Actor::system("test")).await.unwrap();
        tx.record_deployment_status(
            id,
            &DeploymentStatus {
                phase: current.phase,
                ready_replicas: current.ready_replicas,
                message: current.status_message.clone(),
                resource_uid: None,
                conditions: None,
                endpoint: None,
                unschedulable: false,
                weights: Some(vec![PodWeights {
                    pod: "chat-0".into(),
                    from: WeightsFrom::NodeCache,
                    bytes: 3 << 30,
                }]),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let page = browser.get(&live_url).await;
        assert_eq!(
            page.texts("#weights tbody tr"),
            ["chat-0 the node's model cache 3.00 GiB"]
        );

        // The replicas' last lines: a page of their own, read from the
        // cluster when it is asked for.
        let page = browser.get(&location).await;
        assert_eq!(
            page.attrs("#replica-logs-link", "href"),
            [format!("{location}/logs")]
        );
        let logs = browser.get(&format!("{location}/logs")).await;
        assert_eq!(logs.status, StatusCode::OK, "{}", logs.text());
        let fetch = logs.one("pre.log[data-container=\"fetch-weights\"]");
        assert!(fetch.contains("fetch "), "{}", logs.text());
        assert!(
            logs.has("pre.log[data-container=\"engine\"]"),
            "{}",
            logs.text()
        );
        assert_eq!(logs.texts("#replica-logs section.replica").len(), 1);

        // Scale to 2: a confirmation first, with the hourly cost after.
        let id = location.trim_start_matches("/deployments/");
        let page = browser.get(&format!("{location}/scale?replicas=2")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.one("#confirm-replicas"), "2");
        let state: Value = hub
            .get(&format!("/api/v1/deployments/{id}"), &hub.admin)
            .await
            .body;
        assert_eq!(
            state["replicas"], 1,
            "nothing changes before the confirmation"
        );
        let page = browser
            .post(&format!("{location}/scale"), &[("replicas", "2")])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let page = browser.get(&location).await;
        assert_eq!(page.one("#replicas"), "2");

        // A count the quota refuses is shown with the limit, and changes
        // nothing.
        let page = browser
            .post(&format!("{location}/scale"), &[("replicas", "9")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        assert!(
            page.one("#error-message").contains("devices"),
            "{}",
            page.text()
        );
        let page = browser.get(&location).await;
        assert_eq!(page.one("#replicas"), "2");
        let page = browser
            .get(&format!("{location}/scale?replicas=lots"))
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!page.has("#confirm"));

        // The list shows it; delete asks first, then it is gone.
        let page = browser.get("/deployments").await;
        assert!(page.one("#deployments tbody").contains(&name));
        let page = browser.get(&format!("{location}/delete")).await;
        assert!(page.one("#confirm-text").contains(&name));
        let page = browser.post(&format!("{location}/delete"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let page = browser.get("/deployments").await;
        assert!(page.has("#no-deployments"), "{}", page.text());
        // The hub's writes since did reach the cluster through its client.
        assert!(calls.load(Ordering::SeqCst) > 0);
    })
    .await;
}

/// Re-connects cluster `name` through a client that counts the requests
/// the hub sends it, and returns the count.
fn count_cluster_calls(hub: &Hub, name: &str, cloud: Cloud, region: &str) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = hub.sandbox(name).kube.clone();
    let counted = {
        let calls = calls.clone();
        tower::service_fn(move |request: axum::http::Request<kube::client::Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let inner = inner.clone();
            async move { inner.send(request).await }
        })
    };
    hub.state
        .registry()
        .attach(name, cloud, region, kube::Client::new(counted, "default"));
    calls
}

#[tokio::test]
async fn a_refused_deploy_says_why_escapes_what_was_typed_and_deploys_nothing() {
    run(Backend::Sqlite, |db| async move {
        let hub = hub(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        let hostile = "Bad<script>alert(1)</script>";
        let page = browser
            .post("/deploy/llama-3.1-8b", &[("name", hostile)])
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.text()
        );
        assert!(
            page.one("#deploy-error").contains("name"),
            "{}",
            page.text()
        );
        // Typed text comes back as an attribute value, never as markup.
        assert_eq!(page.attrs("#deploy-name", "value"), [hostile]);
        assert!(!page.text().contains("<script>alert(1)"));
        assert!(page.text().contains("&lt;script&gt;") || page.text().contains("&#60;script"));
        // The plans are still shown beside the error.
        assert!(!page.texts("table#plans tbody tr").is_empty());

        // Advanced options that are not numbers are named.
        let page = browser
            .get("/deploy/llama-3.1-8b?replicas=two&clouds=aws")
            .await;
        assert!(
            page.one("#deploy-error").contains("replicas"),
            "{}",
            page.text()
        );
        assert_eq!(page.attrs("#cloud-aws", "checked").len(), 1);
        // A model not in the catalog is a page that says so.
        let page = browser.get("/deploy/gpt-7").await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(page.one("#error-message").contains("unknown model"));

        let list = hub.get("/api/v1/deployments", &hub.admin).await;
        assert_eq!(
            list.body["items"],
            serde_json::json!([]),
            "nothing was deployed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_model_not_in_the_catalog_deploys_from_its_model_hub_source() {
    run(Backend::Sqlite, |db| async move {
        let models = FakeHub::start(BTreeMap::from([(
            "acme/tiny-chat".to_owned(),
            Repo::llama(&tiny_model("tiny-chat"), 2),
        )]))
        .await;
        let spec = SandboxSpec {
            name: "aws-a",
            cloud: Cloud::Aws,
            region: "us-east-1",
            fleet: Fleet::example(),
            operator: Some(true),
        };
        let settings = ApiSettings {
            hf_endpoint: Some(models.endpoint.clone()),
            ..test_settings()
        };
        let hub = Hub::start_clusters(db, vec![spec], settings).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;

        // The catalog page takes a source beside its cards.
        let page = browser.get("/deploy").await;
        assert_eq!(page.attrs("form#source-form", "action"), ["/deploy/source"]);
        // The model read from its source: its size, its plans, and forms
        // that carry the source along.
        let page = browser
            .get("/deploy/source?source=hf%3A%2F%2Facme%2Ftiny-chat")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        assert!(page.one("h1").contains("tiny-chat"), "{}", page.text());
        assert!(
            !page.texts("table#plans tbody tr").is_empty(),
            "{}",
            page.text()
        );
        assert_eq!(page.attrs("form#deploy-form", "action"), ["/deploy/source"]);
        assert!(
            page.attrs("form#deploy-form input[name=source]", "value") == ["hf://acme/tiny-chat"],
            "{}",
            page.text()
        );
        let name = page.attrs("#deploy-name", "value").remove(0);
        let page = browser
            .post(
                "/deploy/source",
                &[("name", &name), ("source", "hf://acme/tiny-chat")],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
        let list = hub.get("/api/v1/deployments", &hub.admin).await;
        assert_eq!(
            list.body["items"][0]["model"], "tiny-chat",
            "{:#}",
            list.body
        );

        // A source the hub cannot read (an object store, with no
        // credential) says what to do on the source form, filled as it was
        // sent, and deploys nothing.
        let page = browser
            .get("/deploy/source?source=s3%3A%2F%2Fbucket%2Fmine")
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        let error = page.one("#source-error");
        assert!(
            error.contains("sourceCredential") && error.contains("modelfleet model --source"),
            "{}",
            page.text()
        );
        assert_eq!(
            page.attrs("form#source-form #source", "value"),
            ["s3://bucket/mine"]
        );
        let page = browser.get("/deploy/source").await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.has("form#source-form"));
        let list = hub.get("/api/v1/deployments", &hub.admin).await;
        assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    })
    .await;
}

#[tokio::test]
async fn the_language_switch_shows_the_console_in_chinese() {
    run(Backend::Sqlite, |db| async move {
        let hub = hub(db).await;
        tenant_with_admin(&hub, "acme").await;
        let mut browser = Browser::new(&hub);
        browser.sign_in("acme-admin").await;
        let page = browser.get("/deploy").await;
        assert_eq!(page.attrs("html", "lang"), ["en"]);
        let switch = page.attrs("#lang-zh", "href").remove(0);
        let page = browser.get(&switch).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), Some("/deploy"));
        let page = browser.get("/deploy").await;
        assert_eq!(page.attrs("html", "lang"), ["zh"]);
        assert!(
            page.texts("nav a").contains(&"部署模型".to_owned()),
            "{:?}",
            page.texts("nav a")
        );
        assert_eq!(page.one("h1"), "部署模型");
    })
    .await;
}
