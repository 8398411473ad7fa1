//! Models the catalog does not know, in a tenant's object store: the hub
//! reads an `s3://` model's config.json and safetensors headers with the
//! keys of a source credential the tenant keeps, at the endpoint and
//! region the credential names — an S3 server on loopback here (s3s-fs,
//! `tests/support/s3.rs`), holding the same checkpoint as the Hugging Face
//! Hub on loopback beside it. The endpoint is the tenant's to name, so
//! the hub connects only to public addresses unless the platform allows
//! private ones (`--source-allow-private-addresses`), and then the store
//! is never reached at all; without a credential, with another tenant's,
//! or with one lacking keys or a region, nothing is read and the answer
//! says what to add; a refused read names the credential, never a value.

#[path = "../../tests/support/s3.rs"]
mod s3;
mod support;

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use kube::api::Api;
use modelfleet_api::config::ApiSettings;
use modelfleet_api::store::testing::TestDb;
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::model::ModelArch;
use modelfleet_fetch::testing::{FakeHub, File, Repo, tiny_model};
use s3::LocalS3;
use serde_json::{Value, json};
use support::{Hub, roomy, test_settings};

const ACCESS_KEY: &str = "AKIDTENANTSTORE0001";
const SECRET_KEY: &str = "tenant-store-secret-key-0001";
const WRONG_SECRET: &str = "not-the-store-secret-key-0002";
const BUCKET: &str = "models";
const SOURCE: &str = "s3://models/tiny-chat";

/// The tiny model's checkpoint: config.json, two shards of its real
/// shapes, and a tokenizer the sizing ignores.
fn checkpoint() -> Repo {
    let mut repo = Repo::llama(&tiny_model("tiny-chat"), 2);
    repo.files
        .insert("tokenizer.json".to_owned(), File::whole(b"{}".to_vec()));
    repo
}

/// The checkpoint on a Hugging Face Hub on loopback, as `acme/tiny-chat`,
/// and in an S3 store on loopback, as `s3://models/tiny-chat`.
async fn stores() -> (FakeHub, LocalS3) {
    let repo = checkpoint();
    let files: Vec<(String, Vec<u8>, u64)> = repo
        .files
        .iter()
        .map(|(name, file)| (format!("tiny-chat/{name}"), file.head.clone(), file.len))
        .collect();
    let s3 = LocalS3::sparse(ACCESS_KEY, SECRET_KEY, BUCKET, &files).await;
    let hub = FakeHub::start(BTreeMap::from([("acme/tiny-chat".to_owned(), repo)])).await;
    (hub, s3)
}

fn settings(models: &FakeHub, allow_private: bool) -> ApiSettings {
    ApiSettings {
        hf_endpoint: Some(models.endpoint.clone()),
        source_allow_private_addresses: allow_private,
        ..test_settings()
    }
}

/// The store's keys, where it answers and its region.
fn store_keys(secret: &str, endpoint: &str) -> Value {
    json!({"keys": {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
    }})
}

async fn keep(hub: &Hub, key: &str, tenant: &str, name: &str, body: Value) {
    let path = format!("/api/v1/tenants/{tenant}/source-credentials/{name}");
    let added = hub.call(Method::PUT, &path, Some(key), Some(body)).await;
    assert_eq!(added.status, StatusCode::CREATED, "{:#}", added.body);
}

async fn inspect(hub: &Hub, key: &str, credential: Option<&str>) -> support::Reply {
    let mut body = json!({"source": SOURCE});
    if let Some(name) = credential {
        body["sourceCredential"] = json!(name);
    }
    hub.post("/api/v1/models/inspect", key, body).await
}

/// What no answer may hold: the keys, or the secret in any part.
fn assert_no_value(detail: &str) {
    for value in [SECRET_KEY, WRONG_SECRET, ACCESS_KEY] {
        assert!(!detail.contains(value), "a value in: {detail}");
    }
}

/// With private addresses allowed (the store is on loopback), a tenant's
/// kept keys read the model as the Hugging Face path does, and deploy it;
/// another tenant cannot read with them; a wrong secret is the store's
/// refusal, naming the credential and no value.
async fn an_object_store_model_is_read_with_the_tenants_kept_keys(db: TestDb) {
    let (models, store) = stores().await;
    let hub = Hub::start_with_settings(db, settings(&models, true)).await;
    let (acme, key) = hub.tenant("acme", roomy()).await;
    let (_, other) = hub.tenant("other", roomy()).await;
    // A name, so the hub's own resolver is asked (and answers loopback).
    let endpoint = format!("http://localhost:{}", store.port);
    keep(
        &hub,
        &key,
        &acme,
        "store",
        store_keys(SECRET_KEY, &endpoint),
    )
    .await;
    keep(
        &hub,
        &key,
        &acme,
        "wrong",
        store_keys(WRONG_SECRET, &endpoint),
    )
    .await;

    let from_hf = hub
        .post(
            "/api/v1/models/inspect",
            &key,
            json!({"source": "hf://acme/tiny-chat"}),
        )
        .await;
    assert_eq!(from_hf.status, StatusCode::OK, "{:#}", from_hf.body);
    let from_s3 = inspect(&hub, &key, Some("store")).await;
    assert_eq!(from_s3.status, StatusCode::OK, "{:#}", from_s3.body);
    // The same checkpoint, the same figures, field for field.
    assert_eq!(from_s3.body, from_hf.body);
    assert_eq!(from_s3.body["architecture"]["id"], "tiny-chat");
    assert_eq!(
        from_s3.body["architecture"]["totalParams"],
        tiny_model("tiny-chat").total_params.0
    );
    assert_eq!(from_s3.body["shards"], 2);
    // Headers only: the config and two ranged reads per shard.
    let gets = store.gets();
    assert_eq!(gets, 5, "config.json and two reads of each shard");
    assert!(from_s3.body["readBytes"].as_u64().unwrap() < 100_000);

    // Another tenant: not with acme's credential, not without one.
    let borrowed = inspect(&hub, &other, Some("store")).await;
    let detail = borrowed.problem(422);
    assert!(
        detail.contains("keeps no source credential named \"store\""),
        "{detail}"
    );
    let without = inspect(&hub, &other, None).await.problem(422);
    assert!(without.contains("sourceCredential"), "{without}");
    assert_eq!(store.gets(), gets, "nothing read for them");

    // A wrong secret: the store's refusal, naming the credential.
    let refused = inspect(&hub, &key, Some("wrong")).await;
    let detail = refused.problem(422);
    assert!(
        detail.contains("access denied") && detail.contains("source credential \"wrong\""),
        "{detail}"
    );
    assert_no_value(&detail);
    assert_no_value(&refused.body.to_string());

    // Deployed by source with the credential: sized from the files, the
    // pods fetching with the same credential's Secret.
    let created = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "tiny", "model": "my-tiny", "source": SOURCE,
                   "sourceCredential": "store"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:#}", created.body);
    assert_eq!(created.body["deployment"]["model"], "my-tiny");
    let mds: Api<ModelDeployment> = Api::namespaced(hub.kube.clone(), "mf-acme");
    let md = mds.get("tiny").await.expect("written into the cluster");
    assert_eq!(md.spec.source, SOURCE);
    assert_eq!(
        md.spec.source_secret.as_deref(),
        Some("modelfleet-source-store")
    );
    let inline = md.spec.architecture.expect("the architecture goes inline");
    assert_eq!(
        inline,
        ModelArch {
            id: "my-tiny".to_owned(),
            ..tiny_model("tiny-chat")
        }
    );
}

/// Private addresses not allowed (the default): an endpoint on loopback,
/// by name or by address, IPv6 loopback or the cloud's metadata address is
/// refused with what it resolves to, before the store sees a connection;
/// nothing is deployed.
async fn an_object_store_at_a_non_public_address_is_never_reached(db: TestDb) {
    let (models, store) = stores().await;
    let hub = Hub::start_with_settings(db, settings(&models, false)).await;
    let (acme, key) = hub.tenant("acme", roomy()).await;
    let port = store.port;
    // What each refusal says: a name resolves (`localhost` to ::1 or
    // 127.0.0.1, whichever the resolver answers first), an address is
    // named, in the form the URL parser reads it.
    let endpoints = [
        (
            "by-name",
            format!("http://localhost:{port}"),
            "the store's host localhost resolves to ",
        ),
        (
            "by-address",
            format!("http://127.0.0.1:{port}"),
            "names 127.0.0.1,",
        ),
        ("ipv6", format!("http://[::1]:{port}"), "names ::1,"),
        (
            "decimal",
            format!("http://2130706433:{port}"),
            "names 127.0.0.1,",
        ),
        (
            "metadata",
            "http://169.254.169.254".to_owned(),
            "the endpoint http://169.254.169.254 names 169.254.169.254,",
        ),
    ];
    for (name, endpoint, _) in &endpoints {
        keep(&hub, &key, &acme, name, store_keys(SECRET_KEY, endpoint)).await;
    }
    for (name, endpoint, says) in &endpoints {
        let refused = inspect(&hub, &key, Some(name)).await;
        let detail = refused.problem(422);
        assert!(
            detail.contains(says)
                && detail.contains("which is not a public address")
                && detail.contains(&format!("source credential \"{name}\"")),
            "{endpoint}: {detail}"
        );
        assert_no_value(&detail);
    }

    let refused = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "tiny", "model": "my-tiny", "source": SOURCE,
                   "sourceCredential": "by-name"}),
        )
        .await;
    assert!(
        refused.problem(422).contains("not a public address"),
        "{:#}",
        refused.body
    );
    let list = hub.get("/api/v1/deployments", &key).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(store.connections(), 0, "the store was never connected to");
    assert_eq!(store.gets(), 0);
}

/// An object store is read only with a kept credential holding its keys,
/// and where it answers: each lack is named, and nothing is read.
async fn an_object_store_source_needs_a_kept_credential_with_keys(db: TestDb) {
    let (models, store) = stores().await;
    let hub = Hub::start_with_settings(db, settings(&models, true)).await;
    let (acme, key) = hub.tenant("acme", roomy()).await;

    let without = inspect(&hub, &key, None).await;
    let detail = without.problem(422);
    assert_eq!(without.body["field"], "sourceCredential");
    assert!(
        detail.contains("name it as sourceCredential")
            && detail.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            && detail.contains("modelfleet model --source"),
        "{detail}"
    );
    let unknown = inspect(&hub, &key, Some("nothing-kept")).await.problem(422);
    assert!(unknown.contains("keeps no source credential"), "{unknown}");

    keep(
        &hub,
        &key,
        &acme,
        "hf-only",
        json!({"keys": {"HF_TOKEN": "hf_only_a_hub_token"}}),
    )
    .await;
    let no_keys = inspect(&hub, &key, Some("hf-only")).await.problem(422);
    assert!(
        no_keys.contains("\"hf-only\" holds no object-store keys")
            && no_keys.contains("keep AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "{no_keys}"
    );

    keep(
        &hub,
        &key,
        &acme,
        "nowhere",
        json!({"keys": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}}),
    )
    .await;
    let no_region = inspect(&hub, &key, Some("nowhere")).await.problem(422);
    assert!(no_region.contains("keep AWS_REGION in it"), "{no_region}");
    assert_no_value(&no_region);

    // Deploying such a model names the same lack, and deploys nothing.
    let refused = hub
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "tiny", "model": "my-tiny", "source": SOURCE}),
        )
        .await;
    assert!(
        refused.problem(422).contains("sourceCredential"),
        "{:#}",
        refused.body
    );
    let list = hub.get("/api/v1/deployments", &key).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(store.connections(), 0);
}

modelfleet_api::store_tests!(
    an_object_store_model_is_read_with_the_tenants_kept_keys,
    an_object_store_at_a_non_public_address_is_never_reached,
    an_object_store_source_needs_a_kept_credential_with_keys,
);
