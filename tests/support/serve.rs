//! `modelfleet serve` started in process for the end-to-end tests, on a
//! loopback port of its own, with the sandbox clusters' time sped up, and
//! its REST API called as a tenant's scripts call it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use modelfleet::hub::{CREDENTIALS_FILE, HubOptions, RunningHub};
use reqwest::StatusCode;
use serde_json::Value;

/// Starts the hub on `data_dir`: simulated time at 0.002 of real time, the
/// operator requeueing every 300 ms, so a deployment is Ready in seconds.
/// The directory is made its owner's alone first, as `serve` requires (a
/// test's temporary directory is created open to others).
pub async fn start(data_dir: &Path) -> RunningHub {
    start_with(data_dir, |_| {}).await
}

/// [`start`], with `change` applied to the options first.
pub async fn start_with(data_dir: &Path, change: impl FnOnce(&mut HubOptions)) -> RunningHub {
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .expect("the data directory can be made private");
    let mut options = HubOptions::new(data_dir, ([127, 0, 0, 1], 0).into());
    options.time_factor = 0.002;
    options.requeue = Duration::from_millis(300);
    change(&mut options);
    RunningHub::start(options).await.expect("serve starts")
}

/// The first start's credentials file: `name=value` lines.
pub fn credentials(data_dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(data_dir.join(CREDENTIALS_FILE)).unwrap();
    text.lines()
        .map(|line| {
            let (name, value) = line.split_once('=').expect("name=value lines");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// How long a deployment may take to get where a test waits for it.
pub const WAIT: Duration = Duration::from_secs(90);

/// The hub's REST API, as a tenant's scripts call it.
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the hub answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Polls a deployment until `done` says yes, or fails with what it saw.
    pub async fn wait_for(
        &self,
        id: &str,
        token: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = self.get(&format!("/api/v1/deployments/{id}"), token).await;
            assert_eq!(status, StatusCode::OK, "{body:#}");
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "never became {what}: {body:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
