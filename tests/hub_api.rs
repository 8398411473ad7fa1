//! `modelfleet api` as a platform team runs it: the hub alone, with no
//! simulated clusters, on PostgreSQL or SQLite, sealing secrets with the key
//! it is given (and never one it makes up), answering `/healthz`, holding
//! its database against a second hub, logging JSON lines when asked, and
//! stopping cleanly on SIGTERM as Kubernetes stops a pod.

#[path = "support/process.rs"]
mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelfleet_api::SecretKey;
use modelfleet_api::store::testing::TestDb;
use process::{free_port, terminate};

fn api(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelfleet"));
    command
        .arg("api")
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("MODELFLEET_SECRET_KEY")
        .env_remove("MODELFLEET_SECRET_KEY_FILE")
        .env_remove("MODELFLEET_DATABASE_URL");
    command
}

fn key_file(dir: &Path, mode: u32) -> (std::path::PathBuf, String) {
    let key = SecretKey::generate()
        .unwrap()
        .to_base64()
        .expose()
        .to_owned();
    let path = dir.join("hub.key");
    std::fs::write(&path, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (path, key)
}

#[test]
fn without_a_key_it_refuses_to_start_and_makes_none_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = api(&data)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--secret-key-file"), "{stderr}");
    assert!(stderr.contains("MODELFLEET_SECRET_KEY"), "{stderr}");
    assert!(!data.join("secret.key").exists(), "no key is made up");
    assert!(!data.join("modelfleet.db").exists(), "nothing starts");

    // A key file others can read is refused too, naming the file.
    let (path, key) = key_file(dir.path(), 0o644);
    let out = api(&data)
        .args(["--listen", "127.0.0.1:0", "--secret-key-file"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("hub.key"), "{stderr}");
    assert!(!stderr.contains(&key), "the key is never printed");
}

async fn the_hub_runs_alone_with_the_key_it_is_given(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (key_path, key) = key_file(dir.path(), 0o600);
    let port = free_port();
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut child = api(&data)
        .arg("--database-url")
        .arg(&db.url)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--secret-key-file")
        .arg(&key_path)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(reply) = http.get(format!("{base}/healthz")).send().await
            && reply.status() == 200
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the hub exited ({status}): {}",
                std::fs::read_to_string(&stderr_path).unwrap()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no /healthz within a minute: {}",
            std::fs::read_to_string(&stderr_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It is the hub: its API refuses a request without credentials.
    let clusters = http
        .get(format!("{base}/api/v1/clusters"))
        .send()
        .await
        .unwrap();
    assert_eq!(clusters.status(), 401);

    // A second hub on the same database refuses to start, saying why: each
    // would run every background loop (bill twice, fail over twice).
    let second = api(&dir.path().join("data-2"))
        .arg("--database-url")
        .arg(&db.url)
        .args(["--listen", "127.0.0.1:0", "--secret-key-file"])
        .arg(&key_path)
        .output()
        .unwrap();
    let refused = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{refused}");
    assert!(
        refused.contains("another modelfleet hub is running on this database"),
        "{refused}"
    );

    // SIGTERM, as Kubernetes stops a pod: it exits cleanly.
    let status = terminate(&mut child);
    assert!(status.success(), "{status}");

    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(stdout.contains("modelfleet is up"), "{stdout}");
    assert!(
        stdout.contains("clusters:     0 connected (register one with POST /api/v1/clusters)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&key) && !stderr.contains(&key),
        "the key is never printed"
    );
    // Logs for machines: one JSON object per line, no colour codes.
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == "the hub is up"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    // No simulated cluster, and no key of its own.
    let files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with(".kubeconfig") || f == "secret.key"),
        "{files:?}"
    );
}

modelfleet_api::store_tests!(the_hub_runs_alone_with_the_key_it_is_given);
