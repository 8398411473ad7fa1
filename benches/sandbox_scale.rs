//! How long a sandbox cluster with the real operator takes to converge a
//! large number of ModelDeployments, and how much memory it takes.
//!
//! `cargo bench --bench sandbox_scale` runs 1,000 nodes and 2,000
//! deployments (`SANDBOX_SCALE=200x400` picks another size, nodes x
//! deployments); under `cargo test` it runs a small smoke version.

use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, PostParams};
use modelfleet::embedded::{EmbeddedCluster, EmbeddedOptions};
use modelfleet_core::crd::{ModelDeployment, Phase};
use modelfleet_core::fleet::Fleet;

fn fleet(nodes: usize) -> Fleet {
    // Pools of 10 nodes of 8 L40S, across the four clouds.
    let clouds = ["aws", "aliyun", "tencentcloud", "huaweicloud"];
    let pools: Vec<String> = (0..nodes.div_ceil(10))
        .map(|i| {
            format!(
                "- {{cloud: {}, region: r{}, cluster: scale, name: pool-{i}, accelerator: l40s, devicesPerNode: 8, \
                 nodesTotal: 10, nodesFree: 10, pricePerDeviceHour: \"1.00 USD\"}}",
                clouds[i % 4],
                i % 3
            )
        })
        .collect();
    Fleet::from_yaml(&format!("pools:\n{}\n", pools.join("\n"))).unwrap()
}

/// `"200x400"`: 200 nodes, 400 deployments.
fn parse_size(size: &str) -> Option<(usize, usize)> {
    let (nodes, deployments) = size.split_once('x')?;
    Some((nodes.parse().ok()?, deployments.parse().ok()?))
}

/// A memory figure of this process from /proc (`VmHWM:` is the peak RSS).
fn status_mib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (nodes, deployments) = match std::env::var("SANDBOX_SCALE") {
        Ok(size) => parse_size(&size)
            .unwrap_or_else(|| panic!("SANDBOX_SCALE is NODESxDEPLOYMENTS, not {size:?}")),
        Err(_) if full => (1000, 2000),
        Err(_) => (20, 20),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let started = Instant::now();
        let mut options = EmbeddedOptions::new("scale", fleet(nodes));
        options.time_factor = 0.001;
        options.requeue = Duration::from_secs(2);
        let cluster = EmbeddedCluster::start(options).await.unwrap();
        let nodes_up = started.elapsed();
        let api: Api<ModelDeployment> = Api::namespaced(cluster.client(), "default");
        let created = Instant::now();
        for i in 0..deployments {
            let mut md = ModelDeployment::new(
                &format!("m{i}"),
                serde_json::from_value(serde_json::json!({
                    "model": "llama-3.2-1b", "source": "hf://meta-llama/Llama-3.2-1B"
                }))
                .unwrap(),
            );
            md.metadata.namespace = Some("default".to_owned());
            api.create(&PostParams::default(), &md).await.unwrap();
        }
        let mut last_progress = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(if full { 1800 } else { 120 });
        loop {
            let list = api.list(&ListParams::default()).await.unwrap();
            let ready = list
                .items
                .iter()
                .filter(|md| md.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready))
                .count();
            if ready == deployments {
                break;
            }
            if full && last_progress.elapsed() >= Duration::from_secs(30) {
                last_progress = Instant::now();
                eprintln!(
                    "  {:.0?}: {ready} of {deployments} Ready, RSS {} MiB",
                    created.elapsed(),
                    status_mib("VmRSS:").map_or_else(|| "unknown".to_owned(), |m| m.to_string())
                );
            }
            assert!(Instant::now() < deadline, "only {ready} of {deployments} Ready");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!(
            "sandbox scale: {nodes} nodes up in {:.1?}; {deployments} ModelDeployments Ready {:.1?} after creation; peak RSS {} MiB",
            nodes_up,
            created.elapsed(),
            status_mib("VmHWM:").map_or_else(|| "unknown".to_owned(), |m| m.to_string())
        );
        cluster.shutdown().await;
    });
}
