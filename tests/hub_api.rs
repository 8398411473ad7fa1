//! `modelfleet api` as a platform team runs it: the hub alone, with no
//! simulated clusters, on PostgreSQL or SQLite, sealing secrets with the key
//! it is given (and never one it makes up), answering `/healthz`, holding
//! its database against a second hub, logging JSON lines when asked, and
//! stopping cleanly on SIGTERM as Kubernetes stops a pod.

#[path = "support/loops.rs"]
mod loops;
#[path = "support/process.rs"]
mod process;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loops::{holders, until_all_held};
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

    // A second hub on the same SQLite file refuses to start, saying why:
    // each would run every background loop (bill twice, fail over twice).
    // On PostgreSQL any number start (see the three-hub test below).
    if !db.url.starts_with("postgres") {
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
            refused.contains("another modelfleet hub is running on this SQLite database"),
            "{refused}"
        );
        assert!(refused.contains("PostgreSQL"), "{refused}");
    }

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
    // A hub installed on a cluster creates the platform admin alone: no
    // demo tenant, and the admin's first password written down once.
    assert!(stdout.contains("sign in as:   admin"), "{stdout}");
    let credentials =
        std::fs::read_to_string(data.join(modelfleet::hub::CREDENTIALS_FILE)).unwrap();
    assert!(
        credentials.starts_with("admin_user=admin\nadmin_password="),
        "{credentials}"
    );
    assert!(!credentials.contains("tenant"), "{credentials}");
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

/// Three `modelfleet api` processes on one PostgreSQL: every one serves
/// requests, every background loop runs on exactly one of them, and when
/// its holder is killed (SIGKILL, as a node dies) or stopped (SIGTERM, as a
/// rollout stops a pod) each of its loops moves to a live hub within 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hubs_share_one_postgres_and_loops_move_when_a_holder_dies() {
    modelfleet_api::store::testing::run(
        modelfleet_api::store::Backend::Postgres,
        |db: TestDb| async move {
            let dir = tempfile::tempdir().unwrap();
            let (key_path, _) = key_file(dir.path(), 0o600);
            let password_path = dir.path().join("admin-password");
            std::fs::write(&password_path, "Given-by-the-installer-7Qx2\n").unwrap();
            let mut hubs = Vec::new();
            for n in 0..3 {
                let port = free_port();
                let log = dir.path().join(format!("hub-{n}.log"));
                let child = api(&dir.path().join(format!("data-{n}")))
                    .arg("--database-url")
                    .arg(&db.url)
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--secret-key-file")
                    .arg(&key_path)
                    .arg("--initial-admin-password-file")
                    .arg(&password_path)
                    .env("RUST_LOG", "info")
                    .stdout(Stdio::null())
                    .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
                    .spawn()
                    .unwrap();
                hubs.push((child, format!("http://127.0.0.1:{port}"), log));
            }
            let http = reqwest::Client::new();
            for (child, base, log) in &mut hubs {
                let started = Instant::now();
                while !matches!(http.get(format!("{base}/healthz")).send().await,
                                Ok(r) if r.status() == 200)
                {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "a hub exited ({status}): {}",
                            std::fs::read_to_string(log).unwrap()
                        );
                    }
                    assert!(started.elapsed() < Duration::from_secs(60), "no /healthz");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // Every hub serves requests: the admin signs in on each with
            // the password the installer gave (one admin, created once).
            for (_, base, _) in &hubs {
                let session = http
                    .post(format!("{base}/api/v1/sessions"))
                    .json(&serde_json::json!({"username": "admin",
                                              "password": "Given-by-the-installer-7Qx2"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(session.status(), 201, "{}", session.text().await.unwrap());
            }
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            let pids: Vec<u32> = hubs.iter().map(|(c, _, _)| c.id()).collect();
            let held = until_all_held(&mut admin, &pids, Instant::now()).await;
            eprintln!("loops held at start: {held:?}");

            // SIGKILL the hub that holds the most loops.
            let count = |pid: u32| held.values().filter(|(p, _)| *p == pid).count();
            let victim = (0..3).max_by_key(|i| count(pids[*i])).unwrap();
            let (mut child, _, _) = hubs.remove(victim);
            child.kill().unwrap();
            let killed = Instant::now();
            child.wait().unwrap();
            let alive: Vec<u32> = hubs.iter().map(|(c, _, _)| c.id()).collect();
            let moved = until_all_held(&mut admin, &alive, killed).await;
            eprintln!("after SIGKILL of {}: {moved:?}", pids[victim]);

            // SIGTERM the hub that holds the most now: it lets go of its
            // loops as it stops, and they move at once.
            let count = |pid: u32| moved.values().filter(|(p, _)| *p == pid).count();
            let victim = (0..2).max_by_key(|i| count(alive[*i])).unwrap();
            let (mut child, _, _) = hubs.remove(victim);
            let stopping = Instant::now();
            let status = terminate(&mut child);
            assert!(status.success(), "{status}");
            let last = hubs[0].0.id();
            let moved = until_all_held(&mut admin, &[last], stopping).await;
            eprintln!("after SIGTERM of {}: {moved:?}", alive[victim]);
            assert!(moved.values().all(|(pid, _)| *pid == last));

            for (mut child, _, _) in hubs {
                assert!(terminate(&mut child).success());
            }
            // A stopped hub holds nothing.
            assert!(holders(&mut admin).await.is_empty());
            let _ = sqlx::Connection::close(admin).await;
        },
    )
    .await;
}
