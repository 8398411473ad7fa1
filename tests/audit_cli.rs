//! `modelfleet audit verify` and `modelfleet audit report` as an auditor
//! runs them against a hub's data directory: the real binary, its exit
//! codes and what it prints, and the PDF as `pdftotext` reads it.

use std::path::Path;
use std::process::{Command, Output};

use modelfleet_api::store::NewTenant;
use modelfleet_api::{Actor, Store};
use modelfleet_core::quota::Quota;
use sqlx::Connection as _;

fn modelfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelfleet"))
        .args(args)
        .env_remove("MODELFLEET_DATABASE_URL")
        .output()
        .expect("the modelfleet binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A data directory whose database holds `n` audit records.
async fn hub_data(dir: &Path, n: usize) {
    let url = format!("sqlite://{}?mode=rwc", dir.join("modelfleet.db").display());
    let store = Store::connect(&url).await.unwrap();
    for i in 0..n {
        let mut tx = store.begin(&Actor::system("test")).await.unwrap();
        tx.create_tenant(NewTenant {
            name: format!("tenant-{i}"),
            display_name: format!("Tenant {i}"),
            quota: Quota::nothing(),
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    store.close().await;
}

#[tokio::test]
async fn verify_passes_then_names_the_altered_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    hub_data(dir.path(), 5).await;

    let out = modelfleet(&["audit", "verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("5 records verified"), "{}", text(&out));

    // A forger with the file: drop the guard, change who did record 3.
    let url = format!("sqlite://{}", dir.path().join("modelfleet.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_records_no_update")
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_records SET username = 'someone-else' WHERE seq = 3")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let out = modelfleet(&["audit", "verify", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("NOT VERIFIED: record 3"),
        "{}",
        text(&out)
    );
}

#[test]
fn verify_without_a_database_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = modelfleet(&[
        "audit",
        "verify",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no hub database at"), "{}", text(&out));
    assert!(
        !dir.path().join("modelfleet.db").exists(),
        "verify must not create a database"
    );
}

#[tokio::test]
async fn the_report_is_a_pdf_with_chinese_and_english_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    hub_data(dir.path(), 3).await;
    let pdf = dir.path().join("mlps.pdf");
    let out = modelfleet(&[
        "audit",
        "report",
        "--data-dir",
        data,
        "--format",
        "pdf",
        "--output",
        pdf.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let extracted = Command::new("pdftotext")
        .args([pdf.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian poppler-utils) is installed; .ci/run installs it");
    let extracted = String::from_utf8_lossy(&extracted.stdout);
    for expected in [
        "L3-CES1-04",
        "L3-CES1-14",
        "CSL-21",
        "chain verified up to record 3",
        "安全审计",
        "不通过",
    ] {
        assert!(
            extracted.contains(expected),
            "{expected:?} not in:\n{extracted}"
        );
    }

    let out = modelfleet(&["audit", "report", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = json["items"].as_array().unwrap();
    let totp = items.iter().find(|i| i["id"] == "L3-CES1-04").unwrap();
    assert_eq!(totp["status"], "pass", "no administrators yet: {totp:#}");
    assert!(text(&out).contains("MLPS 2.0 level 3:"));

    let out = modelfleet(&["audit", "report", "--data-dir", data, "--format", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("a PDF needs --output FILE"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn verify_checks_an_export_and_names_the_altered_file() {
    use modelfleet_api::audit::{ExportTarget, export};
    use modelfleet_api::{Keyring, SecretKey};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    hub_data(dir.path(), 4).await;
    let exports = dir.path().join("exports");
    let url = format!("sqlite://{}", dir.path().join("modelfleet.db").display());
    let store = Store::connect(&url).await.unwrap();
    let keyring = Keyring::new(SecretKey::generate().unwrap());
    let target = ExportTarget::dir(&exports).unwrap();
    let summary = export(
        &store,
        &keyring,
        &target,
        &Actor::system("test"),
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(summary.records, 4);
    store.close().await;

    let location = format!("file://{}", exports.display());
    let out = modelfleet(&["audit", "verify", "--data-dir", data, "--export", &location]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("1 digests, 2 files, 4 records"),
        "{}",
        text(&out)
    );

    // One byte of the JSON Lines file changes.
    let jsonl = summary
        .files
        .iter()
        .find(|f| f.format == "jsonl")
        .unwrap()
        .object
        .key
        .clone();
    let path = exports.join(&jsonl);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let out = modelfleet(&["audit", "verify", "--data-dir", data, "--export", &location]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("exports: NOT VERIFIED: {jsonl}")),
        "{}",
        text(&out)
    );
    // The database itself is still intact, and says so: 4 tenants, the
    // signing key and the export.
    assert!(
        text(&out).contains("database: 6 records verified"),
        "{}",
        text(&out)
    );
}
