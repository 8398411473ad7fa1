//! OpenAI's own Python client (the `openai` package from PyPI, in a
//! virtualenv this test makes once) against the gateway of a fresh
//! `modelfleet serve`: a tenant deploys an 8B model through the REST API and
//! calls it every way the client can (`tests/python/openai_client.py`);
//! the tokens the gateway counted equal those the answers reported.
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
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&base, &key, "chat"])
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
    hub.shutdown().await;
}
