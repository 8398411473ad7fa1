//! `modelfleet gateway` as a platform team runs it beside its hubs: the
//! real binary, on the hubs' PostgreSQL and key, reaching a registered
//! cluster through its stored kubeconfig and the model's engines at their
//! pods' addresses (a `modelfleet sandbox`-style cluster on a loopback pod
//! network, in this process). A tenant calls its model through it with its
//! API key; the gateway serves nothing of the hub's API; on SIGTERM it stops
//! taking connections but a stream in flight runs to its end. Against a
//! database no hub has migrated, or migrated by an older hub than it, it
//! refuses to start and says why, changing nothing.

#[path = "support/process.rs"]
mod process;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use modelfleet::embedded::{EmbeddedCluster, EmbeddedOptions};
use modelfleet::hub::{HubOptions, KeySource, RunningHub, clusters_of};
use modelfleet_api::service::clusters::RegisterCluster;
use modelfleet_api::service::{Caller, Hub};
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::{Actor, Keyring, SecretKey};
use modelfleet_core::fleet::Fleet;
use process::{free_port, terminate};
use serde_json::{Value, json};

/// How long a deployment may take to answer through the gateway.
const WAIT: Duration = Duration::from_secs(120);

fn key_file(dir: &Path) -> PathBuf {
    let key = SecretKey::generate().unwrap().to_base64();
    let path = dir.join("hub.key");
    std::fs::write(&path, format!("{}\n", key.expose())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn gateway(database_url: &str, key: &Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelfleet"));
    command
        .arg("gateway")
        .arg("--database-url")
        .arg(database_url)
        .arg("--secret-key-file")
        .arg(key)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("MODELFLEET_SECRET_KEY")
        .env_remove("MODELFLEET_DATABASE_URL")
        .env_remove("MODELFLEET_DATA_DIR");
    command
}

/// Waits for `url` to answer 200, failing with the process's log if it
/// exits first.
async fn until_ready(http: &reqwest::Client, url: &str, child: &mut Child, log: &Path) {
    let started = Instant::now();
    loop {
        if let Ok(reply) = http.get(url).send().await
            && reply.status() == 200
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the gateway exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no {url} within a minute: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A chat request to `model` through the gateway at `base`.
fn chat(http: &reqwest::Client, base: &str, key: &str, body: Value) -> reqwest::RequestBuilder {
    http.post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_process_serves_a_model_and_drains_a_stream_on_sigterm() {
    modelfleet_api::store::testing::run(
        modelfleet_api::store::Backend::Postgres,
        |db: TestDb| async move {
            let dir = tempfile::tempdir().unwrap();
            let key_path = key_file(dir.path());
            let keyring = Keyring::from_file_or_env(Some(&key_path))
                .unwrap()
                .unwrap();

            // A cluster of one cloud, as `modelfleet sandbox --loopback-pods`
            // runs it: its API over https for kubeconfigs, its pods on
            // loopback addresses other processes reach.
            let (name, fleet) = clusters_of(&Fleet::example())
                .into_iter()
                .find(|(name, _)| name == "aws-use1-prod")
                .unwrap();
            let pool = fleet.pools[0].clone();
            let mut options = EmbeddedOptions::new(name.clone(), fleet);
            options.time_factor = 0.05;
            options.requeue = Duration::from_millis(300);
            options.listen = Some(([127, 0, 0, 1], 0).into());
            options.admission = Some(keyring.admission_key(&name));
            options.loopback_pods = true;
            let cluster = EmbeddedCluster::start(options).await.unwrap();

            // The hub (`modelfleet api` with a demo tenant), on the same
            // database and key, registers it by kubeconfig.
            let hub_dir = dir.path().join("hub");
            std::fs::create_dir(&hub_dir).unwrap();
            std::fs::set_permissions(&hub_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            let mut hub_options = HubOptions::new(&hub_dir, ([127, 0, 0, 1], 0).into());
            hub_options.database_url = Some(db.url.clone());
            hub_options.key = KeySource::Given(Some(key_path.clone()));
            hub_options.sandbox_clusters = false;
            let hub = RunningHub::start(hub_options).await.unwrap();
            let services: &Hub = hub.state.hub();
            let platform = Caller {
                actor: Actor::system("test"),
                session: None,
                pending: None,
            };
            services
                .register_cluster(
                    &platform,
                    RegisterCluster {
                        name: name.clone(),
                        cloud: pool.cloud,
                        region: pool.region.clone(),
                        kubeconfig: Some(cluster.kubeconfig().unwrap()),
                        sandbox: false,
                    },
                )
                .await
                .unwrap();
            let credentials =
                std::fs::read_to_string(hub_dir.join(modelfleet::hub::CREDENTIALS_FILE)).unwrap();
            let api_key = credentials
                .lines()
                .find_map(|l| l.strip_prefix("api_key="))
                .unwrap()
                .to_owned();

            // The gateway: its own process, from the database and key alone.
            let port = free_port();
            let log = dir.path().join("gateway.log");
            let stdout = dir.path().join("gateway.out");
            let mut child = gateway(&db.url, &key_path, port)
                .env("RUST_LOG", "info")
                .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
                .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
                .spawn()
                .unwrap();
            let base = format!("http://127.0.0.1:{port}");
            let http = reqwest::Client::new();
            until_ready(&http, &format!("{base}/readyz"), &mut child, &log).await;

            // It is no hub: neither the REST API nor the console is there.
            for path in ["/api/v1/clusters", "/api/openapi.json", "/"] {
                let reply = http
                    .get(format!("{base}{path}"))
                    .bearer_auth(&api_key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(reply.status(), 404, "{path}");
            }
            // A made-up key gets OpenAI's 401.
            let reply = http
                .get(format!("{base}/v1/models"))
                .bearer_auth("mf_not-a-key")
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 401);

            // The tenant deploys through the hub and calls through the gateway.
            let deployed = http
                .post(format!("{}/api/v1/deployments", hub.url))
                .bearer_auth(&api_key)
                .json(&json!({"name": "chat", "model": "llama-3.1-8b"}))
                .send()
                .await
                .unwrap();
            assert_eq!(deployed.status(), 202, "{}", deployed.text().await.unwrap());
            let started = Instant::now();
            let answer: Value = loop {
                let reply = chat(
                    &http,
                    &base,
                    &api_key,
                    json!({"model": "chat", "messages": [{"role": "user", "content": "Hello there"}],
                           "max_tokens": 8}),
                )
                .send()
                .await
                .unwrap();
                let status = reply.status();
                let body: Value = reply.json().await.unwrap();
                if status == 200 {
                    break body;
                }
                assert!(
                    started.elapsed() < WAIT,
                    "no answer through the gateway: {status} {body:#}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(answer["object"], "chat.completion", "{answer:#}");
            assert_eq!(answer["usage"]["completion_tokens"], 8, "{answer:#}");
            let models: Value = http
                .get(format!("{base}/v1/models"))
                .bearer_auth(&api_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(models["data"][0]["id"], "chat", "{models:#}");
            let metrics = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("modelfleet_hub_gateway_tokens_total{")
                        && l.contains("kind=\"completion\"")),
                "{metrics}"
            );

            // A long stream is under way when Kubernetes stops the pod.
            let reply = chat(
                &http,
                &base,
                &api_key,
                json!({"model": "chat", "stream": true, "max_tokens": 3000, "ignore_eos": true,
                       "messages": [{"role": "user", "content": "Tell a long story"}]}),
            )
            .send()
            .await
            .unwrap();
            assert_eq!(reply.status(), 200);
            let mut events = reply.bytes_stream();
            let mut text = String::from_utf8(events.next().await.unwrap().unwrap().to_vec()).unwrap();
            let pid = child.id().to_string();
            let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            assert!(sent.success());
            // It stops taking connections…
            let closing = Instant::now();
            while http.get(format!("{base}/healthz")).send().await.is_ok() {
                assert!(closing.elapsed() < Duration::from_secs(20), "still accepting");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // …and the stream it had runs to its end.
            let mut after_close = 0;
            while let Some(chunk) = events.next().await {
                text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
                after_close += 1;
            }
            assert!(after_close > 0, "the stream had ended before the stop");
            assert!(text.trim_end().ends_with("data: [DONE]"), "{}", &text[text.len().saturating_sub(300)..]);
            let status = terminate(&mut child);
            assert!(status.success(), "{status}: {}", std::fs::read_to_string(&log).unwrap());
            // Both answers were metered by the gateway process, the
            // stream's last tokens written as it stopped at the latest.
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            let (rows, output): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) FROM token_usage",
            )
            .fetch_one(&mut admin)
            .await
            .unwrap();
            assert_eq!((rows, output), (2, 8 + 3000));
            let out = std::fs::read_to_string(&stdout).unwrap();
            assert!(out.contains("modelfleet gateway is up"), "{out}");
            assert!(out.contains("clusters:     1 connected"), "{out}");

            hub.shutdown().await;
            cluster.shutdown().await;
        },
    )
    .await;
}

/// The gateway never migrates: an empty database, or one an older hub
/// migrated, is refused with what to do, and left as it was.
async fn it_refuses_a_database_no_hub_brought_up_to_date(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let newest: i64 = match db.store.backend() {
        modelfleet_api::store::Backend::Postgres => {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            let newest: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&mut c)
                .await
                .unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
                .bind(newest)
                .execute(&mut c)
                .await
                .unwrap();
            newest
        }
        modelfleet_api::store::Backend::Sqlite => {
            let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
                "sqlite://{}",
                db.url
            ))
            .await
            .unwrap();
            let newest: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_one(&mut c)
                .await
                .unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
                .bind(newest)
                .execute(&mut c)
                .await
                .unwrap();
            newest
        }
    };
    let out = gateway(&db.url, &key, free_port()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("older than this gateway's {newest}")),
        "{stderr}"
    );
    assert!(stderr.contains("upgrade the hubs first"), "{stderr}");
    // Nothing was migrated behind the hubs' back.
    let schema = db.store.schema().await.unwrap();
    assert_eq!(schema.expected, newest);
    assert!(
        schema.applied.is_some_and(|applied| applied < newest),
        "{schema:?}"
    );

    // A database no hub ever started on.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let out = gateway(&empty.display().to_string(), &key, free_port())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds no modelfleet schema"), "{stderr}");
    assert!(stderr.contains("modelfleet migrate"), "{stderr}");
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        empty.display()
    ))
    .await
    .unwrap();
    let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(tables, 0, "no schema was made");
}

modelfleet_api::store_tests!(it_refuses_a_database_no_hub_brought_up_to_date);
