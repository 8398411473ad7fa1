//! Audit exports against a real S3 implementation: `s3s-fs` serving a
//! temporary directory over HTTP on a loopback port, reached by the real
//! `aws-sdk-s3` client the hub uses, on SQLite and PostgreSQL; and the
//! same exports to a local directory (`file://`).
//!
//! Exports verify, chain from one to the next, and any change to a data
//! file or digest, or a digest removed from the middle, is named by
//! verification. A large export goes up in several multipart parts.
//! Pruning removes only exported records, leaves a checkpoint, and the
//! database's own chain still verifies.

use std::net::SocketAddr;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{Duration, Utc};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use modelfleet_api::audit::{
    ExportSummary, ExportTarget, Failure, MIN_PART_SIZE, S3Settings, SignedDigest, export,
    run_scheduled, verify_export,
};
use modelfleet_api::identity::{Permission, Principal};
use modelfleet_api::ids::UserId;
use modelfleet_api::store::AuditEntry;
use modelfleet_api::store::testing::TestDb;
use modelfleet_api::{Actor, Keyring, Origin, Role, Secret, SecretKey, Store, StoreError};
use modelfleet_core::audit::Record;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tempfile::TempDir;
use tokio::net::TcpListener;

const ACCESS_KEY: &str = "AKIDMODELFLEETTEST";
const SECRET_KEY: &str = "modelfleet-test-secret-key";
const REGION: &str = "us-east-1";

/// An S3 server on a loopback port, serving a temporary directory.
struct S3Server {
    endpoint: String,
    _root: TempDir,
}

async fn start_s3() -> S3Server {
    let root = tempfile::tempdir().unwrap();
    let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        b.build()
    };
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    S3Server {
        endpoint: format!("http://{addr}"),
        _root: root,
    }
}

impl S3Server {
    fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: REGION.into(),
            path_style: true,
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: Secret::new(SECRET_KEY),
            timeouts: Default::default(),
        }
    }

    /// A client of our own, to create buckets and tamper with objects.
    fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A fresh bucket (s3s-fs refuses to re-create one) and a target in it.
    async fn target(&self, prefix: &str) -> (ExportTarget, String) {
        let bucket = format!("audit-{}", uuid::Uuid::new_v4().simple());
        self.client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
        let target =
            ExportTarget::new(&format!("s3://{bucket}/{prefix}"), Some(&self.settings())).unwrap();
        (target, bucket)
    }
}

/// Reads and writes objects of a target behind its back, to tamper.
enum Raw {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
    },
    Dir(std::path::PathBuf),
}

impl Raw {
    async fn get(&self, key: &str) -> Vec<u8> {
        match self {
            Raw::S3 { client, bucket } => {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
                out.body.collect().await.unwrap().into_bytes().to_vec()
            }
            Raw::Dir(root) => std::fs::read(root.join(key)).unwrap(),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) {
        match self {
            Raw::S3 { client, bucket } => {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .unwrap();
            }
            Raw::Dir(root) => std::fs::write(root.join(key), bytes).unwrap(),
        }
    }

    async fn delete(&self, key: &str) {
        match self {
            Raw::S3 { client, bucket } => {
                client
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap();
            }
            Raw::Dir(root) => std::fs::remove_file(root.join(key)).unwrap(),
        }
    }

    /// Flips one bit of the byte at `at` (from the end when negative) and
    /// returns the original bytes.
    async fn flip(&self, key: &str, at: isize) -> Vec<u8> {
        let original = self.get(key).await;
        let mut bytes = original.clone();
        let i = if at < 0 {
            bytes.len() - at.unsigned_abs()
        } else {
            at as usize
        };
        bytes[i] ^= 0x01;
        self.put(key, bytes).await;
        original
    }
}

fn keyring() -> Keyring {
    Keyring::new(SecretKey::generate().unwrap())
}

fn admin() -> Actor {
    Actor::system("test")
}

fn auditor() -> Actor {
    Actor {
        principal: Principal::User {
            id: UserId::new(),
            username: "ada-auditor".into(),
        },
        tenant: None,
        role: Role::Auditor,
        origin: Origin::default(),
    }
}

/// Writes `n` audit records, one transaction each.
async fn record(store: &Store, n: usize, message: &str) {
    for i in 0..n {
        store
            .record_request(
                &admin(),
                AuditEntry {
                    verb: "get".into(),
                    resource: "deployments".into(),
                    name: Some(format!("chat-{i}")),
                    code: Some(200),
                    message: Some(message.to_owned()),
                    ..AuditEntry::default()
                },
            )
            .await
            .unwrap();
    }
}

async fn export_now(store: &Store, keyring: &Keyring, target: &ExportTarget) -> ExportSummary {
    export(store, keyring, target, &admin(), None, Utc::now())
        .await
        .unwrap()
}

async fn public_key(store: &Store) -> [u8; 32] {
    store
        .audit_public_key()
        .await
        .unwrap()
        .expect("a key was made")
        .1
}

/// Every record in the database after `after`, oldest first.
async fn records_after(store: &Store, after: i64) -> Vec<Record> {
    store.audit_records_after(after, 1_000_000).await.unwrap()
}

/// Exports three times, checks each export and the chain, then tampers.
async fn exports_chain_and_tampering_is_named(store: &Store, target: &ExportTarget, raw: &Raw) {
    let keyring = keyring();
    assert!(store.audit_public_key().await.unwrap().is_none());

    record(store, 5, "first batch").await;
    let first = export_now(store, &keyring, target).await;
    let row1 = first.export.clone().expect("records were exported");
    // The signing key was made (and its creation audited) by this export.
    assert_eq!((row1.first_seq, first.records), (1, row1.last_seq as u64));
    assert_eq!(first.files.len(), 2);
    let key = public_key(store).await;

    // The JSON Lines file holds exactly the records, serialized as is.
    let jsonl = String::from_utf8(raw.get(&first.files[0].object.key).await).unwrap();
    let expected: String = records_after(store, 0)
        .await
        .into_iter()
        .take(first.records as usize)
        .map(|r| serde_json::to_string(&r).unwrap() + "\n")
        .collect();
    assert_eq!(jsonl, expected);
    // The CSV file has a header and one row per record.
    let csv = String::from_utf8(raw.get(&first.files[1].object.key).await).unwrap();
    assert!(csv.starts_with("seq,auditID,stageTimestamp,"), "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("1,"), "{csv}");
    assert_eq!(csv.lines().count() as u64, first.records + 1);

    let ok = verify_export(target, &key).await.unwrap();
    assert_eq!((ok.digests, ok.files, ok.records), (1, 2, first.records));
    assert_eq!(ok.last_seq, row1.last_seq);

    record(store, 3, "second batch").await;
    let second = export_now(store, &keyring, target).await;
    let row2 = second.export.clone().unwrap();
    assert_eq!(row2.first_seq, row1.last_seq + 1);
    let digest2 = SignedDigest::parse(&raw.get(&row2.digest_key).await).unwrap();
    assert_eq!(
        digest2.digest.previous_digest_signature.as_deref(),
        Some(row1.digest_signature.as_str())
    );
    assert_eq!(
        digest2.digest.previous_digest_key.as_deref(),
        Some(row1.digest_key.as_str())
    );
    assert_eq!(store.last_audit_export().await.unwrap().unwrap(), row2);

    // A range that ends before any new record exports nothing.
    let nothing = export(
        store,
        &keyring,
        target,
        &admin(),
        None,
        Utc::now() - Duration::hours(1),
    )
    .await
    .unwrap();
    assert!(nothing.is_empty(), "{nothing}");
    assert!(nothing.to_string().contains("nothing to export"));

    record(store, 2, "third batch").await;
    let third = export_now(store, &keyring, target).await;
    let row3 = third.export.clone().unwrap();
    let ok = verify_export(target, &key).await.unwrap();
    assert_eq!(ok.digests, 3);
    assert_eq!(ok.files, 6);
    assert_eq!(ok.first_seq, 1);
    assert_eq!(ok.last_seq, row3.last_seq);
    assert_eq!(ok.records, row3.last_seq as u64);
    assert_eq!(ok.last_digest, row3.digest_key);

    // One flipped bit in a data file: that file is named.
    let data = second.files[0].object.key.clone();
    let original = raw.flip(&data, 40).await;
    let err = verify_export(target, &key).await.unwrap_err();
    assert_eq!(err.key, data, "{err}");
    assert_eq!(err.failure, Failure::FileAltered, "{err}");
    assert!(err.to_string().contains(&data), "{err}");
    raw.put(&data, original).await;
    // The CSV copy is covered too.
    let csv_key = third.files[1].object.key.clone();
    let original = raw.flip(&csv_key, -3).await;
    let err = verify_export(target, &key).await.unwrap_err();
    assert_eq!(
        (err.key.as_str(), err.failure),
        (csv_key.as_str(), Failure::FileAltered),
        "{err}"
    );
    raw.put(&csv_key, original).await;

    // A JSON Lines file rewritten consistently (valid JSON, new hash) still
    // fails: on its hash, naming the record that no longer chains.
    let text = String::from_utf8(raw.get(&data).await).unwrap();
    let altered_seq = text
        .lines()
        .map(|l| serde_json::from_str::<Record>(l).unwrap())
        .find(|r| r.event.response_status.message.as_deref() == Some("second batch"))
        .unwrap()
        .event
        .seq;
    let altered = text.replacen("second batch", "second batcH", 1);
    raw.put(&data, altered.into_bytes()).await;
    let err = verify_export(target, &key).await.unwrap_err();
    assert_eq!(err.key, data, "{err}");
    assert_eq!(err.failure, Failure::FileAltered, "{err}");
    assert_eq!(err.seq, Some(altered_seq), "{err}");
    raw.put(&data, text.into_bytes()).await;

    // One flipped bit in a digest: the digest is named.
    for at in [30, -6] {
        let original = raw.flip(&row1.digest_key, at).await;
        let err = verify_export(target, &key).await.unwrap_err();
        assert_eq!(err.key, row1.digest_key, "{err}");
        raw.put(&row1.digest_key, original).await;
    }
    verify_export(target, &key).await.unwrap();

    // Another key does not verify these digests.
    let other = another_public_key();
    let err = verify_export(target, &other).await.unwrap_err();
    assert_eq!(err.failure, Failure::Signature, "{err}");

    // A digest removed from the middle breaks the digest chain at the next.
    let removed = raw.get(&row2.digest_key).await;
    raw.delete(&row2.digest_key).await;
    let err = verify_export(target, &key).await.unwrap_err();
    assert_eq!(err.failure, Failure::DigestChain, "{err}");
    assert_eq!(err.key, row3.digest_key, "{err}");
    assert!(err.to_string().contains(&row2.digest_key), "{err}");
    // And removing the first leaves the next one pointing at nothing.
    raw.put(&row2.digest_key, removed).await;
    let first_digest = raw.get(&row1.digest_key).await;
    raw.delete(&row1.digest_key).await;
    let err = verify_export(target, &key).await.unwrap_err();
    assert_eq!(
        (err.failure, err.key.as_str()),
        (Failure::DigestChain, row2.digest_key.as_str()),
        "{err}"
    );
    raw.put(&row1.digest_key, first_digest).await;
    verify_export(target, &key).await.unwrap();
}

/// A valid Ed25519 public key that is not the platform's.
fn another_public_key() -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&[9; 32])
        .verifying_key()
        .to_bytes()
}

async fn exports_to_s3_verify_and_chain(db: TestDb) {
    let s3 = start_s3().await;
    let (target, bucket) = s3.target("hub-a/eu").await;
    let raw = Raw::S3 {
        client: s3.client(),
        bucket,
    };
    exports_chain_and_tampering_is_named(&db.store, &target, &raw).await;
    // Objects went under the prefix, digests sorted in chain order.
    let last = db.store.last_audit_export().await.unwrap().unwrap();
    assert!(
        last.digest_key
            .starts_with("hub-a/eu/audit/digests/000000000000000000"),
        "{}",
        last.digest_key
    );
    assert!(
        last.location.starts_with("s3://audit-"),
        "{}",
        last.location
    );
}

async fn exports_to_a_directory_verify_and_chain(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let target = ExportTarget::dir(dir.path()).unwrap();
    let raw = Raw::Dir(dir.path().to_owned());
    exports_chain_and_tampering_is_named(&db.store, &target, &raw).await;
    // No temporary files are left behind.
    let partial = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial-"))
        .count();
    assert_eq!(partial, 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Pruning: refused before an export and for auditors; afterwards it
/// removes only exported records and the chain in the database and in
/// storage both still verify.
async fn pruning_removes_only_exported_records(db: TestDb) {
    let store = &db.store;
    let keyring = keyring();
    let dir = tempfile::tempdir().unwrap();
    let target = ExportTarget::dir(dir.path()).unwrap();
    record(store, 10, "before export").await;

    let err = store.prune_audit(&admin(), Utc::now()).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("export them first"), "{err}");
    assert!(!auditor().role.grants(Permission::ManagePlatform));
    assert!(matches!(
        store.prune_audit(&auditor(), Utc::now()).await,
        Err(StoreError::Forbidden)
    ));
    // An auditor of one tenant cannot export the whole trail.
    let tenant_auditor = Actor {
        tenant: Some(modelfleet_api::ids::TenantId::new()),
        ..auditor()
    };
    assert!(
        export(store, &keyring, &target, &tenant_auditor, None, Utc::now())
            .await
            .is_err()
    );

    let exported = export_now(store, &keyring, &target).await.export.unwrap();
    record(store, 4, "after export").await;
    let head = store.verify_audit().await.unwrap().head;

    // A time before every record removes nothing, and says why.
    let err = store
        .prune_audit(&admin(), Utc::now() - Duration::days(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no exported records"), "{err}");

    let pruned = store.prune_audit(&admin(), Utc::now()).await.unwrap();
    assert_eq!(pruned.through_seq, exported.last_seq);
    assert_eq!(pruned.removed, exported.last_seq as u64);
    assert_eq!(pruned.export, exported.id);
    let left = records_after(store, 0).await;
    assert_eq!(left.first().unwrap().event.seq, exported.last_seq + 1);
    assert_eq!(left.first().unwrap().prev_hash, pruned.through_hash);

    let report = store.verify_audit().await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!(report.from_checkpoint, exported.last_seq);
    // The prune itself was recorded.
    assert_eq!(report.head, head + 1);
    let prune_record = left.last().unwrap();
    assert_eq!(prune_record.event.verb, "delete");
    assert_eq!(prune_record.event.object_ref.resource, "audit/records");

    // Nothing more to prune until more is exported.
    let err = store.prune_audit(&admin(), Utc::now()).await.unwrap_err();
    assert!(err.to_string().contains("no exported records"), "{err}");

    // The next export continues the chain from storage's point of view.
    let next = export_now(store, &keyring, &target).await.export.unwrap();
    assert_eq!(next.first_seq, exported.last_seq + 1);
    let ok = verify_export(&target, &public_key(store).await)
        .await
        .unwrap();
    assert_eq!(
        (ok.digests, ok.first_seq, ok.last_seq),
        (2, 1, next.last_seq)
    );
}

/// The signing key is made once and read back through the keyring; the
/// public half is readable without it.
async fn the_signing_key_is_made_once(db: TestDb) {
    let store = &db.store;
    let keyring = keyring();
    let a = store.audit_signing_key(&keyring).await.unwrap();
    let b = store.audit_signing_key(&keyring).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(a.public_key(), b.public_key());
    let (id, public) = store.audit_public_key().await.unwrap().unwrap();
    assert_eq!((id, public), (a.id.to_string(), a.public_key()));
    assert!(!format!("{a:?}").contains("signing"), "{a:?}");
    // Its creation was audited, once.
    let records = records_after(store, 0).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event.object_ref.resource, "audit/keys");
    assert_eq!(records[0].event.user.username, "system:audit");
    // Another keyring cannot open it.
    assert!(store.audit_signing_key(&self::keyring()).await.is_err());
}

/// The scheduled loop exports at once when no export was made yet, then
/// waits for the interval, and stops when told.
async fn the_scheduled_export_runs_and_stops(db: TestDb) {
    let store = db.store.clone();
    record(&store, 3, "scheduled").await;
    let dir = tempfile::tempdir().unwrap();
    let target = ExportTarget::dir(dir.path()).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_scheduled(
        store.clone(),
        std::sync::Arc::new(keyring()),
        target.clone(),
        std::time::Duration::from_secs(3600),
        stopped,
    ));
    let mut exported = None;
    for _ in 0..100 {
        exported = store.last_audit_export().await.unwrap();
        if exported.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let exported = exported.expect("the loop exported");
    assert_eq!(exported.first_seq, 1);
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("the loop stops when told")
        .unwrap();
    // Only one export: the next is due in an hour.
    assert_eq!(store.audit_exports().await.unwrap().len(), 1);
    verify_export(&target, &public_key(&store).await)
        .await
        .unwrap();
}

modelfleet_api::store_tests!(
    the_scheduled_export_runs_and_stops,
    exports_to_s3_verify_and_chain,
    exports_to_a_directory_verify_and_chain,
    pruning_removes_only_exported_records,
    the_signing_key_is_made_once,
);

/// 12,000 records (about 8 MB of JSON Lines) go up as a multipart upload
/// of more than one 5 MiB part, and verify. (Sizes are kept down because
/// debug builds hash slowly; `benches/audit_export.rs` measures millions.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_export_uses_multipart_upload() {
    modelfleet_api::store::testing::run(modelfleet_api::store::Backend::Sqlite, |db| async move {
        let store = &db.store;
        let keyring = keyring();
        let s3 = start_s3().await;
        let (target, _) = s3.target("").await;
        let target = target.with_part_size(MIN_PART_SIZE);
        let started = std::time::Instant::now();
        record(store, 12_000, &"x".repeat(200)).await;
        eprintln!("wrote 12000 records in {:?}", started.elapsed());

        let started = std::time::Instant::now();
        let summary = export_now(store, &keyring, &target).await;
        eprintln!("exported in {:?}: {summary}", started.elapsed());
        assert!(summary.records >= 12_000);
        for file in &summary.files {
            let object = &file.object;
            assert!(object.size > MIN_PART_SIZE as u64, "{object:?}");
            assert!(object.parts > 1, "{object:?}");
        }

        let started = std::time::Instant::now();
        let ok = verify_export(&target, &public_key(store).await)
            .await
            .unwrap();
        eprintln!("verified in {:?}: {ok}", started.elapsed());
        assert_eq!(ok.records, summary.records);
    })
    .await;
}
