//! Audit export throughput and memory: exports N records (env
//! `AUDIT_EXPORT_RECORDS`, default 1,000,000; 20,000 in debug builds) from
//! a SQLite store to a local directory and to S3 (`s3s-fs` on a loopback
//! port), then verifies each, printing records/s and the peak resident
//! memory of each phase (`VmHWM`, reset between phases).
//!
//! Setup writes the records straight into the table, chained exactly as
//! the hub chains them: a million audited transactions would take far
//! longer than the export being measured.
//!
//! `cargo bench -p modelfleet-api --bench audit_export`

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use modelfleet_api::audit::{ExportTarget, S3Settings, export, verify_export};
use modelfleet_api::store::Backend;
use modelfleet_api::store::testing::{TestDb, run};
use modelfleet_api::{Actor, Keyring, Secret, SecretKey};
use modelfleet_core::audit::{
    self, ChainHash, Event, ObjectRef, Outcome, Record, ResponseStatus, UserInfo,
};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

fn main() {
    let records: i64 = std::env::var("AUDIT_EXPORT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            20_000
        } else {
            1_000_000
        });
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            run(Backend::Sqlite, move |db| bench(db, records, false)).await;
            run(Backend::Sqlite, move |db| bench(db, records, true)).await;
        });
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets `VmHWM` to the current RSS (Linux 4.0+), so each phase reports
/// its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn event(seq: i64, at: DateTime<Utc>) -> Event {
    let ts = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    Event {
        api_version: audit::API_VERSION.into(),
        kind: audit::KIND.into(),
        level: audit::LEVEL.into(),
        seq,
        audit_id: uuid::Uuid::new_v4().to_string(),
        stage: audit::STAGE.into(),
        verb: "create".into(),
        request_uri: Some("/api/v1/deployments".into()),
        user: UserInfo {
            username: "ana".into(),
            uid: Some(uuid::Uuid::new_v4().to_string()),
            groups: vec!["role:developer".into(), "tenant:acme".into()],
        },
        source_ips: vec!["10.0.0.7".into()],
        user_agent: Some("modelfleet-cli/0.1".into()),
        object_ref: ObjectRef {
            resource: "deployments".into(),
            namespace: Some("acme".into()),
            name: Some(format!("chat-{seq}")),
            uid: Some(uuid::Uuid::new_v4().to_string()),
        },
        response_status: ResponseStatus {
            code: Some(202),
            status: Outcome::Success,
            message: None,
        },
        request_received_timestamp: ts.clone(),
        stage_timestamp: ts,
        annotations: BTreeMap::from([(
            "modelfleet.io/request-id".to_owned(),
            format!("req-{seq}"),
        )]),
    }
}

/// Writes `n` chained records in one transaction, as the store would.
async fn fill(url: &str, n: i64) {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(url))
        .await
        .expect("open the bench database");
    let mut tx = pool.begin().await.expect("begin");
    let start = Utc::now() - TimeDelta::hours(1);
    let mut prev = ChainHash::GENESIS;
    for seq in 1..=n {
        let at = start + TimeDelta::microseconds(seq);
        let record = Record::seal(event(seq, at), prev);
        prev = record.hash;
        let e = &record.event;
        sqlx::query(
            "INSERT INTO audit_records (seq, audit_id, verb, request_uri, username, user_uid, \
             user_groups, source_ip, user_agent, resource, namespace, name, object_uid, code, \
             outcome, message, received_at, recorded_at, annotations, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, \
             $16, $16, $17, $18, $19)",
        )
        .bind(seq)
        .bind(&e.audit_id)
        .bind(&e.verb)
        .bind(&e.request_uri)
        .bind(&e.user.username)
        .bind(&e.user.uid)
        .bind(serde_json::to_string(&e.user.groups).expect("json"))
        .bind(e.source_ips.first())
        .bind(&e.user_agent)
        .bind(&e.object_ref.resource)
        .bind(&e.object_ref.namespace)
        .bind(&e.object_ref.name)
        .bind(&e.object_ref.uid)
        .bind(e.response_status.code.map(i32::from))
        .bind(e.response_status.status.as_str())
        .bind(at)
        .bind(serde_json::to_string(&e.annotations).expect("json"))
        .bind(record.prev_hash.to_string())
        .bind(record.hash.to_string())
        .execute(&mut *tx)
        .await
        .expect("insert a record");
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(n)
        .bind(prev.to_string())
        .execute(&mut *tx)
        .await
        .expect("update the head");
    tx.commit().await.expect("commit");
    pool.close().await;
}

async fn start_s3(root: &std::path::Path) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(
        "AKBENCH",
        "bench-secret",
    ));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    std::fs::create_dir_all(root.join("audit-bench")).expect("bucket");
    format!("http://{addr}")
}

async fn bench(db: TestDb, n: i64, s3: bool) {
    let started = Instant::now();
    fill(&db.url, n).await;
    println!("setup: {n} records written in {:.1?}", started.elapsed());

    let keyring = Keyring::new(SecretKey::generate().expect("key"));
    let root = tempfile::tempdir().expect("tempdir");
    let (name, target) = if s3 {
        let endpoint = start_s3(root.path()).await;
        let settings = S3Settings {
            endpoint: Some(endpoint),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: "AKBENCH".into(),
            secret_access_key: Secret::new("bench-secret"),
            timeouts: Default::default(),
        };
        let target = ExportTarget::new("s3://audit-bench/hub", Some(&settings)).expect("s3");
        ("s3 (s3s-fs, loopback)", target)
    } else {
        ("file", ExportTarget::dir(root.path()).expect("dir"))
    };
    let key = db
        .store
        .audit_signing_key(&keyring)
        .await
        .expect("key")
        .public_key();

    reset_peak();
    let before = rss_mib();
    let started = Instant::now();
    let summary = export(
        &db.store,
        &keyring,
        &target,
        &Actor::system("bench"),
        None,
        Utc::now(),
    )
    .await
    .expect("export");
    let secs = started.elapsed().as_secs_f64();
    let bytes: u64 = summary.files.iter().map(|f| f.object.size).sum();
    println!(
        "{name} export: {} records, {:.1} MB in {secs:.2} s = {:.0} records/s ({:.1} MB/s); \
         RSS before {before:.1} MiB, peak {:.1} MiB; parts {:?}",
        summary.records,
        bytes as f64 / 1e6,
        summary.records as f64 / secs,
        bytes as f64 / 1e6 / secs,
        peak_rss_mib(),
        summary
            .files
            .iter()
            .map(|f| f.object.parts)
            .collect::<Vec<_>>(),
    );

    reset_peak();
    let before = rss_mib();
    let started = Instant::now();
    let ok = verify_export(&target, &key).await.expect("verify");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name} verify: {} records in {secs:.2} s = {:.0} records/s; RSS before {before:.1} MiB, \
         peak {:.1} MiB",
        ok.records,
        ok.records as f64 / secs,
        peak_rss_mib()
    );
}
