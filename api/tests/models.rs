//! Models the catalog does not know, through the REST API: the hub reads
//! an `hf://` model's config.json and safetensors headers from the model
//! hub the platform configured (a Hugging Face Hub on loopback here) —
//! to answer `POST /models/inspect`, and to plan and deploy a model named
//! only by its source, inline in the ModelDeployment it writes; a gated
//! model with the token a tenant keeps as a source credential, for that
//! tenant alone. What it will not do: read an object store without a
//! credential the tenant keeps (`models_object_store.rs` reads one with
//! it), read a gated model without the tenant's token, or read sources
//! for one tenant without limit.

mod support;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use kube::api::Api;
use modelfleet_api::config::ApiSettings;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::model::ModelArch;
use modelfleet_fetch::testing::{FakeHub, File, GATED_TOKEN, Repo, tiny_model};
use serde_json::json;
use support::{Hub, roomy, test_settings};

fn tiny() -> ModelArch {
    tiny_model("tiny-chat")
}

async fn model_hub() -> FakeHub {
    let mut open = Repo::llama(&tiny(), 2);
    open.files
        .insert("tokenizer.json".to_owned(), File::whole(b"{}".to_vec()));
    let gated = Repo {
        gated: true,
        ..open.clone()
    };
    // A repository published to make readers read: its one shard announces
    // a 70 MiB header (within the format's 100 MiB).
    let mut hostile = open.clone();
    let huge: u64 = 70 << 20;
    hostile
        .files
        .retain(|name, _| !name.ends_with(".safetensors"));
    hostile.files.insert(
        "model.safetensors".to_owned(),
        File {
            head: huge.to_le_bytes().to_vec(),
            len: 8 + huge + 1024,
        },
    );
    FakeHub::start(BTreeMap::from([
        ("acme/tiny-chat".to_owned(), open),
        ("acme/gated-chat".to_owned(), gated),
        ("acme/huge-headers".to_owned(), hostile),
    ]))
    .await
}

fn settings(hub: &FakeHub) -> ApiSettings {
    ApiSettings {
        hf_endpoint: Some(hub.endpoint.clone()),
        ..test_settings()
    }
}

async fn a_model_hub_source_is_sized_planned_and_deployed(db: TestDb) {
    let models = model_hub().await;
    let hub = Hub::start_with_settings(db, settings(&models)).await;
    let (_, key) = hub.tenant("acme", roomy()).await;

    let inspected = hub
        .post(
            "/api/v1/models/inspect",
            &key,
            json!({"source": "hf://acme/tiny-chat"}),
        )
        .await;
    assert_eq!(inspected.status, StatusCode::OK, "{:#}", inspected.body);
    let expected = tiny();
    assert_eq!(inspected.body["architecture"]["id"], "tiny-chat");
    assert_eq!(
        inspected.body["architecture"]["totalParams"],
        expected.total_params.0
    );
    assert_eq!(inspected.body["architecture"]["kvHeads"], 2);
    assert_eq!(inspected.body["shards"], 2);
    // Headers only: kilobytes of a checkpoint of ~100 MB.
    assert!(inspected.body["readBytes"].as_u64().unwrap() < 100_000);
    assert!(inspected.body["listedBytes"].as_u64().unwrap() > 50_000_000);

    // Planned and deployed by source alone: the model is what the files
    // say, named as the request names it, inline in the ModelDeployment.
    let plans = hub
        .post(
            "/api/v1/plans",
            &key,
            json!({"model": "my-tiny", "source": "hf://acme/tiny-chat"}),
        )
        .await;
    assert_eq!(plans.status, StatusCode::OK, "{:#}", plans.body);
    assert!(!plans.body["plans"].as_array().unwrap().is_empty());
    let created = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "tiny", "model": "my-tiny", "source": "hf://acme/tiny-chat"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:#}", created.body);
    assert_eq!(created.body["deployment"]["model"], "my-tiny");
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let md = mds.get("tiny").await.expect("written into the cluster");
    let inline = md.spec.architecture.expect("the architecture goes inline");
    assert_eq!(
        inline,
        ModelArch {
            id: "my-tiny".to_owned(),
            ..expected
        }
    );
    assert_eq!(md.spec.source, "hf://acme/tiny-chat");
    // Read once: the plan and the deployment reused the inspection.
    assert_eq!(models.listings(), 1);

    // An architecture given by hand is taken as given.
    let described = hub
        .post(
            "/api/v1/plans",
            &key,
            json!({"model": "tiny-chat", "architecture": inspected.body["architecture"],
                   "source": "s3://acme-models/tiny-chat"}),
        )
        .await;
    assert_eq!(described.status, StatusCode::OK, "{:#}", described.body);
}

async fn sources_the_hub_does_not_read_are_refused_with_what_to_do(db: TestDb) {
    let models = model_hub().await;
    let hub = Hub::start_with_settings(db, settings(&models)).await;
    let (_, key) = hub.tenant("acme", roomy()).await;

    // An object store without a credential the tenant keeps: the hub
    // reads one only with the tenant's own keys (models_object_store.rs).
    let reply = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "mine", "model": "mine", "source": "s3://acme-models/mine"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = reply.problem(422);
    assert!(
        detail.contains("sourceCredential") && detail.contains("modelfleet model --source"),
        "{detail}"
    );
    // A single file is no model's directory; a URL is no source.
    for source in ["https://example.com/model.safetensors", "http://10.0.0.1/"] {
        let reply = hub
            .post("/api/v1/models/inspect", &key, json!({"source": source}))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{source}");
    }
    // A gated model: the hub sends no token of its own.
    let reply = hub
        .post(
            "/api/v1/models/inspect",
            &key,
            json!({"source": "hf://acme/gated-chat"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = reply.problem(422);
    assert!(
        detail.contains("hf://acme/gated-chat") && detail.contains("public models only"),
        "{detail}"
    );
    // Headers that would take the hub's memory: refused before they are
    // read.
    let reply = hub
        .post(
            "/api/v1/models/inspect",
            &key,
            json!({"source": "hf://acme/huge-headers"}),
        )
        .await;
    let detail = reply.problem(422);
    assert!(detail.contains("past 64 MiB"), "{detail}");
    assert!(models.bytes_served() < 1 << 20, "{}", models.bytes_served());
    // Nothing was deployed.
    let list = hub.get("/api/v1/deployments", &key).await;
    assert_eq!(
        list.body["items"].as_array().map(Vec::len),
        Some(0),
        "{:#}",
        list.body
    );
}

async fn one_tenant_cannot_make_the_hub_read_without_limit(db: TestDb) {
    let models = model_hub().await;
    let hub = Hub::start_with_settings(db, settings(&models)).await;
    let (_, key) = hub.tenant("acme", roomy()).await;
    let (_, other) = hub.tenant("globex", roomy()).await;
    // Distinct sources, so that no answer is reused: the tenant's budget
    // runs out, and the hub asked the model hub no more than it allows.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let reply = hub
            .post(
                "/api/v1/models/inspect",
                &key,
                json!({"source": format!("hf://acme/missing-{i}")}),
            )
            .await;
        statuses.push(reply.status);
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNPROCESSABLE_ENTITY)
    );
    assert_eq!(statuses[10..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    assert_eq!(models.listings(), 10);
    // Another tenant has its own budget.
    let reply = hub
        .post(
            "/api/v1/models/inspect",
            &other,
            json!({"source": "hf://acme/tiny-chat"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
}

/// A gated model is read with the token its tenant keeps, planned and
/// deployed by source with it; what was read with one tenant's token is
/// never another's answer.
async fn a_gated_model_is_read_with_the_tenants_kept_token_for_it_alone(db: TestDb) {
    let models = model_hub().await;
    let hub = Hub::start_with_settings(db, settings(&models)).await;
    let (acme, key) = hub.tenant("acme", roomy()).await;
    let (_, other) = hub.tenant("other", roomy()).await;
    let credentials = format!("/api/v1/tenants/{acme}/source-credentials");
    for (name, token) in [("hf", GATED_TOKEN), ("stale", "hf_not_the_right_token")] {
        let added = hub
            .call(
                Method::PUT,
                &format!("{credentials}/{name}"),
                Some(&key),
                Some(json!({"keys": {"HF_TOKEN": token}})),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{:#}", added.body);
    }

    let gated = json!({"source": "hf://acme/gated-chat", "sourceCredential": "hf"});
    let read = hub
        .post("/api/v1/models/inspect", &key, gated.clone())
        .await;
    assert_eq!(read.status, StatusCode::OK, "{:#}", read.body);
    assert_eq!(read.body["architecture"]["id"], "gated-chat");
    assert_eq!(read.body["shards"], 2);

    // Another tenant: not from what acme read, not with acme's credential.
    let theirs = hub
        .post(
            "/api/v1/models/inspect",
            &other,
            json!({"source": "hf://acme/gated-chat"}),
        )
        .await;
    let detail = theirs.problem(422);
    assert!(
        detail.contains("keep your token as a source credential"),
        "{detail}"
    );
    let borrowed = hub.post("/api/v1/models/inspect", &other, gated).await;
    assert!(
        borrowed
            .problem(422)
            .contains("keeps no source credential named \"hf\""),
        "{:#}",
        borrowed.body
    );
    // A wrong token is the model hub's refusal, naming the credential.
    let stale = hub
        .post(
            "/api/v1/models/inspect",
            &key,
            json!({"source": "hf://acme/gated-chat", "sourceCredential": "stale"}),
        )
        .await;
    assert!(stale.problem(422).contains("source credential \"stale\""));

    // Planned and deployed by source with it: the pods fetch with the same
    // credential.
    let created = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "gated", "model": "my-gated", "source": "hf://acme/gated-chat",
                   "sourceCredential": "hf"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:#}", created.body);
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let md = mds.get("gated").await.expect("written into the cluster");
    assert_eq!(
        md.spec.source_secret.as_deref(),
        Some("modelfleet-source-hf")
    );
    assert_eq!(md.spec.architecture.expect("inline").id, "my-gated");
}

modelfleet_api::store_tests!(
    a_model_hub_source_is_sized_planned_and_deployed,
    a_gated_model_is_read_with_the_tenants_kept_token_for_it_alone,
    sources_the_hub_does_not_read_are_refused_with_what_to_do,
    one_tenant_cannot_make_the_hub_read_without_limit,
);
