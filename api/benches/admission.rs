//! Admission throughput under contention, on SQLite and (when
//! `MODELFLEET_TEST_DATABASE_URL` is set) PostgreSQL.
//!
//! `cargo bench -p modelfleet-api --bench admission` measures; under
//! `cargo test` (no `--bench` argument) it only runs a few admissions to
//! show it still works. Each case runs `tasks` concurrent tasks, each
//! admitting deployments one transaction at a time into one of `tenants`
//! tenants with unlimited quota: one tenant means every admission waits for
//! the same tenant lock; many tenants show how far that lock is the limit.

use std::time::Instant;

use modelfleet_api::Actor;
use modelfleet_api::store::testing::{self, TestDb};
use modelfleet_api::store::{Backend, DeploymentRequest, NewTenant, Source};
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::precision::Precision;
use modelfleet_core::quota::Quota;

const CASES: [(usize, usize); 4] = [(1, 1), (1, 16), (1, 64), (16, 64)];

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
    let per_task = if full { 40 } else { 2 };
    let actor = Actor::system("bench");
    for (case, (tenants, tasks)) in CASES.into_iter().enumerate() {
        let mut ids = Vec::new();
        let mut tx = db.store.begin(&actor).await.unwrap();
        for t in 0..tenants {
            let tenant = tx
                .create_tenant(NewTenant {
                    name: format!("bench-{case}-{t}"),
                    display_name: "Bench".into(),
                    quota: Quota::unlimited(),
                })
                .await
                .unwrap();
            ids.push(tenant.id);
        }
        tx.commit().await.unwrap();
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let (store, actor, tenant) = (db.store.clone(), actor.clone(), ids[task % tenants]);
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let mut tx = store.begin(&actor).await.unwrap();
                        tx.admit_deployment(tenant, request(&format!("d-{task}-{i}")))
                            .await
                            .unwrap();
                        tx.commit().await.unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        let elapsed = started.elapsed();
        let admitted = tasks * per_task;
        println!(
            "{:?}: {tasks:>2} tasks, {tenants:>2} tenant(s): {admitted:>4} admissions in {:>6.0} ms = {:>6.0}/s",
            db.store.backend(),
            elapsed.as_secs_f64() * 1e3,
            admitted as f64 / elapsed.as_secs_f64(),
        );
    }
}

fn request(name: &str) -> DeploymentRequest {
    DeploymentRequest {
        name: name.into(),
        model: "llama-3.1-8b".into(),
        model_params: ParamCount::billions(8),
        cluster: "bench".into(),
        namespace: "mf-bench".into(),
        pool: "l40s".into(),
        accelerator: "l40s".into(),
        devices_per_replica: 1,
        replicas: 1,
        precision: Precision::Bf16,
        replica_cost_per_hour: Money::from_micros(1_500_000, Currency::Usd),
        source: Source::Api,
        resource_uid: None,
    }
}
