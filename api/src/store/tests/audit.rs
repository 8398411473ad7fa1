//! The audit trail in the store: every committed change writes exactly one
//! record on its own transaction, the database refuses to change records,
//! and any single altered, removed or reordered row is found by
//! verification, which names it.

use modelfleet_core::audit::{ChainBreak, Outcome};
use modelfleet_core::quota::Quota;

use super::{member, platform, tenant};
use crate::identity::Role;
use crate::store::audit::verify_chain;
use crate::store::testing::TestDb;
use crate::store::{
    AuditEntry, AuditQuery, Backend, Conn, NewTenant, Store, StoreError, Tx, on_conn,
};

async fn all_records(store: &Store) -> Vec<modelfleet_core::audit::Record> {
    store.audit_records_after(0, 10_000).await.unwrap()
}

async fn changes_are_recorded_on_their_own_transaction(db: TestDb) {
    let store = &db.store;
    let acme = tenant(store, "acme", Quota::unlimited()).await;

    // Rolled back: neither the tenant nor a record.
    let mut tx = store.begin(&platform()).await.unwrap();
    tx.create_tenant(NewTenant {
        name: "globex".into(),
        display_name: "Globex".into(),
        quota: Quota::nothing(),
    })
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    // Refused by the store: nothing changed, nothing recorded here (the
    // API records refusals itself).
    let dev = member(acme.id, Role::Developer);
    let mut tx = store.begin(&dev).await.unwrap();
    assert!(matches!(
        tx.set_quota(acme.id, &Quota::nothing()).await,
        Err(StoreError::Forbidden | StoreError::NotFound(_))
    ));
    drop(tx);

    let records = all_records(store).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let e = &records[0].event;
    assert_eq!(
        (e.seq, e.verb.as_str(), e.object_ref.resource.as_str()),
        (1, "create", "tenants")
    );
    assert_eq!(e.object_ref.name.as_deref(), Some("acme"));
    assert_eq!(e.user.username, "system:test");
    assert_eq!(e.response_status.status, Outcome::Success);

    // An explicit entry is recorded even though nothing else changed.
    let mut tx = store.begin(&dev).await.unwrap();
    tx.audit_as(AuditEntry {
        verb: "create".into(),
        resource: "deployments".into(),
        code: Some(422),
        message: Some("no feasible plan".into()),
        ..AuditEntry::default()
    });
    tx.commit().await.unwrap();
    let records = all_records(store).await;
    assert_eq!(records.len(), 2);
    let refused = &records[1].event;
    assert_eq!(refused.response_status.status, Outcome::Failure);
    assert_eq!(refused.response_status.code, Some(422));
    assert_eq!(refused.object_ref.namespace, Some(acme.id.to_string()));
    assert_eq!(records[1].prev_hash, records[0].hash);

    let report = store.verify_audit().await.unwrap();
    assert!(report.intact(), "{report:?}");
    assert_eq!((report.checked, report.head), (2, 2));
}

async fn searches_are_confined_to_the_readers_tenant(db: TestDb) {
    let store = &db.store;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let globex = tenant(store, "globex", Quota::unlimited()).await;
    for (t, name) in [(acme.id, "a1"), (globex.id, "g1"), (acme.id, "a2")] {
        store
            .record_request(
                &member(t, Role::Developer),
                AuditEntry {
                    verb: "delete".into(),
                    resource: "deployments".into(),
                    name: Some(name.into()),
                    code: Some(404),
                    ..AuditEntry::default()
                },
            )
            .await
            .unwrap();
    }
    let query = AuditQuery {
        resource: Some("deployments".into()),
        limit: 10,
        ..AuditQuery::default()
    };
    let names = |page: crate::store::AuditPage| -> Vec<String> {
        page.records
            .into_iter()
            .filter_map(|r| r.event.object_ref.name)
            .collect()
    };
    let admin = member(acme.id, Role::TenantAdmin);
    assert_eq!(
        names(store.audit_records(&admin, &query).await.unwrap()),
        ["a1", "a2"]
    );
    assert!(matches!(
        store
            .audit_records(
                &admin,
                &AuditQuery {
                    tenant: Some(globex.id),
                    ..query.clone()
                }
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .audit_records(&member(acme.id, Role::Developer), &query)
            .await,
        Err(StoreError::Forbidden)
    ));
    let all = store.audit_records(&platform(), &query).await.unwrap();
    assert_eq!(names(all), ["a1", "g1", "a2"]);

    // Pages follow each other without gaps.
    let first = store
        .audit_records(
            &platform(),
            &AuditQuery {
                limit: 2,
                ..query.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.records.len(), 2);
    let rest = store
        .audit_records(
            &platform(),
            &AuditQuery {
                after: first.next,
                ..query.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(names(rest), ["a2"]);
    let failures = AuditQuery {
        outcome: Some(Outcome::Failure),
        limit: 10,
        ..AuditQuery::default()
    };
    assert_eq!(
        store
            .audit_records(&platform(), &failures)
            .await
            .unwrap()
            .records
            .len(),
        3
    );
}

async fn the_database_refuses_to_change_records(db: TestDb) {
    let store = &db.store;
    tenant(store, "acme", Quota::unlimited()).await;
    tenant(store, "globex", Quota::unlimited()).await;
    for statement in [
        "UPDATE audit_records SET verb = 'get' WHERE seq = 1",
        "DELETE FROM audit_records WHERE seq = 2",
        "DELETE FROM audit_records",
    ] {
        let mut tx = store.begin(&platform()).await.unwrap();
        let result = raw(tx.conn(), statement).await;
        let err = result.expect_err(statement).to_string();
        assert!(err.contains("append-only"), "{statement}: {err}");
    }
    if store.backend() == Backend::Postgres {
        let mut tx = store.begin(&platform()).await.unwrap();
        let err = raw(tx.conn(), "TRUNCATE audit_records").await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(all_records(store).await.len(), 2);
    assert!(store.verify_audit().await.unwrap().intact());
}

pub(super) async fn raw(mut conn: Conn<'_>, sql: &str) -> Result<u64, sqlx::Error> {
    on_conn!(conn.re(), c => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(c).await.map(|r| r.rows_affected()))
}

/// Turns the append-only triggers off inside `tx`, as a database superuser
/// could; rolling `tx` back restores them.
async fn disable_triggers(tx: &mut Tx) {
    let statements: &[&str] = match tx.backend() {
        Backend::Postgres => &["ALTER TABLE audit_records DISABLE TRIGGER USER"],
        Backend::Sqlite => &[
            "DROP TRIGGER audit_records_no_update",
            "DROP TRIGGER audit_records_no_delete",
        ],
    };
    for s in statements {
        raw(tx.conn(), s).await.unwrap();
    }
}

/// A small deterministic generator, so a failing trial can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One change to one column of one row that a forger might make, written
/// so the value stays valid for the column (the forgery must survive being
/// read back to be interesting).
const ALTERATIONS: &[&str] = &[
    "verb = verb || 'x'",
    "request_uri = COALESCE(request_uri, '') || '/x'",
    "username = username || 'x'",
    "user_uid = COALESCE(user_uid, '') || 'x'",
    "user_groups = '[\"role:platform-admin\"]'",
    "source_ip = '10.9.8.7'",
    "user_agent = COALESCE(user_agent, '') || 'x'",
    "resource = resource || 'x'",
    "namespace = COALESCE(namespace, '') || 'x'",
    "name = COALESCE(name, '') || 'x'",
    "object_uid = COALESCE(object_uid, '') || 'x'",
    "code = COALESCE(code, 200) + 1",
    "outcome = CASE outcome WHEN 'Success' THEN 'Failure' ELSE 'Success' END",
    "message = COALESCE(message, '') || 'x'",
    "annotations = '{\"x\":\"y\"}'",
    "prev_hash = hash",
    "hash = prev_hash",
];

async fn tampering_with_any_single_row_is_detected(db: TestDb) {
    let store = &db.store;
    let acme = tenant(store, "acme", Quota::unlimited()).await;
    let records = 40;
    for i in 1..records {
        let actor = if i % 3 == 0 {
            platform()
        } else {
            member(acme.id, Role::Developer)
        };
        store
            .record_request(
                &actor,
                AuditEntry {
                    verb: "update".into(),
                    resource: "deployments".into(),
                    name: Some(format!("d{i}")),
                    code: Some(if i % 2 == 0 { 200 } else { 403 }),
                    ..AuditEntry::default()
                },
            )
            .await
            .unwrap();
    }
    assert!(store.verify_audit().await.unwrap().intact());
    let times: &[&str] = match store.backend() {
        Backend::Postgres => &[
            "received_at = received_at + INTERVAL '1 microsecond'",
            "recorded_at = recorded_at - INTERVAL '1 second'",
        ],
        // SQLite keeps chrono's text form: change the year, keep the form.
        Backend::Sqlite => &[
            "received_at = replace(received_at, '202', '192')",
            "recorded_at = replace(recorded_at, '202', '201')",
        ],
    };
    let alterations: Vec<&str> = ALTERATIONS.iter().chain(times).copied().collect();

    let trials = 1000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut missed = Vec::new();
    for trial in 0..trials {
        let seq = 1 + i64::try_from(rng.below(records)).unwrap();
        let mut tx = store.begin(&platform()).await.unwrap();
        disable_triggers(&mut tx).await;
        let (what, named) = match rng.below(3) {
            0 => {
                let set = alterations[rng.below(alterations.len() as u64) as usize];
                raw(
                    tx.conn(),
                    &format!("UPDATE audit_records SET {set} WHERE seq = {seq}"),
                )
                .await
                .unwrap();
                (format!("altered {set} of record {seq}"), vec![seq])
            }
            1 => {
                raw(
                    tx.conn(),
                    &format!("DELETE FROM audit_records WHERE seq = {seq}"),
                )
                .await
                .unwrap();
                (format!("deleted record {seq}"), vec![seq])
            }
            _ => {
                let other = 1 + i64::try_from(rng.below(records)).unwrap();
                let other = if other == seq {
                    seq % records as i64 + 1
                } else {
                    other
                };
                for sql in [
                    format!("UPDATE audit_records SET seq = 1000000 WHERE seq = {seq}"),
                    format!("UPDATE audit_records SET seq = {seq} WHERE seq = {other}"),
                    format!("UPDATE audit_records SET seq = {other} WHERE seq = 1000000"),
                ] {
                    raw(tx.conn(), &sql).await.unwrap();
                }
                (
                    format!("swapped records {seq} and {other}"),
                    vec![seq.min(other)],
                )
            }
        };
        let report = verify_chain(tx.conn()).await.unwrap();
        tx.rollback().await.unwrap();
        match &report.broken {
            Some(broken) if named.contains(&broken.seq()) => {}
            other => missed.push(format!(
                "trial {trial}: {what}: verification said {other:?}"
            )),
        }
    }
    assert!(
        missed.is_empty(),
        "{} of {trials} missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
    // Every trial was rolled back: the real chain is untouched.
    assert!(store.verify_audit().await.unwrap().intact());
}

async fn a_record_cut_off_the_end_is_noticed(db: TestDb) {
    let store = &db.store;
    tenant(store, "acme", Quota::unlimited()).await;
    tenant(store, "globex", Quota::unlimited()).await;
    let mut tx = store.begin(&platform()).await.unwrap();
    disable_triggers(&mut tx).await;
    raw(tx.conn(), "DELETE FROM audit_records WHERE seq = 2")
        .await
        .unwrap();
    let report = verify_chain(tx.conn()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        report.broken,
        Some(ChainBreak::Truncated { last: 1, head: 2 })
    );
}

crate::store_tests!(
    changes_are_recorded_on_their_own_transaction,
    searches_are_confined_to_the_readers_tenant,
    the_database_refuses_to_change_records,
    tampering_with_any_single_row_is_detected,
    a_record_cut_off_the_end_is_noticed,
);
