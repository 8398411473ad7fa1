//! The `modelfleet plan`, `catalog` and `fetch` commands as a user runs them: the real
//! binary, its exit codes, its table and its JSON.

use std::process::{Command, Output};

fn modelfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelfleet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the modelfleet binary runs")
}

fn json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = modelfleet(&all);
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), value)
}

#[test]
fn llama_70b_bf16_on_h100_is_tensor_parallel_4_and_fewer_h200s() {
    let (code, h100) = json(&[
        "plan",
        "--model",
        "llama-3.1-70b",
        "--precision",
        "bf16",
        "--accelerator",
        "h100-80gb",
    ]);
    assert_eq!(code, 0);
    let best = &h100["plans"][0];
    assert!(best["tensor_parallel"].as_u64().unwrap() >= 4);
    assert_eq!(best["nodes_per_replica"], 1);
    assert_eq!(best["gpu_memory_utilization"], 0.9);
    assert_eq!(best["cost_per_hour"]["amount"], "27.52");
    assert_eq!(best["cost_per_hour"]["currency"], "USD");

    let (_, h200) = json(&[
        "plan",
        "--model",
        "llama-3.1-70b",
        "--precision",
        "bf16",
        "--accelerator",
        "h200",
    ]);
    assert!(
        h200["plans"][0]["devices_per_replica"].as_u64() < best["devices_per_replica"].as_u64()
    );
}

#[test]
fn the_json_shape_is_the_documented_one() {
    let (_, report) = json(&["plan", "--model", "llama-3.1-8b", "--accelerator", "l40s"]);
    let plan = report["plans"][0].as_object().unwrap();
    for field in [
        "rank",
        "pool",
        "accelerator",
        "runtime",
        "capacity_type",
        "precision",
        "tensor_parallel",
        "pipeline_parallel",
        "nodes_per_replica",
        "devices_per_replica",
        "devices_per_node",
        "replicas",
        "gpu_memory_utilization",
        "weights_gib_per_device",
        "kv_cache_gib_per_device",
        "kv_cache_tokens",
        "max_concurrency",
        "max_model_len",
        "price_per_device_hour",
        "cost_per_hour",
    ] {
        assert!(plan.contains_key(field), "plans[0] lacks {field}");
    }
    for field in ["model", "request", "plans", "rejections"] {
        assert!(report.get(field).is_some(), "report lacks {field}");
    }
    let rejection = report["rejections"][0].as_object().unwrap();
    for field in ["pool", "accelerator", "code", "reason"] {
        assert!(rejection.contains_key(field), "rejections[0] lacks {field}");
    }
}

#[test]
fn an_impossible_request_exits_non_zero_with_the_reason() {
    let out = modelfleet(&[
        "plan",
        "--model",
        "qwen2.5-7b",
        "--accelerator",
        "h100-80gb",
        "--tensor-parallel",
        "8",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("qwen2.5-7b has 28 attention heads; tensor parallel 8 does not divide them"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pool can serve qwen2.5-7b"));
}

#[test]
fn deepseek_v3_fits_an_h200_node_in_fp8_and_ascend_refuses_fp8() {
    let (code, h200) = json(&[
        "plan",
        "--model",
        "deepseek-v3",
        "--precision",
        "fp8",
        "--accelerator",
        "h200",
    ]);
    assert_eq!(code, 0);
    assert_eq!(h200["plans"][0]["devices_per_replica"], 8);

    let (code, ascend) = json(&[
        "plan",
        "--model",
        "deepseek-v3",
        "--precision",
        "fp8",
        "--accelerator",
        "ascend-910b",
    ]);
    assert_eq!(code, 1);
    let reasons: Vec<&str> = ascend["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["accelerator"] == "ascend-910b")
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["ascend-910b does not support fp8 (it supports bf16, int8, int4)"]
    );
}

#[test]
fn gpt3_plans_two_nodes_on_the_example_fleet_when_concurrency_needs_them() {
    let (code, report) = json(&[
        "plan",
        "--model",
        "gpt3-175b",
        "--precision",
        "bf16",
        "--accelerator",
        "h100-80gb",
        "--concurrency",
        "64",
        "--fleet",
        "examples/fleet.yaml",
    ]);
    assert_eq!(code, 0);
    assert_eq!(report["plans"][0]["pipeline_parallel"], 2);
    assert_eq!(report["plans"][0]["nodes_per_replica"], 2);
}

#[test]
fn a_model_of_your_own_from_a_file() {
    let out = modelfleet(&[
        "plan",
        "--model-file",
        "examples/custom-model.yaml",
        "--accelerator",
        "a100-80gb",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("acme-13b-chat"));
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["plan", "--model", "llama-9"],
            "unknown model \"llama-9\"; known models: llama-3.2-1b",
        ),
        (
            &["plan", "--model", "gpt3-175b", "--max-model-len", "4096"],
            "exceeds gpt3-175b's context of 2048 tokens",
        ),
        (
            &["plan", "--model", "llama-3.1-8b", "--precision", "fp4"],
            "unknown precision \"fp4\"",
        ),
        (
            &[
                "plan",
                "--model",
                "llama-3.1-8b",
                "--gpu-memory-utilization",
                "1.5",
            ],
            "between 0.05 and 1.0",
        ),
        (
            &[
                "plan",
                "--model",
                "llama-3.1-8b",
                "--fleet",
                "no/such/fleet.yaml",
            ],
            "cannot read fleet file no/such/fleet.yaml",
        ),
        (
            &["plan", "--model", "llama-3.1-8b", "--accelerator", "tpu"],
            "unknown accelerator \"tpu\"",
        ),
    ];
    for (args, message) in cases {
        let out = modelfleet(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a plan");
    }
}

#[test]
fn catalog_lists_every_model_and_accelerator() {
    let (code, models) = json(&["catalog", "models"]);
    assert_eq!(code, 0);
    assert_eq!(models.as_array().unwrap().len(), 26);
    let table =
        String::from_utf8_lossy(&modelfleet(&["catalog", "accelerators"]).stdout).into_owned();
    for id in [
        "h200",
        "h100-80gb",
        "a100-80gb",
        "a100-40gb",
        "l40s",
        "a10",
        "ascend-910b",
        "ascend-910b4",
        "ascend-910c",
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(id)),
            "{id} missing:\n{table}"
        );
    }
    assert!(table.contains("huawei.com/Ascend910") && table.contains("vllm-ascend"));
}

#[test]
fn crd_prints_the_committed_custom_resource_definition() {
    let out = modelfleet(&["crd"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/crds/modeldeployment.yaml"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

/// `modelfleet admission-key`: the key a cluster's operator needs, derived
/// from the hub's secret key — the same the hub seals with — and never a
/// new key made up when the hub's is missing.
#[test]
fn admission_key_is_the_hubs_for_that_cluster_and_never_invented() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_modelfleet"))
        .args(["admission-key", "--cluster", "aws-a", "--data-dir", dir])
        .env_remove("MODELFLEET_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no hub key"));
    assert!(
        std::fs::read_dir(empty.path()).unwrap().next().is_none(),
        "no key was created"
    );

    let secret = modelfleet_api::SecretKey::from_bytes([9; 32]);
    let key_for = |cluster: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_modelfleet"))
            .args(["admission-key", "--cluster", cluster, "--data-dir", dir])
            .env("MODELFLEET_SECRET_KEY", secret.to_base64().expose())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let hub = modelfleet_api::Keyring::new(modelfleet_api::SecretKey::from_bytes([9; 32]));
    assert_eq!(key_for("aws-a"), hub.admission_key("aws-a").to_hex());
    assert_eq!(key_for("aws-a").len(), 64);
    assert_ne!(key_for("aws-a"), key_for("ali-b"), "one key per cluster");
}

#[test]
fn fetch_refuses_what_it_cannot_fetch_with_a_line_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("weights");
    let dest = dest.to_str().unwrap();
    let run = |source: &str, env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_modelfleet"));
        command.args(["fetch", "--source", source, "--dest", dest]);
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let out = command.output().unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, err) = run("hf://meta-llama/Llama-3.1-8B/extra", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not hf://org/model"), "{err}");
    let (code, err) = run("pvc://weights/llama", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("mounted, not fetched"), "{err}");
    let (code, err) = run("obs://bucket/llama", &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--region (e.g. cn-north-4)"), "{err}");
    let (code, err) = run("obs://bucket/llama", &[("AWS_REGION", "cn-north-4")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    let (code, err) = run("ftp://host/x", &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("s3://, oss://, obs://, cos://, hf://, modelscope://, https://"),
        "{err}"
    );
    let (code, err) = run("modelscope://Qwen/Qwen3-8B/extra", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("more than org/model"), "{err}");
    assert!(err.contains("modelscope://org/model@revision"), "{err}");
    let (code, err) = run("https://models.example.com/llama/", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("names a directory, not a file"), "{err}");
    assert!(err.contains("https://host/path/to/file"), "{err}");
    let (code, err) = run("http://models.example.com/w.bin", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plain HTTP"), "{err}");
    let (code, err) = run(
        "https://127.0.0.1:9/w.bin",
        &[("MODELFLEET_FETCH_CA_FILE", "/nonexistent/ca.pem")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/nonexistent/ca.pem: cannot be read"), "{err}");
    // A pod identity whose token is not there: one line naming it.
    let (code, err) = run(
        "s3://bucket/llama",
        &[
            ("AWS_REGION", "us-east-1"),
            (
                "AWS_ROLE_ARN",
                "arn:aws:iam::111122223333:role/model-reader",
            ),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("role/model-reader (EKS IRSA)"), "{err}");
    assert!(
        err.contains("cannot read the pod's token at /nonexistent/token"),
        "{err}"
    );
    assert!(!dir.path().join("weights").exists());
}

#[test]
fn fetch_through_a_node_cache_downloads_once_and_says_where_the_weights_came_from() {
    use modelfleet_fetch::testing::{FakeHub, Repo, tiny_model};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let repo = Repo::llama(&tiny_model("acme-tiny"), 2);
    let hub = runtime.block_on(FakeHub::start(std::collections::BTreeMap::from([(
        "acme/tiny".to_owned(),
        repo,
    )])));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let fetch = |pod: &str, extra: &[&str]| {
        let dest = dir.path().join(pod).join("model");
        let summary = dir.path().join(pod).join("summary");
        std::fs::create_dir_all(dir.path().join(pod)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_modelfleet"))
            .args(["fetch", "--source", "hf://acme/tiny", "--dest"])
            .arg(&dest)
            .arg("--cache")
            .arg(&cache)
            .args(extra)
            .arg("--summary-file")
            .arg(&summary)
            .env("HF_ENDPOINT", &hub.endpoint)
            .env_remove("HF_TOKEN")
            .output()
            .unwrap();
        let summary = std::fs::read_to_string(&summary).unwrap_or_default();
        (out, dest, summary)
    };
    let (out, first, summary) = fetch("pod-a", &["--cache-size", "1Gi"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.ends_with("bytes, downloaded"), "{summary}");
    let served = hub.bytes_served();
    assert!(served > 0);

    let (out, second, summary) = fetch("pod-b", &["--cache-size", "1Gi"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(summary.ends_with("bytes, from the node cache"), "{summary}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing downloaded"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hub.bytes_served(), served, "no byte downloaded again");
    assert_eq!(
        std::fs::read_link(&first).unwrap(),
        std::fs::read_link(&second).unwrap(),
        "both pods link to the one copy"
    );
    assert!(second.join("config.json").exists());

    let (out, _, _) = fetch("pod-c", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--cache-size"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, _, _) = fetch("pod-d", &["--cache-size", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a size"));
}
