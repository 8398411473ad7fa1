//! A large simulated cluster converges: 1,000 nodes, 2,000 single-replica
//! Deployments. Slow in debug builds, so it runs on request:
//! `cargo test --workspace --all-targets -- --ignored a_thousand_nodes`.

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, PostParams};
use modelfleet_core::Fleet;
use modelfleet_sandbox::ApiServer;
use modelfleet_sandbox::cluster::{ClusterOptions, SimulatedCluster};

fn big_fleet() -> Fleet {
    let pools: String = (0..10)
        .map(|i| {
            format!(
                "- {{cloud: aws, region: us-east-1, cluster: big, name: pool{i}, accelerator: h100, \
                 devicesPerNode: 8, nodesTotal: 100, nodesFree: 100}}\n"
            )
        })
        .collect();
    Fleet::from_yaml(&format!("pools:\n{pools}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes in a debug build; run on request"]
async fn a_thousand_nodes_and_two_thousand_deployments_converge() {
    let started = Instant::now();
    let server = ApiServer::new();
    let client = server.client();
    let options = ClusterOptions::default().time_factor(TIME_FACTOR);
    let cluster = SimulatedCluster::start(client.clone(), &big_fleet(), options)
        .await
        .unwrap();
    eprintln!("1000 nodes registered in {:?}", started.elapsed());
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    for i in 0..2000 {
        let d = gpu_deployment(&format!("m{i}"), 1, &format!("pool{}", i % 10), 2, None);
        api.create(&PostParams::default(), &d).await.unwrap();
    }
    eprintln!("2000 deployments created at {:?}", started.elapsed());
    eventually(
        "every deployment is ready",
        Duration::from_secs(1800),
        || async {
            let list = api.list(&ListParams::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1))
                .count();
            (ready == 2000).then_some(())
        },
    )
    .await;
    eprintln!("all ready at {:?}", started.elapsed());
    cluster.shutdown().await;
}
