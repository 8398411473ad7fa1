//! The two sandbox clusters, in the test process: they outlive every hub
//! start.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use modelfleet::embedded::{EmbeddedCluster, EmbeddedOptions};
use modelfleet_core::fleet::Fleet;

use super::{ALIYUN_ON_DEMAND, AWS_ON_DEMAND, AWS_SPOT, usd};

/// The hub's secret key in every start of the month (given in its
/// environment), so each cluster's operator holds the admission key the
/// hub seals with.
pub fn hub_secret_key() -> modelfleet_api::SecretKey {
    modelfleet_api::SecretKey::from_bytes([42; 32])
}

/// Scales simulated load times and the NodeLost grace (300 s → 1.5 s),
/// which must stay under the hub's failover delay: see `node_lost`.
pub const TIME_FACTOR: f64 = 0.005;

pub const AWS: &str = "aws-a";
pub const ALIYUN: &str = "ali-b";

async fn cluster(name: &str, yaml: &str, dir: &Path) -> (EmbeddedCluster, String) {
    let fleet = Fleet::from_yaml(yaml).expect("the test fleet is valid");
    let mut options = EmbeddedOptions::new(name, fleet);
    options.time_factor = TIME_FACTOR;
    options.requeue = Duration::from_millis(300);
    options.listen = Some(([127, 0, 0, 1], 0).into());
    options.admission = Some(modelfleet_api::Keyring::new(hub_secret_key()).admission_key(name));
    let cluster = EmbeddedCluster::start(options)
        .await
        .expect("the sandbox cluster starts");
    let path = dir.join(format!("{name}.kubeconfig"));
    cluster.write_kubeconfig(&path).unwrap();
    let kubeconfig = std::fs::read_to_string(&path).unwrap();
    (cluster, kubeconfig)
}

pub async fn clusters(dir: &Path) -> [(EmbeddedCluster, String); 2] {
    let aws = cluster(
        AWS,
        &format!(
            "pools:\n\
             - {{cloud: aws, region: us-east-1, cluster: {AWS}, name: od, accelerator: l40s, \
                devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, pricePerDeviceHour: \"{}\"}}\n\
             - {{cloud: aws, region: us-east-1, cluster: {AWS}, name: spot, accelerator: l40s, \
                devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, capacityType: spot, \
                pricePerDeviceHour: \"{}\"}}\n",
            usd(AWS_ON_DEMAND),
            usd(AWS_SPOT)
        ),
        dir,
    )
    .await;
    let aliyun = cluster(
        ALIYUN,
        &format!(
            "pools:\n\
             - {{cloud: aliyun, region: cn-hangzhou, cluster: {ALIYUN}, name: od, \
                accelerator: l40s, devicesPerNode: 8, nodesTotal: 1, nodesFree: 1, \
                pricePerDeviceHour: \"{}\"}}\n",
            usd(ALIYUN_ON_DEMAND)
        ),
        dir,
    )
    .await;
    [aws, aliyun]
}

/// Pods on `cluster`'s nodes whose names start with `node_prefix`.
pub async fn pods_on(cluster: &EmbeddedCluster, node_prefix: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::all(cluster.client());
    pods.list(&ListParams::default())
        .await
        .expect("the sandbox lists pods")
        .items
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| n.starts_with(node_prefix))
        })
        .collect()
}

/// Every pod of `cluster`: where it runs, its phase, whether it is ready
/// and being deleted; for failure messages.
pub async fn pod_summary(cluster: &EmbeddedCluster) -> String {
    let pods: Api<Pod> = Api::all(cluster.client());
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return format!("{}: pods cannot be listed\n", cluster.name);
    };
    let mut out = String::new();
    for p in list.items {
        let status = p.status.as_ref();
        out.push_str(&format!(
            "{}: {} on {:?} phase {:?} reason {:?} ready {:?} deleting {:?}\n",
            cluster.name,
            p.metadata.name.as_deref().unwrap_or_default(),
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            status.and_then(|s| s.phase.as_deref()),
            status.and_then(|s| s.reason.as_deref()),
            ready(&p),
            p.metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| t.0.to_string()),
        ));
    }
    out
}

pub fn ready(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}
