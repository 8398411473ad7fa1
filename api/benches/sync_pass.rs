//! One cluster sync pass over many ModelDeployments in one cluster, on
//! SQLite and (when `MODELFLEET_TEST_DATABASE_URL` is set) PostgreSQL.
//!
//! `cargo bench -p modelfleet-api --bench sync_pass` measures a pass over
//! 2,000 ModelDeployments (`SYNC_PASS_DEPLOYMENTS=500` picks another
//! count); under `cargo test` (no `--bench` argument) it runs a pass over a
//! few to show it still works.
//!
//! The cluster is a sandbox API server (no nodes: the pass compares
//! ModelDeployments, and pods only for device intervals). Every deployment
//! is admitted in the database and applied by the hub as it applies one
//! (labelled with its id, sealed), so each is the hub's own. The first pass
//! records every object's uid and status (one write each); the passes after
//! it find nothing changed, which is what sync does every few seconds for
//! each cluster: that steady pass is the figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{reflector, watcher};
use modelfleet_api::clusters::{DEPLOYMENT_ID_LABEL, TENANT_LABEL};
use modelfleet_api::store::testing::{self, TestDb};
use modelfleet_api::store::{Backend, DeploymentRequest, NewTenant, Source};
use modelfleet_api::{Actor, ApiSettings, ClusterRegistry, Hub, Keyring, SecretKey};
use modelfleet_core::crd::ModelDeployment;
use modelfleet_core::fleet::Cloud;
use modelfleet_core::model::ParamCount;
use modelfleet_core::money::{Currency, Money};
use modelfleet_core::precision::Precision;
use modelfleet_core::quota::Quota;
use modelfleet_sandbox::ApiServer;
use serde_json::json;

const CLUSTER: &str = "bench";
const TENANT: &str = "bench";
const NAMESPACE: &str = "mf-bench";
/// Steady passes measured after the first.
const PASSES: usize = 5;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let deployments = match std::env::var("SYNC_PASS_DEPLOYMENTS") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("SYNC_PASS_DEPLOYMENTS is a count, not {n:?}")),
        Err(_) if full => 2000,
        Err(_) => 10,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            testing::run(backend, move |db| measure(db, deployments)).await;
        }
    });
}

async fn measure(db: TestDb, deployments: usize) {
    let server = ApiServer::new();
    let kube = server.client();
    Api::<CustomResourceDefinition>::all(kube.clone())
        .create(&PostParams::default(), &ModelDeployment::crd())
        .await
        .expect("the sandbox takes the ModelDeployment CRD");
    let keyring = Arc::new(Keyring::new(SecretKey::generate().unwrap()));
    let hub = Hub::new(
        db.store.clone(),
        keyring,
        ClusterRegistry::new(),
        ApiSettings::default(),
    );
    hub.register_sandbox_cluster(CLUSTER, Cloud::Aws, "us-east-1", kube.clone())
        .await
        .unwrap();

    let setup = Instant::now();
    let actor = Actor::system("bench");
    let mut tx = db.store.begin(&actor).await.unwrap();
    let tenant = tx
        .create_tenant(NewTenant {
            name: TENANT.into(),
            display_name: "Bench".into(),
            quota: Quota::unlimited(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut rows = Vec::with_capacity(deployments);
    for chunk in (0..deployments).collect::<Vec<_>>().chunks(100) {
        let mut tx = db.store.begin(&actor).await.unwrap();
        for i in chunk {
            rows.push(
                tx.admit_deployment(tenant.id, request(&format!("d-{i}")))
                    .await
                    .unwrap(),
            );
        }
        tx.commit().await.unwrap();
    }
    let registry = hub.registry();
    futures::stream::iter(&rows)
        .for_each_concurrent(8, |row| async move {
            let md: ModelDeployment = serde_json::from_value(json!({
                "apiVersion": "modelfleet.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {
                    "name": row.name,
                    "namespace": NAMESPACE,
                    "labels": {
                        TENANT_LABEL: TENANT,
                        DEPLOYMENT_ID_LABEL: row.id.to_string(),
                    },
                },
                "spec": {
                    "model": "llama-3.1-8b",
                    "source": "s3://models/llama-3.1-8b",
                    "placement": {"pool": format!("{CLUSTER}/l40s")},
                },
            }))
            .unwrap();
            registry
                .apply_deployment(CLUSTER, TENANT, &md)
                .await
                .unwrap();
        })
        .await;

    // The caches a cluster's sync watches, filled with what it lists.
    let (mds, mut md_writer) = reflector::store::<ModelDeployment>();
    let (pods, _pod_writer) = reflector::store::<Pod>();
    let listed = Api::<ModelDeployment>::all(kube.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), deployments);
    for md in listed.items {
        md_writer.apply_watcher_event(&watcher::Event::Apply(md));
    }
    let backend = db.store.backend();
    println!(
        "{backend:?}: {deployments} deployments admitted and applied in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let mut missing = modelfleet_api::sync::Missing::default();
    let started = Instant::now();
    modelfleet_api::sync::pass(&hub, CLUSTER, &mds, &pods, &mut missing)
        .await
        .unwrap();
    let first = started.elapsed();
    let recorded = db.store.cluster_deployments(CLUSTER).await.unwrap();
    assert_eq!(recorded.len(), deployments);
    assert!(
        recorded.iter().all(|d| d.resource_uid.is_some()),
        "the first pass records every object's uid"
    );

    let mut steady: Vec<Duration> = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let started = Instant::now();
        modelfleet_api::sync::pass(&hub, CLUSTER, &mds, &pods, &mut missing)
            .await
            .unwrap();
        steady.push(started.elapsed());
    }
    steady.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{backend:?}: sync pass over {deployments} ModelDeployments: first (records {deployments} \
         statuses) {:>8.1} ms; steady (nothing changed) median {:>8.1} ms, min {:>8.1} ms, \
         max {:>8.1} ms over {PASSES}",
        ms(first),
        ms(steady[PASSES / 2]),
        ms(steady[0]),
        ms(steady[PASSES - 1]),
    );
}

fn request(name: &str) -> DeploymentRequest {
    DeploymentRequest {
        name: name.into(),
        model: "llama-3.1-8b".into(),
        model_params: ParamCount::billions(8),
        cluster: CLUSTER.into(),
        namespace: NAMESPACE.into(),
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
