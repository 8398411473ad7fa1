//! Issue 16, finding 8: what a local attacker, a guessing one, or a stalled
//! object store could do.
//!
//! - The data directory holds the key that seals every secret and the
//!   first credentials: one that others can read is refused, with the
//!   command that fixes it; a new one is created for its owner only.
//! - The first credentials and the key file are never written through a
//!   symbolic link planted where they go.
//! - A new password that is one of the commonly used ones is refused,
//!   whatever its case, saying why.
//! - An S3 store that takes the connection and never answers fails the
//!   audit export with a timeout instead of hanging it.

mod support;

use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use modelfleet_api::audit::{ExportTarget, S3Settings, S3Timeouts, export};
use modelfleet_api::identity::password::{PasswordError, check_policy};
use modelfleet_api::local_files::{self, DataDirError};
use modelfleet_api::store::AuditEntry;
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::{Actor, Keyring, Secret, SecretKey};
use serde_json::json;
use support::{Hub, roomy};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_data_directory_others_can_read_is_refused_with_the_fix() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    for open in [0o755, 0o750, 0o701, 0o770] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(open)).unwrap();
        let error = local_files::open_data_dir(&dir).unwrap_err();
        assert!(
            matches!(error, DataDirError::Permissions { .. }),
            "{open:o}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!("chmod 700 {}", dir.display())),
            "{open:o}: {message}"
        );
        assert_eq!(mode(&dir), open, "the hub changed the mode itself");
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    local_files::open_data_dir(&dir).unwrap();

    // A new one, parents and all, is the owner's only.
    let new = parent.path().join("a/b/data");
    local_files::open_data_dir(&new).unwrap();
    assert_eq!(mode(&new), 0o700);

    // A file where the directory should be is refused too.
    let file = parent.path().join("file");
    std::fs::write(&file, "x").unwrap();
    assert!(local_files::open_data_dir(&file).is_err());
}

/// A private data directory with a file `target` outside it that an
/// attacker would like the hub to overwrite.
fn planted() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    local_files::open_data_dir(&dir).unwrap();
    let target = root.path().join("victim");
    std::fs::write(&target, "untouched").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    (root, dir, target)
}

#[test]
fn the_first_credentials_are_not_written_through_a_planted_link() {
    let (_root, dir, target) = planted();
    let credentials = dir.join("initial-credentials");
    symlink(&target, &credentials).unwrap();
    let error = local_files::write_private(&credentials, b"admin_password=hunter2\n").unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    assert_eq!(mode(&target), 0o644);

    // A link to a file that does not exist yet is not followed either.
    let absent = dir.parent().unwrap().join("absent");
    std::fs::remove_file(&credentials).unwrap();
    symlink(&absent, &credentials).unwrap();
    assert!(local_files::write_private(&credentials, b"x").is_err());
    assert!(!absent.exists(), "the link was followed");

    // Where nothing is, the file is created for its owner only.
    std::fs::remove_file(&credentials).unwrap();
    local_files::write_private(&credentials, b"admin_password=x\n").unwrap();
    assert_eq!(mode(&credentials), 0o600);
}

#[test]
fn the_key_file_is_not_created_through_a_planted_link() {
    let (_root, dir, _target) = planted();
    let key_file = dir.join("secret.key");
    let absent = dir.parent().unwrap().join("absent.key");
    symlink(&absent, &key_file).unwrap();
    let error = SecretKey::load_or_create(&key_file).unwrap_err();
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert!(!absent.exists(), "the key was written through the link");
}

#[test]
fn common_passwords_are_refused_whatever_their_case() {
    // Each passes the length and variety rules; each is on every list of
    // the passwords tried first.
    for password in [
        "Qwerty123456",
        "QWERTY123456",
        "1Q2w3e4r5t6y",
        "Password1234",
    ] {
        let error = check_policy("ana", &Secret::new(password)).unwrap_err();
        assert_eq!(error, PasswordError::Common, "{password}");
        let message = error.to_string();
        assert!(message.contains("commonly used"), "{message}");
        assert!(message.contains("passphrase"), "{message}");
    }
    assert_eq!(
        check_policy("ana", &Secret::new("Correct-horse-42")),
        Ok(())
    );
}

async fn a_common_password_is_refused_when_a_user_is_created(db: TestDb) {
    let hub = Hub::start(db).await;
    let (tenant, admin) = hub.tenant("acme", roomy()).await;
    let reply = hub
        .post(
            "/api/v1/users",
            &admin,
            json!({"username": "ana", "password": "Qwerty123456", "role": "developer",
                "tenant": tenant}),
        )
        .await;
    let detail = reply.problem(422);
    assert!(detail.contains("commonly used"), "{detail}");
    assert_eq!(reply.body["field"], "password");
    let users = hub.get("/api/v1/users", &admin).await;
    assert_eq!(users.status, StatusCode::OK);
    assert!(
        !users.body.to_string().contains("\"ana\""),
        "the user was created: {:#}",
        users.body
    );
}

async fn a_silent_s3_store_fails_the_export_with_a_timeout(db: TestDb) {
    // Takes every connection and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let settings = S3Settings {
        endpoint: Some(endpoint),
        region: "us-east-1".into(),
        path_style: true,
        access_key_id: "AKIDMODELFLEETTEST".into(),
        secret_access_key: Secret::new("modelfleet-test-secret-key"),
        timeouts: S3Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(2),
            operation: Duration::from_secs(5),
        },
    };
    let target = ExportTarget::new("s3://audit-bucket/hub", Some(&settings)).unwrap();
    let store = db.store;
    store
        .record_request(
            &Actor::system("test"),
            AuditEntry {
                verb: "get".into(),
                resource: "deployments".into(),
                code: Some(200),
                ..AuditEntry::default()
            },
        )
        .await
        .unwrap();
    let keyring = Keyring::new(SecretKey::generate().unwrap());
    let exported = tokio::time::timeout(
        Duration::from_secs(60),
        export(
            &store,
            &keyring,
            &target,
            &Actor::system("test"),
            None,
            Utc::now(),
        ),
    )
    .await
    .expect("the export hung on an object store that does not answer");
    let error = exported.unwrap_err().to_string();
    assert!(
        error.contains("did not answer") && error.contains("timeout"),
        "{error}"
    );
    assert!(!error.contains("modelfleet-test-secret-key"), "{error}");
    // Nothing counts as exported: the next export starts from the same place.
    assert!(store.last_audit_export().await.unwrap().is_none());
}

modelfleet_api::store_tests!(
    a_common_password_is_refused_when_a_user_is_created,
    a_silent_s3_store_fails_the_export_with_a_timeout,
);
