//! OpenAI's own Python client (the `openai` package from PyPI, in a
//! virtualenv this test makes once) against the gateway of a fresh
//! `modelfleet serve`: a tenant deploys an 8B model through the REST API and
//! calls it every way the client can (`tests/python/openai_client.py`);
//! the tokens the gateway counted, and those the usage API reports, equal
//! those the answers reported. Under load from sixteen client threads, a
//! replica killed mid-load (`tests/python/openai_load.py`) loses no request
//! that had not started streaming.
//!
//! Needs Python 3.13 (`MODELFLEET_PYTHON`, default pyenv's) and, on the
//! first run, PyPI.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod serve;
use serve::{Http, credentials, start};

const OPENAI_VERSION: &str = "3.63.0";

fn python() -> PathBuf {
    std::env::var_os("MODELFLEET_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root/.pyenv/versions/3.13.0/bin/python3.13".into())
}

/// A virtualenv with the `openai` package, made once per version.
fn venv() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("modelfleet-openai")
        .join(format!("venv-{OPENAI_VERSION}"));
    let python = dir.join("bin/python");
    let ready = Command::new(&python)
        .args([
            "-c",
            &format!("import openai; assert openai.__version__ == {OPENAI_VERSION:?}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let _ = std::fs::remove_dir_all(&dir);
        let made = Command::new(python_or_panic())
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(made.success(), "python -m venv {}", dir.display());
        let installed = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("openai=={OPENAI_VERSION}"))
            .status()
            .unwrap();
        assert!(installed.success(), "pip install openai=={OPENAI_VERSION}");
    }
    python
}

fn python_or_panic() -> PathBuf {
    let python = python();
    assert!(
        python.exists(),
        "this test needs Python 3.13 at {} (set MODELFLEET_PYTHON)",
        python.display()
    );
    python
}

/// The gateway's token counter, summed over tenants and deployments.
fn counted(metrics: &str, kind: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("modelfleet_hub_gateway_tokens_total{"))
        .filter(|l| l.contains(&format!("kind=\"{kind}\"")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_client_calls_a_deployment_through_the_gateway() {
    let python = tokio::task::spawn_blocking(venv).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let hub = start(data.path()).await;
    let key = credentials(data.path())["api_key"].clone();
    let http = Http {
        base: hub.url.clone(),
        client: reqwest::Client::new(),
    };
    let (status, body) = http
        .call(
            reqwest::Method::POST,
            "/api/v1/deployments",
            &key,
            Some(json!({"name": "chat", "model": "llama-3.1-8b"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body:#}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_client.py");
    let base = hub.url.trim_end_matches('/').to_owned();
    let caller = key.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&base, &caller, "chat"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "openai_client.py: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();

    let metrics = http
        .client
        .get(format!("{}/metrics", hub.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        counted(&metrics, "prompt"),
        seen["prompt"].as_u64().unwrap()
    );
    assert_eq!(
        counted(&metrics, "completion"),
        seen["completion"].as_u64().unwrap()
    );

    // The usage API, by key, says the same once the gateway's meter has
    // written them (at least once a second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, usage) = http.get("/api/v1/usage?groupBy=key", &key).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{usage:#}");
        let sum = |field: &str| -> u64 {
            usage["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g[field].as_u64().unwrap())
                .sum()
        };
        let reported = (sum("inputTokens"), sum("outputTokens"));
        let expected = (
            seen["prompt"].as_u64().unwrap(),
            seen["completion"].as_u64().unwrap(),
        );
        if reported == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the usage API reports {reported:?}, the client saw {expected:?}: {usage:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    hub.shutdown().await;
}

/// `kubectl` against one of `serve`'s sandbox clusters.
fn kubectl(data: &Path, cluster: &str, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(data.join(format!("{cluster}.kubeconfig")))
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_request_that_had_not_started() {
    let python = tokio::task::spawn_blocking(venv).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let hub = serve::start_with(data.path(), |options| {
        // Sixteen clients as fast as they can go: no request rate holds them.
        options.settings.gateway_key_requests_per_minute = 0;
        options.settings.gateway_tenant_requests_per_minute = 0;
    })
    .await;
    let key = credentials(data.path())["api_key"].clone();
    let http = Http {
        base: hub.url.clone(),
        client: reqwest::Client::new(),
    };
    let (status, body) = http
        .post(
            "/api/v1/deployments",
            &key,
            json!({"name": "chat", "model": "llama-3.1-8b", "replicas": 2}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body:#}");
    let id = body["deployment"]["id"].as_str().unwrap().to_owned();
    let deployment = http
        .wait_for(&id, &key, "two Ready replicas", |d| d["readyReplicas"] == 2)
        .await;
    let cluster = deployment["cluster"].as_str().unwrap().to_owned();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_load.py");
    let base = hub.url.trim_end_matches('/').to_owned();
    let dir = data.path().to_owned();
    let (outcomes, killed) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = Command::new(python)
            .arg(script)
            .args([base.as_str(), key.as_str(), "chat", "4"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut killed = None;
        let mut last = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "loading" {
                // Under load: one replica's pod goes, and its engine with it.
                let pods = kubectl(
                    &dir,
                    &cluster,
                    &[
                        "get",
                        "pods",
                        "-A",
                        "-l",
                        "modelfleet.io/deployment=chat",
                        "-o",
                        "jsonpath={range .items[*]}{.metadata.namespace} {.metadata.name}{\"\\n\"}{end}",
                    ],
                );
                let (namespace, pod) = pods
                    .lines()
                    .next()
                    .and_then(|l| l.split_once(' '))
                    .expect("a pod of the deployment");
                kubectl(&dir, &cluster, &["delete", "pod", "-n", namespace, pod, "--wait=false"]);
                killed = Some(pod.to_owned());
            } else {
                last = line;
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "openai_load.py failed: {last}");
        (serde_json::from_str::<Value>(&last).unwrap(), killed)
    })
    .await
    .unwrap();

    assert!(killed.is_some(), "a replica was killed mid-load");
    assert_eq!(
        outcomes["lost"], 0,
        "no request that had not started streaming may fail: {outcomes:#}"
    );
    assert!(outcomes["answered"].as_u64().unwrap() > 0, "{outcomes:#}");
    assert!(outcomes["streamed"].as_u64().unwrap() > 0, "{outcomes:#}");
    eprintln!("outcomes with a replica killed mid-load: {outcomes}");
    hub.shutdown().await;
}
