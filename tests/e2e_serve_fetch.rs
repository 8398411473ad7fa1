//! End to end, `modelfleet serve --real-fetch`: the sandbox nodes run
//! modelfleet's own fetch for real. A tenant admin keeps the keys of a
//! private S3-compatible store (s3s-fs on loopback, as a MinIO would be)
//! in the hub, deploys a model from it with `sourceCredential`, and the
//! deployment reaches Ready on the files the fetch downloaded to the
//! node's disk — each object fetched once.

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::json;

#[path = "support/s3.rs"]
mod s3;
#[path = "support/serve.rs"]
mod serve;
use s3::LocalS3;
use serve::{Http, WAIT, credentials, start_with};

const ACCESS_KEY: &str = "AKIASERVEFETCH0001";
const SECRET_KEY: &str = "serve-real-fetch-secret-key";

/// Every file named `name` under `dir`.
fn found(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(self::found(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_fetches_for_real_with_the_keys_the_hub_keeps() {
    let shard: Vec<u8> = (0..3 * 1024 * 1024_u32).map(|i| (i % 251) as u8).collect();
    let store = LocalS3::start(
        ACCESS_KEY,
        SECRET_KEY,
        &[
            (
                "models/tiny/config.json",
                br#"{"architectures": ["LlamaForCausalLM"]}"#,
            ),
            ("models/tiny/model.safetensors", &shard),
        ],
    )
    .await;
    let data = tempfile::tempdir().unwrap();
    let hub = start_with(data.path(), |o| o.real_fetch = true).await;
    let http = Http {
        base: hub.url.clone(),
        client: reqwest::Client::new(),
    };
    let key = credentials(data.path())["api_key"].clone();
    let (_, tenants) = http.get("/api/v1/tenants", &key).await;
    let tenant = tenants["items"][0]["id"].as_str().unwrap().to_owned();

    let (status, kept) = http
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{tenant}/source-credentials/minio"),
            &key,
            Some(json!({"keys": {
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL": store.endpoint,
                "AWS_REGION": "us-east-1",
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kept:#}");
    assert!(!kept.to_string().contains(SECRET_KEY));
    let endpoint = kept["credential"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "AWS_ENDPOINT_URL")
        .cloned();
    assert_eq!(
        endpoint,
        Some(json!({"name": "AWS_ENDPOINT_URL", "last4": null, "value": store.endpoint}))
    );

    let (status, created) = http
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "tiny", "model": "llama-3.2-1b", "source": "s3://models/tiny",
                   "sourceCredential": "minio"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created:#}");
    let id = created["deployment"]["id"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    let shown = loop {
        let (_, shown) = http.get(&format!("/api/v1/deployments/{id}"), &key).await;
        if shown["phase"] == "Ready" && !shown["weights"].as_array().unwrap().is_empty() {
            break shown;
        }
        assert_ne!(shown["phase"], "Failed", "{shown:#}");
        assert!(started.elapsed() < WAIT, "not Ready: {shown:#}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // The API says where the replica's weights came from.
    let weights = shown["weights"].as_array().unwrap();
    assert_eq!(weights.len(), 1, "{shown:#}");
    assert_eq!(weights[0]["from"], "Download");
    assert_eq!(weights[0]["bytes"], shard.len() as u64 + 39);

    // The weights are on the node's disk, whole, fetched once each.
    let nodes = data.path().join(modelfleet::hub::NODES_DIR);
    let shards = found(&nodes, "model.safetensors");
    assert_eq!(shards.len(), 1, "{shards:?}");
    assert_eq!(std::fs::read(&shards[0]).unwrap(), shard);
    assert_eq!(found(&nodes, "config.json").len(), 1);
    assert_eq!(store.gets(), 2, "one GET per object");
    hub.shutdown().await;
}
