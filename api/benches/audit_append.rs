//! Audit append throughput under concurrent writers, on SQLite and (when
//! `MODELFLEET_TEST_DATABASE_URL` is set) PostgreSQL.
//!
//! `cargo bench -p modelfleet-api --bench audit_append` measures; under
//! `cargo test` (no `--bench` argument) it appends a few records per case
//! to show it still works. Each case runs `tasks` concurrent tasks, each
//! committing transactions that write one audit record (what every refused
//! request costs, and what every change adds to its own transaction).
//! Every append takes the chain's head row, so appends are serialized by
//! design: the figure is the ceiling on audited writes per second.
//! After each backend the chain is verified, so a fork or a gap under
//! concurrency fails the run.

use std::time::Instant;

use modelfleet_api::store::testing::{self, TestDb};
use modelfleet_api::store::{AuditEntry, Backend};
use modelfleet_api::{Actor, Origin};

const TASKS: [usize; 4] = [1, 4, 16, 64];

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            testing::run(backend, move |db| measure(db, full)).await;
        }
    });
}

async fn measure(db: TestDb, full: bool) {
    let total = if full { 4000 } else { 64 };
    for tasks in TASKS {
        let per_task = total / tasks;
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let store = db.store.clone();
                tokio::spawn(async move {
                    let actor = Actor::system("bench").with_origin(Origin {
                        request_id: Some(format!("bench-{task}")),
                        ..Origin::default()
                    });
                    for i in 0..per_task {
                        let entry = AuditEntry {
                            verb: "update".into(),
                            resource: "deployments".into(),
                            name: Some(format!("d-{task}-{i}")),
                            code: Some(200),
                            ..AuditEntry::default()
                        };
                        store.record_request(&actor, entry).await.unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let elapsed = started.elapsed();
        let appended = tasks * per_task;
        println!(
            "{:?}: {tasks:>2} writers: {appended:>5} records in {:>7.0} ms = {:>6.0} records/s",
            db.store.backend(),
            elapsed.as_secs_f64() * 1e3,
            appended as f64 / elapsed.as_secs_f64(),
        );
    }
    let chain = db.store.verify_audit().await.unwrap();
    assert!(chain.intact(), "{chain:?}");
    println!(
        "{:?}: chain of {} records verified",
        db.store.backend(),
        chain.checked
    );
}
