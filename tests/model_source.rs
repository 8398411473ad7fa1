//! A model that is not in the catalog, sized from its own files: an S3
//! server on loopback (s3s-fs) and a local server speaking the Hugging
//! Face Hub's API both hold a checkpoint with Llama 3.2 1B's config.json
//! and safetensors shards of its real shapes (sparse on disk: the weights
//! are never read). `modelfleet model --source` and `modelfleet plan
//! --source` read the config and the shards' headers only, the plans are
//! the catalog entry's to the byte, and the architecture printed deploys
//! to a sandbox cluster as a ModelDeployment's `spec.architecture`.

#[path = "support/deployments.rs"]
mod deployments;
#[path = "support/s3.rs"]
mod s3;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use kube::api::{Api, PostParams};
use modelfleet::embedded::{EmbeddedCluster, EmbeddedOptions};
use modelfleet_core::ModelArch;
use modelfleet_core::checkpoint::fixtures::{llama_config, llama_tensors, shards};
use modelfleet_core::crd::{ModelDeployment, Phase};
use modelfleet_core::fleet::Fleet;
use modelfleet_fetch::testing::{FakeHub, Repo};
use serde_json::{Value, json};

use deployments::{phase, wait_for};
use s3::LocalS3;

const ACCESS_KEY: &str = "AKIDMODELSOURCE01";
const SECRET_KEY: &str = "model-source-secret-key";
const BUCKET: &str = "models";
const MODEL: &str = "acme-1b-chat";

/// Writes Llama 3.2 1B's checkpoint into `dir`: its config.json and two
/// shards whose headers are real and whose data is a hole. Returns the
/// files' names and sizes.
fn write_checkpoint(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::create_dir_all(dir).unwrap();
    let m = ModelArch::find("llama-3.2-1b").unwrap();
    let mut files = BTreeMap::new();
    let config = llama_config(m);
    std::fs::write(dir.join("config.json"), &config).unwrap();
    files.insert("config.json".to_owned(), config.len() as u64);
    let parts = shards(&llama_tensors(m), 2);
    for (i, shard) in parts.iter().enumerate() {
        let name = format!("model-{:05}-of-{:05}.safetensors", i + 1, parts.len());
        let file = std::fs::File::create(dir.join(&name)).unwrap();
        std::io::Write::write_all(&mut &file, &shard.head).unwrap();
        file.set_len(shard.file_len()).unwrap();
        files.insert(name, shard.file_len());
    }
    files
}

/// s3s-fs over a directory holding the checkpoint under
/// `models/acme-1b-chat/`. s3s-fs keeps each object's ETag in a file
/// beside it and hashes the whole object when there is none; the shards
/// get one, as an upload would have left, so that it does not hash 2.5 GB
/// of holes on every request.
async fn s3_store() -> LocalS3 {
    let root = tempfile::tempdir().unwrap();
    let files = write_checkpoint(&root.path().join(BUCKET).join(MODEL));
    let keys: Vec<String> = files.keys().map(|name| format!("{MODEL}/{name}")).collect();
    s3::keep_etags(root.path(), BUCKET, &keys);
    LocalS3::over(root, ACCESS_KEY, SECRET_KEY).await
}

/// A Hugging Face Hub on loopback with the checkpoint as
/// `acme/acme-1b-chat`, and a gated repo.
async fn hub() -> FakeHub {
    let open = Repo::llama(ModelArch::find("llama-3.2-1b").unwrap(), 2);
    let gated = Repo {
        gated: true,
        ..open.clone()
    };
    FakeHub::start(BTreeMap::from([
        (format!("acme/{MODEL}"), open),
        ("acme/gated-1b".to_owned(), gated),
    ]))
    .await
}

/// Runs `f` (the real binary) while the servers' tasks go on.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Runs the real binary with only the given variables of the reach
/// environment set.
fn modelfleet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelfleet"));
    command.args(args);
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "modelfleet failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// What `plan --output json` says about every pool, less the model's id.
fn plans(out: &Output) -> (Value, Value) {
    let report: Value = serde_json::from_str(&stdout(out)).unwrap();
    (report["plans"].clone(), report["rejections"].clone())
}

const PLAN: [&str; 6] = [
    "plan",
    "--max-model-len",
    "16384",
    "--concurrency",
    "8",
    "--output",
];

fn plan_with(which: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = PLAN.to_vec();
    args.push("json");
    args.extend_from_slice(which);
    modelfleet(&args, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_from_an_object_store_is_sized_from_its_headers_and_deploys() {
    let store = s3_store().await;
    let env = [
        ("AWS_ENDPOINT_URL", store.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let source = format!("s3://{BUCKET}/{MODEL}");

    // The architecture, as a model file: the catalog entry's, under the
    // source's name, read from a few kilobytes of a 2.5 GB checkpoint.
    let out = blocking(|| modelfleet(&["model", "--source", &source], &env));
    let text = stdout(&out);
    let read = ModelArch::from_yaml(&text).unwrap();
    let catalog = ModelArch::find("llama-3.2-1b").unwrap();
    assert_eq!(read.id, MODEL);
    assert_eq!(
        ModelArch {
            id: catalog.id.clone(),
            name: catalog.name.clone(),
            ..read.clone()
        },
        *catalog
    );
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "# read from {source}: config.json and 2 safetensors headers (0.0"
        )),
        "{first}"
    );
    assert!(
        first.contains("of 2.30 GiB); credentials: AWS_ACCESS_KEY_ID …CE01"),
        "{first}"
    );

    // Planned from the source, the plans are the catalog model's.
    let (from_source, from_catalog) = blocking(|| {
        (
            plan_with(&["--source", &source], &env),
            plan_with(&["--model", "llama-3.2-1b"], &[]),
        )
    });
    let (source_plans, _) = plans(&from_source);
    assert!(source_plans.as_array().is_some_and(|p| !p.is_empty()));
    assert_eq!(plans(&from_source), plans(&from_catalog));

    // A wrong key: one line naming the object and the key used.
    let bad = [
        ("AWS_ENDPOINT_URL", store.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", "not-the-key"),
    ];
    let out = blocking(|| modelfleet(&["model", "--source", &source], &bad));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&source) && err.contains("AWS_ACCESS_KEY_ID …CE01"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // The printed architecture deploys as the ModelDeployment's own.
    let mut options = EmbeddedOptions::new("sandbox", Fleet::example());
    options.time_factor = 0.005;
    options.requeue = Duration::from_millis(300);
    let cluster = EmbeddedCluster::start(options).await.unwrap();
    let api: Api<ModelDeployment> = Api::namespaced(cluster.client(), "default");
    let architecture: Value = serde_yaml::from_str(&text).unwrap();
    let md: ModelDeployment = serde_json::from_value(json!({
        "apiVersion": "modelfleet.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "acme", "namespace": "default"},
        "spec": {
            "model": MODEL,
            "architecture": architecture,
            "source": source,
            "replicas": 1,
            "placement": {"accelerators": ["l40s"]},
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &md).await.unwrap();
    let md = wait_for(&api, "acme", "Ready", |md| phase(md) == Some(Phase::Ready)).await;
    let planned = md.status.unwrap().plan.unwrap();
    assert_eq!(planned.accelerator, "l40s");
    assert!(planned.kv_cache_tokens > 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_from_a_hugging_face_hub_is_sized_from_its_headers() {
    let hub = hub().await;
    let env = [("HF_ENDPOINT", hub.endpoint.as_str())];
    let source = format!("hf://acme/{MODEL}");
    let (model, plan, catalog) = blocking(|| {
        (
            modelfleet(&["model", "--source", &source, "--output", "json"], &env),
            plan_with(&["--source", &source], &env),
            plan_with(&["--model", "llama-3.2-1b"], &[]),
        )
    });
    let read: ModelArch = serde_json::from_str(&stdout(&model)).unwrap();
    assert_eq!(read.total_params.0, 1_235_814_400);
    assert!(read.tie_word_embeddings);
    assert_eq!(plans(&plan), plans(&catalog));
    // Two runs, each reading the config and two headers: kilobytes, of a
    // checkpoint of 2.5 GB.
    let sent = hub.bytes_served();
    assert!(sent < 200_000, "the hub sent {sent} bytes");

    // A gated model without a token: what to do, in one line.
    let gated = blocking(|| modelfleet(&["model", "--source", "hf://acme/gated-1b"], &env));
    assert_eq!(gated.status.code(), Some(2));
    let err = String::from_utf8_lossy(&gated.stderr);
    assert!(
        err.contains("hf://acme/gated-1b") && err.contains("HF_TOKEN"),
        "{err}"
    );
}
